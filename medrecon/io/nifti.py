"""NIfTI (.nii, .nii.gz, Analyze pairs) through nibabel.

NIfTI stores an index -> **RAS** mm affine (sform when set, else qform); medrecon keeps LPS
inside, so reading and writing flip the first two world axes (``diag(-1, -1, 1)``) and nothing
else: the voxel array and its index order are kept exactly as stored.
"""
from __future__ import annotations

import os
import struct

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

    from medrecon.io.limits import guard

    path = os.fspath(path)
    try:
        img = nib.load(path)
        _check_size_claims(img, path)
        with guard(path, "cannot read NIfTI", error=InputError):
            data = np.asanyarray(img.dataobj)
    except FileNotFoundError as exc:
        raise InputError("no such file", path) from exc
    except InputError:
        raise
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


def _check_size_claims(img, path: str) -> None:
    """Check the size the header claims against the limit and the bytes present *before* the
    data are read (a ``.nii.gz`` claiming 2048 x 2048 x 512 would otherwise allocate it all),
    and refuse a non-finite or singular sform/qform."""
    import gzip

    from medrecon.io.limits import max_bytes

    hdr = img.header
    shape = tuple(int(x) for x in img.shape)
    itemsize = np.dtype(hdr.get_data_dtype()).itemsize
    need = int(np.prod(shape, dtype=np.int64)) * itemsize if shape else 0
    if any(x < 0 for x in shape) or need > max_bytes():
        raise InputError(f"header claims {shape} voxels ({need} bytes), over the limit of {max_bytes()} "
                         "(MEDRECON_MAX_BYTES)", path)
    try:
        offset = int(hdr.get_data_offset())
    except Exception:  # noqa: BLE001 - Analyze pairs keep data in the .img
        return
    fname = img.get_filename() if hasattr(img, "get_filename") else path
    data_file = img.file_map["image"].filename if "image" in getattr(img, "file_map", {}) else fname
    if not data_file or not os.path.exists(data_file):
        return
    if str(data_file).lower().endswith(".gz"):
        want = offset + need
        got = 0
        try:
            with gzip.open(data_file, "rb") as fh:
                while got < want:
                    chunk = fh.read(min(1 << 22, want - got))
                    if not chunk:
                        break
                    got += len(chunk)
        except (OSError, EOFError) as exc:
            raise InputError(f"corrupt gzip data ({exc})", path) from None
    else:
        want, got = offset + need, os.path.getsize(data_file)
    if got < want:
        raise InputError(f"file truncated: header claims {shape} voxels ({want} bytes with the header), "
                         f"the file holds {got}", path)
    for code, aff in (("sform", hdr.get_sform()), ("qform", hdr.get_qform())):
        if int(hdr[f"{code}_code"]) > 0:
            a = np.asarray(aff, dtype=np.float64)
            if not np.all(np.isfinite(a)) or abs(np.linalg.det(a[:3, :3])) < 1e-12:
                raise InputError(f"NIfTI {code} is not finite or singular: cannot place voxels", path)
    if not np.all(np.isfinite(hdr["pixdim"][1:4])) or np.any(np.asarray(hdr["pixdim"][1:4]) == 0) \
            and int(hdr["sform_code"]) == 0 and int(hdr["qform_code"]) == 0:
        raise InputError("NIfTI voxel sizes (pixdim) are zero or not finite", path)


def _writable(array: np.ndarray) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype == np.int64:
        lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
        return array.astype(np.int16 if -32768 <= lo and hi <= 32767 else np.int32)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return array


#: NIfTI-1 datatype codes of the dtypes written.
_NIFTI_TYPES = {np.dtype(np.uint8): 2, np.dtype(np.int16): 4, np.dtype(np.int32): 8, np.dtype(np.float32): 16,
                np.dtype(np.float64): 64, np.dtype(np.int8): 256, np.dtype(np.uint16): 512,
                np.dtype(np.uint32): 768, np.dtype(np.int64): 1024, np.dtype(np.uint64): 1280}
