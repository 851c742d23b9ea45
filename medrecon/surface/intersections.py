"""Self-intersection QA: which triangles of a surface cut through other triangles of it.

Printers' slicers and mesh checkers (MeshLab's "select self intersecting faces", Netfabb,
PrusaSlicer's repair) flag a surface whose triangles pass through each other: it is not a
valid solid even when every edge has two triangles. :func:`self_intersecting_faces` finds such
triangles without testing all pairs:

1. **Broad phase: a uniform grid of axis-aligned boxes.** Every triangle's bounding box is
   entered into the grid cells it overlaps (cell size about twice the median edge, grown until
   there are at most ~4 entries per triangle, so memory is O(triangles) for any input; a large
   decimated triangle enters several cells). One sort of the (cell, triangle) entries.
2. **Pairs, compiled** (numba, ``nogil``: label threads run side by side): for every cell, the
   triangles in it whose boxes overlap; a pair is tested once, in the cell that holds the lower
   corner of the two boxes' overlap. Candidate pairs are never stored, so a speckled
   multi-million-triangle label map needs no more memory than the entries.
3. **Neighbours:** pairs sharing one vertex are tested for a fold (the edge opposite the shared
   vertex crossing the other triangle) when their normals are more than 90 degrees apart, as
   MeshLab does; pairs sharing an edge count when they are folded onto each other (normals
   more than ~172 degrees apart).
4. **Narrow phase:** two triangles intersect when an edge of one crosses the other
   (Moeller-Trumbore segment test, six edges per pair). Exactly coplanar overlaps are not
   counted (they do not occur on smoothed surfaces).

``active=`` restricts the search to pairs with at least one active triangle (what the
intersection relaxation and the guarded decimation re-check after moving a few vertices).
Why numba: the pair loop is branchy scalar work (box test, shared vertices, up to six segment
tests) that vectorised numpy could only do by materialising every candidate pair (what used
to cost tens of seconds and, on a speckled label map, 74.5 GiB); pymeshlab has the test but
needs a copy into its own mesh, holds the GIL and has no "active" subset; manifold3d and
libigl do not report intersecting faces of one mesh cheaply. numba compiles once per machine
(``cache=True``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["self_intersecting_faces", "self_intersection_qa", "candidate_pairs", "folded_faces"]


def _triangle_boxes(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tri = v[f]  # (M, 3, 3)
    return tri.min(axis=1), tri.max(axis=1)


def candidate_pairs(vertices: np.ndarray, faces: np.ndarray, *, cell: float | None = None,
                    chunk: int = 1_000_000, max_shared: int = 0, normals: np.ndarray | None = None,
                    sharp_cos: float = 0.0) -> np.ndarray:
    """(K, 2) int64 pairs (a < b) of triangles whose bounding boxes overlap and which share at
    most ``max_shared`` vertices (0: none).

    Parameters
    ----------
    vertices : (N, 3) float
    faces : (M, 3) int
    cell : float, optional
        Grid cell size in the units of ``vertices``; default twice the median edge length.
    chunk : int
        Largest number of (cell, triangle) entries handled per pass (memory bound).
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    m = len(f)
    if m < 2:
        return np.zeros((0, 2), np.int64)
    lo, hi = _triangle_boxes(v, f)
    pad = 1e-6 * float(np.ptp(v, axis=0).max() or 1.0)  # float32 boxes below: never miss a touch
    lo, hi = lo - pad, hi + pad
    if cell is None:
        e = np.linalg.norm(v[f[:, 1]] - v[f[:, 0]], axis=1)
        cell = 2.0 * float(np.median(e)) if np.any(e > 0) else 1.0
        cell = max(cell, 1e-9)
    origin = lo.min(axis=0)
    # memory bound: a triangle enters every cell its box overlaps; when large triangles would
    # make that more than ~8 entries per triangle (or the cell count overflows), grow the cell
    ext = float(np.max(hi.max(axis=0) - origin))
    for _ in range(40):
        c0 = np.floor((lo - origin) / cell).astype(np.int64)
        c1 = np.floor((hi - origin) / cell).astype(np.int64)
        span = c1 - c0 + 1
        per = span.prod(axis=1)
        if per.sum() <= 8 * m + 64 and (ext / cell + 2) ** 3 < 2 ** 62:
            break
        cell *= 1.5
    dims = c1.max(axis=0) + 1
    # entries: one per (triangle, cell) it overlaps; built in chunks of triangles (memory)
    idt = np.int32 if m < 2**31 else np.int64
    keys, ids = [], []
    for t0 in range(0, m, 500_000):
        t1 = min(m, t0 + 500_000)
        pc = per[t0:t1]
        tid = np.repeat(np.arange(t0, t1, dtype=np.int64), pc)
        k = np.arange(tid.size, dtype=np.int64) - np.repeat(np.cumsum(pc) - pc, pc)
        sy, sz = span[tid, 1], span[tid, 2]
        ox = k // (sy * sz)
        rem = k - ox * sy * sz
        oy = rem // sz
        oz = rem - oy * sz
        keys.append(((c0[tid, 0] + ox) * dims[1] + (c0[tid, 1] + oy)) * dims[2] + (c0[tid, 2] + oz))
        ids.append(tid.astype(idt))
        del tid, k, sy, sz, ox, rem, oy, oz
    key = np.concatenate(keys)
    tri_ids = np.concatenate(ids)
    del keys, ids
    order = np.argsort(key, kind="stable")
    key = key[order]
    tri_ids = tri_ids[order]
    del order
    lo = lo.astype(np.float32)
    hi = hi.astype(np.float32)
    pairs: list[np.ndarray] = []
    n = key.size
    cells = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])  # first entry of each cell
    s0 = 0
    while s0 < n:  # chunks of whole cells: pairs never span two cells, memory stays bounded
        e0 = int(cells[min(np.searchsorted(cells, s0 + chunk, side="left"), len(cells) - 1)])
        e0 = n if e0 <= s0 else e0
        _pairs_in_cells(key[s0:e0], tri_ids[s0:e0], lo, hi, f, m, max_shared, normals, sharp_cos, pairs)
        s0 = e0
    del key, tri_ids, cells
    if not pairs:
        return np.zeros((0, 2), np.int64)
    p = np.sort(np.concatenate(pairs))
    p = p[np.r_[True, p[1:] != p[:-1]]] if p.size else p
    return np.stack([p // m, p % m], axis=1)


def _pairs_in_cells(key, tri_ids, lo, hi, f, m, max_shared, normals, sharp_cos, pairs) -> None:
    """Candidate pairs among sorted (cell key, triangle) entries; appends ``a * m + b`` keys."""
    n = key.size
    # per-entry boxes in sorted order (one contiguous array per axis and side)
    lo_s = [np.ascontiguousarray(lo[:, ax][tri_ids]) for ax in range(3)]
    hi_s = [np.ascontiguousarray(hi[:, ax][tri_ids]) for ax in range(3)]
    # entries left in their cell after each one: only those take part in pass d
    it = np.int32 if n < 2**31 - 1 else np.int64
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]).astype(it)
    sizes = np.diff(np.r_[starts, it(n)]).astype(it)
    left = np.repeat(starts + sizes, sizes)
    left -= np.arange(n, dtype=it)
    left -= 1
    del starts, sizes
    act = np.flatnonzero(left > 0).astype(it)
    d = 1
    while act.size:
        nxt = act + d
        ok = np.ones(act.size, bool)
        for ax in range(3):
            ok &= lo_s[ax][nxt] <= hi_s[ax][act]
            ok &= lo_s[ax][act] <= hi_s[ax][nxt]
        idx = act[ok]
        a = tri_ids[idx].astype(np.int64)
        b = tri_ids[idx + d].astype(np.int64)
        a, b = np.minimum(a, b), np.maximum(a, b)
        fa, fb = f[a], f[b]
        nshare = (a == b).astype(np.int8) * 3
        for i in range(3):
            for j in range(3):
                nshare += fa[:, i] == fb[:, j]
        keep = nshare == 0
        if max_shared >= 1:
            one = nshare == 1
            if normals is not None:  # neighbours only where the surface folds back
                one &= np.einsum("ij,ij->i", normals[a], normals[b]) < sharp_cos
            keep |= one
        pairs.append(a[keep] * m + b[keep])
        d += 1
        act = act[left[act] >= d]


