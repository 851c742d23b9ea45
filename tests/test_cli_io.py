"""`medrecon info` and `medrecon convert` run as a user runs them (``python -m medrecon``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from conftest import ROOT, shared_path
from tests.io.test_io_dicom_synthetic import make_series

from medrecon.io.loader import load


def run(*args, cwd=None):
    env = dict(os.environ, COLUMNS="250")  # a wide terminal: table cells are not wrapped
    return subprocess.run([sys.executable, "-m", "medrecon", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300, env=env)


def test_info_json_lists_series(tmp_path):
    make_series(tmp_path / "a", n=3, series_uid="1.2.3.4.1", series_number=7)
    make_series(tmp_path / "b", n=4, series_uid="1.2.3.4.2", series_number=8)
    res = run("info", tmp_path, "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [(r["series_number"], r["size"]) for r in rows] == [(7, [10, 12, 3]), (8, [10, 12, 4])]
    for r in rows:
        assert {"modality", "spacing", "orientation", "n_files", "warnings"} <= set(r)
    table = run("info", tmp_path)
    assert table.returncode == 0 and "synthetic" in table.stdout and "Doe" not in table.stdout


def test_convert_writes_ras_nifti(tmp_path):
    make_series(tmp_path / "in", n=4, step=2.5)
    out = tmp_path / "o" / "ct.nii.gz"
    res = run("convert", tmp_path / "in", "-o", out)
    assert res.returncode == 0, res.stderr
    img = nib.load(str(out))
    vol = load(tmp_path / "in")
    assert np.allclose(img.affine, np.diag([-1, -1, 1, 1]) @ vol.affine)
    assert np.array_equal(np.asanyarray(img.dataobj), vol.array)


def test_convert_needs_series_choice_exit_2(tmp_path):
    make_series(tmp_path / "a", n=3, series_uid="1.2.3.4.1", series_number=7)
    make_series(tmp_path / "b", n=4, series_uid="1.2.3.4.2", series_number=8)
    res = run("convert", tmp_path, "-o", tmp_path / "x.nii.gz")
    assert res.returncode == 2
    err = res.stderr.strip()
    assert "series 7" in err and "series 8" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
    ok = run("convert", tmp_path, "-o", tmp_path / "x.nrrd", "--series", "8")
    assert ok.returncode == 0, ok.stderr
    assert load(tmp_path / "x.nrrd").shape == (10, 12, 4)


@pytest.mark.parametrize("setup,needle", [
    ("empty", "empty"),
    ("text", "no DICOM"),
    ("truncated", "shorter than the header says"),
])
def test_errors_exit_2_one_line_and_debug_traceback(tmp_path, setup, needle):
    folder = tmp_path / "in"
    folder.mkdir()
    if setup == "text":
        (folder / "notes.txt").write_text("just text\n" * 20)
    elif setup == "truncated":
        make_series(folder, n=3)
        victim = sorted(folder.iterdir())[0]
        victim.write_bytes(victim.read_bytes()[:-40])
    res = run("convert", folder, "-o", tmp_path / "x.nii.gz")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "x.nii.gz").exists()
    dbg = run("--debug", "convert", folder, "-o", tmp_path / "x.nii.gz")
    assert dbg.returncode != 0 and "Traceback" in dbg.stderr


@pytest.mark.realdata
def test_info_on_real_tilted_ct_reports_tilt_and_spacing():
    res = run("info", shared_path("ct_head_ge_gantry_tilt_variable_spacing", "dicom"), "--json")
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)
    text = " ".join(row["warnings"])
    assert "tilt" in text and "spacing" in text and row["modality"] == "CT"


@pytest.mark.realdata
def test_info_on_scouts_says_not_a_volume():
    res = run("info", shared_path("mr_siemens_oblique_scouts_xa30", "dicom"))
    assert res.returncode == 0
    assert "NOT A VOLUME" in res.stdout
