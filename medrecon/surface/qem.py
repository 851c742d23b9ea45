"""Topology-safe quadric edge collapse (numba): decimation that refuses a bad collapse instead of
repairing it afterwards.

Garland-Heckbert quadrics (area-weighted face planes), edges in a heap by the quadric error of
the best of {optimal point, either end, midpoint}; an edge ``(u, v)`` is collapsed only when

* neither end is locked (the ends of border edges, and vertices the caller locks);
* the **link condition** holds: ``u`` and ``v`` share exactly the two vertices opposite the
  edge, which is what keeps a closed 2-manifold a closed 2-manifold of the same topology (no
  pinched vertex, no edge with three triangles, no tunnel closed, no fragment lost);
* the merged vertex keeps at least three neighbours (no tetrahedron squashed flat);
* no triangle around the edge flips (its normal turns by more than ~78 degrees) or becomes a
  sliver (quality below ``min_quality``).

One pass over one heap: cost O(M log M), memory a few arrays of the mesh's size. What it cannot
rule out locally is two distant parts of the surface pushed through each other; the caller
checks for that (:mod:`medrecon.surface.decimate`) and locks the vertices involved.
"""
from __future__ import annotations

import numpy as np
import numba

__all__ = ["collapse"]

_JIT = dict(cache=True, nogil=True)


@numba.njit(**_JIT)
def _face_quadrics(v, f):  # pragma: no cover - compiled
    n = v.shape[0]
    q = np.zeros((n, 11))  # 10 quadric terms + the area they carry
    for t in range(f.shape[0]):
        a, b, c = f[t, 0], f[t, 1], f[t, 2]
        e1x, e1y, e1z = v[b, 0] - v[a, 0], v[b, 1] - v[a, 1], v[b, 2] - v[a, 2]
        e2x, e2y, e2z = v[c, 0] - v[a, 0], v[c, 1] - v[a, 1], v[c, 2] - v[a, 2]
        nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
        ln = np.sqrt(nx * nx + ny * ny + nz * nz)
        if ln <= 0.0:
            continue
        area = 0.5 * ln
        nx, ny, nz = nx / ln, ny / ln, nz / ln
        d = -(nx * v[a, 0] + ny * v[a, 1] + nz * v[a, 2])
        k = (nx * nx, nx * ny, nx * nz, nx * d, ny * ny, ny * nz, ny * d, nz * nz, nz * d, d * d)
        for w in (a, b, c):
            for i in range(10):
                q[w, i] += area * k[i]
            q[w, 10] += area
    return q


@numba.njit(**_JIT)
def _err(q, x, y, z):  # pragma: no cover - compiled
    return (q[0] * x * x + 2 * q[1] * x * y + 2 * q[2] * x * z + 2 * q[3] * x + q[4] * y * y
            + 2 * q[5] * y * z + 2 * q[6] * y + q[7] * z * z + 2 * q[8] * z + q[9])


@numba.njit(**_JIT)
def _best(q, pu, pv):  # pragma: no cover - compiled
    """(cost, x, y, z): the optimal point when the 3x3 system is well conditioned, else the best
    of the two ends and the midpoint."""
    a00, a01, a02, a11, a12, a22 = q[0], q[1], q[2], q[4], q[5], q[7]
    b0, b1, b2 = -q[3], -q[6], -q[8]
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    det = a00 * c00 + a01 * c01 + a02 * c02
    scale = a00 + a11 + a22
    best = np.inf
    bx, by, bz = 0.0, 0.0, 0.0
    if scale > 0 and abs(det) > 1e-9 * scale * scale * scale:
        c11 = a00 * a22 - a02 * a02
        c12 = a01 * a02 - a00 * a12
        c22 = a00 * a11 - a01 * a01
        x = (c00 * b0 + c01 * b1 + c02 * b2) / det
        y = (c01 * b0 + c11 * b1 + c12 * b2) / det
        z = (c02 * b0 + c12 * b1 + c22 * b2) / det
        # stay near the edge: a far optimum on a nearly flat patch is a numerical artefact
        mx, my, mz = 0.5 * (pu[0] + pv[0]), 0.5 * (pu[1] + pv[1]), 0.5 * (pu[2] + pv[2])
        ex, ey, ez = pu[0] - pv[0], pu[1] - pv[1], pu[2] - pv[2]
        if (x - mx) ** 2 + (y - my) ** 2 + (z - mz) ** 2 <= (ex * ex + ey * ey + ez * ez):
            best = _err(q, x, y, z)
            bx, by, bz = x, y, z
    for s in (0.0, 0.5, 1.0):
        x = pu[0] + s * (pv[0] - pu[0])
        y = pu[1] + s * (pv[1] - pu[1])
        z = pu[2] + s * (pv[2] - pu[2])
        e = _err(q, x, y, z)
        if e < best:
            best, bx, by, bz = e, x, y, z
    return max(best, 0.0), bx, by, bz


