"""Software previews of a photo model: textured, shaded point splats, no OpenGL needed.

The front and back surfaces are sampled densely (one point per picture pixel of the depth
grid), coloured from the picture, shaded with a head-on light from their normals, rotated,
projected orthographically and z-buffered. Good enough to show the shape from several angles in
docs and reports; the real model is the GLB.
"""
from __future__ import annotations

import numpy as np

__all__ = ["render_views", "preview_sheet"]


def _normals(h: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(h)
    n = np.stack([-gx, gy, np.ones_like(h)], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def _side_points(rgb, mask, h, sign):
    """Points of one side (z = sign * h), densified where the surface is steep so splats close up."""
    H, W = mask.shape
    hz = np.where(mask, h, 0.0)
    n = _normals(hz)
    if sign < 0:
        n = n * np.array([1.0, 1.0, -1.0])
    rr, cc = np.nonzero(mask)
    P = [np.column_stack([cc + 0.5 - W / 2.0, H / 2.0 - (rr + 0.5), sign * hz[rr, cc]])]
    N = [n[rr, cc]]
    C = [rgb[rr, cc].astype(np.float32)]
    pad = np.pad(mask, 1)
    for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        nb_in = pad[rr + 1 + dr, cc + 1 + dc]
        r2 = np.clip(rr + dr, 0, H - 1)
        c2 = np.clip(cc + dc, 0, W - 1)
        if dr >= 0 and dc >= 0:
            sel = nb_in  # inner pairs once (right and down)
            h2 = hz[r2, c2]
            step = 1.0
        else:
            sel = np.zeros_like(nb_in)
            h2 = None
        # every side: toward an outside neighbour the surface drops to 0 at the pixel edge
        out = ~nb_in
        for which, (selx, hh, dist) in enumerate(((sel, h2, step), (out, None, 0.5))):
            if not selx.any():
                continue
            i = np.nonzero(selx)[0]
            h1 = hz[rr[i], cc[i]]
            hb = np.zeros_like(h1) if hh is None else hh[i]
            k = np.ceil(np.abs(h1 - hb) / 0.6).astype(np.int64)
            k = np.where(which == 1, np.maximum(k, 1), k)
            tot = int(k.sum())
            if tot == 0:
                continue
            rep = np.repeat(np.arange(len(i)), k)
            first = np.repeat(np.cumsum(k) - k, k)
            t = (np.arange(tot) - first + 1) / (np.repeat(k, k) + (0 if which == 1 else 1))
            x0 = cc[i][rep] + 0.5 - W / 2.0
            y0 = H / 2.0 - (rr[i][rep] + 0.5)
            P.append(np.column_stack([x0 + t * dist * dc, y0 - t * dist * dr,
                                      sign * (h1[rep] * (1 - t) + hb[rep] * t)]))
            nn = n[rr[i], cc[i]][rep].copy()
            if which == 1:  # rim: the normal turns outward
                w = t[:, None]
                nn = nn * (1 - w) + w * np.column_stack([np.full(tot, float(dc)), np.full(tot, -float(dr)), np.zeros(tot)])
                nn /= np.maximum(np.linalg.norm(nn, axis=1, keepdims=True), 1e-9)
            N.append(nn)
            C.append(rgb[rr[i], cc[i]][rep].astype(np.float32))
    return np.concatenate(P), np.concatenate(N), np.concatenate(C)


def _surface_points(rgb, mask, front, back):
    pf, nf, cf = _side_points(rgb, mask, front, 1.0)
    pb, nb, cb = _side_points(rgb, mask, back, -1.0)
    return np.concatenate([pf, pb]), np.concatenate([nf, nb]), np.concatenate([cf, cb])


def render_views(rgb: np.ndarray, mask: np.ndarray, front: np.ndarray, back: np.ndarray,
                 angles_deg=(0.0, 35.0, 90.0), size: int = 360, elevation_deg: float = 15.0,
                 background=(26, 28, 32)) -> list[np.ndarray]:
    """Views of the solid ``-back <= z <= front`` over ``mask`` turned about the vertical axis.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 texture on the same grid as the heights
    mask, front, back : (H, W) grid mask and heights (pixels)
    angles_deg : rotations about the picture's vertical axis (0 = facing the camera)
    size : output image side (pixels)

    Returns
    -------
    list of (size, size, 3) uint8 images
    """
    import cv2

    H, W = mask.shape
    s = min(1.0, 700.0 / max(H, W))  # at most ~0.5 M points per side
    if s < 1.0:
        nh, nw = max(2, int(H * s)), max(2, int(W * s))
        rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(bool)
        front = cv2.resize(front.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR) * s
        back = cv2.resize(back.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR) * s
        H, W = nh, nw
    pts, nrm, cols = _surface_points(rgb, mask, front, back)
    # points on the rim (front and back meet) fill the silhouette edge from the side
    ext = max(H, W) * 1.08
    scale = size / ext
    out = []
    light = np.array([-0.3, 0.45, 0.84])
    light /= np.linalg.norm(light)
    el = np.radians(elevation_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(el), -np.sin(el)], [0, np.sin(el), np.cos(el)]])
    for a in angles_deg:
        t = np.radians(a)
        ry = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
        R = rx @ ry if a != 0 else np.eye(3)
        p = pts @ R.T
        n = nrm @ R.T
        vis = n[:, 2] > -0.05
        shade = 0.35 + 0.65 * np.clip(n @ light, 0, 1)
        c = np.clip(cols * shade[:, None], 0, 255)
        px = np.round(p[:, 0] * scale + size / 2).astype(np.int64)
        py = np.round(size / 2 - p[:, 1] * scale).astype(np.int64)
        ok = vis & (px >= 0) & (px < size) & (py >= 0) & (py < size)
        img = np.empty((size, size, 3), np.uint8)
        img[:] = background
        z = np.full(size * size, -np.inf)
        splat = max(1, int(np.ceil(scale)))
        order = np.argsort(p[ok, 2])  # far to near: nearer points written last win
        idx_pts = np.nonzero(ok)[0][order]
        for dy in range(splat):
            for dx in range(splat):
                qx, qy = np.clip(px[idx_pts] + dx, 0, size - 1), np.clip(py[idx_pts] + dy, 0, size - 1)
                lin = qy * size + qx
                sel = p[idx_pts, 2] >= z[lin]
                z[lin[sel]] = p[idx_pts[sel], 2]
                img.reshape(-1, 3)[lin[sel]] = c[idx_pts[sel]].astype(np.uint8)
        out.append(img)
    return out


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
