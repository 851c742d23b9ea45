"""The finishing steps of the meshers on the device (PyTorch; CUDA, or the CPU fallback).

What :mod:`medrecon.surface.finish` (its CPU steps), :mod:`medrecon.surface.intersections`,
:mod:`medrecon.surface.repair` and :mod:`medrecon.surface.qa` do with numpy, one surface at a
time, done here for **many surfaces at once** on the tensors the GPU mesher already holds:
points ``(V, 3)`` float64, faces ``(F, 3)`` int64 into them, and the surface number of each
vertex ``vgroup`` (V,) and of each face ``fgroup`` (F,). Surfaces never share a vertex, so
every step works on the global numbering and sorts carry the surface number in their keys.

* :func:`coincident_vertices`, :func:`separate_coincident`: vertices whose float32 position
  (what STL stores) equals another's of the same surface, found with one lexicographic sort of
  (surface, x, y, z) bit patterns, and moved ``eps_mm`` apart along their normals.
* :func:`restore_volume`: the keep-volume offset along the normals, per surface.
* :func:`self_intersecting_faces`: a uniform grid of triangle boxes (keys sorted on the
  device; each pair tested once, in the cell holding the corner of its box overlap), then
  batched segment/triangle tests (Moeller-Trumbore in float64) with the numpy module's rules
  for neighbours; surfaces are taken in chunks of about ``chunk_faces`` triangles and candidate
  pairs in batches, so memory stays bounded.
* :func:`relax_self_intersections`: smoothing undone around intersecting triangles, halving
  per round, re-checking only the surfaces that still had hits.
* :func:`compute_qa` (from :mod:`medrecon.surface.device_qa`): the figures of
  :func:`medrecon.surface.qa.compute_qa` for every surface at once, one dict per surface.
* :func:`finish_surfaces`: the one finishing chain (:func:`medrecon.surface.finish.finish_surface`
  dispatches here when given tensors), these steps in its order; decimation on CPU threads.

The numpy implementations stay the reference: ``tests/surface/test_gpu_finish_equivalence.py``
checks the same coincident sets, the same intersecting triangles (planted intersections
included) and the same QA figures on the CPU fallback.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from medrecon.surface.device_qa import (_cross, _cross_terms, _group_bbox, _ones_group, _t,  # noqa: F401
                                        compute_qa, coincident_vertices, face_groups, signed_volumes,
                                        surface_areas, topology_qa, vertex_normals)

__all__ = ["pack", "face_groups", "vertex_normals", "coincident_vertices", "separate_coincident",
           "signed_volumes", "surface_areas", "restore_volume", "self_intersecting_faces",
           "relax_self_intersections", "topology_qa", "compute_qa", "finish_surfaces"]


# --------------------------------------------------------------------------- packing
def pack(meshes, device) -> tuple[Any, Any, Any, list[int], list[int]]:
    """Many ``(points, faces)`` numpy meshes as one set of tensors on ``device``.

    Returns ``(points float64, faces int64 global, vgroup, vstart, fstart)``."""
    torch = _t()
    nv = [len(p) for p, _ in meshes]
    nf = [len(f) for _, f in meshes]
    vstart = [0] + np.cumsum(nv).tolist()
    fstart = [0] + np.cumsum(nf).tolist()
    p = np.concatenate([np.asarray(p, np.float64).reshape(-1, 3) for p, _ in meshes]) if meshes else np.zeros((0, 3))
    f = (np.concatenate([np.asarray(f, np.int64).reshape(-1, 3) + s for (_, f), s in zip(meshes, vstart)])
         if meshes else np.zeros((0, 3), np.int64))
    g = np.repeat(np.arange(len(meshes)), nv)
    return (torch.as_tensor(p, device=device), torch.as_tensor(f, device=device),
            torch.as_tensor(g, device=device), vstart, fstart)


def restore_volume(points, faces, vgroup, n_groups: int, target, active=None):
    """Move each surface's vertices along their normals by one distance so that it encloses
    ``target[g]`` (as :func:`medrecon.surface.finish.restore_volume`: Newton steps on
    V(d) ~ V + A d along the normals and area of the input, at most two after the first).
    ``active`` (G,) bool: surfaces to touch (default all)."""
    torch = _t()
    act = torch.ones(n_groups, dtype=torch.bool, device=points.device) if active is None else active.clone()
    vol = signed_volumes(points, faces, vgroup, n_groups)
    area = surface_areas(points, faces, vgroup, n_groups)
    act &= (area > 0) & (target > 0) & ((target - vol).abs() > 1e-6 * target)
    if not bool(act.any()):
        return points
    safe_area = torch.where(area > 0, area, torch.ones_like(area))
    normals = vertex_normals(points, faces)
    d = torch.where(act, (target - vol) / safe_area, torch.zeros_like(vol))
    pts = points + d[vgroup, None] * normals
    for _ in range(2):
        vol = signed_volumes(pts, faces, vgroup, n_groups)
        act &= (target - vol).abs() > 1e-6 * target
        if not bool(act.any()):
            break
        d = d + torch.where(act, (target - vol) / safe_area, torch.zeros_like(vol))
        pts = points + d[vgroup, None] * normals
    return pts


# --------------------------------------------------------------------------- coincident points
def separate_coincident(points, faces, vgroup=None, n_groups: int | None = None, eps_mm: float = 1e-3):
    """Move apart distinct vertices of one surface that share a float32 position
    (:func:`medrecon.surface.finish.separate_coincident`): each by ``eps_mm`` along its own
    normal, a pseudo-random direction where that vanishes.

    Returns ``(points, moved)``: points (a new tensor when anything moved) and the number of
    vertices moved per surface, (G,) int64."""
    torch = _t()
    g = _ones_group(points.shape[0], points.device) if vgroup is None else vgroup
    ng = int(n_groups if n_groups is not None else (int(g.max()) + 1 if g.numel() else 0))
    dup = coincident_vertices(points, g)
    moved = torch.bincount(g[dup], minlength=ng)
    if not bool(dup.any()):
        return points, moved
    points = points.clone()
    idx = dup.nonzero().squeeze(1)
    normals = vertex_normals(points, faces)[idx]
    rng = np.random.default_rng(0)

    def random_dirs(k: int):
        r = rng.normal(size=(k, 3))
        return torch.as_tensor(r / np.linalg.norm(r, axis=1, keepdims=True), dtype=points.dtype, device=points.device)

    for _ in range(4):
        zero = torch.linalg.norm(normals, dim=1) < 0.5
        if bool(zero.any()):
            normals[zero] = random_dirs(int(zero.sum()))
        points[idx] += eps_mm * normals
        still = coincident_vertices(points, g)
        if not bool(still.any()):
            break
        idx = still.nonzero().squeeze(1)
        normals = random_dirs(idx.numel())
    return points, moved


# --------------------------------------------------------------------------- self-intersections
def _face_normals(points, faces):
    torch = _t()
    _, fn = _cross_terms(points, faces)
    return fn / torch.linalg.norm(fn, dim=1, keepdim=True).clamp(min=1e-300)


def _candidate_pairs(points, faces, fsel, fgroup, normals, chunk: int, focus=None):
    """Pairs (a, b), a < b, of the faces ``fsel`` (global face numbers, one or more whole
    surfaces) whose boxes overlap and that share no vertex, one vertex where the normals are
    more than 90 degrees apart, or an edge where they are folded onto each other (the rules of
    :func:`medrecon.surface.intersections.self_intersecting_faces`). Each pair comes once: it
    is taken in the grid cell that holds the low corner of the two boxes' overlap. ``focus``
    (F,) bool: only pairs with a face in it."""
    torch = _t()
    dev = points.device
    f = faces[fsel]
    m = f.shape[0]
    empty = torch.zeros((0, 2), dtype=torch.int64, device=dev)
    if m < 2:
        return empty
    tri = points[f]
    lo, hi = tri.amin(1), tri.amax(1)
    ext = float((points[f.reshape(-1)].amax(0) - points[f.reshape(-1)].amin(0)).max())
    pad = 1e-6 * (ext or 1.0)
    lo, hi = lo - pad, hi + pad
    e = torch.linalg.norm(tri[:, 1] - tri[:, 0], dim=1)
    cell = 2.0 * float(e.median()) if bool((e > 0).any()) else 1.0
    cell = max(cell, 1e-9)
    origin = lo.amin(0)
    span_ext = float((hi.amax(0) - origin).max())
    g = fgroup[fsel]
    g = g - g.min()
    n_g = int(g.max()) + 1
    for _ in range(40):  # memory bound: at most ~8 grid entries per triangle (as the numpy search)
        c0 = torch.floor((lo - origin) / cell).to(torch.int64)
        c1 = torch.floor((hi - origin) / cell).to(torch.int64)
        span = c1 - c0 + 1
        per = span.prod(1)
        if int(per.sum()) <= 8 * m + 64 and n_g * (span_ext / cell + 2) ** 3 < 2 ** 62:
            break
        cell *= 1.5
    dims = c1.amax(0) + 1
    dy, dz = int(dims[1]), int(dims[2])
    dxyz = int(dims[0]) * dy * dz
    tid = torch.repeat_interleave(torch.arange(m, device=dev), per)
    k = torch.arange(tid.numel(), device=dev) - torch.repeat_interleave(torch.cumsum(per, 0) - per, per)
    sy, sz = span[tid, 1], span[tid, 2]
    ox = k // (sy * sz)
    rem = k - ox * sy * sz
    oy = rem // sz
    oz = rem - oy * sz
    key = g[tid] * dxyz + ((c0[tid, 0] + ox) * dy + (c0[tid, 1] + oy)) * dz + (c0[tid, 2] + oz)
    del k, sy, sz, ox, rem, oy, oz
    key, order = torch.sort(key)
    tid = tid[order]
    del order
    n = key.numel()
    new = torch.ones(n, dtype=torch.bool, device=dev)
    new[1:] = key[1:] != key[:-1]
    starts = new.nonzero().squeeze(1)
    sizes = torch.diff(torch.cat([starts, torch.tensor([n], device=dev)]))
    left = torch.repeat_interleave(starts + sizes, sizes) - torch.arange(n, device=dev) - 1
    # per entry, in sorted order: box, first cell, vertices (contiguous: one gather per pass)
    lo_s, hi_s, c0_s, f_s = (x.index_select(0, tid) for x in (lo, hi, c0, f))
    gk = g.index_select(0, tid) * dxyz
    foc = None if focus is None else focus.index_select(0, fsel).index_select(0, tid)
    pairs = []
    # every (entry, later entry of its cell) at once, in chunks of about ``chunk`` pairs
    cum = torch.cumsum(left, 0)
    total = int(cum[-1]) if n else 0
    marks = torch.arange(chunk, total, chunk, device=dev) if total > chunk else cum[:0]
    cuts = [0] + torch.searchsorted(cum, marks, right=True).tolist() + [n]
    for e0, e1 in zip(cuts[:-1], cuts[1:]):
        if e1 <= e0:
            continue
        lc = left[e0:e1]
        i = torch.repeat_interleave(torch.arange(e0, e1, device=dev), lc)
        if i.numel() == 0:
            continue
        first = torch.cumsum(lc, 0) - lc
        j = i + 1 + torch.arange(i.numel(), device=dev) - torch.repeat_interleave(first, lc)
        del first
        if foc is not None:
            keep = foc.index_select(0, i) | foc.index_select(0, j)
            i, j = i[keep], j[keep]
        li, lj, hi_i, hj = (x.index_select(0, y) for x, y in ((lo_s, i), (lo_s, j), (hi_s, i), (hi_s, j)))
        ok = ((li <= hj) & (lj <= hi_i)).all(1)
        del li, lj, hi_i, hj
        # once only: in the cell of max(c0[a], c0[b]), which both boxes enter
        hc = torch.maximum(c0_s.index_select(0, i), c0_s.index_select(0, j))
        ok &= key.index_select(0, i) == gk.index_select(0, i) + (hc[:, 0] * dy + hc[:, 1]) * dz + hc[:, 2]
        del hc
        i, j = i[ok], j[ok]
        nshare = (f_s.index_select(0, i)[:, :, None] == f_s.index_select(0, j)[:, None, :]).sum((1, 2))
        a, b = tid.index_select(0, i), tid.index_select(0, j)
        na = normals.index_select(0, fsel.index_select(0, a))
        nb = normals.index_select(0, fsel.index_select(0, b))
        dot = (na * nb).sum(1)
        # no shared vertex; one, where the surface turns back (> 90 degrees); an edge (or all
        # three vertices), folded onto each other (> ~172 degrees: counted without a test)
        keep = (nshare == 0) | ((nshare == 1) & (dot < 0.0)) | ((nshare >= 2) & (dot < -0.99))
        a, b = a[keep], b[keep]
        pairs.append(torch.stack([torch.minimum(a, b), torch.maximum(a, b)], 1))
    del lo_s, hi_s, c0_s, f_s, gk
    if not pairs:
        return empty
    return fsel[torch.cat(pairs)]


def _segments_hit(p0, p1, a, b, c, eps):
    """Vectorised Moeller-Trumbore, as the numpy module's (same tolerances)."""
    torch = _t()
    d = p1 - p0
    e1 = b - a
    e2 = c - a
    h = _cross(d, e2)
    det = (e1 * h).sum(1)
    ok = det.abs() > eps
    inv = torch.where(ok, 1.0 / torch.where(ok, det, torch.ones_like(det)), torch.zeros_like(det))
    s = p0 - a
    u = inv * (s * h).sum(1)
    q = _cross(s, e1)
    w = inv * (d * q).sum(1)
    t = inv * (e2 * q).sum(1)
    tol = 1e-9
    return ok & (u >= -tol) & (w >= -tol) & (u + w <= 1 + tol) & (t >= -tol) & (t <= 1 + tol)


