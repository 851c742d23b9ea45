"""A small numpy software rasteriser: the fallback when VTK cannot render offscreen (private).

Orthographic projection, flat (per-triangle) Lambert shading with a head light, z-buffer.
Triangles are split until each covers at most a few pixels, then every candidate pixel centre
is tested with barycentric coordinates in one vectorised pass; the nearest fragment per pixel
wins. Good enough for previews of meshes of up to a few million triangles.
"""
from __future__ import annotations

import numpy as np

_MAX_BOX = 4  # triangles are subdivided until their pixel bounding box is at most this wide


def _subdivide(tri: np.ndarray, shade: np.ndarray, max_box: float) -> tuple[np.ndarray, np.ndarray]:
    """Split (T, 3, 3) screen-space triangles 1 -> 4 until each bbox side is <= max_box px."""
    done_t, done_s = [], []
    while len(tri):
        ext = tri[:, :, :2].max(1) - tri[:, :, :2].min(1)
        big = (ext > max_box).any(1)
        done_t.append(tri[~big])
        done_s.append(shade[~big])
        tri, shade = tri[big], shade[big]
        if not len(tri):
            break
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        ab, bc, ca = (a + b) / 2, (b + c) / 2, (c + a) / 2
        tri = np.concatenate([np.stack(t, 1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
        shade = np.concatenate([shade] * 4)
    return np.concatenate(done_t), np.concatenate(done_s)


def render(meshes, width: int, height: int, centre, right, up, view_dir, px_per_mm: float,
           background=(24, 26, 30)) -> np.ndarray:
    """Render ``meshes`` (iterable of (vertices LPS mm, faces, colour 0..1)) to (H, W, 3) uint8.

    ``view_dir`` points from the scene towards the camera; ``right`` and ``up`` are the screen
    axes in LPS; ``px_per_mm`` the scale; ``centre`` (LPS) lands in the middle of the image.
    """
    right, up, towards = (np.asarray(v, float) / np.linalg.norm(v) for v in (right, up, view_dir))
    tris, shades = [], []
    for verts, faces, color in meshes:
        v = np.asarray(verts, float) - np.asarray(centre, float)
        f = np.asarray(faces, np.int64)
        if not len(f):
            continue
        scr = np.stack([width / 2 + (v @ right) * px_per_mm, height / 2 - (v @ up) * px_per_mm, v @ towards], 1)
        t = scr[f]  # (T, 3, 3): x, y (pixels), depth (mm, larger = nearer)
        n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        lam = np.abs(n @ towards)  # head light; both sides lit, as VTK does for closed meshes
        shade = np.clip(0.18 + 0.82 * lam, 0, 1)[:, None] * np.asarray(color, float)[None, :3]
        tris.append(t)
        shades.append(shade)
    img = np.empty((height, width, 3), np.uint8)
    img[:] = np.asarray(background, np.uint8)
    if not tris:
        return img
    tri, shade = _subdivide(np.concatenate(tris), np.concatenate(shades), _MAX_BOX)
    zbuf = np.full(height * width, -np.inf)
    flat = img.reshape(-1, 3)
    for s in range(0, len(tri), _CHUNK):  # bounded memory: ~36 candidate pixels per triangle
        _raster_chunk(tri[s:s + _CHUNK], shade[s:s + _CHUNK], width, height, zbuf, flat)
    return img


_CHUNK = 40_000


def _raster_chunk(tri, shade, width, height, zbuf, flat) -> None:
    # candidate pixels: the (MAX_BOX + 2)^2 pixel centres from each triangle's bbox corner
    x0 = np.floor(tri[:, :, 0].min(1) - 0.5).astype(np.int64)
    y0 = np.floor(tri[:, :, 1].min(1) - 0.5).astype(np.int64)
    k = _MAX_BOX + 2
    ox, oy = np.meshgrid(np.arange(k), np.arange(k))
    px = x0[:, None] + ox.ravel()[None, :]
    py = y0[:, None] + oy.ravel()[None, :]
    cx, cy = px + 0.5, py + 0.5
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    ok_tri = np.abs(det) > 1e-12
    det = np.where(ok_tri, det, 1.0)[:, None]
    dx, dy = cx - c[:, 0][:, None], cy - c[:, 1][:, None]
    w0 = ((b[:, 1] - c[:, 1])[:, None] * dx + (c[:, 0] - b[:, 0])[:, None] * dy) / det
    w1 = ((c[:, 1] - a[:, 1])[:, None] * dx + (a[:, 0] - c[:, 0])[:, None] * dy) / det
    w2 = 1 - w0 - w1
    eps = -1e-9
    inside = ok_tri[:, None] & (w0 >= eps) & (w1 >= eps) & (w2 >= eps)
    inside &= (px >= 0) & (px < width) & (py >= 0) & (py < height)
    ti, ci = np.nonzero(inside)
    if not len(ti):
        return
    d = (w0[ti, ci] * a[ti, 2] + w1[ti, ci] * b[ti, 2] + w2[ti, ci] * c[ti, 2])
    pix = py[ti, ci] * width + px[ti, ci]
    order = np.lexsort((-d, pix))  # per pixel, nearest (largest depth) first
    ps = pix[order]
    first = np.ones(len(order), bool)
    first[1:] = ps[1:] != ps[:-1]
    win = order[first]
    wp, wd = pix[win], d[win]
    closer = wd > zbuf[wp]
    wp, wd, wt = wp[closer], wd[closer], ti[win][closer]
    zbuf[wp] = wd
    flat[wp] = np.round(shade[wt] * 255).astype(np.uint8)
