"""Class 8 (many small files): the fast header reader gives the same frame headers as pydicom on
every DICOM file of ../shared/data (and on the synthetic cases), or steps aside."""
from __future__ import annotations

import dataclasses
import gzip
import io
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, shared_path
import importlib

scanmod = importlib.import_module("medrecon.io.dicom.scan")
from medrecon.io.dicom.headers import headers_from_dataset
from medrecon.io.dicom.source import Source

pytestmark = pytest.mark.realdata


def _frames(path, fast: bool):
    old = scanmod.FAST_HEADERS
    scanmod.FAST_HEADERS = fast
    try:
        return scanmod.read_headers(Source(str(path)))
    finally:
        scanmod.FAST_HEADERS = old


def _same(a, b, where):
    assert len(a) == len(b), where
    for fa, fb in zip(a, b):
        for f in dataclasses.fields(fa):
            va, vb = getattr(fa, f.name), getattr(fb, f.name)
            if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
                assert (va is None) == (vb is None) and (va is None or np.array_equal(va, vb)), (where, f.name)
            elif f.name == "extra":
                assert va.keys() == vb.keys(), where
                for k in va:
                    x, y = va[k], vb[k]
                    if isinstance(x, tuple) and x and isinstance(x[1], np.ndarray):
                        assert x[0] == y[0] and np.allclose(x[1], y[1]), (where, k)
                    else:
                        assert x == y, (where, k, x, y)
            else:
                assert va == vb, (where, f.name, va, vb)


def test_fast_headers_equal_pydicom_on_all_shared_dicom():
    shared_path("dicom_small_singles_pydicom")
    files = [p for p in sorted(SHARED_DATA.rglob("*")) if p.is_file() and not p.name.endswith(
        (".nii.gz", ".json", ".txt", ".png", ".md", "SHA256SUMS", "LICENSE", ".gz")) and "photos" not in str(p)]
    n_fast = 0
    from medrecon.io.dicom.fastparse import fast_read_header

    for p in files:
        a = _frames(p, fast=True)
        b = _frames(p, fast=False)
        assert a[1] == b[1], p
        _same(a[0], b[0], p)
        with open(p, "rb") as fh:
            n_fast += fast_read_header(fh, 0) is not None
    assert n_fast > 300  # the fast path is really taken for most files


