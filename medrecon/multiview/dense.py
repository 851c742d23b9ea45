"""Dense reconstruction in PyTorch (same code on CPU and GPU).

1. :func:`depth_maps`: per reference view, a plane sweep with normalised cross-correlation
   (NCC over a square window on grey levels) against its nearest neighbour views; the score of a
   depth is the mean of the best half of the neighbours' NCC; coarse-to-fine (a full sweep at
   half resolution, then a narrow per-pixel sweep at full resolution) with parabolic sub-plane
   refinement. Silhouettes (masks), when given, restrict the reference pixels and reject depths
   that project outside a neighbour's silhouette.
2. :func:`filter_depths`: geometric consistency - a depth survives when it reprojects into at
   least ``min_consistent`` neighbour depth maps within ``px_tol`` pixels and ``rel_tol`` depth.
3. :func:`tsdf_fuse`: truncated signed distance fusion on a voxel grid; masks add free-space
   evidence (voxels seen outside a silhouette are empty), which lets a low-texture object close
   up from its outline (visual hull) where photo-consistency has nothing to say.
4. :func:`extract_mesh`: marching cubes (scikit-image) on observed voxels only.

Frames and units: world units of the :class:`~medrecon.multiview.cameras.CameraSet`; depths
are camera-z in those units; images are (H, W, 3) uint8 RGB without distortion.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .cameras import CameraSet
from medrecon.devices import resolve_device as _resolve_device
from medrecon.progress import ProgressEvent, ProgressFn

Progress = ProgressFn


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU (:func:`medrecon.devices.resolve_device`)."""
    return _resolve_device(device)


def neighbours(cams: CameraSet, n: int = 4, min_angle: float = 3.0, max_angle: float = 60.0) -> list[list[int]]:
    """For each camera the ``n`` cameras with the most similar viewing direction (angle between
    ``min_angle`` and ``max_angle`` degrees, so there is some baseline)."""
    d = cams.R[:, 2, :]  # viewing directions in world
    cosang = np.clip(d @ d.T, -1, 1)
    ang = np.degrees(np.arccos(cosang))
    out = []
    for i in range(len(cams)):
        cand = [j for j in np.argsort(ang[i]) if j != i and min_angle <= ang[i, j] <= max_angle]
        if len(cand) < 2:
            cand = [j for j in np.argsort(ang[i]) if j != i]
        out.append([int(j) for j in cand[:n]])
    return out


