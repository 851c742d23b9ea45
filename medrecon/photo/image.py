"""Reading the input picture: RGB(A) as uint8, EXIF rotation applied, alpha kept when useful."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medrecon.errors import InputError

__all__ = ["load_image", "load_mask_file", "MAX_PIXELS"]

#: refuse pictures larger than this many pixels (a decompression bomb or a mistake)
MAX_PIXELS = 64_000_000


def load_image(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a picture file (PNG, JPEG, TIFF, WebP, BMP...).

    Returns
    -------
    rgb : (H, W, 3) uint8, row 0 = top
    alpha : (H, W) uint8 or None
        The alpha channel when the file has one that is not fully opaque.

    Raises
    ------
    InputError
        Missing, unreadable or empty file (one line naming the file).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError("image file not found", path=path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputError(f"image is {im.width}x{im.height}, more than {MAX_PIXELS // 1_000_000} Mpixel", path=path)
            im = ImageOps.exif_transpose(im)
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            if im.mode in ("I;16", "I;16B", "I", "F"):
                arr = np.asarray(im, dtype=np.float64)
                lo, hi = np.percentile(arr, [0.5, 99.5]) if arr.size else (0, 1)
                arr = np.clip((arr - lo) / max(hi - lo, 1e-12), 0, 1)
                g = np.round(arr * 255).astype(np.uint8)
                return np.repeat(g[..., None], 3, axis=2), None
            rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read image ({type(exc).__name__}: {exc})", path=path) from None
    if rgba.ndim != 3 or rgba.shape[0] < 2 or rgba.shape[1] < 2:
        raise InputError("image is empty or smaller than 2x2 pixels", path=path)
    rgb = np.ascontiguousarray(rgba[..., :3])
    alpha = np.ascontiguousarray(rgba[..., 3])
    if not has_alpha or alpha.min() >= 250:
        alpha = None
    return rgb, alpha


def load_mask_file(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """A user-supplied mask picture as a bool array of ``shape`` (H, W).

    Foreground = pixels brighter than half of the mask's range (alpha is used when the mask has
    transparency). A mask of another size is resized (nearest neighbour) to the picture.

    Raises
    ------
    InputError
        Missing or unreadable file, or a mask with no foreground.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise InputError("mask file not found", path=path)
    try:
        with Image.open(path) as im:
            if im.mode in ("RGBA", "LA") and np.asarray(im.getchannel("A")).min() < 250:
                arr = np.asarray(im.getchannel("A"), dtype=np.float64)
            else:
                arr = np.asarray(im.convert("L") if im.mode not in ("I;16", "I", "F", "1") else im, dtype=np.float64)
            if arr.shape != tuple(shape):
                im2 = Image.fromarray((arr > (arr.min() + arr.max()) / 2).astype(np.uint8) * 255)
                arr = np.asarray(im2.resize((shape[1], shape[0]), Image.NEAREST), dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read mask ({type(exc).__name__}: {exc})", path=path) from None
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        raise InputError("mask is blank (one value everywhere): no foreground", path=path)
    return arr > (lo + hi) / 2