_HDR = "<i10s18sihbb8h3fhhhh8ffffhbbffffii80s24shh6f4f4f4f16s4s"


def _quaternion(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix (Bar-Itzhack's method, as
    nibabel's ``mat2quat``)."""
    Qxx, Qyx, Qzx, Qxy, Qyy, Qzy, Qxz, Qyz, Qzz = R.flat
    K = np.array([[Qxx - Qyy - Qzz, 0, 0, 0],
                  [Qyx + Qxy, Qyy - Qxx - Qzz, 0, 0],
                  [Qzx + Qxz, Qzy + Qyz, Qzz - Qxx - Qyy, 0],
                  [Qyz - Qzy, Qzx - Qxz, Qxy - Qyx, Qxx + Qyy + Qzz]]) / 3.0
    vals, vecs = np.linalg.eigh(K)
    q = vecs[[3, 0, 1, 2], np.argmax(vals)]
    return -q if q[0] < 0 else q


def nifti_header(shape: tuple, dtype, ras: np.ndarray, descrip: bytes = b"") -> bytes:
    """The 348-byte NIfTI-1 header (+ 4 empty extension bytes) nibabel writes for an image of
    ``shape`` and ``dtype`` with ``ras`` as sform and qform (code 1, scanner), units mm and s,
    no scaling (NaN slope/intercept)."""
    ras = np.asarray(ras, dtype=np.float64)
    RZS = ras[:3, :3]
    zooms = np.sqrt(np.sum(RZS * RZS, axis=0))
    R = RZS / zooms
    qfac = 1.0
    if np.linalg.det(R) <= 0:
        qfac = -1.0
        R[:, -1] *= -1
    P, _, Qs = np.linalg.svd(R)
    quat = _quaternion(P @ Qs)
    dim = [len(shape), *shape] + [1] * (7 - len(shape))
    pixdim = [qfac, *zooms.tolist()] + [1.0] * 4
    code = _NIFTI_TYPES[np.dtype(dtype)]
    hdr = struct.pack(_HDR, 348, b"", b"", 0, 0, 0, 0, *dim, 0.0, 0.0, 0.0, 0, code, np.dtype(dtype).itemsize * 8, 0,
                      *pixdim, 352.0, float("nan"), float("nan"), 0, 0, 10, 0.0, 0.0, 0.0, 0.0, 0, 0,
                      descrip[:79], b"", 1, 1, *quat[1:].tolist(), *ras[:3, 3].tolist(),
                      *ras[0].tolist(), *ras[1].tolist(), *ras[2].tolist(), b"", b"n+1\x00")
    return hdr + b"\x00\x00\x00\x00"


def write_nifti(volume: Volume, path: str | os.PathLike) -> str:
    """Write ``volume`` as NIfTI-1 (``.nii`` or ``.nii.gz``) with its RAS affine, atomically.

    sform and qform are both set (code 1, scanner); units are mm. For a sheared affine (kept
    gantry tilt) only the sform can hold it exactly; the qform is then the nearest rotation.
    The header is the one nibabel writes (tested field by field), packed here so that writing a
    NIfTI file does not import nibabel (and, through it, pydicom): the cold-start cost of
    ``medrecon convert``.
    """
    path = os.fspath(path)
    data = _writable(np.asarray(volume.array))
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    desc = str(volume.meta.get("modality", "") or "medrecon")[:79].encode("ascii", "replace")
    head = nifti_header(data.shape, data.dtype, volume.ras_affine, desc)
    with atomic_path(path) as tmp:
        if path.lower().endswith(".gz"):
            import gzip

            with gzip.open(tmp, "wb", compresslevel=1) as fh:
                fh.write(head)
                fh.write(np.asfortranarray(data).tobytes(order="F"))
        else:
            with open(tmp, "wb") as fh:
                fh.write(head)
                if data.flags.f_contiguous:
                    data.T.tofile(fh)  # C order of the transpose: the F order NIfTI stores
                else:
                    fh.write(data.tobytes(order="F"))
    return path