def _grey(img: np.ndarray, device) -> torch.Tensor:
    t = torch.as_tensor(img, dtype=torch.float32, device=device)
    if t.ndim == 3:
        t = t[..., 0] * 0.299 + t[..., 1] * 0.587 + t[..., 2] * 0.114
    return t / 255.0


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window; x (..., H, W)."""
    shp = x.shape
    y = F.avg_pool2d(x.reshape(-1, 1, *shp[-2:]), 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    return y.reshape(shp)


def _scale_K(K: np.ndarray, s: float) -> np.ndarray:
    K2 = K.copy().astype(float)
    K2[:2] *= s
    return K2


def _sweep(ref: torch.Tensor, srcs: Sequence[torch.Tensor], Kr, Rr, tr, Ks, Rs, ts, depths: torch.Tensor,
           radius: int, src_masks: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """Aggregated NCC (D, H, W) for per-pixel depth hypotheses ``depths`` (D, H, W)."""
    dev = ref.device
    H, W = ref.shape
    v, u = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32) + 0.5,
                          torch.arange(W, device=dev, dtype=torch.float32) + 0.5, indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], 0).reshape(3, -1)  # (3, HW)
    mu_r = _box(ref, radius)
    var_r = (_box(ref * ref, radius) - mu_r ** 2).clamp_min(0)
    scores = []
    Kr_inv = np.linalg.inv(Kr)
    for src, K, R, t, sm in zip(srcs, Ks, Rs, ts, src_masks):
        Rrel = R @ Rr.T
        A = torch.as_tensor(K @ Rrel @ Kr_inv, dtype=torch.float32, device=dev)
        b = torch.as_tensor(K @ (t - Rrel @ tr), dtype=torch.float32, device=dev)
        Ap = (A @ pix).reshape(3, 1, H, W)
        q = depths[None] * Ap + b.reshape(3, 1, 1, 1)  # (3, D, H, W)
        z = q[2]
        hs, ws = src.shape
        gx = q[0] / z.clamp_min(1e-6) / ws * 2 - 1
        gy = q[1] / z.clamp_min(1e-6) / hs * 2 - 1
        grid = torch.stack([gx, gy], -1)  # (D, H, W, 2)
        D = depths.shape[0]
        samp = F.grid_sample(src[None, None].expand(D, 1, hs, ws), grid, mode="bilinear",
                             padding_mode="zeros", align_corners=False)[:, 0]
        mu_s = _box(samp, radius)
        var_s = (_box(samp * samp, radius) - mu_s ** 2).clamp_min(0)
        cov = _box(samp * ref[None], radius) - mu_s * mu_r[None]
        ncc = cov / torch.sqrt(var_s * var_r[None] + 1e-6)
        valid = (z > 1e-6) & (gx.abs() < 1) & (gy.abs() < 1)
        if sm is not None:
            ms = F.grid_sample(sm[None, None].expand(D, 1, hs, ws), grid, mode="nearest",
                               padding_mode="zeros", align_corners=False)[:, 0]
            valid &= ms > 0.5
        scores.append(torch.where(valid, ncc, torch.full_like(ncc, -1.0)))
    S = torch.stack(scores, 0)  # (n, D, H, W)
    k = max(1, math.ceil(len(srcs) / 2))
    top = torch.topk(S, k, dim=0).values.mean(0)
    return top


def _wta(score: torch.Tensor, depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Winner-take-all with parabolic refinement between neighbouring hypotheses."""
    D = score.shape[0]
    best, idx = score.max(0)
    i0 = idx.clamp(1, D - 2)
    sm = torch.gather(score, 0, (i0 - 1)[None])[0]
    s0 = torch.gather(score, 0, i0[None])[0]
    sp = torch.gather(score, 0, (i0 + 1)[None])[0]
    denom = sm - 2 * s0 + sp
    off = torch.where(denom < -1e-6, 0.5 * (sm - sp) / denom, torch.zeros_like(denom)).clamp(-0.5, 0.5)
    off = torch.where((idx == i0), off, torch.zeros_like(off))
    d0 = torch.gather(depths, 0, i0[None])[0]
    dn = torch.gather(depths, 0, (i0 + 1)[None])[0]
    dp = torch.gather(depths, 0, (i0 - 1)[None])[0]
    d = torch.where(off >= 0, d0 + off * (dn - d0), d0 + off * (d0 - dp))
    d = torch.where(idx == i0, d, torch.gather(depths, 0, idx[None])[0])
    return d, best


@dataclass
class DepthResult:
    depth: np.ndarray  # (N, H, W) float32, 0 = no depth
    score: np.ndarray  # (N, H, W) aggregated NCC


def depth_range(cams: CameraSet, i: int, bbox: np.ndarray) -> tuple[float, float]:
    """Near/far camera-z of the bounding box (2, 3) in view ``i``."""
    lo, hi = bbox
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    zc = (corners @ cams.R[i].T + cams.t[i])[:, 2]
    near = max(zc.min(), 1e-3 * max(zc.max(), 1e-6))
    return float(near), float(zc.max())


