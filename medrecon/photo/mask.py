"""Foreground mask of a picture without any learned weights.

Order of preference (:func:`foreground_mask`):

1. a mask the user supplies (``--mask FILE``),
2. the alpha channel (``alpha > 127``),
3. the background model: the picture's border is taken as background; a smooth (quadratic in
   x and y) colour model is fitted to it in CIELAB, so plain and gradient backgrounds are both
   modelled. Each pixel's colour distance to the model, with darkening weighed less than other
   changes (a shadow darkens the background but keeps its hue), is thresholded (Otsu, at least
   :data:`MIN_DELTA_E`). Regions connected to the border below the threshold are background
   (a flood fill from the border); enclosed background-coloured regions are kept as holes when
   they are large enough (a torus, a handle), otherwise filled.
4. GrabCut (OpenCV) refines that first guess on a reduced copy: sure background on the border
   band, sure foreground on the eroded core, "probable" labels elsewhere. GrabCut may remove
   regions (a soft shadow joined to the object) but only adds pixels close to the first guess.

:func:`clean_mask` then removes specks, fills small holes and breaks corner-only contacts
(two pixels that touch only diagonally), which would otherwise make a non-manifold mesh vertex.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from medrecon.errors import SegmentationError

__all__ = ["foreground_mask", "clean_mask", "background_model_mask", "grabcut_refine", "remove_pinches",
           "MIN_DELTA_E"]

#: smallest colour distance (CIELAB Delta E) counted as foreground, whatever Otsu says
MIN_DELTA_E = 10.0
_EIGHT = np.ones((3, 3), bool)


def _lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32) * \
        np.array([100.0 / 255.0, 1.0, 1.0], np.float32) - np.array([0.0, 128.0, 128.0], np.float32)


def _border_width(h: int, w: int) -> int:
    return int(max(2, round(0.01 * min(h, w))))


def _fit_background(lab: np.ndarray, bw: int) -> np.ndarray:
    """Quadratic-in-(x, y) colour model fitted (robustly) to the border band; (H, W, 3)."""
    h, w = lab.shape[:2]
    band = np.zeros((h, w), bool)
    band[:bw], band[-bw:], band[:, :bw], band[:, -bw:] = True, True, True, True
    rr, cc = np.nonzero(band)
    step = max(1, len(rr) // 20000)
    rr, cc = rr[::step], cc[::step]
    y, x = rr / max(h - 1, 1) - 0.5, cc / max(w - 1, 1) - 0.5
    A = np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y])
    vals = lab[rr, cc].astype(np.float64)
    keep = np.ones(len(rr), bool)
    coef = None
    for _ in range(3):  # drop border pixels that belong to the object (it may touch the border)
        coef, *_ = np.linalg.lstsq(A[keep], vals[keep], rcond=None)
        res = np.linalg.norm(vals - A @ coef, axis=1)
        thr = max(3.0 * np.median(res[keep]) * 1.4826, 4.0)
        new = res < thr
        if new.sum() < 0.3 * len(rr) or np.array_equal(new, keep):
            break
        keep = new
    # the model is a smooth quadratic: evaluate it on a coarse grid and resize (exact at the corners)
    import cv2

    sh, sw = min(h, 128), min(w, 128)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    yy = yy * ((h - 1) / max(sh - 1, 1)) / max(h - 1, 1) - 0.5
    xx = xx * ((w - 1) / max(sw - 1, 1)) / max(w - 1, 1) - 0.5
    basis = [np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy]
    small = np.stack([sum(b * float(coef[k, c]) for k, b in enumerate(basis)) for c in range(3)], axis=-1)
    if (sh, sw) == (h, w):
        return small
    return cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def _otsu(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    v = values[np.isfinite(values)]
    if v.size == 0 or v.max() <= v.min():
        return float(v.max()) if v.size else 0.0
    return float(threshold_otsu(v))


def background_model_mask(rgb: np.ndarray, min_hole_frac: float = 2e-4) -> tuple[np.ndarray, np.ndarray]:
    """First foreground guess from the border colour model and a flood fill from the border.

    Returns
    -------
    mask : (H, W) bool
    distance : (H, W) float32, shadow-aware colour distance to the background model (Delta E)
    """
    lab = _lab(rgb)
    h, w = lab.shape[:2]
    bg = _fit_background(lab, _border_width(h, w))
    diff = lab - bg
    dl = diff[..., 0]
    # a shadow darkens the background and keeps its hue: weigh darkening at a third
    dl = np.where(dl < 0, dl / 3.0, dl)
    dist = np.sqrt(dl * dl + diff[..., 1] ** 2 + diff[..., 2] ** 2).astype(np.float32)
    thr = max(_otsu(dist[:: max(1, h // 256), :: max(1, w // 256)]), MIN_DELTA_E)
    fg = dist > thr
    fg = ndi.binary_opening(fg, iterations=1) | (dist > 2 * thr)
    # background = below-threshold regions; those touching the border always, enclosed ones
    # only when large enough (true holes), else they are filled
    lab_bg, n = ndi.label(~fg)
    if n:
        sizes = np.bincount(lab_bg.ravel(), minlength=n + 1)
        border_ids = np.unique(np.concatenate([lab_bg[0], lab_bg[-1], lab_bg[:, 0], lab_bg[:, -1]]))
        keep_bg = sizes >= max(16, min_hole_frac * h * w)
        keep_bg[border_ids] = True
        keep_bg[0] = False
        fg = ~keep_bg[lab_bg]
    return fg, dist


def grabcut_refine(rgb: np.ndarray, guess: np.ndarray, max_side: int = 256, iterations: int = 3) -> np.ndarray:
    """Refine a foreground guess with OpenCV GrabCut on a copy at most ``max_side`` pixels long.

    GrabCut may drop pixels of the guess (shadows) and add pixels within a few pixels of it;
    the result is at the picture's full size.
    """
    import cv2

    h, w = guess.shape
    if guess.sum() < 16 or (~guess).sum() < 16:
        return guess
    s = min(1.0, max_side / max(h, w))
    sw, sh = max(8, int(round(w * s))), max(8, int(round(h * s)))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    g = cv2.resize(guess.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST).astype(bool)
    if g.sum() < 8:
        return guess
    gc = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
    gc[g] = cv2.GC_PR_FGD
    r = max(1, int(round(0.02 * min(sh, sw))))
    core = ndi.binary_erosion(g, iterations=2 * r)
    gc[core] = cv2.GC_FGD
    far = ~ndi.binary_dilation(g, iterations=2 * r)
    gc[far] = cv2.GC_BGD
    bw = max(1, _border_width(sh, sw))
    border = np.zeros_like(g)
    border[:bw], border[-bw:], border[:, :bw], border[:, -bw:] = True, True, True, True
    gc[border & ~g] = cv2.GC_BGD
    if not (gc == cv2.GC_FGD).any():  # tiny or thin object: no eroded core
        gc[g] = cv2.GC_PR_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return guess
    out = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    if out.sum() < 0.5 * g.sum():  # GrabCut collapsed: keep the guess
        return guess
    up = cv2.resize(out.astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR).astype(bool)
    if s >= 1.0:
        return up
    # full-resolution edges from the guess; GrabCut decides which regions stay
    k = int(np.ceil(1.0 / s)) + 1
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    u8 = up.astype(np.uint8)
    return (guess & cv2.dilate(u8, ker).astype(bool)) | cv2.erode(u8, ker).astype(bool)


def remove_pinches(mask: np.ndarray) -> np.ndarray:
    """Fill one pixel of every 2x2 block whose two set pixels touch only at a corner.

    Such a corner-only contact makes a mesh vertex shared by two separate sheets (non-manifold).
    Repeats until none is left.
    """
    m = np.ascontiguousarray(mask, bool).copy()
    for _ in range(64):
        a, b, c, d = m[:-1, :-1], m[:-1, 1:], m[1:, :-1], m[1:, 1:]
        p1 = a & d & ~b & ~c  # main-diagonal contact: fill the top-right pixel
        p2 = b & c & ~a & ~d  # anti-diagonal contact: fill the top-left pixel
        if not (p1.any() or p2.any()):
            return m
        r, cidx = np.nonzero(p1)
        m[r, cidx + 1] = True
        r, cidx = np.nonzero(p2)
        m[r, cidx] = True
    return m


def clean_mask(mask: np.ndarray, min_speck_frac: float = 1e-3, max_hole_frac: float = 2e-4,
               min_speck_px: int = 4) -> np.ndarray:
    """Remove specks, fill small holes and break corner-only contacts.

    Parameters
    ----------
    mask : (H, W) bool
    min_speck_frac : float
        Components smaller than this fraction of the largest component (and than
        ``min_speck_px`` pixels, whichever is larger) are removed.
    max_hole_frac : float
        Holes smaller than this fraction of the picture (at least 4 pixels) are filled.
    """
    m = np.asarray(mask, bool)
    lab, n = ndi.label(m, structure=_EIGHT)
    if n:
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        sizes[0] = 0
        keep = sizes >= max(min_speck_px, min_speck_frac * sizes.max())
        keep[0] = False
        m = keep[lab]
    holes, nh = ndi.label(~m)
    if nh:
        hs = np.bincount(holes.ravel(), minlength=nh + 1)
        border_ids = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        small = hs < max(4, max_hole_frac * m.size)
        small[border_ids] = False
        small[0] = False
        m = m | small[holes]
    return remove_pinches(m)


def foreground_mask(rgb: np.ndarray, alpha: np.ndarray | None = None, user_mask: np.ndarray | None = None,
                    method: str = "auto") -> tuple[np.ndarray, str]:
    """The object's mask, and how it was found.

    Parameters
    ----------
    rgb : (H, W, 3) uint8
    alpha : (H, W) uint8, optional
    user_mask : (H, W) bool, optional (wins over everything)
    method : "auto", "alpha", "border" (colour model + flood fill only) or "grabcut"

    Returns
    -------
    mask : (H, W) bool, cleaned (:func:`clean_mask`)
    source : "user", "alpha", "border" or "border+grabcut"

    Raises
    ------
    SegmentationError
        Nothing (or everything) is foreground.
    """
    if user_mask is not None:
        m, src = np.asarray(user_mask, bool), "user"
    elif alpha is not None and method in ("auto", "alpha"):
        m, src = np.asarray(alpha) > 127, "alpha"
    elif method == "alpha":
        raise SegmentationError("the picture has no transparency (alpha channel) to use as the mask")
    else:
        m, _ = background_model_mask(rgb)
        src = "border"
        if method in ("auto", "grabcut"):
            m = grabcut_refine(rgb, m)
            src = "border+grabcut"
    m = clean_mask(m)
    if not m.any():
        raise SegmentationError(f"no foreground found ({src} mask is empty); pass --mask FILE")
    return m, src
