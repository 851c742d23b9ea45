"""Keep surfaces printable: topology-guarded decimation and self-intersection relaxation.

Two failure modes of the usual chain (contour -> smooth -> decimate) are handled here, both on
plain arrays (points in any unit, triangles counter-clockwise seen from outside):

**Decimation that breaks thin parts** (:func:`guarded_decimate`). Quadric edge collapse
(fast-simplification) is fast but does not check the link condition: on one-voxel struts and
plates (trabecular bone) it can pinch a vertex, leave a boundary, flip a sliver or collapse a
fragment to nothing. The guard compares every connected piece before and after: a piece is
kept decimated only when it is still closed (every edge used once in each direction), has the
same Euler characteristic (same topology: no pinch, no new hole), kept its volume within
``volume_tol``, and does not cut through anything else; otherwise the piece's original,
undecimated triangles are put back. The result is closed and manifold whenever the input was,
for any reduction. ``info["restored_components"]`` says how many pieces were put back.

**Self-intersections after smoothing** (:func:`relax_self_intersections`). Where a structure
is cut by the first or last slice, or two sheets lie a voxel apart, windowed-sinc smoothing can
push triangles through each other. The contour before smoothing has no self-intersections, so
the vertices of intersecting triangles and their neighbours are moved back towards their
unsmoothed positions, halving the smoothing there per round until no triangle intersects
(after the last round those vertices are fully unsmoothed).
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from medrecon.surface.intersections import self_intersecting_faces
from medrecon.surface.qa import vertex_fans

__all__ = ["decimate_closed", "guarded_decimate", "relax_self_intersections", "vertex_components", "drop_fins"]


_SIMPLIFY_LOCK = threading.Lock()  # fast-simplification keeps its mesh in global state


def vertex_components(faces: np.ndarray, n: int) -> tuple[int, np.ndarray]:
    """(number of pieces, label per vertex) of the triangle graph; unused vertices get their own."""
    if len(faces) == 0:
        return n, np.arange(n)
    r = np.r_[faces[:, 0], faces[:, 1]]
    c = np.r_[faces[:, 1], faces[:, 2]]
    g = sparse.csr_matrix((np.ones(r.size, np.int8), (r, c)), shape=(n, n))
    return csgraph.connected_components(g, directed=False)


def drop_fins(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove degenerate triangles and "fins" (a triangle and its reversed copy), then unused points."""
    if len(faces) == 0:
        return points, faces
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    srt = np.sort(faces, axis=1)
    order = np.lexsort((srt[:, 2], srt[:, 1], srt[:, 0]))
    ss = srt[order]
    dup = np.all(ss[1:] == ss[:-1], axis=1)
    keep[order[1:][dup]] = False
    keep[order[:-1][dup]] = False
    if keep.all():
        return points, faces
    return _compact(points, faces[keep])