def depth_maps(images: Sequence[np.ndarray], cams: CameraSet, bbox: np.ndarray, *,
               masks: Sequence[np.ndarray] | None = None, n_src: int = 4, planes: int = 48,
               fine_planes: int = 9, radius: int = 3, device: str | torch.device = "cpu",
               progress: Progress | None = None) -> DepthResult:
    """Plane-sweep NCC depth maps for every view (see module docstring).

    Parameters
    ----------
    images : undistorted RGB uint8 images, one per camera in ``cams``
    bbox : (2, 3) world bounding box of the object (sets each view's depth range)
    masks : optional boolean silhouettes (object = True)
    planes : hypotheses of the coarse (half-resolution) sweep, uniform in inverse depth
    fine_planes : per-pixel hypotheses of the full-resolution refinement
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    nb = neighbours(cams, n_src)
    greys = [_grey(im, dev) for im in images]
    mts = [torch.as_tensor(m, dtype=torch.float32, device=dev) for m in masks] if masks is not None else None
    half = [F.avg_pool2d(g[None, None], 2)[0, 0] for g in greys]
    half_m = [F.max_pool2d(m[None, None], 2)[0, 0] for m in mts] if mts is not None else None
    N = len(images)
    H, W = greys[0].shape
    depth = np.zeros((N, H, W), np.float32)
    score = np.full((N, H, W), -1.0, np.float32)
    with torch.no_grad():
        for i in range(N):
            near, far = depth_range(cams, i, bbox)
            src = nb[i]
            # coarse
            hh, hw = half[i].shape
            inv = torch.linspace(1 / near, 1 / far, planes, device=dev)
            dh = (1 / inv)[:, None, None].expand(planes, hh, hw).contiguous()
            sc = _sweep(half[i], [half[j] for j in src], _scale_K(cams.K[i], 0.5), cams.R[i], cams.t[i],
                        [_scale_K(cams.K[j], 0.5) for j in src], [cams.R[j] for j in src], [cams.t[j] for j in src],
                        dh, max(1, radius // 2 + 1), [half_m[j] for j in src] if half_m else [None] * len(src))
            dc, _ = _wta(sc, dh)
            dc = F.interpolate(dc[None, None], size=(H, W), mode="nearest")[0, 0]
            # fine: per-pixel hypotheses spanning +-1.5 coarse planes (in inverse depth)
            step = (1 / near - 1 / far) / (planes - 1)
            offs = torch.linspace(-1.5, 1.5, fine_planes, device=dev) * step
            invd = (1 / dc)[None] + offs[:, None, None]
            df = 1 / invd.clamp_min(1e-9)
            sf = _sweep(greys[i], [greys[j] for j in src], cams.K[i], cams.R[i], cams.t[i],
                        [cams.K[j] for j in src], [cams.R[j] for j in src], [cams.t[j] for j in src],
                        df, radius, [mts[j] for j in src] if mts else [None] * len(src))
            d, s = _wta(sf, df)
            if mts is not None:
                d = torch.where(mts[i] > 0.5, d, torch.zeros_like(d))
            depth[i] = d.cpu().numpy()
            score[i] = s.cpu().numpy()
            if progress:
                progress(ProgressEvent("depth maps", i + 1, N, "view"))
    return DepthResult(depth, score)


def filter_depths(res: DepthResult, cams: CameraSet, *, min_score: float = 0.3, min_consistent: int = 1,
                  px_tol: float = 1.0, rel_tol: float = 0.01, n_src: int = 4,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """Geometric-consistency filter; returns filtered depth maps (0 = rejected)."""
    dev = resolve_device(device) if isinstance(device, str) else device
    N, H, W = res.depth.shape
    D = torch.as_tensor(res.depth, device=dev)
    out = np.zeros_like(res.depth)
    nb = neighbours(cams, n_src)
    v, u = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32) + 0.5,
                          torch.arange(W, device=dev, dtype=torch.float32) + 0.5, indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], 0).reshape(3, -1)
    for i in range(N):
        d = D[i].reshape(-1)
        ok = (d > 0) & (torch.as_tensor(res.score[i], device=dev).reshape(-1) > min_score)
        Kr_inv = torch.as_tensor(np.linalg.inv(cams.K[i]), dtype=torch.float32, device=dev)
        Xc = (Kr_inv @ pix) * d
        Rr = torch.as_tensor(cams.R[i], dtype=torch.float32, device=dev)
        tr = torch.as_tensor(cams.t[i], dtype=torch.float32, device=dev)
        Xw = Rr.T @ (Xc - tr[:, None])
        cnt = torch.zeros_like(d)
        for j in nb[i]:
            Rj = torch.as_tensor(cams.R[j], dtype=torch.float32, device=dev)
            tj = torch.as_tensor(cams.t[j], dtype=torch.float32, device=dev)
            Kj = torch.as_tensor(cams.K[j], dtype=torch.float32, device=dev)
            Xj = Rj @ Xw + tj[:, None]
            q = Kj @ Xj
            uj, vj = q[0] / q[2].clamp_min(1e-9), q[1] / q[2].clamp_min(1e-9)
            g = torch.stack([uj / W * 2 - 1, vj / H * 2 - 1], -1).reshape(1, 1, -1, 2)
            dj = F.grid_sample(D[j][None, None], g, mode="nearest", align_corners=False).reshape(-1)
            # back-project the neighbour's depth and bring it into the reference view
            Kj_inv = torch.linalg.inv(Kj)
            Xj2 = (Kj_inv @ torch.stack([uj, vj, torch.ones_like(uj)], 0)) * dj
            Xw2 = Rj.T @ (Xj2 - tj[:, None])
            Xr2 = Rr @ Xw2 + tr[:, None]
            qr = (torch.as_tensor(cams.K[i], dtype=torch.float32, device=dev) @ Xr2)
            ur, vr = qr[0] / qr[2].clamp_min(1e-9), qr[1] / qr[2].clamp_min(1e-9)
            err = torch.sqrt((ur - pix[0]) ** 2 + (vr - pix[1]) ** 2)
            rel = (Xr2[2] - d).abs() / d.clamp_min(1e-9)
            cnt += ((dj > 0) & (err < px_tol) & (rel < rel_tol)).float()
        keep = ok & (cnt >= min(min_consistent, len(nb[i])))
        out[i] = torch.where(keep, d, torch.zeros_like(d)).reshape(H, W).cpu().numpy()
    return out


def _drop_depth_edges(depth: np.ndarray, rel: float = 0.01) -> np.ndarray:
    """Depth map with pixels next to a depth jump (> ``rel`` of the depth in a 3x3 window) removed:
    nearest-pixel look-ups there land on the wrong side of an occlusion edge."""
    import cv2

    d = depth.astype(np.float32)
    big = np.where(d > 0, d, 0).astype(np.float32)
    small = np.where(d > 0, d, 1e30).astype(np.float32)
    k = np.ones((3, 3), np.uint8)
    mx, mn = cv2.dilate(big, k), cv2.erode(small, k)
    edge = (mx - mn) > rel * np.maximum(d, 1e-9)
    return np.where(edge | (mn > 1e29), 0, d)


@dataclass
class TSDF:
    tsdf: np.ndarray  # (X, Y, Z) in [-1, 1]
    weight: np.ndarray  # (X, Y, Z)
    origin: np.ndarray  # world position of voxel (0, 0, 0) centre
    voxel: float  # voxel size, world units
    depth_weight: np.ndarray | None = None  # (X, Y, Z) weight from depth maps only (no silhouettes)


def tsdf_fuse(depths: np.ndarray, cams: CameraSet, bbox: np.ndarray, *, voxel: float | None = None,
              resolution: int = 160, trunc_voxels: float = 3.0, masks: Sequence[np.ndarray] | None = None,
              silhouette_weight: float = 0.5, weights: Sequence[np.ndarray] | None = None, device: str | torch.device = "cpu",
              progress: Progress | None = None) -> TSDF:
    """Fuse depth maps (0 = none) into a TSDF over ``bbox`` (2, 3), padded by 4 voxels.

    ``voxel`` defaults to the box's longest side / ``resolution``. Voxels seen by a camera but
    projecting outside its (slightly dilated) silhouette receive ``+1`` (empty) with
    ``silhouette_weight``; pass silhouettes dilated by a pixel or two so that carving never
    cuts the true outline. ``weights`` (per-pixel, e.g. NCC scores) weight the depth samples.
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    lo, hi = np.asarray(bbox[0], float), np.asarray(bbox[1], float)
    if voxel is None:
        voxel = float((hi - lo).max() / resolution)
    lo = lo - 4 * voxel
    dims = np.ceil((hi + 4 * voxel - lo) / voxel).astype(int) + 1
    trunc = trunc_voxels * voxel
    axes = [torch.arange(n, device=dev, dtype=torch.float32) * voxel + float(o) for n, o in zip(dims, lo)]
    X, Y, Z = torch.meshgrid(*axes, indexing="ij")
    P = torch.stack([X.reshape(-1), Y.reshape(-1), Z.reshape(-1)], 0)
    del X, Y, Z
    num = torch.zeros(P.shape[1], device=dev)
    wsum = torch.zeros(P.shape[1], device=dev)
    wdepth = torch.zeros(P.shape[1], device=dev)
    N, H, W = depths.shape
    for i in range(N):
        R = torch.as_tensor(cams.R[i], dtype=torch.float32, device=dev)
        t = torch.as_tensor(cams.t[i], dtype=torch.float32, device=dev)
        K = torch.as_tensor(cams.K[i], dtype=torch.float32, device=dev)
        q = (K @ R) @ P + (K @ t)[:, None]
        z = q[2]
        zc = z.clamp_min(1e-9)
        u, v = q[0] / zc, q[1] / zc
        inimg = (z > 1e-6) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
        flat = v.clamp(0, H - 1).long() * W + u.clamp(0, W - 1).long()
        dm = depths[i]
        # an occlusion edge is a jump of more than two truncation bands (smaller jumps are depth noise)
        rel = max(0.01, 2 * trunc / float(np.median(dm[dm > 0]))) if (dm > 0).any() else 0.01
        d = torch.as_tensor(_drop_depth_edges(dm, rel), device=dev).reshape(-1)[flat]
        sdf = d - z
        # only the band around the surface: a voxel far in front of a depth is either free space
        # (the silhouettes say so) or, at an occlusion edge, a mis-projection into the object
        upd = inimg & (d > 0) & (sdf > -trunc) & (sdf < trunc)
        w = upd.float()
        if weights is not None:
            w = w * torch.as_tensor(weights[i], device=dev).reshape(-1)[flat]
        num += (sdf / trunc).clamp(-1, 1) * w
        wsum += w
        wdepth += w
        if masks is not None:
            m = torch.as_tensor(masks[i], device=dev).reshape(-1)
            out = (inimg & ~m[flat]).float() * silhouette_weight
            num += out
            wsum += out
        if progress:
            progress(ProgressEvent("fusion", i + 1, N, "view"))
    tsdf = num / wsum.clamp_min(1e-9)
    shape = tuple(int(x) for x in dims)
    return TSDF(tsdf.reshape(shape).cpu().numpy(), wsum.reshape(shape).cpu().numpy(), lo, voxel,
                wdepth.reshape(shape).cpu().numpy())


