"""Vendor-specific header facts the loader needs to put every frame on the right grid, split
series as dcm2niix does, and scale Philips values.

* **GE ``epi_pepolar``** (reversed phase-encoding polarity): the pulse sequence name (0019,109C)
  contains ``epi_pepolar``; ``(0019,10B3)`` (user data 12) says which volumes are reversed:
  0 none, 1 all, 2 odd volumes (1-based: reverse first, then forward...), 3 even volumes. A
  reversed volume is stored mirrored along the phase-encoding axis; dcm2niix flips it back and
  gives it its own series (series number + 1000, unless every volume is reversed).
* **UIH grid (mosaic)**: ``(0065,1050)`` NumberOfImagesInGrid slices tiled ``ceil(sqrt(n))``
  across; unlike a Siemens mosaic the position (IPP) is that of the first tile (dcm2niix applies
  the Siemens mosaic shift to Siemens only). Files saved "by slice" (ImageType ``VFRAME``) carry
  no ImagePositionPatient of their own: the private sequence ``(0065,1051)`` holds one item per
  tile with its ImagePositionPatient and AcquisitionTime; the b-value is ``(0065,1009)`` and the
  gradient direction ``(0065,1037)``, in the image's (column, row, slice) axes.
* **Per-frame positions in private tags** (e.g. UIH ``VFRAME`` multi-frame objects): a private
  sequence with one item per frame, each holding ImagePositionPatient.
* **Derived images** (ImageType DERIVED, or TRACEW/ADC/FA/EXP/ISOTROPIC...): never a volume of the
  acquisition's 4D.
* **Philips scaling**: stored value SV, RescaleSlope RS, RescaleIntercept RI and the private scale
  slope SS (2005,100E): display value DV = SV*RS + RI; precise floating point
  FP = DV / (RS*SS) (dcm2niix's default, ``-p y``).
"""
from __future__ import annotations

import struct

import numpy as np

__all__ = ["ge_pepolar", "pepolar_reversed", "uih_grid_slices", "uih_grid_facts", "private_frame_positions",
           "is_derived", "derived_key", "DERIVED_TOKENS", "philips_scale_slope", "philips_precise",
           "is_uih", "is_philips", "is_ge"]

#: ImageType values that mark a derived (computed) image.
DERIVED_TOKENS = frozenset({"TRACEW", "TRACE", "ADC", "EADC", "FA", "EXP", "ISOTROPIC", "CALC_BVALUE",
                            "COLFA", "TENSOR", "TENSOR_B0", "MIP", "MPR", "PROJECTION IMAGE",
                            "SUBTRACTION", "DIFFERENCE", "T2_MAP", "T1_MAP", "R2", "SUB"})


def _man(ds) -> str:
    from medrecon.io.dicom.rawvalues import get_str

    return get_str(ds, "Manufacturer").upper()


def is_ge(ds) -> bool:
    m = _man(ds)
    return m.startswith("GE") or "GE MEDICAL" in m or "GEMS" in m


def is_uih(ds) -> bool:
    m = _man(ds)
    return "UIH" in m or "UNITED IMAGING" in m


def is_philips(ds) -> bool:
    return "PHILIPS" in _man(ds)


def _private(ds, group: int, elem: int):
    el = ds.get((group, elem)) if hasattr(ds, "get") else None
    if el is None:
        return None
    v = el.value
    if isinstance(v, (bytes, bytearray)):
        try:
            v = v.decode("latin-1").strip("\x00 ")
        except Exception:  # noqa: BLE001
            return None
    return v


def ge_pepolar(ds) -> int | None:
    """For a GE ``epi_pepolar`` image: user data 12 (0019,10B3) as an int (0 if absent); else None."""
    if not is_ge(ds):
        return None
    name = _private(ds, 0x0019, 0x109C)
    if name is None or "epi_pepolar" not in str(name).lower():
        return None
    ud = _private(ds, 0x0019, 0x10B3)
    try:
        return int(float(ud[0] if isinstance(ud, (list, tuple)) else ud)) if ud not in (None, "") else 0
    except (TypeError, ValueError):
        return 0


def pepolar_reversed(user_data_12: int, volume_number: int) -> bool:
    """Whether 1-based ``volume_number`` of an ``epi_pepolar`` series has reversed polarity."""
    if user_data_12 == 1:
        return True
    if user_data_12 == 2:  # reverse, forward, reverse...
        return volume_number % 2 == 1
    if user_data_12 == 3:  # forward, reverse, forward...
        return volume_number % 2 == 0
    return False


