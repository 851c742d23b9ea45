"""NIfTI (.nii, .nii.gz, Analyze pairs) through nibabel.

NIfTI stores an index -> **RAS** mm affine (sform when set, else qform); medrecon keeps LPS
inside, so reading and writing flip the first two world axes (``diag(-1, -1, 1)``) and nothing
else: the voxel array and its index order are kept exactly as stored.
"""
from __future__ import annotations

import os

import numpy as np

from medrecon.errors import InputError
from medrecon.io.atomic import atomic_path
from medrecon.orientation import axis_codes, lps_ras_affine
from medrecon.volume import Volume

__all__ = ["read_nifti", "write_nifti"]

_UNIT_SCALE = {"mm": 1.0, "meter": 1000.0, "micron": 0.001, "unknown": 1.0}


def read_nifti(path: str | os.PathLike) -> Volume:
    """Read a NIfTI file into a Volume (affine converted from RAS to LPS millimetres).

    Data scaling (``scl_slope``/``scl_inter``) is applied; unscaled integer data keep their
    dtype. A 5D image with one value per voxel in dims 4-5 is squeezed to 3D/4D.
    """
    import nibabel as nib

    path = os.fspath(path)
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except FileNotFoundError as exc:
        raise InputError("no such file", path) from exc
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for bad files
        raise InputError(f"cannot read NIfTI ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                         path) from exc
    if data.dtype == np.float64 and np.dtype(img.get_data_dtype()).kind in "iu":
        data = data.astype(np.float32)  # scaled integers: float32 holds them, at half the memory
    while data.ndim > 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim not in (3, 4):
        raise InputError(f"unsupported NIfTI shape {data.shape}", path)
    hdr = img.header
    affine = np.asarray(img.affine, dtype=np.float64)
    warnings: list[str] = []
    try:
        unit = hdr.get_xyzt_units()[0]
    except Exception:  # noqa: BLE001 - Analyze headers
        unit = "unknown"
    scale = _UNIT_SCALE.get(unit, 1.0)
    if scale != 1.0:
        affine = np.diag([scale, scale, scale, 1.0]) @ affine
        warnings.append(f"spatial units were {unit}; converted to mm")
    try:
        sform_code = int(hdr["sform_code"])
        qform_code = int(hdr["qform_code"])
        if sform_code == 0 and qform_code == 0:
            warnings.append("NIfTI has neither sform nor qform: voxel-size-only geometry assumed")
    except Exception:  # noqa: BLE001
        pass
    lps = lps_ras_affine(affine)  # the flip is its own inverse
    vol = Volume(data, lps, {"source": "nifti", "warnings": warnings})
    vol.meta["orientation"] = axis_codes(lps)
    vol.meta["spacing"] = [float(s) for s in vol.spacing]
    return vol


def _writable(array: np.ndarray) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype == np.int64:
        lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
        return array.astype(np.int16 if -32768 <= lo and hi <= 32767 else np.int32)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return array


def write_nifti(volume: Volume, path: str | os.PathLike) -> str:
    """Write ``volume`` as NIfTI-1 (``.nii`` or ``.nii.gz``) with its RAS affine, atomically.

    sform and qform are both set (code 1, scanner); units are mm. For a sheared affine (kept
    gantry tilt) only the sform can hold it exactly; the qform is then the nearest rotation.
    """
    import nibabel as nib

    path = os.fspath(path)
    ras = volume.ras_affine
    data = _writable(np.asarray(volume.array))
    img = nib.Nifti1Image(data, ras)
    img.set_sform(ras, code=1)
    img.set_qform(ras, code=1)
    img.header.set_xyzt_units("mm", "sec")
    desc = str(volume.meta.get("modality", "") or "medrecon")[:79]
    img.header["descrip"] = desc.encode("ascii", "replace")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
