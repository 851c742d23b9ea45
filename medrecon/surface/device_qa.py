"""Measuring many surfaces at once on the device (PyTorch; CUDA, or the CPU fallback): what
:mod:`medrecon.surface.qa` and :mod:`medrecon.mesh` compute with numpy, one surface at a time.

Surfaces are packed in tensors: points ``(V, 3)``, faces ``(F, 3)`` int64 into them (global
numbering), ``vgroup`` (V,) the surface of each vertex. Surfaces share no vertex, so every sort
carries the surface number in its key and per-surface figures come from one scatter.

* :func:`signed_volumes`, :func:`surface_areas`, :func:`vertex_normals`: one cross product per
  triangle (written out as numpy's ``np.cross`` computes it, so degenerate triangles give
  exactly numpy's zero normals);
* :func:`coincident_vertices`: vertices whose float32 position (what STL stores) equals
  another's of the same surface, by one lexicographic sort of (surface, x, y, z) bit patterns;
* :func:`topology_qa`, :func:`compute_qa`: :func:`medrecon.surface.qa.compute_qa`'s fields for
  every surface (watertight, oriented, edge- and vertex-manifold from sorted half-edge keys; fans
  and pieces by connected components with pointer jumping; volume, area, bounding box, welded
  topology), one dict per surface.

Used by :mod:`medrecon.surface.device_finish`; checked against the numpy versions in
``tests/surface/test_gpu_finish_equivalence.py``.
"""
from __future__ import annotations

from typing import Any

__all__ = ["face_groups", "vertex_normals", "signed_volumes", "surface_areas", "coincident_vertices",
           "topology_qa", "compute_qa"]

def _t():
    import torch

    return torch


def face_groups(faces, vgroup):
    """Surface number of each face (that of its first vertex)."""
    return vgroup[faces[:, 0]] if faces.shape[0] else vgroup[:0]


def _ones_group(n: int, device):
    torch = _t()
    return torch.zeros(n, dtype=torch.int64, device=device)


# --------------------------------------------------------------------------- geometry
def _cross(u, v):
    """Row-wise cross product written out as numpy's ``np.cross`` computes it (no fused
    multiply-add), so that degenerate triangles give exactly numpy's zero normals."""
    torch = _t()
    return torch.stack([u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1], u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                        u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]], 1)


def _cross_terms(points, faces):
    a = points[faces[:, 0]]
    return a, _cross(points[faces[:, 1]] - a, points[faces[:, 2]] - a)


def vertex_normals(points, faces):
    """Area-weighted unit vertex normals (zero where a vertex has no area around it); as
    :func:`medrecon.mesh.vertex_normals`."""
    torch = _t()
    _, fn = _cross_terms(points, faces)
    vn = torch.zeros_like(points)
    # corners in face order (f0c0, f0c1, f0c2, f1c0, ...), the summation order of the numpy version
    vn.index_add_(0, faces.reshape(-1), fn.repeat_interleave(3, dim=0))
    norm = torch.linalg.norm(vn, dim=1, keepdim=True)
    return vn / torch.where(norm > 0, norm, torch.ones_like(norm))


def _group_bbox(points, vgroup, n_groups: int):
    torch = _t()
    idx = vgroup[:, None].expand(-1, 3)
    lo = torch.full((n_groups, 3), float("inf"), dtype=points.dtype, device=points.device)
    hi = torch.full((n_groups, 3), float("-inf"), dtype=points.dtype, device=points.device)
    return lo.scatter_reduce(0, idx, points, "amin"), hi.scatter_reduce(0, idx, points, "amax")


def signed_volumes(points, faces, vgroup, n_groups: int):
    """Enclosed volume per surface (G,) float64, positive for outward faces; each surface
    centred on its bounding box first (as the numpy QA does, for precision)."""
    torch = _t()
    lo, hi = _group_bbox(points, vgroup, n_groups)
    c = ((lo + hi) / 2)[vgroup]
    a, cr = _cross_terms(points - c, faces)
    out = torch.zeros(n_groups, dtype=torch.float64, device=points.device)
    return out.index_add_(0, face_groups(faces, vgroup), (a * cr).sum(1).to(torch.float64)) / 6.0


def surface_areas(points, faces, vgroup, n_groups: int):
    """Total triangle area per surface (G,) float64."""
    torch = _t()
    _, cr = _cross_terms(points, faces)
    out = torch.zeros(n_groups, dtype=torch.float64, device=points.device)
    return out.index_add_(0, face_groups(faces, vgroup), 0.5 * torch.linalg.norm(cr, dim=1).to(torch.float64))