def _grid_entries(v: np.ndarray, f: np.ndarray, cell: float | None, per_tri: int = 4):
    """Sorted (cell key, triangle) entries of the uniform grid, plus per-triangle boxes and
    lower cells and the grid dims. At most ``per_tri`` entries per triangle (+64)."""
    m = len(f)
    tri = v[f]
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    del tri
    pad = 1e-6 * float(np.ptp(v, axis=0).max() or 1.0)
    lo -= pad
    hi += pad
    if cell is None:
        e = np.linalg.norm(v[f[:, 1]] - v[f[:, 0]], axis=1)
        cell = 2.0 * float(np.median(e)) if np.any(e > 0) else 1.0
        del e
    cell = max(float(cell), 1e-9)
    origin = lo.min(axis=0)
    ext = float(np.max(hi.max(axis=0) - origin))
    for _ in range(60):
        c0 = np.floor((lo - origin) / cell).astype(np.int64)
        c1 = np.floor((hi - origin) / cell).astype(np.int64)
        per = (c1 - c0 + 1).prod(axis=1)
        if per.sum() <= per_tri * m + 64 and (ext / cell + 2) ** 3 < 2 ** 62:
            break
        cell *= 1.5
    dims = c1.max(axis=0) + 1
    del c1
    key, ids = _entries(lo, hi, origin, cell, dims, per)
    order = np.argsort(key)
    return key[order], ids[order], lo, hi, c0, dims