def _narrow(points, faces, pairs, eps_pair):
    """Which candidate pairs intersect (the CPU module's rules for shared vertices; pairs that
    share an edge came through the fold test already)."""
    torch = _t()
    fa, fb = faces[pairs[:, 0]], faces[pairs[:, 1]]
    n = pairs.shape[0]
    pos_a = torch.full((n,), -1, dtype=torch.int64, device=points.device)
    pos_b = pos_a.clone()
    for i in range(3):
        for j in range(3):
            eq = fa[:, i] == fb[:, j]
            pos_a = torch.where(eq, i, pos_a)
            pos_b = torch.where(eq, j, pos_b)
    ta, tb = points[fa], points[fb]
    free = pos_a < 0
    nshare = (fa[:, :, None] == fb[:, None, :]).sum((1, 2))
    hit = nshare >= 2
    ar = torch.arange(n, device=points.device)
    for t1, t2, pos in ((ta, tb, pos_a), (tb, ta, pos_b)):
        for i in range(3):
            h = _segments_hit(t1[:, i], t1[:, (i + 1) % 3], t2[:, 0], t2[:, 1], t2[:, 2], eps_pair)
            hit |= free & h
        k = pos.clamp(min=0)
        h = _segments_hit(t1[ar, (k + 1) % 3], t1[ar, (k + 2) % 3], t2[:, 0], t2[:, 1], t2[:, 2], eps_pair)
        hit |= (nshare == 1) & h
    return hit


