"""A fast header reader for the common case: a plain file with preamble and file meta, the dataset
in explicit or implicit VR little endian (every native and encapsulated transfer syntax except
deflate and big endian).

It walks the element headers of one buffered read up to the Pixel Data element and builds a
pydicom :class:`~pydicom.dataset.Dataset` of *raw* elements (values stay bytes until asked for,
sequences included), which is what ``pydicom.dcmread(..., stop_before_pixels=True)`` gives, minus
pydicom's per-element Python work. Anything unusual (no preamble, other transfer syntaxes, a
header longer than the buffer, malformed lengths) returns ``None`` and the caller uses pydicom,
so results never depend on this path; ``tests/io/dicom_breadth`` checks that both give the same
frame headers on every file of ``../shared/data``.
"""
from __future__ import annotations

import struct

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import TupleTag

__all__ = ["fast_read_header", "HEAD_BYTES"]

#: Bytes read at once; a header longer than this goes through pydicom.
HEAD_BYTES = 1 << 18
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OW", b"SQ", b"UC", b"UR", b"UT", b"UN", b"OV", b"SV", b"UV"}
_LE_TS = {"1.2.840.10008.1.2": True, "1.2.840.10008.1.2.1": False}  # value: implicit VR
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_UNDEF = 0xFFFFFFFF
_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_tag = struct.Struct("<HH").unpack_from


def _skip_undefined(buf: bytes, pos: int, implicit: bool, depth: int = 0) -> int:
    """Position just after the sequence delimiter of an undefined-length sequence whose value
    starts at ``pos``; raises ValueError when the buffer ends first."""
    n = len(buf)
    if depth > 16:
        raise ValueError("sequence nesting too deep")
    while pos + 8 <= n:
        g, e = _tag(buf, pos)
        length = _u32(buf, pos + 4)[0]
        pos += 8
        if (g, e) == (0xFFFE, 0xE0DD):  # sequence delimiter
            return pos
        if (g, e) != (0xFFFE, 0xE000):
            raise ValueError("item expected in sequence")
        if length != _UNDEF:
            pos += length
            continue
        # undefined-length item: elements until the item delimiter
        while True:
            if pos + 8 > n:
                raise ValueError("buffer ends inside an item")
            g, e = _tag(buf, pos)
            if (g, e) == (0xFFFE, 0xE00D):
                pos += 8
                break
            pos, _vr, vlen, vstart = _element_header(buf, pos, implicit)
            if vlen == _UNDEF:
                pos = _skip_undefined(buf, vstart, implicit, depth + 1)
            else:
                pos = vstart + vlen
    raise ValueError("buffer ends inside a sequence")


def _element_header(buf: bytes, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
    """(tag, VR, length, value start) of the element at ``pos``."""
    if pos + 8 > len(buf):
        raise ValueError("buffer ends inside an element header")
    g, e = _tag(buf, pos)
    tag = (g << 16) | e
    if implicit or g == 0xFFFE:
        return tag, None, _u32(buf, pos + 4)[0], pos + 8
    vr = buf[pos + 4:pos + 6]
    if vr in _LONG_VRS:
        if pos + 12 > len(buf):
            raise ValueError("buffer ends inside an element header")
        return tag, vr, _u32(buf, pos + 8)[0], pos + 12
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise ValueError("bad VR")
    return tag, vr, _u16(buf, pos + 6)[0], pos + 8


def fast_read_header(fh, file_size: int) -> tuple[Dataset, int] | None:
    """Read the header of an open plain file (position 0). Returns ``(dataset, pixel_offset)``
    with ``pixel_offset`` the file offset of the Pixel Data element tag (the file size when the
    file has no pixel data), or ``None`` when the file needs pydicom."""
    buf = fh.read(HEAD_BYTES)
    if len(buf) < 144 or buf[128:132] != b"DICM":
        return None
    try:
        pos = 132
        meta: dict = {}
        # file meta: explicit VR little endian, group 0002
        while pos + 8 <= len(buf) and _u16(buf, pos)[0] == 0x0002:
            tag, vr, length, vstart = _element_header(buf, pos, False)
            if length == _UNDEF:
                return None
            meta[tag] = RawDataElement(TupleTag((tag >> 16, tag & 0xFFFF)), vr.decode(), length,
                                       buf[vstart:vstart + length], vstart, False, True, True, False)
            pos = vstart + length
        ts_el = meta.get(0x00020010)
        if ts_el is None:
            return None
        ts = ts_el.value.decode("ascii", "replace").rstrip("\x00 ")
        if ts in _LE_TS:
            implicit = _LE_TS[ts]
        elif ts.startswith("1.2.840.10008.1.2.4.") or ts in ("1.2.840.10008.1.2.5",):
            implicit = False  # encapsulated: the dataset itself is explicit VR little endian
        else:
            return None
        elems: dict = {}
        n = len(buf)
        pixel_offset = None
        while pos < n:
            if pos + 8 > n:
                if n < HEAD_BYTES and pos == n:
                    break
                return None
            tag, vr, length, vstart = _element_header(buf, pos, implicit)
            if tag in _PIXEL_TAGS:
                pixel_offset = pos
                break
            vr_s = vr.decode() if vr is not None else None
            if length == _UNDEF:
                if vr_s not in (None, "SQ", "UN"):
                    return None
                end = _skip_undefined(buf, vstart, implicit)
                value = buf[vstart:end - 8]  # without the sequence delimiter
                vr_s = "SQ" if vr_s in (None, "UN") and tag != 0xFFFEE000 else vr_s
                elems[tag] = RawDataElement(TupleTag((tag >> 16, tag & 0xFFFF)), vr_s, len(value), value,
                                            vstart, implicit, True, True, False)
                pos = end
                continue
            if vstart + length > n:
                return None  # header longer than the buffer (or truncated): pydicom decides
            elems[tag] = RawDataElement(TupleTag((tag >> 16, tag & 0xFFFF)), vr_s, length,
                                        buf[vstart:vstart + length], vstart, implicit, True, True, False)
            pos = vstart + length
        if pixel_offset is None:
            if n >= HEAD_BYTES:
                return None
            pixel_offset = n
    except (ValueError, struct.error, IndexError, UnicodeDecodeError):
        return None
    fm = FileMetaDataset(meta)
    ds = Dataset(elems)
    ds.file_meta = fm
    ds.preamble = buf[:128]
    ds.set_original_encoding(implicit, True, None)
    ds._medrecon_pixhead = buf[pixel_offset:pixel_offset + 12]
    return ds, pixel_offset
