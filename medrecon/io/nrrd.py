"""NRRD (.nrrd, .nhdr + detached data) through pynrrd: the one NRRD reader and writer.

NRRD states its world space explicitly (``space: left-posterior-superior`` and friends) with
``space directions`` (one vector per axis) and ``space origin``. Reading converts any of the
3D spaces to LPS; writing always uses ``left-posterior-superior`` (what 3D Slicer writes).
A non-spatial axis (``kinds`` list/vector/time, direction ``none``) becomes the 4th array axis.

:func:`write_nrrd_file` is the one place NRRD files are written (volumes here, Slicer
segmentations and scene volumes in :mod:`medrecon.io.slicer`).
"""
from __future__ import annotations

import os

import numpy as np

from medrecon.errors import InputError
from medrecon.io.atomic import atomic_path
from medrecon.orientation import axis_codes, space_signs
from medrecon.volume import Volume

__all__ = ["read_nrrd", "write_nrrd", "write_nrrd_file", "geometry_header"]

def read_nrrd(path: str | os.PathLike) -> Volume:
    """Read a NRRD file into a Volume with an index -> LPS mm affine."""
    import nrrd

    path = os.fspath(path)
    try:
        data, hdr = nrrd.read(path)
    except FileNotFoundError as exc:
        raise InputError("no such file", path) from exc
    except Exception as exc:  # noqa: BLE001 - pynrrd raises many types
        raise InputError(f"cannot read NRRD ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                         path) from exc
    warnings: list[str] = []
    dirs = hdr.get("space directions")
    space = str(hdr.get("space", "") or "").lower()
    if dirs is None:
        spacings = hdr.get("spacings")
        sp = [float(s) if s is not None and np.isfinite(s) else 1.0 for s in (spacings if spacings is not None else [1.0] * data.ndim)]
        dirs = [np.eye(3)[i] * sp[i] if i < 3 else None for i in range(data.ndim)]
        warnings.append("NRRD without space directions: axis-aligned grid assumed")
    spatial, other = [], []
    for ax, v in enumerate(dirs):
        arr = None if v is None else np.asarray(v, dtype=np.float64)
        if arr is None or arr.size != 3 or not np.all(np.isfinite(arr)):
            other.append(ax)
        else:
            spatial.append((ax, arr))
    if len(spatial) != 3 or len(other) > 1:
        raise InputError(f"unsupported NRRD layout: {len(spatial)} spatial axes, {len(other)} other axes", path)
    if other:
        data = np.moveaxis(data, other[0], -1)
    flip = space_signs(space)
    if flip is None:
        flip = np.ones(3)
        warnings.append(f"unknown NRRD space '{space}': treated as LPS")
    A = np.eye(4)
    for col, (_, v) in enumerate(spatial):
        A[:3, col] = v * flip
    origin = hdr.get("space origin")
    if origin is not None and np.all(np.isfinite(np.asarray(origin, dtype=np.float64))):
        A[:3, 3] = np.asarray(origin, dtype=np.float64) * flip
    vol = Volume(data, A, {"source": "nrrd", "warnings": warnings})
    vol.meta["orientation"] = axis_codes(A)
    vol.meta["spacing"] = [float(s) for s in vol.spacing]
    return vol


def geometry_header(affine: np.ndarray, extra_axis: bool = False) -> dict:
    """NRRD geometry fields of an index -> LPS affine: ``space``, ``space directions`` (one row
    per array axis; a NaN row for a non-spatial 4th axis) and ``space origin``."""
    a = np.asarray(affine, dtype=np.float64)
    rows = a[:3, :3].T.copy()
    if extra_axis:
        rows = np.vstack([rows, np.full((1, 3), np.nan)])
    return {"space": "left-posterior-superior", "space directions": rows, "space origin": a[:3, 3].copy()}


def write_nrrd_file(path: str | os.PathLike, data: np.ndarray, affine: np.ndarray, *,
                    header: dict | None = None, compression_level: int = 4, compress: bool = True) -> str:
    """Write ``data`` (index order i, j, k[, list]) with its index -> LPS affine as NRRD, atomically.

    Parameters
    ----------
    header : dict, optional
        More fields (``kinds``, ``type``, Slicer's ``Segment<N>_*``...); geometry fields come
        from ``affine``. A 4D array gets a non-spatial ``list`` axis.
    compression_level : int
        gzip level (4: on CT ~30x faster than level 9 for files ~10% larger).

    The file is tagged ``NRRD0004`` (what Slicer writes; nothing newer is used).
    """
    import nrrd

    path = os.fspath(path)
    data = np.asarray(data)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    hdr = {"kinds": ["domain"] * 3 + (["list"] if data.ndim == 4 else []),
           "encoding": "gzip" if compress else "raw"}
    hdr.update(geometry_header(affine, extra_axis=data.ndim == 4))
    hdr.update(header or {})
    with atomic_path(path) as tmp:
        nrrd.write(str(tmp), np.asfortranarray(data) if data.flags.f_contiguous else data, hdr, index_order="F",
                   compression_level=int(compression_level))
        # pynrrd tags every file NRRD0005; our headers use nothing newer than NRRD0004, which
        # is what Slicer itself writes, so say so for older readers.
        with open(tmp, "r+b") as fh:
            if fh.read(8) == b"NRRD0005":
                fh.seek(0)
                fh.write(b"NRRD0004")
    return path


def write_nrrd(volume: Volume, path: str | os.PathLike, compress: bool = True) -> str:
    """Write ``volume`` as NRRD in ``left-posterior-superior`` space, atomically (gzip by default)."""
    return write_nrrd_file(path, volume.array, volume.affine, compress=compress)
