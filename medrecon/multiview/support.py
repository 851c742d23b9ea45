"""Separate the object from its support (table, turntable, floor) and the backdrop, geometrically.

Masks are a help, not a requirement: the dense stage reconstructs the whole scene, then

1. :func:`depth_points` lifts the filtered depth maps to world points;
2. :func:`fit_support` finds the dominant plane whose normal is within ``max_tilt_deg`` of the
   cameras' up direction (RANSAC, refined by least squares) - the support;
3. :func:`object_region` keeps the points above that plane, groups them into connected pieces on
   a voxel grid and keeps the piece the cameras look at (the one nearest the point where their
   viewing rays meet; ties go to the largest), and returns its box down to the plane.

What was removed (support plane, other pieces, backdrop points) is counted for the report.
Frames and units: world units of the cameras.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.colmap import CameraSet


def depth_points(depths: np.ndarray, cams: CameraSet, step: int = 2) -> np.ndarray:
    """World points (M, 3) of every ``step``-th pixel with depth of every view."""
    out = []
    N, H, W = depths.shape
    v, u = np.mgrid[0:H:step, 0:W:step]
    pix = np.stack([u.ravel() + 0.5, v.ravel() + 0.5, np.ones(u.size)], 0)
    for i in range(N):
        d = depths[i, ::step, ::step].ravel()
        ok = d > 0
        Xc = (np.linalg.inv(cams.K[i]) @ pix[:, ok]) * d[ok]
        out.append((cams.R[i].T @ (Xc - cams.t[i][:, None])).T)
    return np.concatenate(out) if out else np.zeros((0, 3))


@dataclass
class Plane:
    point: np.ndarray
    normal: np.ndarray  # unit, pointing up (towards the cameras)
    inlier_fraction: float
    tilt_deg: float  # angle between the normal and the cameras' up


def fit_support(P: np.ndarray, up: np.ndarray, tol: float, max_tilt_deg: float = 30.0,
                min_fraction: float = 0.1, iters: int = 300, seed: int = 0) -> Plane | None:
    """Dominant plane of ``P`` (M, 3) with normal near ``up``; ``None`` if fewer than
    ``min_fraction`` of the points lie within ``tol`` of any such plane or the plane is not
    below most of the remaining points."""
    if len(P) < 50:
        return None
    rng = np.random.default_rng(seed)
    cos_max = np.cos(np.deg2rad(max_tilt_deg))
    best, best_n = None, 0
    sub = P[rng.choice(len(P), min(len(P), 20000), replace=False)]
    for _ in range(iters):
        a, b, c = sub[rng.choice(len(sub), 3, replace=False)]
        n = np.cross(b - a, c - a)
        nn = np.linalg.norm(n)
        if nn < 1e-12:
            continue
        n /= nn
        if n @ up < 0:
            n = -n
        if n @ up < cos_max:
            continue
        cnt = int((np.abs((sub - a) @ n) < tol).sum())
        if cnt > best_n:
            best, best_n = (a, n), cnt
    if best is None or best_n < min_fraction * len(sub):
        return None
    a, n = best
    for _ in range(2):  # least-squares refinement on the inliers
        inl = sub[np.abs((sub - a) @ n) < tol]
        c = inl.mean(0)
        _, _, Vt = np.linalg.svd(inl - c, full_matrices=False)
        n2 = Vt[-1] if Vt[-1] @ up > 0 else -Vt[-1]
        if n2 @ up < cos_max:
            break
        a, n = c, n2
    h = (sub - a) @ n
    above = h > tol
    if above.sum() < 0.02 * len(sub) or (h < -tol).sum() > above.sum():
        return None  # most off-plane points are below it: not a support
    return Plane(a, n, float((np.abs(h) < tol).mean()), float(np.degrees(np.arccos(np.clip(n @ up, -1, 1)))))


def _components(P: np.ndarray, cell: float, min_count: int = 2) -> np.ndarray:
    """Connected-component label of each point on a voxel grid of ``cell`` (26-connectivity);
    cells with fewer than ``min_count`` points (stray depths) are label 0."""
    from scipy import ndimage

    lo = P.min(0)
    ijk = np.floor((P - lo) / cell).astype(int)
    dims = ijk.max(0) + 1
    if np.prod(dims.astype(float)) > 6e7:  # far-flung backdrop points: coarser grid
        return _components(P, cell * 2, min_count)
    cnt = np.zeros(dims, np.int32)
    np.add.at(cnt, tuple(ijk.T), 1)
    lab, _ = ndimage.label(cnt >= min_count, structure=np.ones((3, 3, 3)))
    return lab[tuple(ijk.T)]


@dataclass
class Region:
    bbox: np.ndarray  # (2, 3) world box of the object, down to the support plane
    points: np.ndarray  # the object's points
    info: dict


def object_region(P: np.ndarray, cams: CameraSet, up: np.ndarray, plane: Plane | None, tol: float,
                  cell: float, look_at: np.ndarray) -> Region:
    """The object's points and box: above the support (when there is one), the connected piece
    nearest ``look_at`` among the pieces with at least 5 % of the largest one's points."""
    info: dict = {"points_total": int(len(P))}
    keep = np.ones(len(P), bool)
    if plane is not None:
        h = (P - plane.point) @ plane.normal
        keep = h > tol
        info["support_points_removed"] = int((np.abs(h) <= tol).sum())
        info["below_support_removed"] = int((h < -tol).sum())
    Q = P[keep]
    if len(Q) < 20:
        return Region(np.stack([P.min(0), P.max(0)]), P, {**info, "object_points": int(len(P)), "pieces": 0})
    lab = _components(Q, cell)
    Q, lab = Q[lab > 0], lab[lab > 0]
    if len(Q) < 20:
        return Region(np.stack([P.min(0), P.max(0)]), P, {**info, "object_points": int(len(P)), "pieces": 0})
    ids, counts = np.unique(lab, return_counts=True)
    big = counts.max()
    cand = ids[counts >= 0.05 * big]
    # the piece whose points come closest to the cameras' common look-at point
    dist = [np.linalg.norm(Q[lab == k] - look_at, axis=1).min() for k in cand]
    pick = cand[int(np.argmin(dist))]
    obj = Q[lab == pick]
    info.update({"pieces": int(len(ids)), "object_points": int(len(obj)),
                 "other_pieces_points_removed": int(len(Q) - len(obj))})
    lo, hi = np.percentile(obj, 0.2, axis=0), np.percentile(obj, 99.8, axis=0)
    if plane is not None:  # extend the box down to the support under it
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        foot = corners - ((corners - plane.point) @ plane.normal)[:, None] * plane.normal
        lo, hi = np.minimum(lo, foot.min(0)), np.maximum(hi, foot.max(0))
    return Region(np.stack([lo, hi]), obj, info)


