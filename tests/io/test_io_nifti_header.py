"""medrecon writes NIfTI-1 itself (no nibabel import on the convert path): the header must be the
one nibabel writes for the same image, field by field, and the voxels must read back."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medrecon.io.nifti import write_nifti
from medrecon.volume import Volume

CASES = [
    ((5, 6, 7), np.int16, np.diag([0.9, 0.8, 2.5, 1.0])),                     # positive determinant
    ((4, 5, 3, 2), np.float32, np.array([[-0.9, 0.1, 0, 10], [0.1, 0.9, 0.2, -5],
                                          [0, -0.2, 2.5, 3], [0, 0, 0, 1.0]])),  # oblique, 4D
    ((3, 4, 5), np.uint16, np.array([[1.0, 0, 0, 0], [0, 1.0, 0.34, 0], [0, 0, 1.1, 0], [0, 0, 0, 1]])),  # sheared
    ((6, 2, 3), np.uint8, np.diag([-1.0, -1.0, -1.0, 1.0])),                   # flipped, det < 0
]


@pytest.mark.parametrize("shape,dtype,lps", CASES)
@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_nifti_header_as_nibabel_writes_it(tmp_path, shape, dtype, lps, ext):
    rng = np.random.default_rng(0)
    arr = (rng.random(shape) * 100).astype(dtype)
    if len(shape) == 3:
        arr = np.asfortranarray(arr)  # both memory orders are written
    vol = Volume(arr, lps, {"modality": "MR"})
    ours = tmp_path / f"ours{ext}"
    write_nifti(vol, ours)
    ref = nib.Nifti1Image(np.asarray(arr), vol.ras_affine)
    ref.set_sform(vol.ras_affine, code=1)
    ref.set_qform(vol.ras_affine, code=1)
    ref.header.set_xyzt_units("mm", "sec")
    ref.header["descrip"] = b"MR"
    nib.save(ref, tmp_path / f"ref{ext}")
    a, b = nib.load(ours), nib.load(tmp_path / f"ref{ext}")
    for key in b.header.keys():
        va, vb = np.asarray(a.header[key]), np.asarray(b.header[key])
        if va.dtype.kind == "f":
            assert np.allclose(va, vb, atol=1e-6, equal_nan=True), key
        else:
            assert np.array_equal(va, vb), key
    assert np.array_equal(np.asanyarray(a.dataobj), arr)
    assert np.allclose(a.affine, b.affine, atol=1e-5) and np.allclose(a.get_qform(), b.get_qform(), atol=1e-5)
