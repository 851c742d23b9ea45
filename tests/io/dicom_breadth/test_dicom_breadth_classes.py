"""One synthetic case per class of issue 9 (DICOM breadth), each built with pydicom from the
real files in ../shared/data (see breadth_builders.py). The reference for the geometry classes is
the real GE EPI series itself, whose conversion matches dcm2niix (tests/test_io_dicom_real.py)."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from breadth_builders import (ge_epi_by_volume, ge_epi_files, make_dangling_symlink, make_symlink_loop,
                              mr_stack, non_image_object, pepolar_series, save, uih_grid_series,
                              vframe_object)
from conftest import shared_path
from medrecon.errors import DicomError, MedreconError
from medrecon.io.loader import describe_series, load, load_series


def _cli(args):
    from medrecon.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code


@pytest.fixture(scope="module")
def ge_ref():
    """The real GE EPI 4D (64x64x15x10) as medrecon loads it."""
    return load(shared_path("mr_ge_epi_4d_same_positions_dcm_qa_nih", "dicom"))


# --- class 1: non-image objects, dangling links, unreadable files ---------------------------------
NON_IMAGE = [
    ("1.2.840.10008.5.1.4.1.1.4.2", "MR", "MR Spectroscopy", True),
    ("1.2.840.10008.5.1.4.1.1.88.22", "SR", "Structured Report", False),
    ("1.2.840.10008.5.1.4.1.1.88.59", "KO", "Key Object Selection", False),
    ("1.2.840.10008.5.1.4.1.1.11.1", "PR", "Presentation State", False),
    ("1.2.840.10008.5.1.4.1.1.66", "OT", "Raw Data", False),
    ("1.2.840.10008.5.1.4.1.1.481.5", "RTPLAN", "RT Plan", False),
    ("1.2.840.10008.5.1.4.1.1.481.3", "RTSTRUCT", "RT Structure Set", False),
    ("1.2.840.10008.5.1.4.1.1.104.1", "DOC", "Encapsulated PDF", False),
]


def test_non_image_objects_listed_by_kind_and_skipped(tmp_path):
    mr_stack(tmp_path, n=5)
    for i, (uid, mod, kind, rc) in enumerate(NON_IMAGE):
        non_image_object(tmp_path / f"obj{i}.dcm", uid, mod, series_number=90 + i, rows_cols=rc)
    vol = load(tmp_path)  # the images still load (the spectroscopy used to fail the folder)
    assert vol.shape == (64, 64, 5)
    rows = describe_series(tmp_path)
    objs = [r for r in rows if r.get("kind") == "non-image"]
    assert sorted(r["description"] for r in objs) == sorted(k for _, _, k, _ in NON_IMAGE)
    assert all(not r["is_volume"] and "skipped" in r["reason"] for r in objs)
    images = [r for r in rows if r.get("kind") != "non-image"]
    assert len(images) == 1 and images[0]["is_volume"]
    assert any("8 non-image DICOM object(s) skipped" in w for w in images[0]["warnings"])
    assert any("8 non-image DICOM object(s) skipped" in w for w in vol.meta["warnings"])


def test_dangling_symlink_and_unreadable_file_skipped_with_warning(tmp_path):
    mr_stack(tmp_path, n=4)
    make_dangling_symlink(tmp_path)
    make_symlink_loop(tmp_path)
    vol = load(tmp_path)
    assert vol.shape == (64, 64, 4)
    assert any("2 unreadable file(s) skipped" in w for w in vol.meta["warnings"])
    rows = describe_series(tmp_path)
    bad = [r for r in rows if r.get("kind") == "non-image"]
    assert {r["description"] for r in bad} == {"unreadable file"}
    assert any("no such file" in r["reason"].lower() or "dangling" in r["reason"].lower() for r in bad)


def test_only_non_image_objects_is_an_error_naming_them(tmp_path):
    non_image_object(tmp_path / "mrs.dcm", *NON_IMAGE[0][:2], rows_cols=True)
    with pytest.raises(MedreconError) as exc:
        load(tmp_path)
    assert "MR Spectroscopy" in str(exc.value) and "\n" not in str(exc.value)


# --- class 2: mosaics and frames without standard per-frame geometry --------------------------------
def test_uih_grid_decoded_onto_the_patient_grid(tmp_path, ge_ref):
    uih_grid_series(tmp_path, n_volumes=3)
    rows = describe_series(tmp_path)
    assert len(rows) == 1 and rows[0]["size"] == [64, 64, 15, 3]
    vol = load(tmp_path)
    assert vol.shape == (64, 64, 15, 3)
    assert np.allclose(vol.affine, ge_ref.affine, atol=1e-3)
    assert np.array_equal(vol.array, ge_ref.array[..., :3])
    assert any("UIH grid" in w for w in vol.meta["warnings"])


def test_uih_grid_without_slice_spacing_refused_exit_2(tmp_path, capsys):
    uih_grid_series(tmp_path, n_volumes=2, spacing=False)
    with pytest.raises(DicomError) as exc:
        load(tmp_path)
    assert "UIH grid" in str(exc.value) and "spacing" in str(exc.value)
    assert _cli(["convert", str(tmp_path), "-o", str(tmp_path / "x.nii.gz")]) == 2
    assert not (tmp_path / "x.nii.gz").exists()


def test_vframe_with_private_positions_on_the_patient_grid(tmp_path, ge_ref):
    vframe_object(tmp_path, positions=True, volume=2)
    vol = load(tmp_path)
    assert vol.shape == (64, 64, 15)
    assert np.allclose(vol.affine, ge_ref.affine, atol=1e-3)
    assert np.array_equal(vol.array, ge_ref.array[..., 2])


def test_vframe_without_positions_refused_exit_2(tmp_path):
    vframe_object(tmp_path, positions=False)
    rows = describe_series(tmp_path)
    assert not rows[0]["is_volume"] and "position" in rows[0]["reason"]
    with pytest.raises(DicomError):
        load(tmp_path)
    assert _cli(["convert", str(tmp_path), "-o", str(tmp_path / "x.nii.gz")]) == 2
    assert not (tmp_path / "x.nii.gz").exists()


def test_frames_without_patient_geometry_refused_unless_asked(tmp_path):
    """Several frames and no position at all: never a silent 1 mm index grid."""
    p = shared_path("dicom_small_singles_pydicom", "from_pydicom_data", "emri_small.dcm")
    with pytest.raises(DicomError) as exc:
        load(p)
    assert "no patient geometry" in str(exc.value)
    vol = load(p, allow_index_grid=True)
    assert vol.shape == (64, 64, 10) and any("index grid" in w for w in vol.meta["warnings"])


# --- class 3: GE phase-encoding polarity (epi_pepolar) ----------------------------------------------
def test_pepolar_volumes_split_by_polarity_and_unmirrored(tmp_path, ge_ref):
    pepolar_series(tmp_path, user_data_12=3)  # forward, reverse, forward, ...
    found = {s.series_number: s for s in load_series(tmp_path)}
    assert sorted(found) == [4, 1004]
    fwd, rev = found[4].volume, found[1004].volume
    assert fwd.shape == rev.shape == (64, 64, 15, 5)
    for v in (fwd, rev):
        assert np.allclose(v.affine, ge_ref.affine, atol=1e-3)
    assert np.array_equal(fwd.array, ge_ref.array[..., 0::2])
    assert np.array_equal(rev.array, ge_ref.array[..., 1::2])  # mirrored back onto the right grid
    from medrecon.io.loader import convert

    _, _, js = convert(tmp_path, tmp_path / "out" / "rev.nii.gz", series=1004)
    import json

    sc = json.loads(js.read_text())
    assert sc["PhaseEncodingDirection"] == "j-" and sc["PhaseEncodingPolarityGE"] == "Flipped"
    _, _, js = convert(tmp_path, tmp_path / "out" / "fwd.nii.gz", series=4)
    sc = json.loads(js.read_text())
    assert sc["PhaseEncodingDirection"] == "j" and sc["PhaseEncodingPolarityGE"] == "Unflipped"


# --- class 4: derived images ---------------------------------------------------------------------------
def test_derived_images_are_their_own_series(tmp_path):
    uid = pydicom.uid.generate_uid()
    mr_stack(tmp_path, n=5, series_uid=uid, prefix="orig")
    mr_stack(tmp_path, n=5, series_uid=uid, prefix="adc", seed=1, ImageType=["DERIVED", "PRIMARY", "DIFFUSION", "ADC"])
    mr_stack(tmp_path, n=5, series_uid=uid, prefix="trace", ImageType=["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW"])
    rows = describe_series(tmp_path)
    assert len(rows) == 3 and all(r["size"] == [64, 64, 5] for r in rows)  # never one 4D
    # CT: image type used to split only localizers; a derived MPR at the same positions must not
    # become the second volume of a 4D
    ct = tmp_path / "ct"
    uid = pydicom.uid.generate_uid()
    mr_stack(ct, n=4, series_uid=uid, prefix="a", Modality="CT", ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])
    mr_stack(ct, n=4, series_uid=uid, prefix="b", Modality="CT", ImageType=["DERIVED", "SECONDARY", "MPR"])
    rows = describe_series(ct)
    assert len(rows) == 2 and all(r["kind"] == "3D" for r in rows)
    assert any("DERIVED" in r["image_type"] for r in rows)


# --- class 8: header cache --------------------------------------------------------------------------
def test_header_cache_info_then_convert_reads_headers_once(tmp_path, monkeypatch):
    from medrecon.io.dicom import cache as hcache
    from medrecon.io.dicom import scan_series

    monkeypatch.setenv("MEDRECON_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MEDRECON_NO_CACHE", raising=False)
    hcache.clear_memory_cache()
    files = mr_stack(tmp_path / "s", n=6)
    _, res1 = scan_series(tmp_path / "s")
    assert res1.cache_hits == 0
    hcache.clear_memory_cache()  # a new process: only the disk cache is left
    _, res2 = scan_series(tmp_path / "s")
    assert res2.cache_hits == 6
    # a changed file is read again
    ds = pydicom.dcmread(files[0])
    ds.SeriesDescription = "changed"
    save(ds, files[0])
    import os

    os.utime(files[0], ns=(1, 1))
    _, res3 = scan_series(tmp_path / "s")
    assert res3.cache_hits == 5


def test_mosaic_without_csa_header_refused(tmp_path):
    """A Siemens mosaic whose CSA header is gone (anonymisers strip private tags): refused, never
    loaded as one 2D image of tiles."""
    src = shared_path("dicom_12bit_stored_dcm_qa_12bit", "dicom", "12bitUnsigned.dcm")
    ds = pydicom.dcmread(src)
    for tag in [t for t in ds.keys() if t.group == 0x0029]:
        del ds[tag]
    save(ds, tmp_path / "mosaic_no_csa.dcm")
    rows = describe_series(tmp_path)
    assert not rows[0]["is_volume"] and "CSA" in rows[0]["reason"]
    assert _cli(["convert", str(tmp_path), "-o", str(tmp_path / "x.nii.gz")]) == 2
    ok = load(src)  # with its CSA header: 35 slices of 64x64
    assert ok.shape == (64, 64, 35)


def _dcm2niix(src, out):
    import subprocess
    import sys
    from pathlib import Path

    out.mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).with_name("dcm2niix"))
    r = subprocess.run([exe, "-b", "n", "-z", "y", "-f", "%s", "-o", str(out), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-1000:]
    return sorted(out.glob("*.nii.gz"))


def _in_our_order(vol, path):
    """dcm2niix's array on our index grid (world-space signed permutation + integer offset)."""
    import nibabel as nib

    img = nib.load(str(path))
    ref = np.asanyarray(img.dataobj)
    M = np.linalg.inv(vol.affine) @ (np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine)
    P = np.round(M[:3, :3])
    assert np.allclose(M[:3, :3], P, atol=2e-3) and np.allclose(M[:3, 3], np.round(M[:3, 3]), atol=2e-2)
    idx = np.indices(ref.shape[:3]).reshape(3, -1)
    ours = (P @ idx + np.round(M[:3, 3:4])).astype(int)
    out = np.empty(vol.shape, dtype=ref.dtype)
    out[ours[0], ours[1], ours[2]] = ref.reshape((-1,) + ref.shape[3:])
    return out


def test_uih_grid_and_vframe_match_dcm2niix_in_world_space(tmp_path):
    uih_grid_series(tmp_path / "uih", n_volumes=3)
    vol = load(tmp_path / "uih")
    (ref,) = _dcm2niix(tmp_path / "uih", tmp_path / "d_uih")
    assert np.array_equal(vol.array, _in_our_order(vol, ref))
    vframe_object(tmp_path / "vf", positions=True, volume=1)
    vol = load(tmp_path / "vf")
    (ref,) = _dcm2niix(tmp_path / "vf", tmp_path / "d_vf")
    assert np.array_equal(vol.array, _in_our_order(vol, ref))
    # without positions dcm2niix writes a grid that is not the patient's (3 mm slices, not 5):
    # medrecon refuses instead (test_vframe_without_positions_refused_exit_2)
    import nibabel as nib

    vframe_object(tmp_path / "vf0", positions=False)
    (ref,) = _dcm2niix(tmp_path / "vf0", tmp_path / "d_vf0")
    assert abs(nib.load(str(ref)).header.get_zooms()[2] - 5.0) > 1.0
