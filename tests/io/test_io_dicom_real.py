"""The DICOM loader against the real scans in ../shared/data and the references made by other
tools (dcm2niix, TotalSegmentator). Comparisons are in world space: NIfTI references are RAS, so
``diag(-1,-1,1) @ A_ref`` is their LPS affine, and ``inv(A_ours) @ A_ref_lps`` must be a signed
permutation with an integer offset; the voxels must then match."""
from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from conftest import shared_path
from medrecon.errors import DicomError, MedreconError, SeriesSelectionError
from medrecon.io.loader import describe_series, load, load_series

pytestmark = pytest.mark.realdata

RAS2LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ref_lps(path):
    img = nib.load(str(path))
    return np.asanyarray(img.dataobj), RAS2LPS @ img.affine


def index_map(vol_affine, ref_affine_lps, atol_rot=2e-3, atol_off=2e-2):
    """Signed permutation P and integer offset t with ours_index = P @ ref_index + t."""
    M = np.linalg.inv(vol_affine) @ ref_affine_lps
    P = np.round(M[:3, :3])
    assert np.allclose(M[:3, :3], P, atol=atol_rot), f"not a signed permutation:\n{M}"
    assert sorted(np.abs(P).sum(axis=0)) == [1, 1, 1] and sorted(np.abs(P).sum(axis=1)) == [1, 1, 1]
    t = np.round(M[:3, 3])
    assert np.allclose(M[:3, 3], t, atol=atol_off), f"offset not integer: {M[:3, 3]}"
    return P.astype(int), t.astype(int)


def ref_in_our_order(vol, ref, A_ref):
    """Reorder the reference array onto our index grid (must cover it exactly)."""
    P, t = index_map(vol.affine, A_ref)
    shape3 = ref.shape[:3]
    idx = np.indices(shape3).reshape(3, -1)
    ours = P @ idx + t[:, None]
    assert tuple(np.abs(P) @ np.array(shape3)) == vol.shape[:3]
    out = np.empty(vol.shape, dtype=ref.dtype)
    flat_ref = ref.reshape((-1,) + ref.shape[3:], order="C") if ref.ndim == 3 else None
    if ref.ndim == 3:
        out[ours[0], ours[1], ours[2]] = ref[idx[0], idx[1], idx[2]]
    else:
        out[ours[0], ours[1], ours[2]] = ref[idx[0], idx[1], idx[2], :]
    del flat_ref
    return out


# --- TotalSegmentator CT: J2K, extensionless files, missing SeriesNumber ----------------------------
def test_totalsegmentator_ct_lies_on_reference_seg_grid():
    vol = load(shared_path("ct_abdomen_totalsegmentator_refseg", "example_ct_dicom"))
    seg, A_ref = ref_lps(shared_path("ct_abdomen_totalsegmentator_refseg", "example_seg_dicom.nii.gz"))
    P, t = index_map(vol.affine, A_ref, atol_rot=1e-4, atol_off=1e-3)
    assert vol.shape == (512, 512, 20) and seg.shape == (512, 512, 20)
    assert np.array_equal(np.abs(P), np.eye(3, dtype=int))
    # HU sanity from the seg: bone labels are dense, air outside the body is about -1000
    seg_ours = ref_in_our_order(vol, seg, A_ref)
    labelled = vol.array[seg_ours > 0]
    assert vol.array.dtype == np.int16
    assert np.median(vol.array[seg_ours == 0][:100000]) < -500
    assert -200 < np.median(labelled) < 400
    assert vol.meta["modality"] == "CT" and not vol.meta["warnings"]


def test_totalsegmentator_ct_j2k_matches_gdcm_decode():
    """Our parallel pydicom/openjpeg decode equals GDCM's decode (via SimpleITK) of the same files."""
    import SimpleITK as sitk

    folder = shared_path("ct_abdomen_totalsegmentator_refseg", "example_ct_dicom")
    vol = load(folder)
    r = sitk.ImageSeriesReader()
    names = r.GetGDCMSeriesFileNames(str(folder))
    r.SetFileNames(names)
    img = r.Execute()
    arr = np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0))
    A = np.eye(4)
    A[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) * np.array(img.GetSpacing())
    A[:3, 3] = img.GetOrigin()
    P, t = index_map(vol.affine, A, atol_rot=1e-4, atol_off=1e-3)
    assert np.array_equal(P, np.eye(3, dtype=int)) and not t.any()
    assert np.array_equal(vol.array.astype(np.int32), arr.astype(np.int32))