def self_intersecting_faces(points, faces, vgroup=None, n_groups: int | None = None, *,
                            groups=None, focus=None, chunk_faces: int = 2_000_000, pair_batch: int = 4_000_000):
    """(F,) bool: faces that cut through another face of the same surface
    (:func:`medrecon.surface.intersections.self_intersecting_faces` for every surface at once).

    ``groups`` (G,) bool: check only those surfaces (others come back False). ``focus`` (F,)
    bool: test only pairs with at least one face in it (the faces that moved). Surfaces are
    handled in chunks of about ``chunk_faces`` triangles, candidate pairs ``pair_batch`` at a
    time, so memory stays bounded."""
    torch = _t()
    dev = points.device
    nf = faces.shape[0]
    out = torch.zeros(nf, dtype=torch.bool, device=dev)
    if nf < 2:
        return out
    vg = _ones_group(points.shape[0], dev) if vgroup is None else vgroup
    ng = int(n_groups if n_groups is not None else int(vg.max()) + 1)
    fg = face_groups(faces, vg)
    fn = _face_normals(points, faces)
    lo, hi = _group_bbox(points, vg, ng)
    scale = (hi - lo).amax(1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    eps_g = 1e-14 * scale * scale
    want = torch.ones(ng, dtype=torch.bool, device=dev) if groups is None else groups.to(dev)
    fcount = torch.bincount(fg, minlength=ng)
    fcount = torch.where(want, fcount, torch.zeros_like(fcount)).tolist()
    order = torch.sort(fg, stable=True).indices  # faces of each surface together
    fstart = np.r_[0, np.cumsum(torch.bincount(fg, minlength=ng).tolist())]
    chunk: list[int] = []
    size = 0

    def run(gs: list[int]) -> None:
        sel = torch.cat([order[int(fstart[q]):int(fstart[q + 1])] for q in gs])
        pairs = _candidate_pairs(points, faces, sel, fg, fn, pair_batch, focus)
        for s in range(0, pairs.shape[0], pair_batch):
            p = pairs[s:s + pair_batch]
            hit = _narrow(points, faces, p, eps_g[fg[p[:, 0]]])
            out[p[hit, 0]] = True
            out[p[hit, 1]] = True

    for q in range(ng):
        if fcount[q] < 2:
            continue
        if chunk and size + fcount[q] > chunk_faces:
            run(chunk)
            chunk, size = [], 0
        chunk.append(q)
        size += fcount[q]
    if chunk:
        run(chunk)
    return out


def relax_self_intersections(points, before, faces, vgroup=None, n_groups: int | None = None, *,
                             rounds: int = 6) -> tuple[Any, dict[str, Any]]:
    """Undo smoothing around intersecting triangles until none is left
    (:func:`medrecon.surface.repair.relax_self_intersections` for every surface at once).

    Returns ``(points, info)``; ``info`` holds (G,) int64 tensors
    ``self_intersecting_faces_smoothed``, ``vertices_relaxed`` and ``self_intersecting_faces``
    (left at the end, normally 0)."""
    torch = _t()
    dev = points.device
    vg = _ones_group(points.shape[0], dev) if vgroup is None else vgroup
    ng = int(n_groups if n_groups is not None else int(vg.max()) + 1)
    fg = face_groups(faces, vg)
    pts = points.clone()
    hit = self_intersecting_faces(pts, faces, vg, ng)
    found = torch.bincount(fg[hit], minlength=ng)
    info: dict[str, Any] = {"self_intersecting_faces_smoothed": found,
                            "vertices_relaxed": torch.zeros(ng, dtype=torch.int64, device=dev),
                            "self_intersecting_faces": found.clone()}
    if not bool(hit.any()):
        return pts, info
    relaxed = torch.zeros(pts.shape[0], dtype=torch.bool, device=dev)
    weight = torch.ones(pts.shape[0], dtype=pts.dtype, device=dev)
    for r in range(rounds):
        sel = torch.zeros(pts.shape[0], dtype=torch.bool, device=dev)
        sel[faces[hit].reshape(-1)] = True
        ring = torch.zeros_like(sel)
        ring[faces[sel[faces].any(1)].reshape(-1)] = True
        relaxed |= ring
        weight = torch.where(ring, torch.zeros_like(weight) if r == rounds - 1 else weight * 0.5, weight)
        pts = torch.where(ring[:, None], before + weight[:, None] * (points - before), pts)
        # new crossings need a moved triangle: faces that kept their vertices crossed nothing before
        # (those that did were moved), so only pairs with a moved face are tested again
        hit = self_intersecting_faces(pts, faces, vg, ng, groups=torch.bincount(vg[relaxed], minlength=ng) > 0,
                                      focus=relaxed[faces].any(1))
        if not bool(hit.any()):
            break
    info["vertices_relaxed"] = torch.bincount(vg[relaxed], minlength=ng)
    info["self_intersecting_faces"] = torch.bincount(fg[hit], minlength=ng)
    return pts, info


# --------------------------------------------------------------------------- the chain, batched
def finish_surfaces(points, faces, before, group, n_groups: int, *, smoothed: bool, reduction: float = 0.0,
                    target_volume_mm3=None, voxel_volume_mm3=None, with_qa: bool = True,
                    decimate=None, workers: int | None = None) -> tuple[Any, Any, Any, list[dict[str, Any]]]:
    """:func:`medrecon.surface.finish.finish_surface` for many surfaces packed in tensors, on
    their device (what that function runs when it is given tensors): the same steps in the same
    order - orient by the unsmoothed contour's volume, restore volume, separate coincident
    points, relax self-intersections, decimate (``decimate``, the chain's CPU step, per surface
    in threads: the one step that leaves the device), QA - and the same ``info`` fields.

    ``points``, ``before`` (V, 3) float64 LPS mm; ``faces`` (F, 3) global; ``group`` (V,)
    surface per vertex; ``target_volume_mm3`` and ``voxel_volume_mm3``: one value per surface
    (or None). Returns ``(points, faces, group, infos)``, one info dict per surface."""
    torch = _t()
    dev = points.device
    ng = int(n_groups)
    extra: list[dict[str, Any]] = [{} for _ in range(ng)]
    # 1. orient: outward by the signed volume of the unsmoothed closed contour
    flip = signed_volumes(before, faces, group, ng) < 0
    if bool(flip.any()):
        faces = torch.where(flip[face_groups(faces, group)][:, None], faces[:, [0, 2, 1]], faces)
    moved = smoothed
    target = None
    if target_volume_mm3 is not None:
        target = torch.as_tensor(np.asarray(target_volume_mm3, np.float64), device=dev)
        vol0 = signed_volumes(points, faces, group, ng)
        area = surface_areas(points, faces, group, ng)
        points = restore_volume(points, faces, group, ng, target, active=target > 0)
        off = torch.where(area > 0, (target - vol0) / torch.where(area > 0, area, torch.ones_like(area)),
                          torch.zeros_like(area)).tolist()
        for q, t in enumerate(target.tolist()):
            if t > 0:
                extra[q]["volume_offset_mm"] = round(float(off[q]), 5)
        moved = True
    n_hit = None
    disp = torch.zeros(ng, dtype=torch.float64, device=dev)
    if moved:
        points, _ = separate_coincident(points, faces, group, ng)
        points, relax = relax_self_intersections(points, before, faces, group, ng)
        n_hit = relax["self_intersecting_faces"]
        for q, k in enumerate(relax["self_intersecting_faces_smoothed"].tolist()):
            if k:
                extra[q]["self_intersections_relaxed"] = int(k)
        disp = disp.scatter_reduce(0, group, torch.linalg.norm(points - before, dim=1), "amax")
    if reduction > 0:
        points, faces, group, decs = _decimate_on_host(points, faces, group, ng, reduction, decimate, workers)
        hits = [d.get("self_intersecting_faces") for d in decs]
        n_hit = torch.as_tensor(hits, device=dev) if all(h is not None for h in hits) else None
        for q, d in enumerate(decs):
            extra[q].update(reduction_reached=d["reduction"], decimation=d["method"])
    if not with_qa:
        return points, faces, group, extra
    infos = compute_qa(points, faces, group, ng, voxel_volume_mm3=voxel_volume_mm3,
                       smoothing_displacement_mm=disp.tolist() if smoothed else [0.0] * ng)
    if n_hit is None:
        n_hit = torch.bincount(face_groups(faces, group)[self_intersecting_faces(points, faces, group, ng)],
                               minlength=ng)
    for q, (info, k) in enumerate(zip(infos, n_hit.tolist())):
        info["self_intersecting_faces"] = int(k)
        info.update(extra[q])
    return points, faces, group, infos


def _decimate_on_host(points, faces, group, ng: int, reduction: float, decimate, workers: int | None):
    """The chain's decimation step per surface, in CPU threads; the result packed back on the device."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    torch = _t()
    if decimate is None:  # the chain's CPU step (finish.CPU_STEPS.decimate)
        from medrecon.surface.decimate import decimate_closed as decimate
    vcount = torch.bincount(group, minlength=ng).tolist()
    fcount = torch.bincount(face_groups(faces, group), minlength=ng).tolist()
    vstart, fstart = np.r_[0, np.cumsum(vcount)], np.r_[0, np.cumsum(fcount)]
    order = torch.sort(face_groups(faces, group), stable=True).indices
    p_np = points.cpu().numpy()
    f_np = faces[order].cpu().numpy()

    def one(q: int):
        return decimate(p_np[vstart[q]:vstart[q + 1]], f_np[fstart[q]:fstart[q + 1]] - vstart[q], reduction)

    big_first = sorted(range(ng), key=lambda q: -fcount[q])
    with ThreadPoolExecutor(max_workers=max(1, min(int(workers or os.cpu_count() or 1), ng))) as pool:
        res = dict(zip(big_first, pool.map(one, big_first)))
    p, f, g, _, _ = pack([(res[q][0], res[q][1]) for q in range(ng)], points.device)
    return p, f, g, [res[q][2] for q in range(ng)]