def uih_grid_slices(ds) -> int | None:
    """UIH grid (mosaic): number of slices tiled in the image, from (0065,1050); else None."""
    if not is_uih(ds):
        return None
    v = _private(ds, 0x0065, 0x1050)
    if v is None or isinstance(v, (list, tuple)) and not v:
        return None
    try:
        n = int(float(v[0] if isinstance(v, (list, tuple)) else v))
    except (TypeError, ValueError):
        return None
    return n if n > 1 else None


def _tm_seconds(v) -> float | None:
    """DICOM TM ``HHMMSS.frac`` as seconds of the day."""
    t = str(v or "").strip()
    try:
        return int(t[0:2]) * 3600 + int(t[2:4] or 0) * 60 + float(t[4:] or 0)
    except ValueError:
        return None


def uih_grid_facts(ds, n_tiles: int) -> dict:
    """What a UIH grid file says about its tiles: ``positions`` (ImagePositionPatient of each
    tile, from the private per-tile sequence), ``times`` (their AcquisitionTime, s of the day),
    ``bval`` (0065,1009) and ``bvec`` (0065,1037); missing facts are left out."""
    out: dict = {}
    pos = private_frame_positions(ds, n_tiles)
    if pos is not None:
        out["positions"] = [p.tolist() for p in pos]
        for el in ds:
            if el.tag.group % 2 == 1 and el.VR == "SQ" and el.value is not None and len(el.value) == n_tiles:
                t = [_tm_seconds(it.get("AcquisitionTime")) for it in el.value]
                if all(x is not None for x in t):
                    out["times"] = t
                break
    b = _private(ds, 0x0065, 0x1009)
    g = _private(ds, 0x0065, 0x1037)
    try:
        if b is not None and not isinstance(b, str):
            out["bval"] = float(b[0] if isinstance(b, (list, tuple)) or type(b).__name__ == "MultiValue" else b)
        if g is not None and not isinstance(g, str) and len(g) == 3:
            out["bvec"] = [float(x) for x in g]
    except (TypeError, ValueError):
        pass
    return out


def private_frame_positions(ds, n_frames: int) -> list[np.ndarray] | None:
    """Per-frame ImagePositionPatient kept in a private sequence with one item per frame."""
    for el in ds:
        if el.tag.group % 2 == 0 or el.VR != "SQ":
            continue
        items = el.value
        if items is None or len(items) != n_frames:
            continue
        out = []
        for it in items:
            ipp = it.get("ImagePositionPatient")
            if ipp is None or len(ipp) != 3:
                out = None
                break
            out.append(np.array([float(x) for x in ipp], dtype=np.float64))
        if out:
            return out
    return None


def is_derived(image_type) -> bool:
    it = [str(x).upper() for x in (image_type or [])]
    return (bool(it) and it[0] == "DERIVED") or any(t in DERIVED_TOKENS for t in it)


def derived_key(image_type) -> tuple:
    """What separates a derived image from the acquisition (and derived maps from each other)."""
    it = [str(x).upper() for x in (image_type or [])]
    if not is_derived(it):
        return ()
    return ("DERIVED",) + tuple(sorted(t for t in it if t in DERIVED_TOKENS))


def philips_scale_slope(ds, frame_item=None) -> float | None:
    """Philips private scale slope (2005,100E): top level, or in a frame's private item."""
    cands = [ds]
    if frame_item is not None:
        cands.insert(0, frame_item)
        pp = frame_item.get((0x2005, 0x140F))
        if pp is not None and pp.value:
            cands.insert(0, pp.value[0])
    for c in cands:
        el = c.get((0x2005, 0x100E)) if hasattr(c, "get") else None
        if el is None:
            continue
        v = el.value
        if isinstance(v, (bytes, bytearray)):
            if len(v) < 4:
                continue
            v = struct.unpack("<f", bytes(v[:4]))[0]
        elif isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
            v = v[0] if len(v) else None
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if np.isfinite(f) and f != 0:
            return f
    return None


def philips_precise(slope: float, intercept: float, scale_slope: float | None) -> tuple[float, float]:
    """(slope, intercept) that turn stored values into Philips precise floating-point values:
    FP = (SV*RS + RI) / (RS*SS). Unchanged when SS is unknown."""
    if not scale_slope or not slope:
        return slope, intercept
    d = slope * scale_slope
    return slope / d, intercept / d