def test_keyword_table_agrees_with_pydicom():
    """The keyword -> (tag, VR) table the fast reader uses instead of importing pydicom."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    from medrecon.io.dicom.fastparse import KEYWORDS

    for kw, (tag, vr) in KEYWORDS.items():
        assert tag_for_keyword(kw) == tag, kw
        assert dictionary_VR(tag) == vr, kw


def test_image_sop_classes_known_without_pydicom_are_image_storage():
    from pydicom.uid import UID

    from medrecon.io.dicom.sop_classes import _IMAGE_UIDS

    for uid in _IMAGE_UIDS:
        name = UID(uid).name
        assert "Image Storage" in name and "Presentation State" not in name, uid


def test_lite_header_reads_as_pydicom_by_keyword():
    """Values by keyword from the fast reader's dataset equal pydicom's (every shared file it reads)."""
    from medrecon.io.dicom.fastparse import KEYWORDS, LiteDataset

    checked = 0
    for path in sorted(SHARED_DATA.rglob("*")):
        if not path.is_file() or path.suffix in (".gz", ".nii", ".json", ".txt", ".csv") or path.stat().st_size < 200:
            continue
        res = scanmod.read_dataset(Source(str(path)))
        if res is None or not isinstance(res[0], LiteDataset):
            continue
        lite = res[0]
        full = lite.full()
        for kw in KEYWORDS:
            if kw in ("PixelData",) or KEYWORDS[kw][1] == "SQ":
                continue
            a, b = lite.get(kw), full.get(kw)
            if b is None or a is None:
                assert a is None and b is None or (a in ("", None) and b in ("", None)), (path, kw)
                continue
            if isinstance(b, (list, tuple)) or type(b).__name__ == "MultiValue":
                assert list(a) == [type(x)(x) for x in b] or [str(x) for x in a] == [str(x) for x in b], (path, kw)
            else:
                assert a == b or str(a) == str(b), (path, kw, a, b)
        checked += 1
        if checked >= 40:
            break
    assert checked >= 10


def test_values_converted_before_reading_still_read():
    """Siemens mosaics were refused as "no patient geometry" when nibabel's CSA reader had
    converted ImagePositionPatient & co. (a pydicom MultiValue) before the header was read: a
    converted element must read like a raw one."""
    from pydicom.dataset import Dataset

    from medrecon.io.dicom.rawvalues import get_floats, get_strs

    ds = Dataset()
    ds.ImagePositionPatient = [-624, -662.02, -8.31]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "MOSAIC"]
    assert get_floats(ds, "ImagePositionPatient", 3) == [-624.0, -662.02, -8.31]
    assert get_floats(ds, "ImageOrientationPatient", 6) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert get_strs(ds, "ImageType")[-1] == "MOSAIC"


def _scan_frames(folder, template: bool):
    old = scanmod.SERIES_TEMPLATE
    scanmod.SERIES_TEMPLATE = template
    try:
        return scanmod.scan(str(folder)).frames
    finally:
        scanmod.SERIES_TEMPLATE = old


@pytest.mark.parametrize("folder", ["mr_ge_epi_4d_same_positions_dcm_qa_nih/dicom",
                                    "ct_head_ge_gantry_tilt_variable_spacing/dicom",
                                    "mr_siemens_mosaic_orientation_dcm_qa/axint36",
                                    "mr_uih_dti_grid_dcm_qa_uih/dicom", "dicom_12bit_stored_dcm_qa_12bit/dicom"])
def test_series_template_gives_the_headers_of_a_full_read(folder, monkeypatch, tmp_path):
    monkeypatch.setenv("MEDRECON_NO_CACHE", "1")
    path = shared_path(*folder.split("/"))
    _same(_scan_frames(path, True), _scan_frames(path, False), folder)


def test_series_template_on_a_many_file_series(monkeypatch, tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    from bench_dicom_many import make_series

    monkeypatch.setenv("MEDRECON_NO_CACHE", "1")
    series = make_series(tmp_path / "s", n_files=60, size=16, n_slices=6)
    full_reads = []
    real = scanmod.read_headers
    monkeypatch.setattr(scanmod, "read_headers", lambda src, keep=None: full_reads.append(src) or real(src, keep))
    a = _scan_frames(series, True)
    assert len(full_reads) < 30  # most files came from the template
    b = _scan_frames(series, False)
    _same(a, b, "synthetic")
    assert len({f.sop_instance for f in a}) == 60 and len({tuple(f.ipp) for f in a}) == 6


def test_convert_of_a_plain_series_imports_no_heavy_module(tmp_path):
    """Cold start: converting a plain little-endian series (the many-small-files case) loads
    neither pydicom, nibabel, SciPy, VTK, SimpleITK nor PyTorch (checked in a fresh process)."""
    import os
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    from bench_dicom_many import make_series

    series = make_series(tmp_path / "s", n_files=12, size=16, n_slices=6)
    code = ("import sys; from medrecon.io.loader import convert; convert(sys.argv[1], sys.argv[2]); "
            "print(','.join(m for m in ('pydicom', 'nibabel', 'scipy', 'vtk', 'SimpleITK', 'torch', "
            "'medrecon.mesh_pipeline') if m in sys.modules))")
    root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ, MEDRECON_NO_CACHE="1", PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", code, str(series), str(tmp_path / "x.nii.gz")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"imported: {r.stdout.strip()}"
    assert (tmp_path / "x.nii.gz").exists() and (tmp_path / "x.json").exists()


def test_info_on_a_small_folder_imports_no_pydicom(tmp_path):
    """Cold start of ``medrecon info``: the command line itself (``medrecon.cli.main``) listing a
    small plain folder in a fresh process loads neither pydicom, SciPy, VTK, SimpleITK nor
    PyTorch, and still finds the series (deterministic: checks ``sys.modules``, no timing)."""
    import json
    import os
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    from bench_dicom_many import make_series

    series = make_series(tmp_path / "s", n_files=12, size=16, n_slices=6)
    code = ("import sys, json\nfrom medrecon.cli import main\ntry:\n    main(['info', '--json', sys.argv[1]])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print(json.dumps(sorted(m for m in ('pydicom', 'scipy', 'vtk', 'SimpleITK', 'torch', 'nibabel', "
            "'medrecon.pipeline', 'medrecon.io.dicom.write', 'multiprocessing') if m in sys.modules)))")
    root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ, MEDRECON_NO_CACHE="1", PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", code, str(series)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    *table, loaded = r.stdout.strip().splitlines()
    assert json.loads(loaded) == []
    rows = json.loads("\n".join(table))
    assert len(rows) == 1 and rows[0]["n_files"] == 12 and rows[0]["is_volume"]
    assert rows[0]["size"][:3] == [16, 16, 6] and rows[0]["modality"] == "MR"
