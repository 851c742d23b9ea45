"""Real photos: the Middlebury templeRing (47 calibrated views), cameras from SfM vs the calibration."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_path


def _calibration(folder):
    from medrecon.multiview.cameras import CameraSet

    rows = [ln.split() for ln in (folder / "templeR_par.txt").read_text().splitlines()[1:] if ln.strip()]
    names = [r[0] for r in rows]
    v = np.array([[float(x) for x in r[1:]] for r in rows])
    K, R, t = v[:, :9].reshape(-1, 3, 3), v[:, 9:18].reshape(-1, 3, 3), v[:, 18:21]
    lo = np.array([-0.023121, -0.038009, -0.091940])
    hi = np.array([0.078626, 0.121636, -0.017395])
    box = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    return CameraSet(names, K, R, t, np.array([(640, 480)] * len(names)), np.zeros(len(names)), box,
                     np.zeros((8, 3), np.uint8), None, len(names))


@pytest.mark.realdata
@pytest.mark.slow
def test_temple_ring_cameras(tmp_path):
    from medrecon.multiview.cameras import pose_errors, run_sfm

    folder = shared_path("photos_templering_middlebury")
    truth = _calibration(folder)
    est, info = run_sfm(folder, tmp_path / "sfm", num_threads=2, max_features=4096)
    e = pose_errors(est, truth)
    assert e["registered_fraction"] >= 0.9, info
    assert np.median(e["centre_error_rel"]) <= 0.01, e["centre_error_rel"]
    assert np.percentile(e["centre_error_rel"], 90) <= 0.01, e["centre_error_rel"]
