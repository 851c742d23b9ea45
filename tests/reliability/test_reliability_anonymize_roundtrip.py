"""`anonymize` loses nothing: every folder of ../shared/data is de-identified, then described
(`info`) and loaded/converted; every series has the same values and geometry as the original
(Philips private scaling, Siemens mosaics, multi-frame objects, duplicate copies, files without
UIDs). The copies are valid DICOM (no value longer than its VR allows, no character set that
is not one) and every source object has its own file under its own new UID."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import SHARED_DATA, shared_path

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

_ROW_KEYS = ("series_number", "modality", "size", "spacing", "orientation", "n_files", "n_frames", "is_volume",
             "kind")


def _folders() -> list[str]:
    if not SHARED_DATA.exists():
        return ["ct_abdomen_totalsegmentator_refseg"]  # shared_path fails (CI) or skips below
    return sorted(p.name for p in SHARED_DATA.iterdir() if p.is_dir() and not p.name.startswith("photos"))


def _row_key(row: dict) -> tuple:
    return tuple(str(row.get(k)) for k in _ROW_KEYS)


def _load(info, **kw):
    try:
        return info.load(**kw), None
    except Exception as exc:  # noqa: BLE001 - compared between original and copy
        return None, type(exc).__name__


def _same(a, b) -> bool:
    return (a.array.shape == b.array.shape and a.array.dtype == b.array.dtype
            and np.array_equal(a.array, b.array, equal_nan=True) and np.allclose(a.affine, b.affine, atol=1e-9))


_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}


def vr_problems(path) -> set[str]:
    """dciodvfy-style checks with pydicom: values within their VR's length/character rules, and
    every Specific Character Set (also inside sequences) a defined term."""
    from pydicom import config
    from pydicom.charset import python_encoding
    from pydicom.valuerep import validate_value

    out = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(path) if isinstance(path, bytes) else path, force=True,
                             stop_before_pixels=True)
        for el in ds.iterall():
            if el.keyword == "SpecificCharacterSet":
                vals = el.value if isinstance(el.value, (list, pydicom.multival.MultiValue)) else [el.value]
                if any(str(v or "") not in python_encoding for v in vals):
                    out.add(f"{el.keyword}={list(vals)}")
            if el.VR in _TEXT_VRS and el.value not in (None, ""):
                vals = el.value if isinstance(el.value, pydicom.multival.MultiValue) else [el.value]
                for v in vals:
                    try:
                        validate_value(el.VR, str(v), config.RAISE)
                    except (ValueError, TypeError):
                        out.add(f"{el.keyword or el.tag} {el.VR}")
    return out


@pytest.mark.parametrize("folder", _folders())
def test_reliability_anonymize_every_shared_folder_round_trip(folder, tmp_path):
    from medrecon.io.dicom.anonymize import METHOD, anonymize_series
    from medrecon.io.dicom.scan import discover
    from medrecon.io.loader import convert, describe_series, load_series
    from medrecon.io.volumes import read_volume

    src = shared_path(folder)
    out = tmp_path / "anon"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = anonymize_series(str(src), out)
    bad = [str(w.message) for w in caught if "DeidentificationMethod" in str(w.message)
           or "exceeds the maximum length" in str(w.message) or "Unknown encoding" in str(w.message)]
    assert not bad, bad[:3]
    assert len(METHOD) <= 64
    # counted from the disk: one file per source object, none overwritten
    on_disk = sorted(p for p in out.iterdir() if p.suffix == ".dcm")
    assert sorted(res.files) == on_disk
    assert len(on_disk) + len(res.skipped) == len(discover(str(src)))

    # info: the same series (image and non-image), with the same sizes, spacing, files, frames
    rows_a, rows_b = describe_series(str(src)), describe_series(str(out))
    assert sorted(map(_row_key, rows_a)) == sorted(map(_row_key, rows_b))

    # every series: the same values and geometry (or refused alike); pairs found by content
    sa, sb = load_series(str(src)), load_series(str(out))
    unmatched = list(sb)
    first_volume = None
    loaded: dict[tuple, tuple] = {}
    for a in sa:
        kw = {} if a.is_volume else {"allow_index_grid": True}
        va, ea = _load(a, **kw)
        cands = [b for b in unmatched if _row_key(b.description) == _row_key(a.description)]
        assert cands, f"{folder}: no series like #{a.index} in the copy"
        for b in cands:
            key = (id(b), bool(kw))
            if key not in loaded:
                loaded[key] = _load(b, **kw)
            vb, eb = loaded[key]
            if (va is None and vb is None and ea == eb) or (va is not None and vb is not None and _same(va, vb)):
                unmatched.remove(b)
                if va is not None and a.is_volume and first_volume is None:
                    first_volume = (b, vb)
                break
        else:
            raise AssertionError(f"{folder}: series #{a.index} (SeriesNumber {a.series_number}) has other values "
                                 "or geometry after anonymizing")
    assert not unmatched

    # convert: the copy converts to the same voxels and geometry
    if first_volume is not None:
        b, vb = first_volume
        vol, nii, _ = convert(str(out), tmp_path / "x.nii.gz", series=f"#{b.index}")
        back = read_volume(nii)
        assert np.allclose(back.array, vb.array, equal_nan=True) and np.allclose(back.affine, vb.affine, atol=1e-4)

    # valid DICOM: nothing invalid that the source did not already have (30 files spread over
    # the folder: the same rules made every file)
    step = max(1, len(on_disk) // 30)
    new = set().union(*(vr_problems(p) for p in on_disk[::step]))
    if new:
        old = set()
        for f in discover(str(src)):
            try:
                old |= vr_problems(f.read_bytes())
            except Exception:  # noqa: BLE001 - not DICOM
                pass
        assert new <= old, sorted(new - old)


def test_reliability_anonymize_cli_then_info_and_convert(tmp_path):
    """The issue's own case through the commands: the TotalSegmentator CT's files have no UIDs;
    `anonymize` writes (and says) 20 files, `info` sees one 20-slice series, `convert` gives the
    original's voxels and geometry."""
    import json
    import subprocess
    import sys

    from medrecon.io.loader import load
    from medrecon.io.volumes import read_volume

    src = shared_path("ct_abdomen_totalsegmentator_refseg", "example_ct_dicom")

    def run(*args):
        r = subprocess.run([sys.executable, "-m", "medrecon", *map(str, args)], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stdout

    out = run("anonymize", src, "-o", tmp_path / "anon")
    assert "wrote 20 de-identified files" in out
    assert len(list((tmp_path / "anon").glob("*.dcm"))) == 20
    rows = json.loads(run("info", tmp_path / "anon", "--json"))
    rows = rows if isinstance(rows, list) else rows.get("series", rows)
    assert [r["n_files"] for r in rows if r.get("kind") != "non-image"] == [20]
    run("convert", tmp_path / "anon", "-o", tmp_path / "ct.nii.gz")
    a, b = load(src), read_volume(tmp_path / "ct.nii.gz")
    assert np.array_equal(a.array, b.array) and np.allclose(a.affine, b.affine, atol=1e-4)
