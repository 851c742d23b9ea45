"""NIfTI, NRRD, MetaImage, and the nibabel / SimpleITK / VTK converters: geometry must survive
every hop, with RAS only in NIfTI and LPS everywhere else."""
from __future__ import annotations

import gzip

import nibabel as nib
import nrrd
import numpy as np
import pytest

from conftest import shared_path
from medrecon.errors import InputError
from medrecon.io.convert import from_nibabel, from_sitk, from_vtk_image, to_nibabel, to_sitk, to_vtk_image
from medrecon.io.loader import describe_series, load
from medrecon.io.nifti import read_nifti, write_nifti
from medrecon.io.nrrd import read_nrrd, write_nrrd
from medrecon.io.volumes import save_volume
from medrecon.volume import Volume


def oblique_volume(dtype=np.int16, shape=(5, 6, 7)):
    th = np.deg2rad(20)
    rot = np.array([[1, 0, 0], [0, np.cos(th), -np.sin(th)], [0, np.sin(th), np.cos(th)]])
    A = np.eye(4)
    A[:3, :3] = rot @ np.diag([0.6, 0.8, 2.5])
    A[:3, 3] = [-12.0, 34.0, -56.0]
    arr = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    return Volume(arr, A, {"modality": "CT"})


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz", "v.nrrd", "v.mha"])
def test_save_and_load_round_trip(tmp_path, name):
    v = oblique_volume()
    out = save_volume(v, tmp_path / name)
    assert out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    w = load(out)
    assert np.allclose(w.affine, v.affine, atol=1e-5)
    assert np.array_equal(w.array, v.array) and w.array.dtype == v.array.dtype


def test_nifti_file_holds_ras(tmp_path):
    v = oblique_volume()
    write_nifti(v, tmp_path / "a.nii.gz")
    img = nib.load(str(tmp_path / "a.nii.gz"))
    assert np.allclose(img.affine, np.diag([-1, -1, 1, 1]) @ v.affine, atol=1e-5)
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    assert img.header.get_xyzt_units()[0] == "mm"


def test_nrrd_file_holds_lps(tmp_path):
    v = oblique_volume()
    write_nrrd(v, tmp_path / "a.nrrd")
    data, hdr = nrrd.read(str(tmp_path / "a.nrrd"))
    assert hdr["space"] == "left-posterior-superior"
    assert np.allclose(np.asarray(hdr["space directions"], float).T, v.affine[:3, :3])
    assert np.allclose(hdr["space origin"], v.affine[:3, 3])
    assert np.array_equal(data, v.array)


def test_nrrd_ras_space_converted(tmp_path):
    data = np.zeros((3, 4, 5), np.uint8)
    data[1, 2, 3] = 7
    hdr = {"space": "right-anterior-superior", "space directions": np.diag([1.0, 2.0, 3.0]),
           "space origin": np.array([10.0, 20.0, 30.0])}
    nrrd.write(str(tmp_path / "r.nrrd"), data, hdr)
    v = read_nrrd(tmp_path / "r.nrrd")
    assert np.allclose(v.affine, [[-1, 0, 0, -10], [0, -2, 0, -20], [0, 0, 3, 30], [0, 0, 0, 1]])
    assert v.array[1, 2, 3] == 7


def test_4d_round_trips(tmp_path):
    v = Volume(np.random.default_rng(0).random((3, 4, 5, 2)).astype(np.float32), oblique_volume().affine)
    for name in ("a.nii.gz", "a.nrrd"):
        w = load(save_volume(v, tmp_path / name))
        assert w.shape == (3, 4, 5, 2) and np.allclose(w.array, v.array) and np.allclose(w.affine, v.affine)


def test_converters_keep_geometry():
    v = oblique_volume()
    for to, back in ((to_nibabel, from_nibabel), (to_sitk, from_sitk), (to_vtk_image, from_vtk_image)):
        w = back(to(v))
        assert np.allclose(w.affine, v.affine, atol=1e-6), to.__name__
        assert np.array_equal(w.array, v.array), to.__name__


def test_sitk_and_vtk_place_voxels_like_the_affine():
    v = oblique_volume()
    img = to_sitk(v)
    ijk = (2, 3, 4)
    assert np.allclose(img.TransformIndexToPhysicalPoint(ijk), v.index_to_lps(np.array([ijk]))[0])
    assert img.GetPixel(ijk) == v.array[ijk]
    vi = to_vtk_image(v)
    out = [0.0, 0.0, 0.0]
    vi.TransformIndexToPhysicalPoint(list(ijk), out)
    assert np.allclose(out, v.index_to_lps(np.array([ijk]))[0])
    assert vi.GetScalarComponentAsDouble(*ijk, 0) == v.array[ijk]


def test_unknown_output_extension(tmp_path):
    with pytest.raises(InputError, match="unknown output format"):
        save_volume(oblique_volume(), tmp_path / "a.xyz")


def test_bad_nifti_is_input_error(tmp_path):
    p = tmp_path / "bad.nii.gz"
    p.write_bytes(gzip.compress(b"not a nifti header" * 10))
    with pytest.raises(InputError) as exc:
        load(p)
    assert "bad.nii.gz" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.realdata
def test_real_nifti_lps_oriented_mr_read_as_lps():
    """example_mr_sm.nii.gz is stored L,P,S (not RAS): our LPS affine must be diagonal-positive."""
    path = shared_path("ct_abdomen_totalsegmentator_refseg", "example_mr_sm.nii.gz")
    v = read_nifti(path)
    img = nib.load(str(path))
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
    assert v.meta["orientation"] == "LPS"
    assert np.all(np.diag(v.affine)[:3] > 0)
    rows = describe_series(path)
    assert rows[0]["size"] == [117, 91, 20]


@pytest.mark.realdata
def test_real_nifti_to_nrrd_to_nifti_same_world(tmp_path):
    path = shared_path("ct_abdomen_totalsegmentator_refseg", "example_ct_sm.nii.gz")
    v = read_nifti(path)
    w = read_nrrd(write_nrrd(v, tmp_path / "x.nrrd"))
    x = read_nifti(write_nifti(w, tmp_path / "x.nii.gz"))
    assert np.allclose(x.affine, v.affine) and np.array_equal(x.array, v.array)
    assert np.allclose(nib.load(str(tmp_path / "x.nii.gz")).affine, nib.load(str(path)).affine, atol=1e-5)


def test_nhdr_detached_header(tmp_path):
    v = oblique_volume()
    hdr = {"space": "left-posterior-superior", "space directions": v.affine[:3, :3].T,
           "space origin": v.affine[:3, 3], "encoding": "raw"}
    nrrd.write(str(tmp_path / "d.nhdr"), v.array, hdr, detached_header=True)
    assert (tmp_path / "d.nhdr").exists() and len(list(tmp_path.iterdir())) == 2  # header + data file
    w = load(tmp_path / "d.nhdr")
    assert np.allclose(w.affine, v.affine) and np.array_equal(w.array, v.array)