# --- gantry tilt + variable spacing ---------------------------------------------------------------
TILT = ("ct_head_ge_gantry_tilt_variable_spacing",)


def test_tilt_detected_and_reported():
    rows = describe_series(shared_path(*TILT, "dicom"))
    assert len(rows) == 1
    r = rows[0]
    assert abs(r["tilt_deg"] - 18.5) < 0.05
    text = " ".join(r["warnings"])
    assert "tilt" in text and "non-uniform slice spacing" in text
    assert r["n_files"] == 28


def test_tilt_kept_matches_dcm2niix_index_to_index():
    """Keeping tilt and spacing: slices sorted by position (not InstanceNumber), voxels identical
    to dcm2niix's uncorrected output with its row flip (NIfTI j = 511 - DICOM row)."""
    vol = load(shared_path(*TILT, "dicom"), correct_tilt=False, resample_gaps=False)
    ref, _ = ref_lps(shared_path(*TILT, "ref_dcm2niix", "_2.nii.gz"))
    assert vol.shape == ref.shape == (512, 512, 28)
    assert np.array_equal(vol.array[:, ::-1, :], ref)
    # sheared affine: slice axis not orthogonal to the image plane
    d = vol.direction
    assert abs(np.dot(d[:, 1], d[:, 2])) > 0.1
    assert any("kept" in w for w in vol.meta["warnings"])


@pytest.mark.slow  # measured: 9 s CPU alone (issue 22: the fast tier stays under 3 min)
def test_tilt_corrected_matches_dcm2niix_tilt_eq_within_tolerance():
    vol = load(shared_path(*TILT, "dicom"))
    ref, A_ref = ref_lps(shared_path(*TILT, "optional", "_2_Tilt_Eq_1.nii.gz"))
    # orthogonal grid, same in-plane axes, 611 rows like dcm2niix
    D = vol.direction
    assert np.allclose(D.T @ D, np.eye(3), atol=1e-6)
    assert vol.shape[:2] == (512, 611)
    assert vol.meta["resampled"] and abs(vol.meta["tilt_deg"] - 18.5) < 0.05
    # sample our volume at the reference voxel centres (world space)
    M = np.linalg.inv(vol.affine) @ A_ref
    idx = np.indices(ref.shape).reshape(3, -1).astype(np.float64)
    ours = M[:3, :3] @ idx + M[:3, 3:4]
    inside = np.all((ours >= 0) & (ours <= np.array(vol.shape)[:, None] - 1), axis=0)
    assert inside.mean() > 0.9
    s = ndimage.map_coordinates(vol.array.astype(np.float32), ours[:, inside], order=1)
    r = ref.reshape(-1)[inside].astype(np.float32)
    diff = np.abs(s - r)
    assert np.median(diff) < 2.0          # HU
    assert np.percentile(diff, 95) < 20.0
    assert np.corrcoef(s, r)[0, 1] > 0.999


def test_instance_numbers_not_used_for_order(tmp_path):
    """Scramble InstanceNumber and file names in a copy: the volume must not change."""
    folder = shared_path(*TILT, "dicom")
    files = sorted(folder.iterdir())
    rng = np.random.default_rng(7)
    perm = rng.permutation(len(files))
    for f, p in zip(files, perm):
        ds = pydicom.dcmread(f)
        ds.InstanceNumber = int(p) + 1
        ds.save_as(tmp_path / f"img{(int(p) * 7919) % 1000:03d}_{p}")  # no extension, random order
    a = load(folder, correct_tilt=False, resample_gaps=False)
    b = load(tmp_path, correct_tilt=False, resample_gaps=False)
    assert np.array_equal(a.array, b.array) and np.allclose(a.affine, b.affine)
    # and the order is by position along the normal: compare with pydicom's own decode
    ds0 = pydicom.dcmread(folder / "28.dcm")  # the most superior slice
    assert np.array_equal(b.array[:, :, -1], ds0.pixel_array.T)


