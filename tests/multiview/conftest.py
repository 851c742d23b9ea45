"""Multi-view fixtures: one rendered photo set of the analytic scene (session scope, ~20 views)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

N_VIEWS, WIDTH, HEIGHT = 20, 320, 240
from tests.conftest import SHARED_DATA, shared_path  # noqa: E402,F401  (the one rule: fail in CI, skip locally)


@pytest.fixture(scope="session")
def mv_photo_set(tmp_path_factory):
    """(folder of photos, COLMAP text model of the true cameras, truth CameraSet, renders)."""
    import torch

    from medrecon.multiview import synthetic as S
    from medrecon.multiview.cameras import write_colmap_text

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("mv_set")
    truth, renders = S.write_photo_set(root / "photos", N_VIEWS, WIDTH, HEIGHT)
    write_colmap_text(truth, root / "cameras")
    return root / "photos", root / "cameras", truth, renders


@pytest.fixture(scope="session")
def mv_credentials(tmp_path_factory):
    from mv_certs import make_test_credentials

    return make_test_credentials(tmp_path_factory.mktemp("mv_cred"))


def similarity_to_truth(est_cams, truth):
    """(s, R, t) taking the estimate's world to the truth's (camera centres, matched by name)."""
    from medrecon.multiview.cameras import pose_errors

    e = pose_errors(est_cams, truth)
    return e["scale"], e["R"], e["t"]


def chamfer_f(points_rec: np.ndarray, gt_all: np.ndarray, gt_visible: np.ndarray, tau: float):
    """(accuracy, completeness, chamfer, F-score@tau): accuracy against the whole true surface,
    completeness of the part of it the cameras saw."""
    from scipy.spatial import cKDTree

    da = cKDTree(gt_all).query(points_rec)[0]
    dc = cKDTree(points_rec).query(gt_visible)[0]
    p, r = (da < tau).mean(), (dc < tau).mean()
    f = 2 * p * r / max(p + r, 1e-12)
    return da.mean(), dc.mean(), 0.5 * (da.mean() + dc.mean()), f
