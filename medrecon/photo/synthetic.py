"""Analytic test pictures with known 3D truth, for tests, benchmarks and the docs.

Each shape is symmetric about the picture plane, seen orthographically along the view axis, so
the truth is the front height ``h(x, y) >= 0`` (pixels) and the solid is ``|z| <= h``. Pictures
are drawn in numpy: Lambert shading from the analytic normals on a plain, gradient or
shadowed background. Deterministic for a given seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SHAPES", "Shape", "shape_height", "shade", "scene", "true_volume"]

SHAPES = ("sphere", "ellipsoid", "torus", "capsule", "two_spheres")


@dataclass
class Shape:
    name: str
    height: np.ndarray  # (H, W) float64 pixels, 0 outside
    volume_px3: float   # analytic volume of the closed solid, pixel^3

    @property
    def mask(self) -> np.ndarray:
        return self.height > 0


def _grid(n: int, m: int | None = None):
    m = n if m is None else m
    y, x = np.mgrid[0:n, 0:m].astype(np.float64)
    return x + 0.5 - m / 2.0, n / 2.0 - (y + 0.5)  # pixel centres, x right, y up, origin at the centre


def shape_height(name: str, n: int = 256) -> Shape:
    """Analytic front height of ``name`` (one of :data:`SHAPES`) on an ``n x n`` picture."""
    x, y = _grid(n)

    def cap(r2, rad):
        return np.sqrt(np.clip(rad * rad - r2, 0, None))

    if name == "sphere":
        r = 0.35 * n
        h = cap(x * x + y * y, r)
        vol = 4 / 3 * np.pi * r ** 3
    elif name == "ellipsoid":  # 1 x 0.5 x 0.5
        a, b = 0.40 * n, 0.20 * n
        c = b
        h = c * np.sqrt(np.clip(1 - (x / a) ** 2 - (y / b) ** 2, 0, None))
        vol = 4 / 3 * np.pi * a * b * c
    elif name == "torus":
        big, small = 0.27 * n, 0.11 * n
        rho = np.hypot(x, y)
        h = cap((rho - big) ** 2, small)
        vol = 2 * np.pi ** 2 * big * small ** 2
    elif name == "capsule":  # a pill: straight part 6 radii long
        half, r = 0.30 * n, 0.10 * n
        d2 = (np.abs(x) - half).clip(min=0) ** 2 + y * y
        h = cap(d2, r)
        vol = np.pi * r * r * 2 * half + 4 / 3 * np.pi * r ** 3
    elif name == "two_spheres":
        c1, r1, c2, r2 = (-0.14 * n, 0.02 * n), 0.22 * n, (0.18 * n, -0.03 * n), 0.17 * n
        h = np.maximum(cap((x - c1[0]) ** 2 + (y - c1[1]) ** 2, r1), cap((x - c2[0]) ** 2 + (y - c2[1]) ** 2, r2))
        vol = None  # union: integrate the height field numerically (exact up to the grid)
    else:
        raise ValueError(f"unknown shape {name!r}; use one of {', '.join(SHAPES)}")
    if vol is None:
        vol = float(2 * h.sum())
    return Shape(name, h, float(vol))


def true_volume(shape: Shape) -> float:
    return shape.volume_px3


def _normals(h: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(h)
    n = np.stack([-gx, gy, np.ones_like(h)], axis=-1)  # y up = -row
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def shade(shape: Shape, color=(200, 70, 55), light=(-0.35, 0.45, 0.82), ambient=0.3) -> tuple[np.ndarray, np.ndarray]:
    """Lambert-shaded object colours (H, W, 3) float 0..255 and its coverage mask."""
    nrm = _normals(shape.height)
    lv = np.asarray(light, float)
    lv = lv / np.linalg.norm(lv)
    lam = np.clip(nrm @ lv, 0, 1)
    k = ambient + (1 - ambient) * lam
    col = k[..., None] * np.asarray(color, float)
    return col, shape.mask


def scene(shape: Shape, background: str = "plain", seed: int = 0, color=(200, 70, 55)) -> np.ndarray:
    """A synthetic 'photo' of ``shape``: (H, W, 3) uint8 on a ``plain``, ``gradient`` or ``shadow`` background."""
    rng = np.random.default_rng(seed)
    h, w = shape.height.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if background == "plain":
        bg = np.ones((h, w, 3)) * np.array([236.0, 234.0, 228.0])
    elif background == "gradient":
        t = (0.6 * yy / h + 0.4 * xx / w)[..., None]
        bg = (1 - t) * np.array([170.0, 190.0, 225.0]) + t * np.array([245.0, 238.0, 215.0])
    elif background == "shadow":
        bg = np.ones((h, w, 3)) * np.array([225.0, 222.0, 215.0])
        from scipy import ndimage as ndi

        m = shape.mask.astype(float)
        sh = ndi.shift(m, (0.06 * h, 0.08 * w), order=0)
        sh = ndi.gaussian_filter(sh, 0.025 * h)
        bg = bg * (1 - 0.45 * sh[..., None])
    else:
        raise ValueError(f"unknown background {background!r}")
    col, mask = shade(shape, color)
    img = np.where(mask[..., None], col, bg)
    img = img + rng.normal(0, 2.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)