def test_missing_slice_detected_and_resampled(tmp_path):
    """Delete one slice from a copy of a real series: reported, and filled back by linear
    interpolation on the original grid (checked against dcm2niix's volume of the full series)."""
    src = shared_path("mr_philips_classic_vs_enhanced_mixed_folder", "cl_mixed_series_flat")
    for f in sorted(src.glob("1901_*.dcm.gz")):
        if f.name != "1901_0020.dcm.gz":
            shutil.copy(f, tmp_path / f.name)
    rows = describe_series(tmp_path)
    assert rows[0]["n_files"] == 39 and any("missing slices" in w for w in rows[0]["warnings"])
    vol = load(tmp_path)
    assert any("missing slices" in w for w in vol.meta["warnings"])
    assert any("resampled" in w for w in vol.meta["warnings"])
    ref, A_ref = ref_lps(shared_path(*PHIL, "ref_upstream", "1901_WIP_3DpCASL_cl.nii.gz"))
    assert vol.shape == ref.shape  # the gap is filled back: 40 equally spaced slices
    full = ref_in_our_order(vol, ref, A_ref).astype(np.float64)  # also checks the grid is the same
    ds = pydicom.dcmread(gzip.open(src / "1901_0020.dcm.gz"))
    k = int(round(vol.lps_to_index(np.asarray(ds.ImagePositionPatient, float)[None])[0, 2]))
    others = [i for i in range(vol.shape[2]) if i != k]
    assert np.allclose(vol.array[..., others], full[..., others], atol=1e-3)  # untouched slices
    assert np.allclose(vol.array[..., k], 0.5 * (full[..., k - 1] + full[..., k + 1]), atol=1e-2)
    assert not np.allclose(vol.array[..., k], full[..., k], atol=1.0)  # really interpolated


# --- Philips classic vs enhanced, mixed folder -----------------------------------------------------
PHIL = ("mr_philips_classic_vs_enhanced_mixed_folder",)


def test_philips_mixed_folder_splits_into_series():
    rows = describe_series(shared_path(*PHIL, "cl_mixed_series_flat"))
    key = sorted((r["series_number"], tuple(r["size"])) for r in rows)
    assert key == sorted([(1301, (256, 256, 170)), (1901, (96, 96, 40)), (1903, (96, 96, 40, 6)),
                          (2001, (80, 80, 53)), (2001, (80, 80, 53)), (2001, (80, 80, 53)), (2001, (80, 80, 53))])
    echo_types = sorted((r["echo_time"], r["image_type"].split("\\")[3]) for r in rows if r["series_number"] == 2001)
    assert echo_types == [(2.3, "M"), (2.3, "P"), (4.6, "M"), (4.6, "P")]
    assert all(r["is_volume"] for r in rows)
    with pytest.raises(SeriesSelectionError) as exc:
        load(shared_path(*PHIL, "cl_mixed_series_flat"))
    assert "1301" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(SeriesSelectionError):
        load(shared_path(*PHIL, "cl_mixed_series_flat"), series=2001)  # four volumes share it


def test_philips_mprage_matches_dcm2niix():
    # this reference was made with dcm2niix -p n (display values); the precise default is
    # checked against dcm2niix -p y in tests/io/dicom_breadth/test_dicom_breadth_sidecar.py
    vol = load(shared_path(*PHIL, "cl_mixed_series_flat"), series=1301, philips_scaling="display")
    ref, A_ref = ref_lps(shared_path(*PHIL, "ref_dcm2niix", "1301_WIP_ADNI_Sag3D_MPRAGE_cl_displayscaling.nii.gz"))
    r = ref_in_our_order(vol, ref, A_ref)
    assert np.allclose(vol.array, r, atol=1e-3)


@pytest.mark.parametrize("series,ref,exact", [
    (1901, "1901_WIP_3DpCASL_cl", True),
    (1903, "1903_WIP_SOURCE_-_3DpCASL_cl", False),  # Philips float scaling: a constant factor
])
def test_philips_classic_matches_dcm2niix(series, ref, exact):
    vol = load(shared_path(*PHIL, "cl_mixed_series_flat"), series=series)
    data, A_ref = ref_lps(shared_path(*PHIL, "ref_upstream", ref + ".nii.gz"))
    r = ref_in_our_order(vol, data, A_ref).astype(np.float64)
    ours = vol.array.astype(np.float64)
    if not exact:
        k = np.sum(ours * r) / np.sum(r * r)
        r = r * k
    assert np.allclose(ours, r, rtol=1e-4, atol=1e-3 * np.abs(ours).max())