@numba.njit(**_JIT)
def _push(hc, hu, hw, hvu, hvw, size, cost, u, w, vu, vw):  # pragma: no cover - compiled
    if size == hc.shape[0]:
        cap = 2 * size
        hc2 = np.empty(cap)
        hc2[:size] = hc
        hu2 = np.empty(cap, np.int64)
        hu2[:size] = hu
        hw2 = np.empty(cap, np.int64)
        hw2[:size] = hw
        hvu2 = np.empty(cap, np.int64)
        hvu2[:size] = hvu
        hvw2 = np.empty(cap, np.int64)
        hvw2[:size] = hvw
        hc, hu, hw, hvu, hvw = hc2, hu2, hw2, hvu2, hvw2
    i = size
    while i > 0:
        par = (i - 1) >> 1
        if hc[par] <= cost:
            break
        hc[i], hu[i], hw[i], hvu[i], hvw[i] = hc[par], hu[par], hw[par], hvu[par], hvw[par]
        i = par
    hc[i], hu[i], hw[i], hvu[i], hvw[i] = cost, u, w, vu, vw
    return hc, hu, hw, hvu, hvw, size + 1


@numba.njit(**_JIT)
def _pop(hc, hu, hw, hvu, hvw, size):  # pragma: no cover - compiled
    """Remove the top; returns it and the new size."""
    top = (hc[0], hu[0], hw[0], hvu[0], hvw[0])
    size -= 1
    if size > 0:
        cost, u, w, vu, vw = hc[size], hu[size], hw[size], hvu[size], hvw[size]
        i = 0
        while True:
            l = 2 * i + 1
            if l >= size:
                break
            r = l + 1
            ch = r if (r < size and hc[r] < hc[l]) else l
            if hc[ch] >= cost:
                break
            hc[i], hu[i], hw[i], hvu[i], hvw[i] = hc[ch], hu[ch], hw[ch], hvu[ch], hvw[ch]
            i = ch
        hc[i], hu[i], hw[i], hvu[i], hvw[i] = cost, u, w, vu, vw
    return top, size