def cut_support(v: np.ndarray, f: np.ndarray, plane: Plane, tol: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop the faces with a vertex within ``tol`` above the plane or below it; returns the mesh
    (unreferenced vertices removed) and the number of faces removed."""
    h = (v - plane.point) @ plane.normal
    keepv = h > tol
    fk = keepv[f].all(1)
    f2 = f[fk]
    used = np.unique(f2)
    remap = np.full(len(v), -1)
    remap[used] = np.arange(len(used))
    return v[used], remap[f2], int((~fk).sum())


def oriented_points(depths: np.ndarray, cams: CameraSet, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """World points and unit normals (facing the camera) of every ``step``-th pixel with depth whose
    right and lower neighbours have depth too (normal = cross product of the two tangents)."""
    P_all, N_all = [], []
    N, H, W = depths.shape
    v, u = np.mgrid[0:H, 0:W]
    pix = np.stack([u + 0.5, v + 0.5, np.ones_like(u, dtype=float)], -1)
    for i in range(N):
        d = depths[i]
        ray = pix @ np.linalg.inv(cams.K[i]).T
        Xc = ray * d[..., None]
        tu = Xc[:-1, 1:] - Xc[:-1, :-1]
        tv = Xc[1:, :-1] - Xc[:-1, :-1]
        n = np.cross(tu, tv)
        ok = (d[:-1, :-1] > 0) & (d[:-1, 1:] > 0) & (d[1:, :-1] > 0)
        nn = np.linalg.norm(n, axis=-1)
        ok &= nn > 0
        sub = np.zeros_like(ok)
        sub[::step, ::step] = True
        ok &= sub
        n = n[ok] / nn[ok][:, None]
        X = Xc[:-1, :-1][ok]
        flip = (n * X).sum(1) > 0  # must face the camera (towards -X)
        n[flip] *= -1
        cos = -(n * X).sum(1) / np.linalg.norm(X, axis=1)
        keep = cos > 0.1  # grazing tangents are noise
        R, t = cams.R[i], cams.t[i]
        P_all.append((X[keep] - t) @ R)
        N_all.append(n[keep] @ R)
    return np.concatenate(P_all), np.concatenate(N_all)


def poisson_surface(P: np.ndarray, Nrm: np.ndarray, work_dir, depth: int = 9, trim_dist: float | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Screened Poisson surface (pycolmap's PoissonRecon) of oriented points; faces farther than
    ``trim_dist`` from every input point are dropped (Poisson closes what nobody saw)."""
    from pathlib import Path

    import pycolmap
    import trimesh
    from scipy.spatial import cKDTree

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    src, dst = work_dir / "fused.ply", work_dir / "poisson.ply"
    header = ("ply\nformat binary_little_endian 1.0\nelement vertex %d\nproperty float x\nproperty float y\n"
              "property float z\nproperty float nx\nproperty float ny\nproperty float nz\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n") % len(P)
    rec = np.zeros(len(P), dtype=[("p", "<f4", 3), ("n", "<f4", 3), ("c", "u1", 3)])
    rec["p"], rec["n"], rec["c"] = P, Nrm, 128
    with open(src, "wb") as fh:
        fh.write(header.encode())
        fh.write(rec.tobytes())
    opts = pycolmap.PoissonMeshingOptions()
    opts.depth = depth
    opts.trim = 0.0
    opts.color = False
    opts.num_threads = 2
    old_level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2
    try:
        pycolmap.poisson_meshing(src, dst, opts)
    finally:
        pycolmap.logging.minloglevel = old_level
    m = trimesh.load(dst, process=False)
    v, f = np.asarray(m.vertices, float), np.asarray(m.faces, np.int64)
    if trim_dist is not None and len(f):
        cen = v[f].mean(1)
        d = cKDTree(P).query(cen, distance_upper_bound=trim_dist)[0]
        f = f[np.isfinite(d)]
        used = np.unique(f)
        remap = np.full(len(v), -1)
        remap[used] = np.arange(len(used))
        v, f = v[used], remap[f]
    return v, f


def up_vector(cams: CameraSet) -> np.ndarray:
    """Mean world direction of the cameras' image "up" (-y of the camera)."""
    u = -cams.R[:, 1, :].mean(0)
    return u / max(np.linalg.norm(u), 1e-12)


def clean_mesh(v: np.ndarray, f: np.ndarray, up: np.ndarray | None = None, keep_all: bool = False,
               min_fraction: float = 0.05) -> tuple[np.ndarray, np.ndarray, dict]:
    """Keep the object: components with at least ``min_fraction`` of the largest one's faces,
    then drop a flat ground (a plane with normal along ``up`` under the object holding >= 15 %
    of the vertices, found by RANSAC) and any remaining small pieces."""
    import trimesh

    info: dict[str, Any] = {"components_in": 0, "ground_removed": False}
    if keep_all or len(f) == 0:
        return v, f, info
    m = trimesh.Trimesh(v, f, process=False)
    parts = m.split(only_watertight=False)
    info["components_in"] = len(parts)
    if not parts:
        return v, f, info
    big = max(len(p.faces) for p in parts)
    m = trimesh.util.concatenate([p for p in parts if len(p.faces) >= min_fraction * big])
    if up is not None and len(m.vertices) > 100:
        rng = np.random.default_rng(0)
        P = m.vertices
        ext = np.ptp(P, axis=0).max()
        best, best_n = None, 0
        for _ in range(200):
            a, b, c = P[rng.choice(len(P), 3, replace=False)]
            n = np.cross(b - a, c - a)
            if np.linalg.norm(n) < 1e-12:
                continue
            n /= np.linalg.norm(n)
            if abs(n @ up) < 0.9:
                continue
            d = np.abs((P - a) @ n)
            cnt = int((d < 0.01 * ext).sum())
            if cnt > best_n:
                best, best_n = (a, n if n @ up > 0 else -n), cnt
        if best is not None and best_n >= 0.15 * len(P):
            a, n = best
            h = (P - a) @ n
            if np.median(h) > 0.05 * ext:  # the plane is under most of the model: it is the ground
                keepv = h > 0.015 * ext
                fk = keepv[m.faces].all(1)
                m = trimesh.Trimesh(m.vertices, m.faces[fk], process=False)
                m.remove_unreferenced_vertices()
                parts = m.split(only_watertight=False)
                if parts:
                    big = max(len(p.faces) for p in parts)
                    m = trimesh.util.concatenate([p for p in parts if len(p.faces) >= min_fraction * big])
                info["ground_removed"] = True
    return np.asarray(m.vertices), np.asarray(m.faces), info