@pytest.mark.parametrize("number", [1901, 1903])
def test_philips_classic_equals_enhanced(number):
    """The same volumes from both encodings. Their order may differ, as dcm2niix's does: classic
    files by temporal position, an enhanced file in its frame order (1903, ASL: dcm2niix's
    references interleave label/control for classic and keep the file's blocks for enhanced)."""
    cl = load(shared_path(*PHIL, "cl_mixed_series_flat"), series=number)
    en = load(shared_path(*PHIL, "enh"), series=number)
    assert cl.shape == en.shape
    assert np.allclose(cl.affine, en.affine, atol=1e-3)
    if cl.array.ndim == 3:
        assert np.allclose(cl.array, en.array, rtol=1e-5, atol=1e-3)
        return
    T = cl.shape[3]
    match = [[np.allclose(cl.array[..., i], en.array[..., j], rtol=1e-5, atol=1e-3) for j in range(T)]
             for i in range(T)]
    assert sorted(row.index(True) for row in match if True in row) == list(range(T))


def test_philips_2001_echoes_and_phase_match_dcm2niix():
    """Each of the four field-map images equals its dcm2niix reference up to Philips' scaling
    (the reference uses the private float scale: value = a * ours + b, one a and b per image)."""
    found = {}
    for s in load_series(shared_path(*PHIL, "cl_mixed_series_flat")):
        if s.series_number == 2001:
            d = s.description
            tag = ("e1" if d["echo_time"] == 2.3 else "e2") + ("_ph" if d["image_type"].split("\\")[3] == "P" else "")
            found[tag] = s
    assert sorted(found) == ["e1", "e1_ph", "e2", "e2_ph"]
    for tag, s in found.items():
        ref, A_ref = ref_lps(shared_path(*PHIL, "ref_upstream", f"2001_WIP_fcMRI_Field_Mapping_cl_{tag}.nii.gz"))
        ours = s.volume.array.astype(np.float64).ravel()
        r = ref_in_our_order(s.volume, ref, A_ref).astype(np.float64).ravel()
        X = np.stack([r, np.ones_like(r)], axis=1)
        coef = np.linalg.lstsq(X, ours, rcond=None)[0]
        assert np.abs(X @ coef - ours).max() < 1e-3 * np.abs(ours).max(), tag


def test_philips_enhanced_2001_splits_echoes_and_phase():
    rows = describe_series(shared_path(*PHIL, "enh"))
    r2001 = [r for r in rows if r["series_number"] == 2001]
    assert len(r2001) == 4 and all(r["size"] == [80, 80, 53] for r in r2001)
    cl = load(shared_path(*PHIL, "cl_mixed_series_flat"), series="#4")
    en = [s for s in load_series(shared_path(*PHIL, "enh"))
          if s.series_number == 2001 and s.description["echo_time"] == 2.3
          and s.description["image_type"].endswith("M")][0].volume
    assert np.allclose(cl.affine, en.affine, atol=1e-3)
    assert np.allclose(cl.array, en.array, rtol=1e-5, atol=1e-3)


# --- GE EPI: 4D at the same positions, non-DICOM file in the folder ----------------------------------
def test_ge_epi_4d_matches_reference():
    folder = shared_path("mr_ge_epi_4d_same_positions_dcm_qa_nih", "dicom")
    rows = describe_series(folder)
    assert len(rows) == 1 and rows[0]["size"] == [64, 64, 15, 10]
    assert any("non-DICOM" in w for w in rows[0]["warnings"])
    vol = load(folder)
    ref, A_ref = ref_lps(shared_path("mr_ge_epi_4d_same_positions_dcm_qa_nih", "ref_upstream",
                                     "DCM2NIIX_regression_test_4.nii.gz"))
    assert np.array_equal(vol.array, ref_in_our_order(vol, ref, A_ref))
    assert vol.meta["frame_axis"] == "time" and len(vol.meta["frame_values"]) == 10
    assert vol.spacing[2] == pytest.approx(5.0, abs=1e-3)  # 3 mm slices, 5 mm apart


# --- Siemens XA30 T1: uncompressed (gz) vs fragmented JPEG lossless ------------------------------------
def test_xa30_jpeg_lossless_fragments_equal_uncompressed_and_reference():
    base = ("mr_brain_t1_siemens_xa30_plain_and_jpeg_lossless",)
    jl = load(shared_path(*base, "dicom_jpeg_lossless_fragmented"))
    un = load(shared_path(*base, "dicom_uncompressed_gz"))
    assert np.array_equal(jl.array, un.array) and np.allclose(jl.affine, un.affine)
    ref, A_ref = ref_lps(shared_path(*base, "ref_upstream", "frag_anat-T1w_acq-tfl_5001.nii.gz"))
    assert np.array_equal(jl.array, ref_in_our_order(jl, ref, A_ref))


