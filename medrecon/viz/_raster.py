"""Small raster helpers shared by the preview and the QC montage (private).

Images are ``(H, W, 3)`` ``uint8`` numpy arrays, row 0 at the top. PNG files are written by a
the one encoder, :func:`medrecon.io.images.png_bytes`; text is drawn with VTK's FreeType text renderer, which
works without any display.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medrecon.io.images import png_bytes, write_png  # noqa: F401 (the one PNG encoder)

BACKGROUND = (24, 26, 30)
FOREGROUND = (235, 235, 235)


def canvas(height: int, width: int, color=BACKGROUND) -> np.ndarray:
    """A new ``(height, width, 3)`` uint8 image filled with ``color``."""
    img = np.empty((int(height), int(width), 3), np.uint8)
    img[:] = np.asarray(color, np.uint8)
    return img


# --- drawing ------------------------------------------------------------------------------------

def fill_rect(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, color) -> None:
    """Fill the half-open pixel rectangle [x0, x1) x [y0, y1) (clipped to the image)."""
    h, w = img.shape[:2]
    x0, x1 = max(0, int(x0)), min(w, int(x1))
    y0, y1 = max(0, int(y0)), min(h, int(y1))
    if x1 > x0 and y1 > y0:
        img[y0:y1, x0:x1] = np.asarray(color, np.uint8)[:3]


def paste(img: np.ndarray, tile: np.ndarray, x0: int, y0: int) -> None:
    """Copy ``tile`` into ``img`` with its top-left corner at (x0, y0), clipped."""
    h, w = img.shape[:2]
    th, tw = tile.shape[:2]
    xs, ys = max(0, -x0), max(0, -y0)
    xe, ye = min(tw, w - x0), min(th, h - y0)
    if xe > xs and ye > ys:
        img[y0 + ys:y0 + ye, x0 + xs:x0 + xe] = tile[ys:ye, xs:xe, :3]


def color_u8(color) -> tuple[int, int, int]:
    """(r, g, b) in 0..1 (or 0..255) to uint8 triple."""
    c = np.asarray(color, dtype=np.float64).ravel()[:3]
    if c.max(initial=0.0) > 1.0:
        c = c / 255.0
    return tuple(int(round(v)) for v in np.clip(c, 0, 1) * 255)


_TEXT_READY = False


def _text_renderer():
    global _TEXT_READY
    import vtkmodules.vtkRenderingFreeType  # noqa: F401  (registers the FreeType backend)
    from vtkmodules.vtkRenderingCore import vtkTextRenderer

    _TEXT_READY = True
    return vtkTextRenderer.GetInstance()


def text_mask(text: str, size: int = 14, bold: bool = False) -> np.ndarray:
    """Render ``text`` to a ``(h, w)`` float alpha mask in 0..1 (tight box, row 0 at top)."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkRenderingCore import vtkTextProperty

    if not text:
        return np.zeros((1, 1))
    tp = vtkTextProperty()
    tp.SetFontFamilyToArial()
    tp.SetFontSize(int(size))
    tp.SetBold(bool(bold))
    tp.SetColor(1.0, 1.0, 1.0)
    tp.SetJustificationToLeft()
    tp.SetVerticalJustificationToBottom()
    im = vtkImageData()
    dims = [0, 0]
    if not _text_renderer().RenderString(tp, str(text), im, dims, 72):
        return np.zeros((1, 1))
    nx, ny, _ = im.GetDimensions()
    a = vtk_to_numpy(im.GetPointData().GetScalars()).reshape(ny, nx, -1)[..., -1]
    a = a[::-1]  # VTK rows go bottom-up
    w, h = max(1, dims[0]), max(1, dims[1])
    return a[ny - h:, :w].astype(np.float64) / 255.0 if h <= ny else a.astype(np.float64) / 255.0


def draw_text(img: np.ndarray, text: str, x: int, y: int, color=FOREGROUND, size: int = 14,
              bold: bool = False, anchor: str = "tl") -> tuple[int, int]:
    """Draw ``text`` with its ``anchor`` corner at pixel (x, y); return its (w, h) in pixels.

    ``anchor`` is two letters: t/m/b (top, middle, bottom) and l/c/r (left, centre, right).
    """
    m = text_mask(text, size, bold)
    th, tw = m.shape
    if anchor[0] == "m":
        y -= th // 2
    elif anchor[0] == "b":
        y -= th
    if anchor[1] == "c":
        x -= tw // 2
    elif anchor[1] == "r":
        x -= tw
    h, w = img.shape[:2]
    xs, ys = max(0, -x), max(0, -y)
    xe, ye = min(tw, w - x), min(th, h - y)
    if xe > xs and ye > ys:
        a = m[ys:ye, xs:xe, None]
        region = img[y + ys:y + ye, x + xs:x + xe].astype(np.float64)
        col = np.asarray(color_u8(color), np.float64)
        img[y + ys:y + ye, x + xs:x + xe] = np.round(region * (1 - a) + col * a).astype(np.uint8)
    return tw, th


def nice_length(max_mm: float) -> float:
    """The largest 1, 2 or 5 x 10^k millimetre length not above ``max_mm`` (for scale bars)."""
    if not np.isfinite(max_mm) or max_mm <= 0:
        return 1.0
    k = np.floor(np.log10(max_mm))
    for m in (5.0, 2.0, 1.0):
        if m * 10 ** k <= max_mm:
            return float(m * 10 ** k)
    return float(10 ** (k - 1) * 5)


def draw_scale_bar(img: np.ndarray, x: int, y: int, px_per_mm: float, max_px: int,
                   color=FOREGROUND) -> float:
    """Draw a horizontal scale bar whose left end is at (x, y) (bar bottom); return its mm length."""
    mm = nice_length(max_px / px_per_mm)
    n = int(round(mm * px_per_mm))
    fill_rect(img, x, y - 4, x + n, y, color)
    fill_rect(img, x, y - 10, x + 2, y, color)
    fill_rect(img, x + n - 2, y - 10, x + n, y, color)
    label = f"{mm:g} mm"
    draw_text(img, label, x + n // 2, y - 12, color, size=13, anchor="bc")
    return mm


def axis_letter(vec_lps) -> str:
    """Anatomical letter (L, R, P, A, S, I) of the dominant direction of an LPS vector."""
    v = np.asarray(vec_lps, dtype=np.float64)
    i = int(np.argmax(np.abs(v)))
    return ("L", "P", "S")[i] if v[i] > 0 else ("R", "A", "I")[i]
