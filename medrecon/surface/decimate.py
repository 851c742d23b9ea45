"""The one decimation of the house: quadric edge collapse (fast-simplification), plain or closed.

* :func:`simplify` - the only call of ``fast_simplification.simplify`` in medrecon: to a
  reduction or a triangle count, degenerate triangles and fins removed. For surfaces that need
  not stay closed (a display copy in the HTML viewer, a multiview scan).
* :func:`decimate_closed` - decimation that keeps a closed, consistently wound, manifold
  surface closed and manifold, its volume within ``volume_tol`` and free of self-intersections:
  one quadric decimation of the whole surface when that result passes every check (smooth
  organs, photo meshes), else :func:`guarded_decimate` (blocks with locked borders; a block whose
  result has a defect is decimated again with the triangles around the defect kept, or kept
  whole). Both meshers (through :mod:`medrecon.surface.finish`) and the photo pipeline use it.

Quadric edge collapse (fast-simplification) is fast but does not check the link condition: on
one-voxel struts and plates (trabecular bone) it can pinch a vertex, leave a boundary, flip a
sliver or collapse a fragment to nothing; hence the checks.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from medrecon.mesh import signed_volume
from medrecon.surface.intersections import self_intersecting_faces
from medrecon.surface.qa import topology_qa, vertex_fans

__all__ = ["simplify", "decimate_closed", "guarded_decimate", "drop_fins"]


_SIMPLIFY_LOCK = threading.Lock()  # fast-simplification keeps its mesh in global state: one call at a time


def _reduction_for(n_faces: int, reduction: float | None, target_faces: int | None) -> float:
    if target_faces is not None:
        return max(0.0, 1.0 - float(target_faces) / max(n_faces, 1))
    return float(reduction or 0.0)


def simplify(points: np.ndarray, faces: np.ndarray, reduction: float | None = None, *,
             target_faces: int | None = None, preserve_border: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to ``reduction`` (fraction of triangles removed) or ``target_faces``.

    Returns float64 points and int64 faces without degenerate triangles or fins; the input
    itself when there is nothing to do. No topology guarantee (see :func:`decimate_closed`).
    """
    points = np.asarray(points, np.float64)
    faces = np.asarray(faces, np.int64)
    r = _reduction_for(len(faces), reduction, target_faces)
    if r <= 0 or len(faces) < 8:
        return points, faces
    import fast_simplification

    with _SIMPLIFY_LOCK:
        p, f = fast_simplification.simplify(points, faces, target_reduction=min(r, 0.9999),
                                            preserve_border=preserve_border)
    return drop_fins(np.asarray(p, np.float64), np.asarray(f, np.int64))


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
    total_vol = abs(signed_volume(points, faces)) or 1.0
    total_area = float(_areas(points, faces).sum()) or 1.0
    results: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
    for b in range(n_blocks):
        fb = faces[order[bounds[b]:bounds[b + 1]]]
        results.append(_decimate_block(points, fb, n, reduction, c0, volume_tol * total_vol / total_area,
                                       keep_topology))
    restore = np.array([r is None for r in results])
    for _round in range(5):
        out_p, out_f, face_block = _assemble_blocks(points, faces, order, bounds, results, restore)
        if not check_intersections:
            break
        hit = self_intersecting_faces(out_p, out_f)
        new = np.zeros(n_blocks, bool)
        new[face_block[hit]] = True
        new &= ~restore
        if not new.any():
            info["self_intersecting_faces"] = int(hit.sum())
            break
        restore |= new
    info["blocks"] = n_blocks
    info["restored_blocks"] = int(restore.sum())
    info["reduction"] = round(1.0 - len(out_f) / len(faces), 4)
    return out_p, out_f, info


def decimate_closed(points: np.ndarray, faces: np.ndarray, reduction: float | None = None, *,
                    target_faces: int | None = None, volume_tol: float = 0.02,
                    passes: int = 3) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Decimate to ``reduction`` (or ``target_faces``) when that keeps the surface closed and
    manifold; else as far as it can.

    First one quadric decimation of the whole surface; it is kept when the result is closed,
    consistently wound, edge- and vertex-manifold, within ``volume_tol`` of the volume and free
    of self-intersections (smooth organs and shells nearly always are). Otherwise the surface is
    decimated by :func:`guarded_decimate` in up to ``passes`` gentler passes (block grids of
    different sizes, so each pass also thins the previous pass's locked block borders). On
    one-voxel trabecular struts this stops short of the target.

    Returns
    -------
    points, faces, info
        ``info``: ``method`` (``"none"``, ``"quadric"`` or ``"guarded"``), ``reduction`` (reached),
        ``self_intersecting_faces`` (of the result, when it was checked).
    """
    points = np.asarray(points, np.float64)
    faces = np.asarray(faces, np.int64)
    reduction = _reduction_for(len(faces), reduction, target_faces)
    if reduction <= 0 or len(faces) < 8:
        return points, faces, {"method": "none", "reduction": 0.0}
    v0 = signed_volume(points, faces)
    p, f = simplify(points, faces, reduction)
    if len(f):
        t = topology_qa(f, len(p))
        if (t["watertight"] and t["manifold"] and t["consistently_oriented"]
                and abs(signed_volume(p, f) - v0) <= volume_tol * abs(v0)
                and not self_intersecting_faces(p, f).any()):
            return p, f, {"method": "quadric", "reduction": round(1.0 - len(f) / len(faces), 4),
                          "self_intersecting_faces": 0}
    del p, f
    step = 1.0 - (1.0 - reduction) ** (1.0 / passes)
    p, f = points, faces
    blocks = 0
    n_hit = None
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
        n_hit = info.get("self_intersecting_faces")
        blocks += info["restored_blocks"]
        if info["reduction"] < 0.01:
            break
    out = {"method": "guarded", "reduction": round(1.0 - len(f) / len(faces), 4), "restored_blocks": blocks}
    if n_hit is not None:
        out["self_intersecting_faces"] = n_hit
    return p, f, out


def _signed_vol_terms(tri: np.ndarray) -> np.ndarray:
    """Per-triangle signed volume terms of (M, 3, 3) corner positions (about the origin)."""
    return np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0


def _corners(points: np.ndarray, newp: np.ndarray, n: int, gf: np.ndarray) -> np.ndarray:
    """(M, 3, 3) corners of faces numbered globally (< n: ``points``, >= n: ``newp`` rows)."""
    tri = np.empty(gf.shape + (3,), np.float64)
    old = gf < n
    tri[old] = points[gf[old]]
    tri[~old] = newp[gf[~old] - n]
    return tri


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
            dv = _signed_vol_terms(_corners(points, newp, n, gf) - c0).sum() - _signed_vol_terms(points[fb] - c0).sum()
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
    dp, df = simplify(lp, local, reduction, preserve_border=True)
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