# --- enhanced multi-frame ------------------------------------------------------------------------------
ENH = ("dicom_enhanced_multiframe_dcm_qa_enh",)


def test_enhanced_volume_over_four_multiframe_files():
    vol = load(shared_path(*ENH, "dicom", "Siemens_XA10"))
    ref, A_ref = ref_lps(shared_path(*ENH, "ref_upstream", "Siemens_REST1_w_SMS_PF7-8_6.nii.gz"))
    assert vol.shape == (64, 64, 6, 4)
    assert np.array_equal(vol.array, ref_in_our_order(vol, ref, A_ref))


def test_enhanced_two_image_types_in_one_file():
    folder = shared_path(*ENH, "dicom", "Philips")
    rows = describe_series(folder)
    assert len(rows) == 2 and {r["n_files"] for r in rows} == {1}
    by_type = {r["image_type"].split("\\")[-1]: r["index"] for r in rows}
    mag = load(folder, series=f"#{by_type['M']}")
    fmap = load(folder, series=f"#{by_type['FIELD_MAP']}")
    ref_m, A_m = ref_lps(shared_path(*ENH, "ref_upstream", "Philips_WIP_B0_NS_801_e1.nii.gz"))
    ref_f, A_f = ref_lps(shared_path(*ENH, "ref_upstream", "Philips_WIP_B0_NS_801_e2_fieldmaphz.nii.gz"))
    # field map in Hz: the standard rescale reproduces it; magnitude differs by Philips' float scale
    assert np.allclose(fmap.array, ref_in_our_order(fmap, ref_f, A_f), atol=0.01)
    rm = ref_in_our_order(mag, ref_m, A_m).astype(np.float64)
    k = np.sum(mag.array * rm) / np.sum(rm * rm)
    assert np.allclose(mag.array, k * rm, rtol=1e-4, atol=1e-2)


# --- transfer syntaxes, bit depth, small singles ---------------------------------------------------------
def test_nine_transfer_syntaxes_decode_identically():
    folder = shared_path("dicom_transfer_syntaxes_dcm_qa_ts", "dicom")
    rows = describe_series(folder)
    assert len(rows) == 9
    assert len({r["transfer_syntax"] for r in rows}) >= 7
    vols = [load(folder, series=f"#{r['index']}") for r in rows]
    base = vols[0].array
    assert base.max() > 100
    for v in vols[1:]:
        assert np.array_equal(v.array, base)
        assert np.allclose(v.affine, vols[0].affine)
    # the Siemens mosaic is cut into 35 slices exactly like dcm2niix does
    ref, A_ref = ref_lps(shared_path("dicom_transfer_syntaxes_dcm_qa_ts", "ref_upstream", "1.nii.gz"))
    assert base.shape == (64, 64, 35)
    assert np.array_equal(base, ref_in_our_order(vols[0], ref, A_ref))


def test_12bit_stored_masked_and_sign_extended():
    folder = shared_path("dicom_12bit_stored_dcm_qa_12bit", "dicom")
    expect = {}
    for n in (2, 3, 4):
        ref = np.asanyarray(nib.load(str(shared_path("dicom_12bit_stored_dcm_qa_12bit", "ref_upstream", f"{n}.nii.gz"))).dataobj)
        expect[n] = (int(ref.min()), int(ref.max()))
    for n in (2, 3, 4):
        vol = load(folder, series=n)
        assert (int(vol.array.min()), int(vol.array.max())) == expect[n]
        ref, A_ref = ref_lps(shared_path("dicom_12bit_stored_dcm_qa_12bit", "ref_upstream", f"{n}.nii.gz"))
        assert np.array_equal(vol.array, ref_in_our_order(vol, ref, A_ref))  # de-mosaiced, world space
    raw = pydicom.dcmread(folder / "12bitSigned_0x0F0F.dcm")
    stored = np.frombuffer(raw.PixelData, dtype="<i2")
    assert (stored.astype(np.int32) > 2047).any() or (stored.astype(np.int32) < -2048).any() or \
        np.any((stored.view("<u2") & 0xF000) != 0)  # really junk in the high bits
    signed = load(folder, series=4)
    assert set(np.unique(signed.array)).issuperset({-241, -1})


