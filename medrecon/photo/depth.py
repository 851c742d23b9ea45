"""Height maps from a mask (and the picture) without learned weights.

All heights are in **pixels of the grid they are computed on**, >= 0, zero outside the mask; the
closed solid is ``-h_back <= z <= h_front`` (see :mod:`medrecon.photo.mesh`).

* :func:`inflate` (default): Baran and Lehtinen's inflation. Solve the Poisson problem
  ``-Laplace(u) = 4`` inside the mask with ``u = 0`` outside (5-point stencil, one sparse solve),
  take ``h = sqrt(u)`` and rescale each connected piece so its tallest point equals its largest
  inscribed radius (maximum of the Euclidean distance transform). A disc becomes a hemisphere,
  an ellipse a half-ellipsoid, a tube a half-cylinder (plain ``c = 4`` inflation makes tubes
  sqrt(2) too deep). ``thickness`` scales the result (the true depth cannot be seen in a
  silhouette).
* :func:`relief`: lithophane-style relief, height from darkness (dark = high), on a base.
* :func:`slab`: constant thickness with a rounded (quarter-circle) bevel: logos, flat parts.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["poisson_inflation", "inflate", "relief", "slab", "edt_inside", "luminance"]

_EIGHT = np.ones((3, 3), bool)


def edt_inside(mask: np.ndarray) -> np.ndarray:
    """Distance (pixels) from each mask pixel centre to the nearest pixel outside the mask (0 outside)."""
    m = np.pad(np.asarray(mask, bool), 1)
    return ndi.distance_transform_edt(m)[1:-1, 1:-1]


def poisson_inflation(mask: np.ndarray, c: float = 4.0) -> np.ndarray:
    """``u`` with ``-Laplace(u) = c`` in the mask, ``u = 0`` outside (pixel units); (H, W) float64."""
    import scipy.sparse as sp

    m = np.asarray(mask, bool)
    h, w = m.shape
    k = int(m.sum())
    u = np.zeros((h, w))
    if k == 0:
        return u
    idx = np.full((h + 2, w + 2), -1, np.int64)
    r, cc = np.nonzero(m)
    idx[r + 1, cc + 1] = np.arange(k)
    rows, cols = [np.arange(k)], [np.arange(k)]
    vals = [np.full(k, 4.0)]
    for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        j = idx[r + 1 + dr, cc + 1 + dc]
        ok = j >= 0
        rows.append(np.nonzero(ok)[0])
        cols.append(j[ok])
        vals.append(-np.ones(int(ok.sum())))
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(k, k))
    b = np.full(k, float(c))
    x = None
    if k > 60_000:
        try:
            import pyamg

            ml = pyamg.smoothed_aggregation_solver(A, symmetry="symmetric")
            x = ml.solve(b, tol=1e-9, accel="cg", maxiter=200)
        except ImportError:
            x = None
    if x is None:
        import scipy.sparse.linalg as sla

        x = sla.spsolve(A.tocsc(), b)
    u[r, cc] = np.maximum(x, 0.0)
    return u


def inflate(mask: np.ndarray, thickness: float = 1.0, per_component: bool = True) -> np.ndarray:
    """Rounded height field of a silhouette (pixels): Poisson + square root, tallest point = inscribed radius.

    Parameters
    ----------
    mask : (H, W) bool
    thickness : float
        Multiplies the height (1.0: round cross-sections, e.g. a disc gives a hemisphere).
    per_component : bool
        Rescale each connected piece on its own (else one factor for the whole mask).
    """
    m = np.asarray(mask, bool)
    h = np.sqrt(poisson_inflation(m))
    # the boundary is the pixel edge, half a pixel inside the u = 0 pixel centres
    edt = np.maximum(edt_inside(m) - 0.5, 0.0)
    if per_component:
        lab, n = ndi.label(m, structure=_EIGHT)
        if n:
            hmax = ndi.maximum(h, lab, np.arange(1, n + 1))
            rmax = ndi.maximum(edt, lab, np.arange(1, n + 1))
            f = np.where(np.asarray(hmax) > 0, np.asarray(rmax) / np.maximum(hmax, 1e-12), 0.0)
            h = h * np.concatenate([[0.0], f])[lab]
    elif h.max() > 0:
        h = h * edt.max() / h.max()
    return h * float(thickness)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of an (H, W, 3) uint8 picture, 0..1."""
    x = np.asarray(rgb, np.float32) / 255.0
    return x[..., 0] * 0.2126 + x[..., 1] * 0.7152 + x[..., 2] * 0.0722


def _bevel_ramp(mask: np.ndarray, width_px: float) -> np.ndarray:
    """0 at the mask edge rising along a quarter circle to 1 at ``width_px`` inside."""
    d = edt_inside(mask) - 0.5
    if width_px <= 0:
        return (d > 0).astype(float)
    t = np.clip(d / width_px, 0, 1)
    return np.where(mask, np.sqrt(np.clip(1 - (1 - t) ** 2, 0, 1)), 0.0)


def relief(gray: np.ndarray, mask: np.ndarray, depth_px: float, base_px: float, invert: bool = False,
           smooth_px: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Lithophane-style relief: front height ``base + depth * darkness``, flat back at ``base``.

    Parameters
    ----------
    gray : (H, W) luminance 0..1 (on the same grid as ``mask``)
    depth_px, base_px : float, relief depth and base thickness (pixels)
    invert : bool, bright = high instead of dark = high

    Returns
    -------
    front, back : (H, W) heights (pixels), both ramp to 0 over a short bevel at the edge
    """
    g = ndi.gaussian_filter(np.asarray(gray, np.float64), smooth_px) if smooth_px > 0 else np.asarray(gray, float)
    dark = g if invert else 1.0 - g
    ramp = _bevel_ramp(mask, max(1.0, base_px))
    front = (base_px + depth_px * dark) * ramp
    back = np.full_like(front, base_px) * ramp
    return front * mask, back * mask


def slab(mask: np.ndarray, half_thickness_px: float) -> np.ndarray:
    """Flat slab of half-thickness ``T`` with a rounded bevel of radius ``T`` (pixels).

    The bevel radius is limited to the piece's inscribed radius, so thin strokes stay round.
    """
    m = np.asarray(mask, bool)
    d = np.maximum(edt_inside(m) - 0.5, 0.0)
    lab, n = ndi.label(m, structure=_EIGHT)
    out = np.zeros(m.shape)
    if not n:
        return out
    rmax = np.concatenate([[0.0], np.asarray(ndi.maximum(d, lab, np.arange(1, n + 1)))])[lab]
    b = np.minimum(float(half_thickness_px), np.maximum(rmax, 0.5))
    t = np.clip(d / np.maximum(b, 1e-9), 0, 1)
    out = b * np.sqrt(np.clip(1 - (1 - t) ** 2, 0, 1))
    return np.where(m, out, 0.0)
