"""`medrecon mesh` through a real subprocess: outputs, exit codes, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import trimesh

from conftest import shared_path
from medrecon import phantoms as P
from medrecon.io.dicom.write import write_dicom_series


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "medrecon", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def sphere_dicom(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    ph = P.sphere_phantom(12.0, spacing=(1.0, 1.0, 1.5), rotation=(0, 10, 0), inside=452, outside=0)
    write_dicom_series(ph.volume, root / "dicom")
    return root / "dicom", ph


def test_mesh_writes_models_and_report(sphere_dicom, tmp_path):
    src, ph = sphere_dicom
    out = tmp_path / "out"
    r = _run("mesh", src, "-o", out, "--preset", "ct-bone", "--formats", "stl,obj,ply,3mf", "--space", "RAS",
             "--no-preview", "--smoothing", "0.3")
    assert r.returncode == 0, r.stderr
    assert "bone" in r.stdout and "report" in r.stdout
    for name in ("bone.stl", "bone.obj", "bone.mtl", "bone.ply", "models.3mf", "report.json"):
        assert (out / name).is_file(), name
    assert b"SPACE=RAS" in (out / "bone.stl").read_bytes()[:80]
    rep = json.loads((out / "report.json").read_text())
    assert rep["config"]["space"] == "RAS" and rep["config"]["smoothing"] == 0.3
    mesh = trimesh.load(out / "bone.stl")
    assert mesh.is_watertight
    assert abs(mesh.volume / ph.shape.volume_mm3 - 1) < 0.02


def test_threshold_and_largest(sphere_dicom, tmp_path):
    src, _ = sphere_dicom
    r = _run("mesh", src, "-o", tmp_path, "--threshold", "226:", "--largest", "--min-component-mm3", "10",
             "--no-preview")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "threshold.stl").is_file()
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["config"]["largest"] is True and rep["config"]["min_component_mm3"] == 10


@pytest.mark.parametrize("args,needle", [
    (["--preset", "ct-bon"], "did you mean ct-bone"),
    (["--threshold", "500:100"], "LOW must be below HIGH"),
    (["--preset", "ct-bone", "--threshold", "1:2"], "exactly one"),
    ([], "exactly one"),
    (["--preset", "ct-bone", "--formats", "stl,fbx"], "fbx"),
    (["--preset", "ct-bone", "--space", "XYZ"], "space"),
    (["--preset", "mr-brain"], "is for MR"),
    (["--preset", "ct-bone", "--structures", "liver"], "--labels"),
])
def test_bad_options_exit_2_with_one_line(sphere_dicom, tmp_path, args, needle):
    src, _ = sphere_dicom
    r = _run("mesh", src, "-o", tmp_path / "o", "--no-preview", *args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "o" / "report.json").exists()


def test_bad_input_exit_2(tmp_path):
    r = _run("mesh", tmp_path / "nowhere", "-o", tmp_path / "o", "--preset", "ct-bone")
    assert r.returncode == 2 and "nowhere" in r.stderr
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.dcm").write_bytes(b"not a dicom file at all" * 10)
    r = _run("mesh", junk, "-o", tmp_path / "o", "--preset", "ct-bone")
    assert r.returncode == 2 and "junk" in r.stderr and "Traceback" not in r.stderr
    bad_table = tmp_path / "t.csv"
    bad_table.write_text("value,name\nx,y\n")
    r = _run("mesh", junk, "-o", tmp_path / "o", "--labels", junk / "a.dcm", "--label-table", bad_table)
    assert r.returncode == 2


@pytest.mark.realdata
def test_labels_with_table_structures_and_group(tmp_path):
    ts = shared_path("ct_abdomen_totalsegmentator_refseg")
    r = _run("mesh", ts / "example_ct_dicom", "-o", tmp_path, "--labels", ts / "example_seg_dicom.nii.gz",
             "--label-table", "totalsegmentator", "--group", "bones", "--structures", "vertebrae_T12,rib_left_8",
             "--formats", "stl", "--no-preview")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob("*.stl")) == ["rib_left_8.stl", "vertebrae_T12.stl"]
    r = _run("mesh", ts / "example_ct_dicom", "-o", tmp_path / "x", "--labels", ts / "example_seg_dicom.nii.gz",
             "--label-table", "totalsegmentator", "--structures", "livr")
    assert r.returncode == 2 and "liver" in r.stderr


@pytest.mark.slow  # measured: 17 s CPU alone (issue 22: the fast tier stays under 3 min)
@pytest.mark.realdata
def test_mixed_folder_needs_series_and_4d_is_refused(tmp_path):
    mixed = shared_path("mr_philips_classic_vs_enhanced_mixed_folder", "cl_mixed_series_flat")
    r = _run("mesh", mixed, "-o", tmp_path / "a", "--preset", "mr-head", "--no-preview")
    assert r.returncode == 2 and "series" in r.stderr and "1301" in r.stderr
    r = _run("mesh", mixed, "-o", tmp_path / "b", "--preset", "mr-head", "--series", "1903", "--no-preview")
    assert r.returncode == 2 and "3D" in r.stderr
    r = _run("mesh", mixed, "-o", tmp_path / "c", "--preset", "mr-head", "--series", "1301", "--no-preview")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "c" / "report.json").read_text())
    qa = rep["structures"][0]["qa"]
    assert qa["watertight"] and 2.5e6 < qa["mesh_volume_mm3"] < 7e6   # a head, in mm3
    head = trimesh.load(tmp_path / "c" / "head.stl")
    assert head.volume == pytest.approx(qa["mesh_volume_mm3"], rel=1e-3)