def test_small_singles_encodings_agree():
    base = shared_path("dicom_small_singles_pydicom", "from_pydicom_test_files")
    ref = load(base / "MR_small.dcm")
    assert np.array_equal(ref.array[:, :, 0], pydicom.dcmread(base / "MR_small.dcm").pixel_array.T)
    for name in ("MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
                 "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        v = load(base / name)
        assert np.array_equal(v.array, ref.array), name
        assert np.allclose(v.affine, ref.affine)
    ct = load(base / "CT_small.dcm")
    no_meta = load(base / "no_meta.dcm")  # no preamble, no file meta
    assert np.array_equal(ct.array, no_meta.array) and np.allclose(ct.affine, no_meta.affine)
    raw = pydicom.dcmread(base / "CT_small.dcm")
    assert float(raw.RescaleIntercept) == -1024
    assert np.array_equal(ct.array[:, :, 0], raw.pixel_array.T.astype(np.int32) - 1024)


def test_small_singles_jpeg_extended_and_seg():
    import SimpleITK as sitk

    base = shared_path("dicom_small_singles_pydicom")
    jpg = load(base / "from_pydicom_test_files" / "JPGExtended.dcm")  # 12-bit lossy JPEG, NM
    gdcm = sitk.GetArrayFromImage(sitk.ReadImage(str(base / "from_pydicom_test_files" / "JPGExtended.dcm")))
    assert jpg.shape == (256, 1024, 1)
    diff = np.abs(jpg.array[:, :, 0].astype(np.int32) - gdcm.reshape(1024, 256).T.astype(np.int32))
    assert diff.max() <= 1  # two lossy decoders (pylibjpeg vs GDCM) may round differently
    seg = load(base / "from_pydicom_data" / "liver.dcm")  # DICOM SEG, 1 bit per pixel
    ds = pydicom.dcmread(base / "from_pydicom_data" / "liver.dcm")
    assert seg.shape == (512, 512, 3) and set(np.unique(seg.array)) == {0, 1}
    assert int(seg.array.sum()) == int(ds.pixel_array.sum())


def test_small_enhanced_encodings_agree():
    base = shared_path("dicom_small_singles_pydicom", "from_pydicom_data")
    # no patient geometry at all: refused by default, loaded on the index grid only on request
    with pytest.raises(DicomError):
        load(base / "emri_small.dcm")
    ref = load(base / "emri_small.dcm", allow_index_grid=True)
    assert ref.shape == (64, 64, 10)
    frames = pydicom.dcmread(base / "emri_small.dcm").pixel_array  # (10, rows, cols), file order
    assert np.array_equal(ref.array, np.transpose(frames, (2, 1, 0)))
    assert any("no patient geometry" in w for w in ref.meta["warnings"])
    for name in ("emri_small_RLE.dcm", "emri_small_big_endian.dcm", "emri_small_jpeg_2k_lossless.dcm",
                 "emri_small_jpeg_ls_lossless.dcm"):
        assert np.array_equal(load(base / name, allow_index_grid=True).array, ref.array), name
    ect = load(base / "eCT_Supplemental.dcm")
    ds = pydicom.dcmread(base / "eCT_Supplemental.dcm")
    pvt = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    raw = ds.pixel_array * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)  # (frames, rows, cols)
    assert float(pvt.RescaleIntercept) == -1024
    assert ect.shape == (512, 512, 2)
    # ect's slices are sorted along the normal; each must equal one of the raw frames
    for k in range(2):
        assert any(np.allclose(ect.array[:, :, k], raw[f].T) for f in range(2))


# --- oblique scouts -----------------------------------------------------------------------------------
def test_oblique_scouts_reported_not_stacked():
    folder = shared_path("mr_siemens_oblique_scouts_xa30", "dicom")
    rows = describe_series(folder)
    assert rows and not any(r["is_volume"] for r in rows)
    assert all("orientation" in r["reason"] for r in rows)
    assert {r["series_number"] for r in rows} == {2001, 3001, 4001}
    with pytest.raises(DicomError) as exc:
        load(folder)
    assert "no loadable volume" in str(exc.value)
    with pytest.raises(MedreconError) as exc:
        load(folder / "3001_AAHead_Scout")
    assert "orientation" in str(exc.value) and "\n" not in str(exc.value)


def test_meta_has_no_identifiers():
    folder = shared_path("ct_head_ge_gantry_tilt_variable_spacing", "dicom")
    ds = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    vol = load(folder)
    text = repr(vol.meta) + repr(describe_series(folder))
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
               "StudyInstanceUID", "SeriesInstanceUID"):
        v = str(ds.get(kw, "") or "")
        if len(v) >= 4:
            assert v not in text, kw
