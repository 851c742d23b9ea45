"""TotalSegmentator and nnU-Net label maps, checked against TotalSegmentator's own reference outputs
in ../shared/data/ct_abdomen_totalsegmentator_refseg (multi-label maps and per-structure masks)."""
from __future__ import annotations

import json
import re
import shutil

import nibabel as nib
import numpy as np
import pytest

from medrecon.errors import ConfigError, InputError
from medrecon.io.labelmaps import import_nnunet, import_totalsegmentator, read_embedded_label_table
from tests.conftest import shared_path

pytestmark = pytest.mark.realdata
REF = "ct_abdomen_totalsegmentator_refseg"


def _mask_files():
    return sorted(shared_path(REF, "example_seg_fast").glob("*.nii.gz"))


def test_multilabel_names_ids_match_per_structure_masks():
    """Every non-empty TotalSegmentator mask must be exactly the voxels of the label whose name is
    the mask's file name."""
    ml_path = shared_path(REF, "example_seg_fast.nii.gz")
    vol, labels = import_totalsegmentator(ml_path)
    by_name = {li.name: v for v, li in labels.items()}
    n = 0
    for f in _mask_files():
        mask = np.asarray(nib.load(str(f)).dataobj) > 0
        name = f.name[: -len(".nii.gz")]
        if not mask.any():
            assert name not in by_name
            continue
        n += 1
        assert name in by_name, name
        # the NIfTI array order is kept (RAS file -> same array, LPS affine)
        np.testing.assert_array_equal(vol.array == by_name[name], mask, err_msg=name)
    assert n == len(labels) == 40
    assert by_name["liver"] == 5 and by_name["vertebrae_L1"] == 31 and by_name["rib_left_7"] == 98


def test_multilabel_geometry_is_lps_of_the_file():
    p = shared_path(REF, "example_seg_fast.nii.gz")
    vol, _ = import_totalsegmentator(p)
    ras = nib.load(str(p)).affine
    np.testing.assert_allclose(vol.affine, np.diag([-1, -1, 1, 1]) @ ras, atol=1e-6)
    assert vol.shape == (122, 101, 30) and vol.array.dtype == np.uint8
    assert vol.meta["kind"] == "labelmap"
    assert vol.meta["label_names"][5] == "liver"


def test_folder_of_masks_equals_multilabel():
    ml, ml_labels = import_totalsegmentator(shared_path(REF, "example_seg_fast.nii.gz"))
    fo, fo_labels = import_totalsegmentator(shared_path(REF, "example_seg_fast"))
    np.testing.assert_array_equal(fo.array, ml.array)
    np.testing.assert_allclose(fo.affine, ml.affine)
    assert {v: li.name for v, li in fo_labels.items()} == {v: li.name for v, li in ml_labels.items()}


def test_dicom_grid_reference_has_bones_named():
    vol, labels = import_totalsegmentator(shared_path(REF, "example_seg_dicom.nii.gz"))
    names = {li.name for li in labels.values()}
    assert {"vertebrae_T12", "rib_left_7", "rib_right_12", "humerus_left", "costal_cartilages"} <= names
    assert vol.shape == (512, 512, 20)
    # the file's own table and medrecon's built-in 'total' table agree on every id present
    from medrecon.io.label_tables import load_label_table

    builtin = load_label_table("totalsegmentator")
    assert all(builtin[v].name == li.name for v, li in labels.items())
    assert np.allclose(vol.spacing[:2], 0.977, atol=0.01)


def test_mr_task_names_come_from_the_embedded_table():
    """total_mr ids differ from the CT task's: names must come from the file's own table."""
    p = shared_path(REF, "example_seg_mr.nii.gz")
    raw = nib.load(str(p)).header.extensions[0].get_content().decode()
    expected = {int(k): n for k, n in re.findall(r'Key="(\d+)"[^>]*><!\[CDATA\[(.*?)\]\]>', raw)}
    assert read_embedded_label_table(p) == expected
    vol, labels = import_totalsegmentator(p)
    present = {int(v) for v in np.unique(vol.array) if v}
    assert set(labels) == present
    assert all(labels[v].name == expected[v] for v in present)


def test_folder_with_mask_on_another_grid(tmp_path):
    for f in _mask_files()[:3]:
        shutil.copy(f, tmp_path / f.name)
    odd = nib.load(str(_mask_files()[0]))
    nib.save(nib.Nifti1Image(np.asarray(odd.dataobj)[:-1], odd.affine), str(tmp_path / "zz_extra.nii.gz"))
    with pytest.raises(InputError, match=r"zz_extra\.nii\.gz.*different grid"):
        import_totalsegmentator(tmp_path)


def test_folder_unknown_structure_gets_a_free_id(tmp_path):
    liver = shared_path(REF, "example_seg_fast", "liver.nii.gz")
    shutil.copy(liver, tmp_path / "liver.nii.gz")
    img = nib.load(str(liver))
    blob = np.zeros(img.shape, np.uint8)
    blob[:5, :5, :5] = 1
    nib.save(nib.Nifti1Image(blob, img.affine), str(tmp_path / "my_tumour.nii.gz"))
    vol, labels = import_totalsegmentator(tmp_path)
    by_name = {li.name: v for v, li in labels.items()}
    assert by_name["liver"] == 5 and by_name["my_tumour"] == 118
    assert (vol.array == 118).sum() == 125


def test_errors(tmp_path):
    with pytest.raises(InputError, match="no such"):
        import_totalsegmentator(tmp_path / "missing.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no NIfTI masks"):
        import_totalsegmentator(tmp_path / "empty")
    ct = shared_path(REF, "example_ct_sm.nii.gz")
    img = nib.load(str(ct))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj).astype(np.float32) + 0.5, img.affine),
             str(tmp_path / "image.nii.gz"))
    with pytest.raises(InputError, match="non-integer"):
        import_totalsegmentator(tmp_path / "image.nii.gz")


@pytest.mark.parametrize("version", [1, 2])
def test_nnunet_dataset_json(tmp_path, version):
    seg = shared_path(REF, "example_seg_fast.nii.gz")
    names = {5: "liver", 1: "spleen", 2: "kidney_right", 3: "kidney_left"}
    if version == 2:
        labels = {"background": 0, **{n: v for v, n in names.items()}}
    else:
        labels = {"0": "background", **{str(v): n for v, n in names.items()}}
    dj = tmp_path / "dataset.json"
    dj.write_text(json.dumps({"name": "Dataset999_Test", "labels": labels, "file_ending": ".nii.gz"}))
    vol, lab = import_nnunet(seg, dj)
    for v, n in names.items():
        assert lab[v].name == n
    # values in the map that the dataset.json does not name are kept, with a generic name and a warning
    assert lab[31].name == "label_31"
    assert any("no name" in w for w in vol.meta["warnings"])
    np.testing.assert_array_equal(vol.array, np.asarray(nib.load(str(seg)).dataobj))


def test_nnunet_bad_dataset_json(tmp_path):
    dj = tmp_path / "dataset.json"
    dj.write_text("{not json")
    with pytest.raises(ConfigError):
        import_nnunet(shared_path(REF, "example_seg_fast.nii.gz"), dj)
