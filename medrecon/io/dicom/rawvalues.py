"""Fast access to header values of a dataset read by pydicom, without pydicom's per-element
conversion machinery.

pydicom keeps elements it has not been asked for as raw bytes; ``ds.get("Keyword")`` converts one
through its hooks and validators (tens of microseconds each). Reading a few dozen tags of each of
2,000 small files that way costs more than parsing the files. These helpers decode the raw bytes of
the plain value representations directly (strings, decimal/integer strings, binary integers and
floats) and fall back to pydicom for anything else (sequences, already converted elements).
Values are identical to pydicom's for the VRs handled here (tested).
"""
from __future__ import annotations

import struct
from typing import Any

from medrecon.io.dicom.fastparse import KEYWORDS, TAG_VR, RawElem

__all__ = ["raw_get", "get_str", "get_float", "get_int", "get_floats", "get_strs"]

_STR_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI", "UT", "UC", "UR"}
_BIN = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "UV": "Q", "SV": "q"}
_TAGS: dict[str, int] = {}


def _tag(key) -> int:
    if isinstance(key, int):
        return key
    t = _TAGS.get(key)
    if t is None:
        kt = KEYWORDS.get(key)
        if kt is not None:
            t = kt[0]
        else:
            from pydicom.datadict import tag_for_keyword

            t = int(tag_for_keyword(key))
        _TAGS[key] = t
    return t


def _is_raw(elem) -> bool:
    """A raw element (ours, or pydicom's RawDataElement: pydicom is only asked when loaded)."""
    if elem.__class__ is RawElem:
        return True
    import sys

    mod = sys.modules.get("pydicom.dataelem")
    return mod is not None and isinstance(elem, mod.RawDataElement)


def _vr_of(tag: int) -> str:
    vr = TAG_VR.get(tag)
    if vr is None:
        from pydicom.datadict import dictionary_VR

        vr = dictionary_VR(tag)
    return vr


def _little(ds) -> bool:
    enc = getattr(ds, "original_encoding", None)
    if enc and enc[1] is not None:
        return bool(enc[1])
    return bool(getattr(ds, "is_little_endian", True) if getattr(ds, "is_little_endian", None) is not None else True)


def _plain(v):
    """pydicom's converted values as plain Python: a MultiValue (several values) becomes a list,
    as the raw path gives it (an element converted earlier, e.g. by nibabel reading a Siemens CSA
    header, must read the same as one still raw)."""
    if v.__class__.__name__ == "MultiValue":
        return list(v)
    return v


def raw_get(ds, key, default=None) -> Any:
    """Value of ``key`` (keyword or int tag): ``str`` or ``list[str]`` for string VRs (split on
    backslash), ``int``/``float`` or a list of them for binary numbers, pydicom's value otherwise."""
    tag = _TAGS.get(key) if key.__class__ is str else None
    if tag is None:
        tag = _tag(key)
    try:
        elem = ds._dict.get(tag)
    except AttributeError:
        elem = ds.get(tag) if hasattr(ds, "get") else None
        if elem is not None and hasattr(elem, "value") and not _is_raw(elem):
            return _plain(elem.value)
    if elem is None:
        return default
    if not _is_raw(elem):
        return _plain(elem.value)
    vr = elem.VR
    if vr is None or vr in ("UN", ""):
        try:
            vr = _vr_of(tag)
        except KeyError:
            return _plain(ds[tag].value)
    raw = elem.value
    if raw is None:
        return default if vr not in _STR_VRS else ""
    if vr in _STR_VRS:
        text = raw.decode("latin-1").rstrip("\x00 ").lstrip(" ") if isinstance(raw, (bytes, bytearray)) else str(raw)
        if "\\" in text:
            return [p.strip() for p in text.split("\\")]
        return text.strip()
    fmt = _BIN.get(vr)
    if fmt is not None and isinstance(raw, (bytes, bytearray)):
        size = struct.calcsize(fmt)
        n = len(raw) // size
        if n == 0:
            return default
        little = elem.is_little_endian if elem.is_little_endian is not None else _little(ds)
        vals = struct.unpack(("<" if little else ">") + fmt * n, raw[: n * size])
        return vals[0] if n == 1 else list(vals)
    return _plain(ds[tag].value)


def get_str(ds, key, default: str = "") -> str:
    v = raw_get(ds, key)
    if v is None:
        return default
    if isinstance(v, (list, tuple)):
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def get_strs(ds, key) -> list[str]:
    v = raw_get(ds, key)
    if v is None or v == "":
        return []
    if isinstance(v, (list, tuple)):
        return [str(x).strip() for x in v]
    return [str(v).strip()]


def get_float(ds, key, default=None):
    v = raw_get(ds, key)
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    if v is None or v == "":
        return default
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def get_int(ds, key, default=None):
    v = get_float(ds, key, None)
    if v is None:
        return default
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):
        return default


def get_floats(ds, key, n: int | None = None):
    """A list of floats (None when absent, malformed, or not ``n`` values)."""
    v = raw_get(ds, key)
    if v is None or v == "":
        return None
    if not isinstance(v, (list, tuple)):
        v = [v]
    try:
        out = [float(x) for x in v]
    except (TypeError, ValueError):
        return None
    if n is not None and len(out) != n:
        return None
    return out