def visual_hull_bbox(cams: CameraSet, masks: Sequence[np.ndarray], start_bbox: np.ndarray, resolution: int = 64,
                     pad: float = 0.05) -> np.ndarray:
    """Tight bounding box (2, 3) of the voxels inside every silhouette, searched in ``start_bbox``."""
    lo, hi = np.asarray(start_bbox, float)
    axes = [np.linspace(a, b, resolution) for a, b in zip(lo, hi)]
    P = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    inside = np.ones(len(P), bool)
    seen = np.zeros(len(P), int)
    for i, m in enumerate(masks):
        Xc = P @ cams.R[i].T + cams.t[i]
        q = Xc @ cams.K[i].T
        z = Xc[:, 2]
        u = np.floor(q[:, 0] / np.maximum(z, 1e-9)).astype(int)
        v = np.floor(q[:, 1] / np.maximum(z, 1e-9)).astype(int)
        H, W = m.shape
        ok = (z > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
        hit = np.zeros(len(P), bool)
        hit[ok] = m[v[ok], u[ok]]
        inside &= hit | ~ok
        seen += ok
    inside &= seen >= 0.5 * len(masks)
    if not inside.any():
        return np.asarray(start_bbox, float)
    Q = P[inside]
    step = (hi - lo) / (resolution - 1)
    a, b = Q.min(0) - step, Q.max(0) + step
    ext = b - a
    return np.stack([a - pad * ext, b + pad * ext])


def cameras_bbox(cams: CameraSet) -> np.ndarray:
    """A generous box around the point all cameras look at (least-squares ray intersection)."""
    C = cams.centres
    d = cams.R[:, 2, :]
    A = np.zeros((3, 3)); b = np.zeros(3)
    for c, di in zip(C, d):
        Pm = np.eye(3) - np.outer(di, di)
        A += Pm; b += Pm @ c
    x = np.linalg.lstsq(A, b, rcond=None)[0]
    r = 0.6 * np.median(np.linalg.norm(C - x, axis=1))
    return np.stack([x - r, x + r])


def points_bbox(points: np.ndarray, pad: float = 0.1, q: float = 2.0) -> np.ndarray:
    """Robust box (2, 3) of sparse points: the q..100-q percentiles, padded by ``pad`` of the extent."""
    a, b = np.percentile(points, q, axis=0), np.percentile(points, 100 - q, axis=0)
    ext = b - a
    return np.stack([a - pad * ext, b + pad * ext])


def extract_mesh(vol: TSDF, min_weight: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes (scikit-image) of the zero level next to voxels with depth weight >= ``min_weight``.

    Returns vertices (V, 3) world units and faces (F, 3) int, outward (towards positive TSDF) winding.
    """
    from skimage import measure

    # only where depth maps saw the surface: silhouettes alone (the visual hull) would close
    # the unseen parts (the underside) with a surface that can be far from the real one
    # (and silhouette-only voxels deep inside would meet the truncation band in a false inner surface)
    w = vol.depth_weight if vol.depth_weight is not None else vol.weight
    obs = w >= min_weight
    # skimage evaluates the cube whose first corner is masked, reading all 8 corners: mask only
    # cubes whose 8 corners are observed, or unobserved neighbours would make false crossings
    cell = obs.copy()
    cell[-1, :, :] = False; cell[:, -1, :] = False; cell[:, :, -1] = False
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                if dx or dy or dz:
                    cell[:obs.shape[0] - 1, :obs.shape[1] - 1, :obs.shape[2] - 1] &= \
                        obs[dx:obs.shape[0] - 1 + dx, dy:obs.shape[1] - 1 + dy, dz:obs.shape[2] - 1 + dz]
    if not cell.any() or vol.tsdf[obs].min() > 0 or vol.tsdf[obs].max() < 0:
        return np.zeros((0, 3)), np.zeros((0, 3), int)
    t = np.where(obs, vol.tsdf, 1.0).astype(np.float32)
    v, f, _, _ = measure.marching_cubes(t, level=0.0, allow_degenerate=False)
    # keep the faces whose vertices all lie in fully observed cubes
    ci = np.clip(np.floor(v).astype(int), 0, np.array(cell.shape) - 1)
    ok_v = cell[ci[:, 0], ci[:, 1], ci[:, 2]]
    f = f[ok_v[f].all(1)]
    used = np.unique(f)
    remap = np.full(len(v), -1)
    remap[used] = np.arange(len(used))
    v, f = v[used], remap[f]
    v = v * vol.voxel + vol.origin
    # with the default gradient_direction the faces' normals point towards increasing values,
    # i.e. outwards for a TSDF that is positive outside
    return v, f


def frusta_bbox(cams: CameraSet, min_fraction: float = 0.7, resolution: int = 48) -> np.ndarray:
    """Box (2, 3) of the region that at least ``min_fraction`` of the cameras see in frame
    (searched in :func:`cameras_bbox` enlarged x2): the depth range when no points are known."""
    lo, hi = cameras_bbox(cams)
    c, r = 0.5 * (lo + hi), (hi - lo)
    lo, hi = c - r, c + r
    axes = [np.linspace(a, b, resolution) for a, b in zip(lo, hi)]
    P = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    seen = np.zeros(len(P), int)
    for i in range(len(cams)):
        Xc = P @ cams.R[i].T + cams.t[i]
        q = Xc @ cams.K[i].T
        z = np.maximum(Xc[:, 2], 1e-9)
        W, H = cams.sizes[i]
        seen += (Xc[:, 2] > 0) & (q[:, 0] / z >= 0) & (q[:, 0] / z < W) & (q[:, 1] / z >= 0) & (q[:, 1] / z < H)
    ok = seen >= min_fraction * len(cams)
    if not ok.any():
        return cameras_bbox(cams)
    Q = P[ok]
    step = (hi - lo) / (resolution - 1)
    return np.stack([Q.min(0) - step, Q.max(0) + step])


def auto_planes(cams: CameraSet, bbox: np.ndarray, n_src: int = 4, px_per_plane: float = 1.0,
                lo: int = 24, hi: int = 128) -> int:
    """Plane count of the coarse (half-resolution) sweep chosen from the geometry: the median
    length in pixels of the epipolar segment that the depth range spans in a neighbour view,
    over ``px_per_plane``, clipped to ``lo..hi``."""
    nb = neighbours(cams, n_src)
    lens = []
    for i in range(len(cams)):
        near, far = depth_range(cams, i, bbox)
        W, H = cams.sizes[i]
        ray = np.linalg.inv(cams.K[i]) @ np.array([W / 2, H / 2, 1.0])
        for j in nb[i][:2]:
            pts = []
            for d in (near, far):
                Xw = cams.R[i].T @ (ray * d - cams.t[i])
                q = cams.K[j] @ (cams.R[j] @ Xw + cams.t[j])
                pts.append(q[:2] / max(q[2], 1e-9))
            lens.append(np.linalg.norm(pts[0] - pts[1]) * 0.5)  # half resolution
    return int(np.clip(np.ceil(np.median(lens) / px_per_plane), lo, hi)) if lens else 48


def textured(images: Sequence[np.ndarray], radius: int = 3, min_std: float = 0.015) -> np.ndarray:
    """(N, H, W) bool: pixels whose grey level varies (std over a (2r+1)^2 window >= ``min_std``
    of full scale) - where photo-consistency has something to match."""
    import cv2

    out = []
    for im in images:
        g = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255 if im.ndim == 3 else im / 255.0
        k = (2 * radius + 1, 2 * radius + 1)
        mu = cv2.blur(g, k)
        var = np.maximum(cv2.blur(g * g, k) - mu * mu, 0)
        out.append(np.sqrt(var) >= min_std)
    return np.array(out)


def fill_holes(depth: np.ndarray, max_gap: int = 24, rel_tol: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """Fill pixels without depth that lie between two depths (left/right or up/down, each within
    ``max_gap`` pixels) agreeing within ``rel_tol``: linear interpolation along that line, the mean
    of both directions where both constrain. Flat dark or saturated patches inside a textured
    surface get the surface that their neighbours define; open background stays empty.
    Returns (filled depth, bool map of the filled pixels)."""
    d = depth.astype(np.float64)
    H, W = d.shape
    acc = np.zeros_like(d)
    cnt = np.zeros_like(d)

    def scan(a):  # along axis 1 of a (rows x cols): nearest valid value and distance on each side
        h, w = a.shape
        idx = np.where(a > 0, np.arange(w)[None, :], -1)
        left = np.maximum.accumulate(idx, axis=1)
        idx2 = np.where(a > 0, np.arange(w)[None, :], w)
        right = np.minimum.accumulate(idx2[:, ::-1], axis=1)[:, ::-1]
        cols = np.arange(w)[None, :]
        ok = (left >= 0) & (right < w) & (a <= 0) & (right - left <= max_gap)
        rows = np.arange(h)[:, None].repeat(w, 1)
        dl = a[rows, np.clip(left, 0, w - 1)]
        dr = a[rows, np.clip(right, 0, w - 1)]
        ok &= np.abs(dl - dr) <= rel_tol * np.maximum(dl, dr)
        f = (cols - left) / np.maximum(right - left, 1)
        return np.where(ok, dl + f * (dr - dl), 0.0), ok

    v1, o1 = scan(d)
    v2, o2 = scan(d.T)
    v2, o2 = v2.T, o2.T
    acc += v1 + v2
    cnt += o1.astype(float) + o2.astype(float)
    # both directions must agree where both constrain (else a concave corner would be bridged)
    both = o1 & o2
    bad = both & (np.abs(v1 - v2) > rel_tol * np.maximum(v1, v2))
    filled = (cnt > 0) & ~bad
    out = np.where(filled, acc / np.maximum(cnt, 1), d)
    return out.astype(depth.dtype), filled