def coincident_vertices(points, vgroup=None):
    """(V,) bool: vertices whose float32 position equals another's of the same surface (as
    :func:`medrecon.surface.qa.coincident_vertices`, all surfaces in one sort)."""
    torch = _t()
    n = points.shape[0]
    out = torch.zeros(n, dtype=torch.bool, device=points.device)
    if n < 2:
        return out
    g = _ones_group(n, points.device) if vgroup is None else vgroup
    bits = (points.to(torch.float32) + 0.0).contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    k1 = g * (1 << 32) + bits[:, 0]
    k2 = bits[:, 1] * (1 << 32) + bits[:, 2]
    o = torch.sort(k2, stable=True).indices
    o = o[torch.sort(k1[o], stable=True).indices]
    same = (k1[o][1:] == k1[o][:-1]) & (k2[o][1:] == k2[o][:-1])
    out[o[1:][same]] = True
    out[o[:-1][same]] = True
    return out


# --------------------------------------------------------------------------- topology
def _components(n: int, u, v):
    """Connected components of the graph on ``n`` nodes with edges (u, v): the smallest node of
    each node's component (hooking of roots to the smaller root, then pointer jumping)."""
    torch = _t()
    parent = torch.arange(n, device=u.device)
    for _ in range(200):
        pu, pv = parent[u], parent[v]
        diff = pu != pv
        if not bool(diff.any()):
            break
        lo, hi = torch.minimum(pu, pv)[diff], torch.maximum(pu, pv)[diff]
        parent = parent.scatter_reduce(0, hi, lo, "amin")
        for _ in range(64):
            pp = parent[parent]
            if bool((pp == parent).all()):
                break
            parent = pp
    return parent