@numba.njit(**_JIT)
def _collapse(v, f, target, locked, min_quality, cos_flip, max_err2):  # pragma: no cover - compiled
    n = v.shape[0]
    m = f.shape[0]
    v = v.copy()
    f = f.copy()
    q = _face_quadrics(v, f)
    # vertex -> corner linked lists
    head = np.full(n, -1, np.int64)
    nxt = np.full(3 * m, -1, np.int64)
    for c in range(3 * m):
        w = f[c // 3, c % 3]
        nxt[c] = head[w]
        head[w] = c
    face_alive = np.ones(m, np.bool_)
    alive = np.ones(n, np.bool_)
    version = np.zeros(n, np.int64)
    parent = np.arange(n)
    mark = np.zeros(n, np.int64)
    tick = 0
    cap = 2 * m + 16
    hc = np.empty(cap)
    hu = np.empty(cap, np.int64)
    hw = np.empty(cap, np.int64)
    hvu = np.empty(cap, np.int64)
    hvw = np.empty(cap, np.int64)
    size = 0
    for t in range(m):
        for k in range(3):
            a, b = f[t, k], f[t, (k + 1) % 3]
            if a < b and not locked[a] and not locked[b]:
                qq = q[a] + q[b]
                cost, _, _, _ = _best(qq, v[a], v[b])
                hc, hu, hw, hvu, hvw, size = _push(hc, hu, hw, hvu, hvw, size, cost, a, b, version[a], version[b])
    n_faces = m
    nb_u = np.empty(64, np.int64)
    while n_faces > target and size > 0:
        top, size = _pop(hc, hu, hw, hvu, hvw, size)
        u, w, vu, vw = top[1], top[2], top[3], top[4]
        if not (alive[u] and alive[w]) or version[u] != vu or version[w] != vw:
            continue
        if locked[u] or locked[w]:
            continue
        qq = q[u] + q[w]
        cost, x, y, z = _best(qq, v[u], v[w])
        if cost > max_err2 * qq[10]:  # mean squared distance to the original planes too large
            continue
        # neighbours of u (marked), shared faces, degrees
        tick += 1
        deg_u = 0
        shared = 0
        c = head[u]
        while c >= 0:
            t = c // 3
            if face_alive[t]:
                for k in range(3):
                    o = f[t, k]
                    if o != u and mark[o] != tick:
                        mark[o] = tick
                        deg_u += 1
                if f[t, 0] == w or f[t, 1] == w or f[t, 2] == w:
                    shared += 1
            c = nxt[c]
        if shared != 2:
            continue
        tick += 1
        common = 0
        deg_w = 0
        c = head[w]
        while c >= 0:
            t = c // 3
            if face_alive[t]:
                for k in range(3):
                    o = f[t, k]
                    if o != w and mark[o] != tick:
                        if mark[o] == tick - 1:
                            common += 1
                        mark[o] = tick
                        deg_w += 1
            c = nxt[c]
        # common counts u itself? u is a neighbour of w and was not marked in u's pass
        if common != 2 or deg_u + deg_w < 7:
            continue
        # flips and slivers among the faces that survive
        ok = True
        for end in (u, w):
            c = head[end]
            while c >= 0 and ok:
                t = c // 3
                if face_alive[t] and not ((f[t, 0] == u or f[t, 1] == u or f[t, 2] == u)
                                          and (f[t, 0] == w or f[t, 1] == w or f[t, 2] == w)):
                    a0, a1, a2 = f[t, 0], f[t, 1], f[t, 2]
                    p0x, p0y, p0z = v[a0, 0], v[a0, 1], v[a0, 2]
                    p1x, p1y, p1z = v[a1, 0], v[a1, 1], v[a1, 2]
                    p2x, p2y, p2z = v[a2, 0], v[a2, 1], v[a2, 2]
                    o1x = (p1y - p0y) * (p2z - p0z) - (p1z - p0z) * (p2y - p0y)
                    o1y = (p1z - p0z) * (p2x - p0x) - (p1x - p0x) * (p2z - p0z)
                    o1z = (p1x - p0x) * (p2y - p0y) - (p1y - p0y) * (p2x - p0x)
                    if a0 == end:
                        p0x, p0y, p0z = x, y, z
                    elif a1 == end:
                        p1x, p1y, p1z = x, y, z
                    else:
                        p2x, p2y, p2z = x, y, z
                    e1x, e1y, e1z = p1x - p0x, p1y - p0y, p1z - p0z
                    e2x, e2y, e2z = p2x - p0x, p2y - p0y, p2z - p0z
                    e3x, e3y, e3z = p2x - p1x, p2y - p1y, p2z - p1z
                    nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
                    ln = np.sqrt(nx * nx + ny * ny + nz * nz)
                    lo = np.sqrt(o1x * o1x + o1y * o1y + o1z * o1z)
                    l2 = (e1x * e1x + e1y * e1y + e1z * e1z + e2x * e2x + e2y * e2y + e2z * e2z
                          + e3x * e3x + e3y * e3y + e3z * e3z)
                    if ln <= 0.0 or lo <= 0.0 or l2 <= 0.0:
                        ok = False
                    elif (nx * o1x + ny * o1y + nz * o1z) < cos_flip * ln * lo:
                        ok = False
                    elif 3.4641016151377544 * ln / l2 < min_quality:  # 4 sqrt(3) area / sum l^2
                        ok = False
                c = nxt[c]
        if not ok:
            continue
        # collapse w into u at (x, y, z)
        v[u, 0], v[u, 1], v[u, 2] = x, y, z
        q[u] += q[w]
        alive[w] = False
        parent[w] = u
        version[u] += 1
        # rebuild u's list from u's and w's alive faces, renaming w -> u
        new_head = -1
        for end in (u, w):
            c = head[end]
            while c >= 0:
                cn = nxt[c]
                t = c // 3
                if face_alive[t]:
                    has_u = f[t, 0] == u or f[t, 1] == u or f[t, 2] == u
                    has_w = f[t, 0] == w or f[t, 1] == w or f[t, 2] == w
                    if has_u and has_w:
                        if end == u:  # count each removed face once
                            face_alive[t] = False
                            n_faces -= 1
                    else:
                        if end == w:
                            for k in range(3):
                                if f[t, k] == w:
                                    f[t, k] = u
                        nxt[c] = new_head
                        new_head = c
                c = cn
        head[u] = new_head
        head[w] = -1
        # new costs for the edges around u
        tick += 1
        c = head[u]
        while c >= 0:
            t = c // 3
            for k in range(3):
                o = f[t, k]
                if o != u and mark[o] != tick:
                    mark[o] = tick
                    if not locked[o]:
                        qq = q[u] + q[o]
                        cc, _, _, _ = _best(qq, v[u], v[o])
                        a, b = (u, o) if u < o else (o, u)
                        hc, hu, hw, hvu, hvw, size = _push(hc, hu, hw, hvu, hvw, size, cc, a, b,
                                                           version[a], version[b])
            c = nxt[c]
    return v, f, face_alive, alive, parent


def collapse(points: np.ndarray, faces: np.ndarray, target_faces: int, *, locked: np.ndarray | None = None,
             max_error: float = np.inf, min_quality: float = 0.02, cos_flip: float = 0.2
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse edges of a closed, consistently wound triangle surface down to ``target_faces``
    (or until no allowed collapse is left).

    ``max_error``: no collapse whose merged vertex lies farther than this (root mean square,
    area-weighted) from the original triangles' planes around it (units of ``points``).

    Returns ``(points, faces, rep)``: the compacted result and, for every input vertex, the
    index of the output vertex it went into.
    """
    v = np.ascontiguousarray(points, dtype=np.float64)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    n = len(v)
    lock = np.zeros(n, np.bool_) if locked is None else np.array(locked, dtype=np.bool_, copy=True)
    # ends of border or non-manifold edges stay where they are
    a = f.reshape(-1)
    b = f[:, [1, 2, 0]].reshape(-1)
    key = np.minimum(a, b) * n + np.maximum(a, b)
    uk, cnt = np.unique(key, return_counts=True)
    bad = uk[cnt != 2]
    lock[bad // n] = True
    lock[bad % n] = True
    v2, f2, face_alive, alive, parent = _collapse(v, f, int(target_faces), lock, float(min_quality), float(cos_flip),
                                                    float(max_error) ** 2)
    # representative of every input vertex (follow the collapse chain)
    rep = parent.copy()
    for _ in range(64):
        nr = rep[rep]
        if np.array_equal(nr, rep):
            break
        rep = nr
    idx = np.cumsum(alive) - 1
    out_f = idx[f2[face_alive]]
    return v2[alive], out_f, idx[rep]