def self_intersecting_faces(vertices: np.ndarray, faces: np.ndarray, *, active: np.ndarray | None = None,
                            cell: float | None = None) -> np.ndarray:
    """Boolean mask (M,) of triangles that intersect another triangle of the mesh.

    Pairs sharing no vertex: any edge of one crossing the other. Pairs sharing one vertex (a
    fold around it): the edge opposite the shared vertex of one crossing the other, where their
    normals are more than 90 degrees apart. Pairs sharing an edge: folded onto each other
    (normals more than ~172 degrees apart). Vertices in any unit (mm for medrecon models).

    ``active`` (M,) bool: only pairs with at least one active triangle are tested (a local
    re-check after a few vertices moved); None: every pair.
    """
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    m = len(f)
    out = np.zeros(m, bool)
    if m < 2:
        return out
    if active is not None:
        active = np.ascontiguousarray(active, dtype=bool)
        if not active.any():
            return out
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-300)
    key, ids, lo, hi, c0, dims = _grid_entries(v, f, cell)
    scale = float(np.ptp(v, axis=0).max()) or 1.0
    eps = 1e-14 * scale * scale
    use_active = active is not None
    _scan_cells(key, ids, lo, hi, c0, dims, v, f, fn, active if use_active else out, use_active, eps, out)
    return out


