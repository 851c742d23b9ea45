"""write_dicom_series: geometry, values, UIDs and anonymity, read back by pydicom and SimpleITK."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medrecon.errors import MedreconError
from medrecon.io.dicom.write import TRANSFER_SYNTAXES, rescale_for, write_dicom_series
from medrecon.phantoms import grid_affine, rotation_matrix
from medrecon.volume import Volume


def _oblique_volume(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    aff = grid_affine((24, 18, 7), (0.7, 0.9, 2.5), center=(-40.0, 12.0, 85.0), rotation=(20, -15, 30))
    arr = rng.normal(0.0, 400.0, (24, 18, 7)).astype(dtype)
    return Volume(arr, aff, {"modality": "CT"})


def _sitk_read(folder):
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(names)
    img = reader.Execute()
    arr = sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # -> (x, y, z) index order
    aff = np.eye(4)
    aff[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) * np.array(img.GetSpacing())
    aff[:3, 3] = img.GetOrigin()
    return arr, aff


def _expected_geometry(vol, k):
    """IPP / IOP / PixelSpacing written independently of the module, from the affine."""
    a = vol.affine
    sp = np.linalg.norm(a[:3, :3], axis=0)
    ipp = a[:3, 3] + k * a[:3, 2]
    iop = np.concatenate([a[:3, 0] / sp[0], a[:3, 1] / sp[1]])
    return ipp, iop, [sp[1], sp[0]]


@pytest.mark.parametrize("ts", ["explicit", "implicit", "rle", "jpeg2000", "jpegls", "jpeg-lossless"])
def test_round_trip_pydicom_and_sitk(tmp_path, ts):
    vol = _oblique_volume()
    files = write_dicom_series(vol, tmp_path, transfer_syntax=ts)
    assert len(files) == vol.shape[2]
    # pydicom: tags and values, slice by slice
    slope_seen = set()
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        assert ds.file_meta.TransferSyntaxUID == TRANSFER_SYNTAXES[ts]
        ipp, iop, ps = _expected_geometry(vol, k)
        np.testing.assert_allclose(np.array(ds.ImagePositionPatient, float), ipp, atol=1e-4)
        np.testing.assert_allclose(np.array(ds.ImageOrientationPatient, float), iop, atol=1e-6)
        np.testing.assert_allclose(np.array(ds.PixelSpacing, float), ps, atol=1e-6)
        assert (ds.Rows, ds.Columns) == (vol.shape[1], vol.shape[0])
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        slope_seen.add(float(ds.RescaleSlope))
        # quantisation error at most half a stored step
        assert np.abs(hu.T - vol.array[:, :, k]).max() <= float(ds.RescaleSlope) / 2 + 1e-3
    assert len(slope_seen) == 1
    # SimpleITK / GDCM: geometry of the whole series
    arr, aff = _sitk_read(tmp_path)
    np.testing.assert_allclose(aff, vol.affine, atol=1e-4)
    assert np.abs(arr - vol.array).max() <= slope_seen.pop() / 2 + 1e-3


def test_integer_ct_is_exact_with_unit_slope(tmp_path):
    rng = np.random.default_rng(3)
    arr = rng.integers(-1024, 3071, (16, 12, 5)).astype(np.int16)
    aff = grid_affine(arr.shape, (0.5, 0.5, 3.0))
    files = write_dicom_series(Volume(arr, aff, {}), tmp_path)
    ds = pydicom.dcmread(files[2])
    assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == 0.0
    assert ds.RescaleType == "HU"
    np.testing.assert_array_equal(ds.pixel_array.T, arr[:, :, 2])


def test_identity_uids_and_anonymity(tmp_path):
    vol = _oblique_volume()
    a = write_dicom_series(vol, tmp_path / "a", series_description="phantom A")
    b = write_dicom_series(vol, tmp_path / "b", series_description="phantom B")
    da = [pydicom.dcmread(f) for f in a]
    db = pydicom.dcmread(b[0])
    assert len({d.SOPInstanceUID for d in da}) == len(da)
    assert len({d.SeriesInstanceUID for d in da}) == 1
    assert da[0].SeriesInstanceUID != db.SeriesInstanceUID
    assert da[0].StudyInstanceUID != db.StudyInstanceUID
    assert da[0].SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    assert da[0].file_meta.MediaStorageSOPInstanceUID == da[0].SOPInstanceUID
    assert str(da[0].PatientName) == "ANON" and da[0].PatientID == "ANON"
    assert da[0].PatientBirthDate == "" and da[0].get("InstitutionName") is None
    assert da[0].SeriesDescription == "phantom A"
    assert [d.InstanceNumber for d in da] == list(range(1, len(da) + 1))


def test_mr_modality_and_shared_frame_of_reference(tmp_path):
    vol = _oblique_volume()
    a = write_dicom_series(vol, tmp_path / "a", modality="MR")
    ds = pydicom.dcmread(a[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" and ds.Modality == "MR"
    b = write_dicom_series(vol, tmp_path / "b", study_uid=ds.StudyInstanceUID,
                           frame_of_reference_uid=ds.FrameOfReferenceUID, series_number=7)
    db = pydicom.dcmread(b[0])
    assert db.StudyInstanceUID == ds.StudyInstanceUID
    assert db.FrameOfReferenceUID == ds.FrameOfReferenceUID and db.SeriesNumber == 7


def test_sheared_slice_axis_positions_follow_the_affine(tmp_path):
    # gantry-tilt-like grid: slice axis not perpendicular to the image plane
    aff = np.eye(4)
    aff[:3, :3] = np.diag([0.8, 0.8, 2.0])
    aff[1, 2] = 2.0 * np.tan(np.deg2rad(15))
    arr = np.zeros((10, 10, 4), np.float32)
    files = write_dicom_series(Volume(arr, aff, {}), tmp_path)
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        np.testing.assert_allclose(np.array(ds.ImagePositionPatient, float), [0.0, k * aff[1, 2], 2.0 * k], atol=1e-5)
    assert float(pydicom.dcmread(files[0]).SliceThickness) == pytest.approx(2.0)


def test_other_slice_axis(tmp_path):
    vol = _oblique_volume()
    files = write_dicom_series(vol, tmp_path, slice_axis=0)
    assert len(files) == vol.shape[0]
    ds = pydicom.dcmread(files[3])
    np.testing.assert_allclose(np.array(ds.ImagePositionPatient, float), vol.affine[:3, 3] + 3 * vol.affine[:3, 0],
                               atol=1e-4)
    # image rows follow array axis 2, columns array axis 1
    assert (ds.Rows, ds.Columns) == (vol.shape[2], vol.shape[1])
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.abs(hu.T - vol.array[3]).max() <= float(ds.RescaleSlope) / 2 + 1e-3


def test_rescale_choices():
    assert rescale_for(np.array([-1000, 3000], np.int16)) == (1.0, 0.0)
    slope, icpt = rescale_for(np.array([-0.25, 0.5], np.float32))
    assert slope < 1e-4
    assert rescale_for(np.array([1.5]), rescale=False) == (1.0, 0.0)
    assert rescale_for(np.array([1.5]), rescale=(0.5, -10.0)) == (0.5, -10.0)
    slope, icpt = rescale_for(np.array([0, 60000], np.int32))
    assert slope == 1.0 and 60000 - icpt <= 32767 and 0 - icpt >= -32768


def test_bad_input_raises(tmp_path):
    vol = _oblique_volume()
    with pytest.raises(MedreconError, match="transfer syntax"):
        write_dicom_series(vol, tmp_path, transfer_syntax="mpeg4")
    with pytest.raises(MedreconError, match="modality"):
        write_dicom_series(vol, tmp_path, modality="US")
    with pytest.raises(MedreconError, match="3D"):
        write_dicom_series(Volume(np.zeros((4, 4, 4, 2)), np.eye(4), {}), tmp_path)
    skew = np.eye(4)
    skew[:3, :3] = rotation_matrix((0, 0, 0))
    skew[0, 1] = 0.5  # in-plane axes not orthogonal
    with pytest.raises(MedreconError, match="orthogonal"):
        write_dicom_series(Volume(np.zeros((4, 4, 4)), skew, {}), tmp_path)
    with pytest.raises(MedreconError, match="NaN"):
        write_dicom_series(Volume(np.full((4, 4, 4), np.nan), np.eye(4), {}), tmp_path)
    assert not list(tmp_path.glob("*.dcm"))  # nothing half-written


def test_wide_integer_range_is_exact_through_the_intercept(tmp_path):
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 60001, (8, 6, 3)).astype(np.uint16)
    files = write_dicom_series(Volume(arr, np.eye(4), {}), tmp_path, modality="MR")
    ds = pydicom.dcmread(files[1])
    assert float(ds.RescaleSlope) == 1.0
    np.testing.assert_array_equal(ds.pixel_array.T + float(ds.RescaleIntercept), arr[:, :, 1])
