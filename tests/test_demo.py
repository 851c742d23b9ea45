"""`medrecon demo`: phantom CT as a real DICOM series -> bone and teeth models."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pydicom
import pytest
import trimesh

import medrecon


@pytest.mark.slow  # measured: 20 s CPU alone (issue 22: the fast tier stays under 3 min)
def test_demo_cli_end_to_end(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "medrecon", "demo", "-o", str(out)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert "bone" in r.stdout and "teeth" in r.stdout and str(out / "bone") in r.stdout
    # a real CT series, anonymous, readable by the normal loader
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) > 100
    ds = pydicom.dcmread(files[0])
    assert ds.Modality == "CT" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and str(ds.PatientName) == "ANON"
    vol = medrecon.load(out / "dicom")
    np.testing.assert_allclose(vol.spacing, [1.0, 1.0, 1.25], atol=1e-6)
    assert vol.array.min() >= -1024 and np.percentile(vol.array, 99.9) > 1500
    # bone: one closed model spanning the phantom's skull and cervical spine (design extents, LPS mm)
    bone = trimesh.load(out / "bone" / "bone.stl")
    assert bone.is_watertight
    lo, hi = bone.bounds
    np.testing.assert_allclose(lo, [-70, -90, -141], atol=3.0)
    np.testing.assert_allclose(hi, [70, 90, 125], atol=3.0)
    teeth = trimesh.load(out / "teeth" / "teeth.stl")
    assert teeth.is_watertight
    tl, th = teeth.bounds
    assert tl[2] > -70 and th[2] < -25          # teeth sit between the jaws
    assert th[1] < -40                           # in front (anterior = -y)
    for sub in ("bone", "teeth"):
        rep = json.loads((out / sub / "report.json").read_text())
        assert rep["structures"][0]["qa"]["watertight"] is True
        assert (out / sub / "models.3mf").is_file() and (out / sub / "models.glb").is_file()
        assert (out / sub / "preview.png").is_file() and (out / sub / "viewer.html").is_file()
    assert (out / "bone" / "medrecon.mrml").is_file()