def folded_faces(vertices: np.ndarray, faces: np.ndarray, cos_limit: float = -0.99) -> np.ndarray:
    """Triangles folded onto a neighbour across their shared edge (normals more than ~172 degrees
    apart): the two lie on top of each other, which slicers and MeshLab count as intersecting."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    out = np.zeros(len(f), bool)
    if len(f) < 2:
        return out
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-300)
    a = f.reshape(-1)
    b = f[:, [1, 2, 0]].reshape(-1)
    n = int(f.max()) + 1
    key = np.minimum(a, b) * n + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    same = np.flatnonzero(ks[1:] == ks[:-1])
    fa, fb = order[same] // 3, order[same + 1] // 3
    bad = np.einsum("ij,ij->i", fn[fa], fn[fb]) < cos_limit
    out[fa[bad]] = True
    out[fb[bad]] = True
    return out


def self_intersection_qa(vertices: np.ndarray, faces: np.ndarray) -> dict[str, Any]:
    """QA fields: ``self_intersecting_faces`` (count) and ``self_intersection_free`` (bool)."""
    n = int(self_intersecting_faces(vertices, faces).sum()) if len(faces) else 0
    return {"self_intersecting_faces": n, "self_intersection_free": n == 0}


# --------------------------------------------------------------------------- compiled kernels
def _njit(fn=None, **kw):
    import numba

    opts = dict(cache=True, nogil=True)
    opts.update(kw)
    return numba.njit(**opts)(fn) if fn is not None else (lambda g: numba.njit(**opts)(g))


@_njit
def _entries_kernel(lo, hi, origin, cell, dims, per, key, ids):  # pragma: no cover - compiled
    k = 0
    for t in range(lo.shape[0]):
        a0 = int(np.floor((lo[t, 0] - origin[0]) / cell))
        a1 = int(np.floor((lo[t, 1] - origin[1]) / cell))
        a2 = int(np.floor((lo[t, 2] - origin[2]) / cell))
        b0 = int(np.floor((hi[t, 0] - origin[0]) / cell))
        b1 = int(np.floor((hi[t, 1] - origin[1]) / cell))
        b2 = int(np.floor((hi[t, 2] - origin[2]) / cell))
        for x in range(a0, b0 + 1):
            for y in range(a1, b1 + 1):
                for z in range(a2, b2 + 1):
                    key[k] = (x * dims[1] + y) * dims[2] + z
                    ids[k] = t
                    k += 1
    return k


def _entries(lo, hi, origin, cell, dims, per):
    n = int(per.sum())
    key = np.empty(n, np.int64)
    ids = np.empty(n, np.int32 if len(lo) < 2**31 else np.int64)
    k = _entries_kernel(lo, hi, origin, float(cell), dims, per, key, ids)
    return key[:k], ids[:k]


@_njit(inline="always")
def _seg_tri(v, s0, s1, a, b, c, eps):  # pragma: no cover - compiled
    """Moeller-Trumbore: does segment v[s0]-v[s1] cross triangle v[a] v[b] v[c] (closed, tol 1e-9)?"""
    tol = 1e-9
    dx, dy, dz = v[s1, 0] - v[s0, 0], v[s1, 1] - v[s0, 1], v[s1, 2] - v[s0, 2]
    e1x, e1y, e1z = v[b, 0] - v[a, 0], v[b, 1] - v[a, 1], v[b, 2] - v[a, 2]
    e2x, e2y, e2z = v[c, 0] - v[a, 0], v[c, 1] - v[a, 1], v[c, 2] - v[a, 2]
    hx, hy, hz = dy * e2z - dz * e2y, dz * e2x - dx * e2z, dx * e2y - dy * e2x
    det = e1x * hx + e1y * hy + e1z * hz
    if abs(det) <= eps:
        return False
    inv = 1.0 / det
    sx, sy, sz = v[s0, 0] - v[a, 0], v[s0, 1] - v[a, 1], v[s0, 2] - v[a, 2]
    u = inv * (sx * hx + sy * hy + sz * hz)
    if u < -tol or u > 1.0 + tol:
        return False
    qx, qy, qz = sy * e1z - sz * e1y, sz * e1x - sx * e1z, sx * e1y - sy * e1x
    w = inv * (dx * qx + dy * qy + dz * qz)
    if w < -tol or u + w > 1.0 + tol:
        return False
    t = inv * (e2x * qx + e2y * qy + e2z * qz)
    return t >= -tol and t <= 1.0 + tol


@_njit(inline="always")
def _pair_hits(v, f, fn, ta, tb, eps):  # pragma: no cover - compiled
    ns = 0
    pa = -1
    pb = -1
    for i in range(3):
        for j in range(3):
            if f[ta, i] == f[tb, j]:
                ns += 1
                pa = i
                pb = j
    dot = fn[ta, 0] * fn[tb, 0] + fn[ta, 1] * fn[tb, 1] + fn[ta, 2] * fn[tb, 2]
    if ns == 0:
        for i in range(3):
            if _seg_tri(v, f[ta, i], f[ta, (i + 1) % 3], f[tb, 0], f[tb, 1], f[tb, 2], eps):
                return True
        for i in range(3):
            if _seg_tri(v, f[tb, i], f[tb, (i + 1) % 3], f[ta, 0], f[ta, 1], f[ta, 2], eps):
                return True
        return False
    if ns == 1:
        if dot >= 0.0:
            return False
        if _seg_tri(v, f[ta, (pa + 1) % 3], f[ta, (pa + 2) % 3], f[tb, 0], f[tb, 1], f[tb, 2], eps):
            return True
        return _seg_tri(v, f[tb, (pb + 1) % 3], f[tb, (pb + 2) % 3], f[ta, 0], f[ta, 1], f[ta, 2], eps)
    return dot < -0.99  # sharing an edge (or all three vertices): folded onto each other


@_njit
def _scan_cells(key, ids, lo, hi, c0, dims, v, f, fn, active, use_active, eps, out):  # pragma: no cover
    n = key.shape[0]
    s = 0
    while s < n:
        e = s + 1
        while e < n and key[e] == key[s]:
            e += 1
        if e - s > 1:
            run = True
            if use_active:
                run = False
                for i in range(s, e):
                    if active[ids[i]]:
                        run = True
                        break
            if run:
                k = key[s]
                for i in range(s, e):
                    a = ids[i]
                    for j in range(i + 1, e):
                        b = ids[j]
                        if use_active and not (active[a] or active[b]):
                            continue
                        if out[a] and out[b]:
                            continue
                        if (lo[a, 0] > hi[b, 0] or lo[b, 0] > hi[a, 0] or lo[a, 1] > hi[b, 1]
                                or lo[b, 1] > hi[a, 1] or lo[a, 2] > hi[b, 2] or lo[b, 2] > hi[a, 2]):
                            continue
                        # test each pair once: in the cell of the lower corner of the boxes' overlap
                        cx = max(c0[a, 0], c0[b, 0])
                        cy = max(c0[a, 1], c0[b, 1])
                        cz = max(c0[a, 2], c0[b, 2])
                        if (cx * dims[1] + cy) * dims[2] + cz != k:
                            continue
                        if _pair_hits(v, f, fn, a, b, eps):
                            out[a] = True
                            out[b] = True
        s = e