def _compact(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used = np.zeros(len(points), bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    return points[used], remap[faces]


def _piece_stats(points: np.ndarray, faces: np.ndarray, face_piece: np.ndarray, vert_piece: np.ndarray,
                 n_pieces: int) -> dict[str, np.ndarray]:
    """Per piece: faces, vertices, edges, Euler characteristic, bad-edge count, signed volume."""
    nf = np.bincount(face_piece, minlength=n_pieces)
    used = np.zeros(len(points), bool)
    used[faces.reshape(-1)] = True
    nv = np.bincount(vert_piece[used], minlength=n_pieces)
    a = faces.reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    n = np.int64(len(points))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo.astype(np.int64) * n + hi
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    counts = np.diff(np.r_[starts, ks.size])
    edge_piece = vert_piece[lo[order][starts]]
    ne = np.bincount(edge_piece, minlength=n_pieces)
    bad = counts != 2
    two = starts[counts == 2]
    # a closed, consistently wound edge is walked once in each direction
    fwd = (a < b)[order]
    bad_two = fwd[two] == fwd[two + 1]
    nbad = np.bincount(edge_piece[bad], minlength=n_pieces) + np.bincount(
        vert_piece[lo[order][two[bad_two]]], minlength=n_pieces)
    c = points.mean(0)
    p0, p1, p2 = (points[faces[:, k]] - c for k in range(3))
    vol = np.bincount(face_piece, weights=np.einsum("ij,ij->i", p0, np.cross(p1, p2)) / 6.0, minlength=n_pieces)
    return {"faces": nf, "vertices": nv, "edges": ne, "euler": nv - ne + nf, "bad_edges": nbad, "volume": vol}


def _simplify(points: np.ndarray, faces: np.ndarray, reduction: float,
              preserve_border: bool = False) -> tuple[np.ndarray, np.ndarray]:
    import fast_simplification

    with _SIMPLIFY_LOCK:
        p, f = fast_simplification.simplify(np.asarray(points, np.float64), np.asarray(faces, np.int64),
                                            target_reduction=float(reduction), preserve_border=preserve_border)
    return np.asarray(p, np.float64), np.asarray(f, np.int64)


def _edge_table(faces: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edge keys (sorted, unique), their use counts and a consistency flag per edge."""
    a = faces.reshape(-1).astype(np.int64)
    b = faces[:, [1, 2, 0]].reshape(-1).astype(np.int64)
    key = np.minimum(a, b) * n + np.maximum(a, b)
    fwd = a < b
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    counts = np.diff(np.r_[starts, ks.size])
    fw = np.add.reduceat(fwd[order].astype(np.int64), starts) if ks.size else np.zeros(0, np.int64)
    # consistent: a two-triangle edge walked once each way; a border edge trivially
    consistent = np.where(counts == 2, fw == 1, counts == 1)
    return ks[starts], counts, consistent


def _blocks(points: np.ndarray, faces: np.ndarray, per_block: int) -> np.ndarray:
    """Block id per face: a grid over face centroids with about ``per_block`` faces per occupied cell."""
    c = points[faces].mean(axis=1)
    lo = c.min(0)
    ext = np.maximum(c.max(0) - lo, 1e-9)
    size = float(np.sqrt(np.prod(np.sort(ext)[1:]) * per_block / max(len(faces), 1)))
    for _ in range(3):  # a surface fills cells unevenly: adjust the size to the occupied cells
        size = max(size, 1e-9)
        ijk = np.floor((c - lo) / size).astype(np.int64)
        dims = ijk.max(0) + 1
        key = (ijk[:, 0] * dims[1] + ijk[:, 1]) * dims[2] + ijk[:, 2]
        _, block, counts = np.unique(key, return_inverse=True, return_counts=True)
        mean = len(faces) / len(counts)
        if 0.5 * per_block <= mean <= 2 * per_block or size >= ext.max():
            break
        size *= float(np.clip((per_block / mean) ** 0.5, 0.25, 4.0))
    return block.reshape(-1)


def guarded_decimate(points: np.ndarray, faces: np.ndarray, reduction: float, *, volume_tol: float = 0.02,
                     per_block: int = 20_000, check_intersections: bool = True,
                     keep_topology: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Quadric decimation that keeps the surface closed, manifold and of the same topology.

    The surface is cut into blocks of about ``per_block`` triangles (a grid over triangle
    centres); each block is decimated on its own with its border vertices locked, so blocks
    still fit together exactly. A decimated block is kept only when it has the same border,
    every inner edge is shared by two triangles walked in opposite directions, every
    vertex has a single fan of triangles (no pinch) and the
    volume between it and the original is within ``volume_tol`` of its share of the total
    volume; otherwise the block's original triangles are kept. Blocks whose triangles cut
    through other triangles are put back as well.

    Parameters
    ----------
    points : (N, 3) float
    faces : (M, 3) int, closed and consistently wound (as the contouring makes them)
    reduction : float
        Fraction of triangles to remove (0..1). Locked borders and restored blocks keep some
        more; ``info["reduction"]`` is what was reached.
    volume_tol : float
        Largest relative volume change per block (of the block's share of the volume).
    per_block : int
        Triangles per block.
    check_intersections : bool
        Check the result for self-intersections and restore blocks that have them.
    keep_topology : bool
        Also require an unchanged Euler characteristic per block (no tunnel closed, no fragment
        lost). Off by default: on trabecular bone nearly every block closes some one-voxel
        tunnel at high reduction, and closed + manifold + volume is what printing needs.

    Returns
    -------
    points, faces, info
        ``info``: ``blocks``, ``restored_blocks``, ``reduction`` (reached).
    """
    points = np.asarray(points, np.float64)
    faces = np.asarray(faces, np.int64)
    info: dict[str, Any] = {"blocks": 0, "restored_blocks": 0, "reduction": 0.0}
    if reduction <= 0 or len(faces) < 8:
        return points, faces, info
    n = len(points)
    block = _blocks(points, faces, per_block)
    n_blocks = int(block.max()) + 1
    order = np.argsort(block, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(block, minlength=n_blocks))]
    c0 = points.mean(0)
    total_vol = abs(_signed_vol_terms(points - c0, faces).sum()) or 1.0
    total_area = float(_areas(points, faces).sum()) or 1.0
    results: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
    for b in range(n_blocks):
        fb = faces[order[bounds[b]:bounds[b + 1]]]
        results.append(_decimate_block(points, fb, n, reduction, c0, volume_tol * total_vol / total_area,
                                       keep_topology))
    restore = np.array([r is None for r in results])
    for _round in range(4):
        out_p, out_f, face_block = _assemble_blocks(points, faces, order, bounds, results, restore)
        if not check_intersections:
            break
        hit = self_intersecting_faces(out_p, out_f)
        new = np.zeros(n_blocks, bool)
        new[face_block[hit]] = True
        new &= ~restore
        if not new.any():
            break
        restore |= new
    info["blocks"] = n_blocks
    info["restored_blocks"] = int(restore.sum())
    info["reduction"] = round(1.0 - len(out_f) / len(faces), 4)
    return out_p, out_f, info


def decimate_closed(points: np.ndarray, faces: np.ndarray, reduction: float, *, volume_tol: float = 0.02,
                    passes: int = 3) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Decimate to ``reduction`` when that keeps the surface closed and manifold; else as far as it can.

    First one quadric decimation of the whole surface; it is kept when the result is closed,
    consistently wound, edge- and vertex-manifold and within ``volume_tol`` of the volume
    (smooth organs and shells nearly always are). Otherwise the surface is decimated by
    :func:`guarded_decimate` in up to ``passes`` gentler passes (block grids of different sizes,
    so each pass also thins the previous pass's locked block borders). On one-voxel trabecular
    struts this stops short of the target: ``info["reduction"]`` is what was reached,
    ``info["method"]`` says which way was taken.
    """
    from medrecon.surface.qa import signed_volume, topology_qa

    points = np.asarray(points, np.float64)
    faces = np.asarray(faces, np.int64)
    if reduction <= 0 or len(faces) < 8:
        return points, faces, {"method": "none", "reduction": 0.0}
    v0 = signed_volume(points, faces)
    p, f = _simplify(points, faces, reduction)
    p, f = drop_fins(p, f)
    if len(f):
        t = topology_qa(f, len(p))
        if (t["watertight"] and t["manifold"] and t["consistently_oriented"]
                and abs(signed_volume(p, f) - v0) <= volume_tol * abs(v0)
                and not self_intersecting_faces(p, f).any()):
            return p, f, {"method": "quadric", "reduction": round(1.0 - len(f) / len(faces), 4)}
    step = 1.0 - (1.0 - reduction) ** (1.0 / passes)
    p, f = points, faces
    blocks = 0
    for k in range(passes):
        target = int(round((1.0 - reduction) * len(faces)))
        if len(f) <= target * 1.05:
            break
        r = min(step, 1.0 - target / len(f)) if k < passes - 1 else 1.0 - target / len(f)
        p2, f2, info = guarded_decimate(p, f, r, volume_tol=volume_tol, per_block=8000 + 5000 * k,
                                        check_intersections=True)
        t = topology_qa(f2, len(p2))
        if not (t["watertight"] and t["manifold"] and t["consistently_oriented"]):
            break  # a defect between blocks: keep the previous pass (closed and manifold)
        p, f = p2, f2
        blocks += info["restored_blocks"]
        if info["reduction"] < 0.01:
            break
    return p, f, {"method": "guarded", "reduction": round(1.0 - len(f) / len(faces), 4),
                  "restored_blocks": blocks}


def _signed_vol_terms(p: np.ndarray, f: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", p[f[:, 0]], np.cross(p[f[:, 1]], p[f[:, 2]])) / 6.0


def _areas(p: np.ndarray, f: np.ndarray) -> np.ndarray:
    cr = np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]])
    return 0.5 * np.sqrt(np.einsum("ij,ij->i", cr, cr))


def _decimate_block(points, fb, n, reduction, c0, vol_per_area, keep_topology=False, tries: int = 3):
    """Decimate one block with its border locked; None when no good result was found.

    Where the decimated patch has a defect (an edge with more than two triangles, a flipped
    edge, a pinched vertex), the original triangles around the defect are taken out of the
    decimation - kept as they are, their edges locked like the block border - and the rest is
    decimated again (up to ``tries`` times).

    Returns (new interior points, faces in "global" numbering - indices >= n are the new points
    (n + row), indices < n are original vertices - , unused).
    """
    from scipy.spatial import cKDTree

    exclude = np.zeros(len(fb), bool)
    centres = None
    for _ in range(tries):
        res, bad_pts = _decimate_patch(points, fb[~exclude], n, reduction, keep_topology)
        if res is not None:
            newp, gf = res
            gf = np.vstack([gf, fb[exclude]])
            dv = _signed_vol_terms(np.vstack([points, newp]) - c0, gf).sum() - _signed_vol_terms(points - c0, fb).sum()
            if abs(dv) > vol_per_area * float(_areas(points, fb).sum()):
                return None
            return newp, gf, None
        if bad_pts is None or len(bad_pts) == 0:
            return None
        if centres is None:
            centres = points[fb].mean(axis=1)
            tree = cKDTree(centres)
        # take the original triangles near each defect out of the decimation
        edge = float(np.median(np.linalg.norm(points[fb[:, 1]] - points[fb[:, 0]], axis=1)))
        for idx in tree.query_ball_point(bad_pts[:, :3], r=bad_pts[:, 3] + edge):
            exclude[idx] = True
        if exclude.all():
            return None
    return None


def _decimate_patch(points, fb, n, reduction, keep_topology):
    """One decimation of an open patch with its border locked.

    Returns ((new points, faces in global numbering), None) when the result is clean, else
    (None, defects) with defects an (K, 4) array of centre + radius of bad output triangles
    (None when the failure cannot be located).
    """
    if len(fb) < 8:
        return (np.zeros((0, 3)), fb.copy()), None
    used = np.unique(fb.reshape(-1))
    local = np.searchsorted(used, fb)
    lp = points[used]
    keys, counts, consistent = _edge_table(local, len(used))
    if np.any(counts > 2) or not consistent.all():
        return None, None
    border_keys = keys[counts == 1]
    euler0 = len(used) - len(keys) + len(fb)
    dp, df = _simplify(lp, local, reduction, preserve_border=True)
    dp, df = drop_fins(dp, df)
    if len(df) == 0:
        return None, None
    # border vertices were locked: find them by their exact coordinates
    border_v = np.unique(np.c_[border_keys // len(used), border_keys % len(used)].reshape(-1))
    void = np.dtype((np.void, 24))
    bkey = np.ascontiguousarray(lp[border_v]).view(void).ravel()
    dkey = np.ascontiguousarray(dp).view(void).ravel()
    srt = np.argsort(bkey)
    if len(srt):
        pos = np.minimum(np.searchsorted(bkey[srt], dkey), len(srt) - 1)
        is_border = bkey[srt][pos] == dkey
    else:
        pos = np.zeros(len(dp), np.int64)
        is_border = np.zeros(len(dp), bool)
    if int(is_border.sum()) != len(border_v):
        return None, None
    glob = np.empty(len(dp), np.int64)
    glob[is_border] = used[border_v[srt[pos[is_border]]]]
    inner = np.flatnonzero(~is_border)
    glob[inner] = n + np.arange(inner.size)
    gf = glob[df]
    # defects, located: bad edges and pinched vertices of the decimated patch
    k2, c2, cons2 = _edge_table(df, len(dp))
    bad_v = np.zeros(len(dp), bool)
    badk = k2[(c2 > 2) | ~cons2]
    bad_v[badk // len(dp)] = True
    bad_v[badk % len(dp)] = True
    fans_new = vertex_fans(df, len(dp))
    bad_v[inner[fans_new[inner] != 1]] = True
    fans_old = vertex_fans(local, len(used))
    bidx = np.flatnonzero(is_border)
    bad_v[bidx[fans_new[bidx] != fans_old[border_v[srt[pos[bidx]]]]]] = True
    if bad_v.any():
        tri = df[bad_v[df].any(axis=1)]
        cen = dp[tri].mean(axis=1)
        rad = np.linalg.norm(dp[tri] - cen[:, None], axis=2).max(axis=1)
        return None, np.c_[cen, rad]
    if not np.array_equal(np.sort(used[border_keys // len(used)] * (n + 1) + used[border_keys % len(used)]),
                          np.sort(_border_keys_global(gf, n + 1))):
        return None, None
    if keep_topology and len(dp) - len(k2) + len(df) != euler0:
        return None, None
    return (dp[inner], gf), None


def _border_keys_global(gf: np.ndarray, m: int) -> np.ndarray:
    """Undirected keys (lo * m + hi) of the border edges of faces whose indices < m - 1 are
    original vertices; new vertices (>= m - 1) never lie on the border."""
    a = gf.reshape(-1).astype(np.int64)
    b = gf[:, [1, 2, 0]].reshape(-1).astype(np.int64)
    big = max(int(gf.max()) + 1, m)
    key = np.minimum(a, b) * big + np.maximum(a, b)
    uk, cnt = np.unique(key, return_counts=True)
    bk = uk[cnt == 1]
    lo, hi = bk // big, bk % big
    return lo * m + hi


def _assemble_blocks(points, faces, order, bounds, results, restore):
    n = len(points)
    out_pts = [points]
    out_faces, out_block = [], []
    nxt = n
    for b, r in enumerate(results):
        if restore[b] or r is None:
            fb = faces[order[bounds[b]:bounds[b + 1]]]
            out_faces.append(fb)
        else:
            newp, gf, _ = r
            gf = np.where(gf >= n, gf - n + nxt, gf)
            out_pts.append(newp)
            nxt += len(newp)
            out_faces.append(gf)
        out_block.append(np.full(len(out_faces[-1]), b, np.int64))
    p = np.vstack(out_pts)
    f = np.vstack(out_faces)
    p, f2 = _compact(p, f)
    return p, f2, np.concatenate(out_block)


def relax_self_intersections(points: np.ndarray, before: np.ndarray, faces: np.ndarray, *,
                             rounds: int = 6) -> tuple[np.ndarray, dict[str, Any]]:
    """Undo smoothing locally until no triangle cuts through another.

    Parameters
    ----------
    points : (N, 3) smoothed positions
    before : (N, 3) positions before smoothing (same vertices; assumed intersection-free)
    faces : (M, 3) int

    One full check, then each round re-checks only the triangles near the moved vertices.

    Returns
    -------
    points, info
        ``info``: ``self_intersecting_faces_smoothed`` (found after smoothing),
        ``vertices_relaxed`` and ``self_intersecting_faces`` (left at the end, normally 0).
    """
    pts = np.array(points, dtype=np.float64, copy=True)
    hit = self_intersecting_faces(pts, faces)
    info: dict[str, Any] = {"self_intersecting_faces_smoothed": int(hit.sum()), "vertices_relaxed": 0}
    if not hit.any():
        info["self_intersecting_faces"] = 0
        return pts, info
    relaxed = np.zeros(len(pts), bool)
    weight = np.ones(len(pts))
    for r in range(rounds):
        sel = np.zeros(len(pts), bool)
        sel[faces[hit].reshape(-1)] = True
        ring = np.zeros(len(pts), bool)  # the faulty triangles' vertices and their one-ring
        ring[faces[sel[faces].any(axis=1)].reshape(-1)] = True
        relaxed |= ring
        weight[ring] = 0.0 if r == rounds - 1 else weight[ring] * 0.5
        pts[ring] = before[ring] + weight[ring, None] * (points[ring] - before[ring])
        hit = _hits_near(pts, faces, relaxed)
        if not hit.any():
            break
    info["vertices_relaxed"] = int(relaxed.sum())
    info["self_intersecting_faces"] = int(hit.sum())
    return pts, info


def _hits_near(pts: np.ndarray, faces: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Self-intersecting faces among those near the moved vertices (a k-d tree on face centres)."""
    from scipy.spatial import cKDTree

    out = np.zeros(len(faces), bool)
    mv = np.flatnonzero(moved[faces].any(axis=1))
    if mv.size == 0:
        return out
    tri = pts[faces]
    cen = tri.mean(axis=1)
    rad = np.linalg.norm(tri - cen[:, None], axis=2).max(axis=1)
    reach = 2.0 * float(rad.max())
    near = cKDTree(cen).query_ball_point(cen[mv], r=reach, return_sorted=False)
    idx = np.unique(np.concatenate([np.asarray(n, np.int64) for n in near] + [mv]))
    out[idx] = self_intersecting_faces(pts, faces[idx])
    return out
