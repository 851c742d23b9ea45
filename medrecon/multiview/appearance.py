"""Appearance: UV atlas (xatlas), texture baked from the photos, lighting divided out.

* :func:`unwrap`: xatlas charts -> per-vertex UVs (vertices on chart seams are duplicated).
* :func:`texel_surface`: every used texel's 3D point and normal (triangles rasterised in UV space).
* :func:`bake`: each texel's colour is the weighted mean of the views that see it (weight =
  cos(view angle)^4, only views within ~70 degrees; visibility by a z-buffer of the surface itself), so
  the seams between views blend instead of jumping; unused texels are padded from their neighbours.
* :func:`delight`: albedo = colour / shading, with the shading a 2nd-order (9 coefficient)
  spherical-harmonic function of the normal fitted by least squares to the texels' luminance -
  the Ramamoorthi-Hanrahan irradiance model with a constant mean albedo. Low-frequency lighting
  only: cast shadows and highlights stay in the albedo.

Frames and units: world units of the cameras; UV ``v`` upwards (OBJ convention, as
:mod:`medrecon.texture`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from medrecon.progress import ProgressEvent

from .cameras import CameraSet


def unwrap(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """UV unwrap with xatlas.

    Returns (vertices', faces', uv, vmap): the re-indexed mesh (seam vertices duplicated), UVs in
    0..1 (v upwards) and the index of the original vertex for every new vertex.
    """
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.asarray(vertices, np.float32), np.asarray(faces, np.uint32))
    co = xatlas.ChartOptions()
    co.max_iterations = 1  # one chart-growing pass: several times faster on noisy scanned meshes
    po = xatlas.PackOptions()
    po.padding = 2
    po.create_image = False
    atlas.generate(co, po)
    vmap, idx, uv = atlas[0]
    return np.asarray(vertices)[vmap], idx.astype(np.int64), uv.astype(np.float64), vmap.astype(np.int64)


@dataclass
class Texels:
    rows: np.ndarray  # (T,) texel row (0 = top)
    cols: np.ndarray
    points: np.ndarray  # (T, 3) world
    normals: np.ndarray  # (T, 3) unit, interpolated vertex normals
    used: np.ndarray  # (S, S) bool


def texel_surface(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, size: int) -> Texels:
    """Rasterise the triangles in UV space (OpenCV) and interpolate 3D points and normals."""
    import cv2

    from ..mesh import vertex_normals_unit

    S = size
    px = np.stack([uv[:, 0] * S - 0.5, (1 - uv[:, 1]) * S - 0.5], 1)
    tri_id = np.full((S, S), -1, np.int32)
    pts = np.round(px[faces] * 16).astype(np.int32)  # sub-pixel precision (shift=4)
    for k in range(len(faces)):
        cv2.fillConvexPoly(tri_id, pts[k], int(k), lineType=cv2.LINE_8, shift=4)
    rows, cols = np.nonzero(tri_id >= 0)
    f = tri_id[rows, cols]
    a, b, c = px[faces[f, 0]], px[faces[f, 1]], px[faces[f, 2]]
    p = np.stack([cols, rows], 1).astype(np.float64)
    v0, v1, v2 = b - a, c - a, p - a
    d00 = (v0 * v0).sum(1); d01 = (v0 * v1).sum(1); d11 = (v1 * v1).sum(1)
    d20 = (v2 * v0).sum(1); d21 = (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    w1 = np.clip((d11 * d20 - d01 * d21) / den, 0, 1)
    w2 = np.clip((d00 * d21 - d01 * d20) / den, 0, 1)
    s = w1 + w2
    over = s > 1
    w1[over] /= s[over]; w2[over] /= s[over]
    w0 = 1 - w1 - w2
    V = np.asarray(vertices, np.float64)
    P = V[faces[f, 0]] * w0[:, None] + V[faces[f, 1]] * w1[:, None] + V[faces[f, 2]] * w2[:, None]
    vn = vertex_normals_unit(V, faces)
    N = vn[faces[f, 0]] * w0[:, None] + vn[faces[f, 1]] * w1[:, None] + vn[faces[f, 2]] * w2[:, None]
    N /= np.maximum(np.linalg.norm(N, axis=1, keepdims=True), 1e-12)
    return Texels(rows, cols, P, N, tri_id >= 0)


def _visibility_zbuffer(z: np.ndarray, u: np.ndarray, v: np.ndarray, W: int, H: int) -> np.ndarray:
    """Per-pixel nearest depth of splatted surface samples, eroded (min-filter) to close splat holes."""
    import cv2

    ok = (z > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    zb = np.full(H * W, np.inf, np.float32)
    flat = v[ok].astype(np.int64) * W + u[ok].astype(np.int64)
    np.minimum.at(zb, flat, z[ok].astype(np.float32))
    zb = zb.reshape(H, W)
    zb[~np.isfinite(zb)] = 1e30
    return cv2.erode(zb, np.ones((3, 3), np.uint8))


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples (N, C) of ``img`` at pixel-centre coordinates x, y (0 = first pixel's centre)."""
    H, W = img.shape[:2]
    x = np.clip(x, 0, W - 1); y = np.clip(y, 0, H - 1)
    x0 = np.minimum(np.floor(x).astype(int), W - 2); y0 = np.minimum(np.floor(y).astype(int), H - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    im = img.astype(np.float64)
    return (im[y0, x0] * (1 - fx) * (1 - fy) + im[y0, x0 + 1] * fx * (1 - fy)
            + im[y0 + 1, x0] * (1 - fx) * fy + im[y0 + 1, x0 + 1] * fx * fy)


def bake(tex: Texels, images: Sequence[np.ndarray], cams: CameraSet, size: int, *,
         masks: Sequence[np.ndarray] | None = None, min_cos: float = 0.35, power: float = 4.0,
         depth_tol: float = 0.01, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted-mean colour of each texel over the views that see it.

    Returns the texture (size, size, 3) uint8 (unused texels padded) and the (size, size) bool
    map of texels that got at least one view.
    """
    import cv2

    from ..texture import pad_texture

    acc = np.zeros((len(tex.points), 3))
    wsum = np.zeros(len(tex.points))
    ext = np.ptp(tex.points, axis=0).max() if len(tex.points) else 1.0
    for i, img in enumerate(images):
        H, W = img.shape[:2]
        Xc = tex.points @ cams.R[i].T + cams.t[i]
        z = Xc[:, 2]
        q = Xc @ cams.K[i].T
        u = q[:, 0] / np.maximum(z, 1e-12)
        v = q[:, 1] / np.maximum(z, 1e-12)
        view = cams.centres[i] - tex.points
        view /= np.linalg.norm(view, axis=1, keepdims=True)
        cos = (view * tex.normals).sum(1)
        zb = _visibility_zbuffer(z, u, v, W, H)
        ui, vi = np.clip(u.astype(int), 0, W - 1), np.clip(v.astype(int), 0, H - 1)
        ok = (z > 0) & (u >= 0.5) & (u < W - 1.5) & (v >= 0.5) & (v < H - 1.5) & (cos > min_cos)
        ok &= z <= zb[vi, ui] + depth_tol * ext
        if masks is not None:
            ok &= masks[i][vi, ui]
        if progress:
            progress(ProgressEvent("texture", i + 1, len(images), "view"))
        if not ok.any():
            continue
        col = _bilinear(img, u[ok] - 0.5, v[ok] - 0.5)
        w = cos[ok] ** power
        acc[ok] += col * w[:, None]
        wsum[ok] += w
    img = np.zeros((size, size, 3), np.float64)
    seen = wsum > 0
    img[tex.rows[seen], tex.cols[seen]] = acc[seen] / wsum[seen, None]
    used = np.zeros((size, size), bool)
    used[tex.rows[seen], tex.cols[seen]] = True
    out = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return pad_texture(out, used), used


def sh_basis(n: np.ndarray) -> np.ndarray:
    """Real spherical harmonics up to order 2 (9 functions) of unit normals (N, 3)."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    return np.stack([np.ones_like(x), y, z, x, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y], 1)


def delight(texture: np.ndarray, used: np.ndarray, tex: Texels) -> tuple[np.ndarray, np.ndarray]:
    """Divide a 9-coefficient SH shading (fitted to luminance over the normals) out of the texture.

    Returns the albedo texture (uint8, same mean brightness as the input) and the SH coefficients.
    """
    from ..texture import pad_texture

    col = texture[tex.rows, tex.cols].astype(np.float64)
    ok = used[tex.rows, tex.cols]
    lum = col @ np.array([0.2126, 0.7152, 0.0722])
    B = sh_basis(tex.normals)
    coef, *_ = np.linalg.lstsq(B[ok], lum[ok], rcond=None)
    shade = B @ coef
    shade = np.maximum(shade, 0.2 * max(np.median(shade[ok]), 1e-6))
    alb = col / shade[:, None] * np.median(shade[ok])
    out = texture.astype(np.float64).copy()
    out[tex.rows, tex.cols] = alb
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return pad_texture(out, used), coef
