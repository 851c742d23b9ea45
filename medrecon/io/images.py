"""Picture files: the one PNG encoder (no Pillow needed) and JPEG (Pillow, photo/multiview extras).

Examples
--------
>>> import numpy as np
>>> data = png_bytes(np.zeros((2, 3, 3), np.uint8))
>>> data[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np

from medrecon.io.atomic import atomic_write_bytes

__all__ = ["png_bytes", "write_png", "jpeg_bytes"]

_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)


def png_bytes(image: np.ndarray, level: int = 6) -> bytes:
    """PNG encoding of an ``(H, W)``, ``(H, W, 1|2|3|4)`` uint8 or uint16 array (row 0 at the top).

    uint16 is written as 16-bit PNG (depth maps); other integer types are refused.
    """
    img = np.asarray(image)
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"png_bytes needs uint8 or uint16, got {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in _COLOR_TYPE:
        raise ValueError(f"png_bytes needs (H, W[, 1-4]), got {img.shape}")
    h, w, c = img.shape
    depth = 16 if img.dtype == np.uint16 else 8
    rows = np.ascontiguousarray(img.astype(">u2") if depth == 16 else img).reshape(h, -1).view(np.uint8)
    raw = np.zeros((h, 1 + rows.shape[1]), np.uint8)  # filter byte 0 (None) on every row
    raw[:, 1:] = rows

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, _COLOR_TYPE[c], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), level)) + chunk(b"IEND", b""))


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Write ``image`` as a PNG file atomically; return the path."""
    return atomic_write_bytes(path, png_bytes(image))


def jpeg_bytes(image: np.ndarray, quality: int = 92) -> bytes:
    """JPEG encoding of an (H, W, 3) uint8 array (alpha dropped); needs Pillow."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.asarray(image)[..., :3])).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()