def topology_qa(faces, vgroup, n_groups: int) -> list[dict[str, Any]]:
    """:func:`medrecon.surface.qa.topology_qa` of every surface (faces with global vertex
    numbers; ``vertices`` counts every vertex of the surface, used or not)."""
    torch = _t()
    dev = faces.device
    nv = vgroup.shape[0]
    nvert = torch.bincount(vgroup, minlength=n_groups)
    nf = faces.shape[0]
    if nf == 0:
        return [_empty_topology(int(x)) for x in nvert.tolist()]
    fg = face_groups(faces, vgroup)
    ntri = torch.bincount(fg, minlength=n_groups)
    a = faces.reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    key = (lo * nv + hi) * 2 + (a > b).to(torch.int64)
    ks, order = torch.sort(key)
    edge = ks >> 1
    dirn = ks & 1
    h = ks.numel()
    start = torch.ones(h, dtype=torch.bool, device=dev)
    start[1:] = edge[1:] != edge[:-1]
    starts = start.nonzero().squeeze(1)
    counts = torch.diff(torch.cat([starts, torch.tensor([h], device=dev)]))
    eg = vgroup[lo[order[starts]]]
    nedge = torch.bincount(eg, minlength=n_groups)
    not2 = torch.bincount(eg[counts != 2], minlength=n_groups)
    over2 = torch.bincount(eg[counts > 2], minlength=n_groups)
    two = starts[counts == 2]
    same_dir = dirn[two] == dirn[two + 1]
    bad_dir = torch.bincount(eg[counts == 2][same_dir], minlength=n_groups)
    watertight = not2 == 0
    edge_manifold = over2 == 0
    oriented = watertight & (bad_dir == 0)
    # fans: corners linked across every two-triangle edge; one component per fan
    h1, h2 = order[two], order[two + 1]

    def second(x):
        return 3 * (x // 3) + (x % 3 + 1) % 3

    same = a[h1] == a[h2]
    u = torch.cat([h1, second(h1)])
    v = torch.cat([torch.where(same, h2, second(h2)), torch.where(same, second(h2), h2)])
    croot = _components(3 * nf, u, v)
    fans = torch.bincount(vgroup[a[croot == torch.arange(3 * nf, device=dev)]], minlength=n_groups)
    used = torch.zeros(nv, dtype=torch.bool, device=dev)
    used[a] = True
    nused = torch.bincount(vgroup[used], minlength=n_groups)
    vertex_manifold = edge_manifold & (fans == nused)
    # pieces: vertices linked by edges
    vroot = _components(nv, a, b)
    is_root = used & (vroot == torch.arange(nv, device=dev))
    comps = torch.bincount(vgroup[is_root], minlength=n_groups)
    rows = torch.stack([ntri, nvert, watertight.long(), oriented.long(), edge_manifold.long(),
                        vertex_manifold.long(), comps, nvert - nedge + ntri], 1).tolist()
    out = []
    for t, n, w, o, em, vm, c, eu in rows:
        if t == 0:
            out.append(_empty_topology(n))
            continue
        out.append({"triangles": t, "vertices": n, "watertight": bool(w), "consistently_oriented": bool(o),
                    "edge_manifold": bool(em), "vertex_manifold": bool(vm), "manifold": bool(em and vm),
                    "components": c, "euler_characteristic": eu})
    return out


def _empty_topology(n: int) -> dict[str, Any]:
    return {"triangles": 0, "vertices": n, "watertight": False, "consistently_oriented": False,
            "edge_manifold": True, "vertex_manifold": True, "manifold": False, "components": 0,
            "euler_characteristic": n}


def _welded(points, faces, vgroup, n_groups: int, dup) -> dict[int, dict[str, Any]]:
    """Welded topology (identical float32 positions merged) of the surfaces that have
    coincident vertices (:func:`medrecon.surface.qa.welded_qa`)."""
    torch = _t()
    groups = torch.bincount(vgroup[dup], minlength=n_groups) > 0
    if not bool(groups.any()):
        return {}
    bits = (points.to(torch.float32) + 0.0).contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    key = torch.stack([vgroup, bits[:, 0], bits[:, 1], bits[:, 2]], 1)
    uniq, inv = torch.unique(key, dim=0, return_inverse=True)
    wg = uniq[:, 0]
    w = inv[faces]
    w = w[(w[:, 0] != w[:, 1]) & (w[:, 1] != w[:, 2]) & (w[:, 0] != w[:, 2])]
    w = w[groups[wg[w[:, 0]]]]
    topo = topology_qa(w, wg, n_groups)
    nuniq = torch.bincount(wg, minlength=n_groups)
    ncoin = (torch.bincount(vgroup, minlength=n_groups) - nuniq).tolist()
    out = {}
    for q in groups.nonzero().squeeze(1).tolist():
        t = topo[q]
        out[q] = {"coincident_vertices": int(ncoin[q]), "watertight_welded": bool(t["watertight"]),
                  "manifold_welded": bool(t["manifold"])}
    return out


def compute_qa(points, faces, vgroup, n_groups: int, *, voxel_volume_mm3=None,
               smoothing_displacement_mm=None) -> list[dict[str, Any]]:
    """:func:`medrecon.surface.qa.compute_qa` of every surface: one dict per surface, the same
    fields and rounding. ``voxel_volume_mm3`` and ``smoothing_displacement_mm``: sequences
    (one value per surface) or None."""
    torch = _t()
    topo = topology_qa(faces, vgroup, n_groups)
    vol = signed_volumes(points, faces, vgroup, n_groups).tolist()
    area = surface_areas(points, faces, vgroup, n_groups).tolist()
    lo, hi = _group_bbox(points.to(torch.float64), vgroup, n_groups)
    lo, hi = lo.tolist(), hi.tolist()
    welded = _welded(points, faces, vgroup, n_groups, coincident_vertices(points, vgroup))
    out = []
    for q in range(n_groups):
        d = dict(topo[q])
        if d["triangles"] == 0 or d["vertices"] == 0:
            d.update(mesh_volume_mm3=0.0, surface_area_mm2=0.0, bbox_mm=[[0.0] * 3, [0.0] * 3])
        else:
            d.update(mesh_volume_mm3=round(float(vol[q]), 3), surface_area_mm2=round(float(area[q]), 3),
                     bbox_mm=[[round(float(x), 3) for x in lo[q]], [round(float(x), 3) for x in hi[q]]])
        if d["triangles"] == 0:
            d.update(coincident_vertices=0, watertight_welded=False, manifold_welded=False)
        elif q in welded:
            d.update(welded[q])
        else:
            d.update(coincident_vertices=0, watertight_welded=d["watertight"], manifold_welded=d["manifold"])
        if voxel_volume_mm3 is not None:
            vv = float(voxel_volume_mm3[q])
            d["voxel_volume_mm3"] = round(vv, 3)
            d["volume_diff_pct"] = round(100.0 * (d["mesh_volume_mm3"] - vv) / vv, 3) if vv > 0 else None
        if smoothing_displacement_mm is not None:
            d["smoothing_max_displacement_mm"] = round(float(smoothing_displacement_mm[q]), 4)
        out.append(d)
    return out
