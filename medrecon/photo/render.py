"""Software previews of a textured model: a small numpy z-buffer rasteriser, no OpenGL needed.

:func:`render_mesh_views` draws the model's real triangles (what the GLB holds), textured
through its UVs and shaded with one head light, from several angles; :func:`preview_sheet`
puts the views side by side.
"""
from __future__ import annotations

import numpy as np

__all__ = ["render_mesh_views", "preview_sheet"]


def preview_sheet(views: list[np.ndarray], gap: int = 6, background=(14, 15, 18)) -> np.ndarray:
    """Views side by side in one image."""
    h = max(v.shape[0] for v in views)
    w = sum(v.shape[1] for v in views) + gap * (len(views) + 1)
    sheet = np.empty((h + 2 * gap, w, 3), np.uint8)
    sheet[:] = background
    x = gap
    for v in views:
        sheet[gap:gap + v.shape[0], x:x + v.shape[1]] = v
        x += v.shape[1] + gap
    return sheet


def render_mesh_views(mesh, angles_deg=(0.0, 35.0, 90.0), size: int = 360, elevation_deg: float = 15.0,
                      background=(26, 28, 32)) -> list[np.ndarray]:
    """Software renders of a textured :class:`~medrecon.mesh.SurfaceModel` (its real triangles).

    A small z-buffer rasteriser in numpy: back faces culled, per-pixel barycentric UVs looked up
    in the texture (so the picture keeps its full detail), smooth normals, one head light.
    The mesh is shown in its view frame (picture facing the camera at 0 degrees) turned about
    the vertical axis by each angle.

    Returns
    -------
    list of (size, size, 3) uint8 images
    """
    from medrecon.mesh import vertex_normals_unit, vertex_rgb
    from medrecon.orientation import lps_to_yup_mm

    v0 = lps_to_yup_mm(mesh.vertices)
    f = np.asarray(mesh.faces, np.int64)
    n0 = vertex_normals_unit(v0, f)
    centre = (v0.min(0) + v0.max(0)) / 2
    ext = float(np.max(v0.max(0) - v0.min(0))) * 1.08
    scale = size / max(ext, 1e-9)
    tex = mesh.texture[..., :3] if mesh.has_texture else None
    vcol = None if tex is not None else vertex_rgb(mesh).astype(np.float32)
    light = np.array([-0.3, 0.45, 0.84])
    light /= np.linalg.norm(light)
    el = np.radians(elevation_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(el), -np.sin(el)], [0, np.sin(el), np.cos(el)]])
    out = []
    for a in angles_deg:
        t = np.radians(a)
        ry = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
        R = rx @ ry if a != 0 else np.eye(3)
        p = (v0 - centre) @ R.T
        nr = n0 @ R.T
        sx = p[:, 0] * scale + size / 2
        sy = size / 2 - p[:, 1] * scale
        tri = np.stack([np.column_stack([sx[f[:, k]], sy[f[:, k]]]) for k in range(3)], axis=1)  # (M, 3, 2)
        # front faces: counter-clockwise seen from the camera (+z); screen y points down
        e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        area = -(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
        keep = np.nonzero(area > 1e-12)[0]
        best_z = np.full(size * size, -np.inf)
        best_f = np.full(size * size, -1, np.int64)
        best_b = np.zeros((size * size, 3))
        lo = np.floor(tri[keep].min(1)).astype(np.int64)
        hi = np.floor(tri[keep].max(1)).astype(np.int64)
        span = np.maximum(hi - lo + 1, 1).max(1)
        for bucket in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024):
            sel = keep[(span <= bucket) & (span > bucket // 2 if bucket > 1 else span >= 0)]
            if len(sel) == 0:
                continue
            oy, ox = np.mgrid[0:bucket, 0:bucket]
            ox, oy = ox.ravel(), oy.ravel()
            chunk = max(1, 2_000_000 // (bucket * bucket))
            for c0 in range(0, len(sel), chunk):
                fi = sel[c0:c0 + chunk]
                l0 = np.floor(tri[fi].min(1)).astype(np.int64)
                px = l0[:, 0:1] + ox[None]
                py = l0[:, 1:2] + oy[None]
                cx, cy = px + 0.5, py + 0.5
                a_, b_, c_ = tri[fi, 0], tri[fi, 1], tri[fi, 2]
                den = ((b_[:, 1] - c_[:, 1]) * (a_[:, 0] - c_[:, 0]) + (c_[:, 0] - b_[:, 0]) * (a_[:, 1] - c_[:, 1]))[:, None]
                w0 = ((b_[:, 1:2] - c_[:, 1:2]) * (cx - c_[:, 0:1]) + (c_[:, 0:1] - b_[:, 0:1]) * (cy - c_[:, 1:2])) / den
                w1 = ((c_[:, 1:2] - a_[:, 1:2]) * (cx - c_[:, 0:1]) + (a_[:, 0:1] - c_[:, 0:1]) * (cy - c_[:, 1:2])) / den
                w2 = 1.0 - w0 - w1
                inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9) & (px >= 0) & (px < size) & (py >= 0) & (py < size)
                if not inside.any():
                    continue
                ti, ci = np.nonzero(inside)
                ff = fi[ti]
                bw = np.column_stack([w0[ti, ci], w1[ti, ci], w2[ti, ci]])
                z = (bw * p[f[ff], 2]).sum(1)
                lin = py[ti, ci] * size + px[ti, ci]
                order = np.lexsort((-z, lin))  # per pixel, nearest first
                lin, z, ff, bw = lin[order], z[order], ff[order], bw[order]
                first = np.ones(len(lin), bool)
                first[1:] = lin[1:] != lin[:-1]
                lin, z, ff, bw = lin[first], z[first], ff[first], bw[first]
                better = z > best_z[lin]
                best_z[lin[better]] = z[better]
                best_f[lin[better]] = ff[better]
                best_b[lin[better]] = bw[better]
        img = np.empty((size * size, 3), np.float32)
        img[:] = background
        hit = best_f >= 0
        fh, bh = best_f[hit], best_b[hit]
        nn = (bh[:, :, None] * nr[f[fh]]).sum(1)
        nn /= np.maximum(np.linalg.norm(nn, axis=1, keepdims=True), 1e-9)
        shade = 0.35 + 0.65 * np.clip(nn @ light, 0, 1)
        if tex is not None:
            uv = (bh[:, :, None] * mesh.uv[f[fh]]).sum(1)
            th, tw = tex.shape[:2]
            col = tex[np.clip(((1 - uv[:, 1]) * th).astype(int), 0, th - 1),
                      np.clip((uv[:, 0] * tw).astype(int), 0, tw - 1)].astype(np.float32)
        else:
            col = (bh[:, :, None] * vcol[f[fh]]).sum(1)
        img[hit] = col * shade[:, None]
        out.append(np.clip(img, 0, 255).astype(np.uint8).reshape(size, size, 3))
    return out
