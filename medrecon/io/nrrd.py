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

__all__ = ["read_nrrd", "write_nrrd", "write_nrrd_file", "geometry_header", "header_geometry"]

def header_geometry(hdr: dict, ndim: int, strict: bool = False) -> tuple[np.ndarray, list[int], list[str]]:
    """The index -> LPS mm affine a NRRD header describes, in any named 3D space.

    Returns ``(affine, non-spatial axes, warnings)``: at most one non-spatial axis (direction
    ``none``: a list/vector/time axis). Without ``space directions`` an axis-aligned grid from
    ``spacings`` is assumed, and an unknown space is taken as LPS, each with a warning; with
    ``strict`` both are errors.

    Raises
    ------
    ValueError
        Not three spatial axes (or more than one other axis); with ``strict``, no directions or
        an unknown space.
    """
    warnings: list[str] = []
    dirs = hdr.get("space directions")
    space = str(hdr.get("space", "") or "").lower()
    if dirs is None:
        if strict:
            raise ValueError("NRRD without space directions")
        spacings = hdr.get("spacings")
        sp = [float(s) if s is not None and np.isfinite(s) else 1.0
              for s in (spacings if spacings is not None else [1.0] * ndim)]
        dirs = [np.eye(3)[i] * sp[i] if i < 3 else None for i in range(ndim)]
        warnings.append("NRRD without space directions: axis-aligned grid assumed")
    spatial, other = [], []
    for ax, v in enumerate(dirs):
        arr = None if v is None else np.asarray(v, dtype=np.float64)
        if arr is None or arr.size != 3 or not np.all(np.isfinite(arr)):
            other.append(ax)
        else:
            spatial.append(arr)
    if len(spatial) != 3 or len(other) > 1:
        raise ValueError(f"unsupported NRRD layout: {len(spatial)} spatial axes, {len(other)} other axes")
    flip = space_signs(space)
    if flip is None:
        if strict:
            raise ValueError(f"unsupported NRRD space {space!r}")
        flip = np.ones(3)
        warnings.append(f"unknown NRRD space '{space}': treated as LPS")
    A = np.eye(4)
    for col, v in enumerate(spatial):
        A[:3, col] = v * flip
    origin = hdr.get("space origin")
    if origin is not None and np.all(np.isfinite(np.asarray(origin, dtype=np.float64))):
        A[:3, 3] = np.asarray(origin, dtype=np.float64) * flip
    return A, other, warnings


def read_nrrd(path: str | os.PathLike) -> Volume:
    """Read a NRRD file into a Volume with an index -> LPS mm affine."""
    import nrrd

    from medrecon.io.limits import guard

    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            _check_header(nrrd.read_header(fh), path)
        with guard(path, "cannot read NRRD", error=InputError):
            data, hdr = nrrd.read(path)
    except FileNotFoundError as exc:
        raise InputError("no such file", path) from exc
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - pynrrd raises many types
        raise InputError(f"cannot read NRRD ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                         path) from exc
    try:
        A, other, warnings = header_geometry(hdr, data.ndim)
    except ValueError as exc:
        raise InputError(str(exc), path) from None
    if other:
        data = np.moveaxis(data, other[0], -1)
    vol = Volume(data, A, {"source": "nrrd", "warnings": warnings})
    vol.meta["orientation"] = axis_codes(A)
    vol.meta["spacing"] = [float(s) for s in vol.spacing]
    return vol


def _check_header(hdr: dict, path: str) -> None:
    """Before any data are read: a detached ``data file`` must resolve inside the header's folder
    (never ``/etc/passwd`` or ``../../..``; symbolic links resolved), and the claimed size must be
    within the limit and, for raw data, present in the file."""
    from medrecon.io.limits import is_inside, max_bytes

    folder = os.path.dirname(os.path.abspath(path))
    names = []
    df = hdr.get("data file") or hdr.get("datafile")
    if df:
        text = str(df).strip()
        if text.upper().startswith("LIST"):
            raise InputError("NRRD 'data file: LIST' is not supported", path)
        parts = text.split()
        if len(parts) >= 3 and "%" in parts[0]:  # a format with min max step [subdim]
            try:
                names = [parts[0] % i for i in range(int(parts[1]), int(parts[2]) + 1, int(parts[3]) if len(parts) > 3 else 1)][:4096]
            except (TypeError, ValueError):
                raise InputError(f"NRRD 'data file' format not understood: {text[:80]!r}", path) from None
        else:
            names = [text]
    for n in names:
        target = n if os.path.isabs(n) else os.path.join(folder, n)
        if not is_inside(target, folder):
            raise InputError(f"NRRD detached data file {n!r} lies outside the header's folder: refused", path)
    try:
        sizes = [int(x) for x in hdr.get("sizes", [])]
        itemsize = np.dtype(nrrd_dtype(hdr)).itemsize
    except Exception:  # noqa: BLE001 - pynrrd reports its own errors when reading
        return
    need = int(np.prod(sizes, dtype=np.int64)) * itemsize if sizes else 0
    if any(s <= 0 for s in sizes) or need > max_bytes():
        raise InputError(f"NRRD sizes {sizes} ({need} bytes) out of range or over the limit of {max_bytes()} "
                         "(MEDRECON_MAX_BYTES)", path)
    enc = str(hdr.get("encoding", "raw")).lower()
    if enc == "raw" and len(names) <= 1:
        f = path if not names else (names[0] if os.path.isabs(names[0]) else os.path.join(folder, names[0]))
        if os.path.exists(f) and os.path.getsize(f) < need:
            raise InputError(f"NRRD raw data shorter than the header says ({os.path.getsize(f)} of {need} bytes)",
                             path)


def nrrd_dtype(hdr: dict):
    import nrrd.reader

    return nrrd.reader._determine_datatype(hdr)


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
