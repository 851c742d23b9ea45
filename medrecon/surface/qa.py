"""Per-structure mesh QA: the figures stored in ``SurfaceModel.qa`` and in ``report.json``.

All geometry is in the mesh's own coordinates (LPS millimetres for medrecon models). Every
check is vectorised (numpy / scipy.sparse), so QA costs well under a second per million
triangles.

Fields of :func:`compute_qa`:

``triangles``            number of triangles
``vertices``             number of vertices
``watertight``           every edge is shared by exactly two triangles
``consistently_oriented`` every edge is walked once in each direction (normals agree)
``edge_manifold``        no edge is shared by more than two triangles
``vertex_manifold``      the triangles around every vertex form a single fan
``manifold``             edge-manifold and vertex-manifold
``components``           number of connected pieces
``euler_characteristic`` V - E + F (2 per closed sphere-like piece)
``mesh_volume_mm3``      enclosed volume (divergence theorem; sign: + when normals point out)
``voxel_volume_mm3``     volume of the voxels of the structure (count x voxel volume)
``volume_diff_pct``      100 (mesh - voxel) / voxel
``surface_area_mm2``     total triangle area
``bbox_mm``              [[xmin, ymin, zmin], [xmax, ymax, zmax]] in the mesh coordinates
``smoothing_max_displacement_mm`` largest distance a vertex moved during smoothing
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

__all__ = ["compute_qa", "edge_stats", "surface_area", "signed_volume", "vertex_manifold"]


def surface_area(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Total area of the triangles (units of ``vertices`` squared)."""
    if len(faces) == 0:
        return 0.0
    v = vertices
    cr = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    return float(0.5 * np.linalg.norm(cr, axis=1).sum())


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume; positive when faces are counter-clockwise seen from outside."""
    if len(faces) == 0:
        return 0.0
    c = vertices.mean(0)
    a, b, d = (vertices[faces[:, k]] - c for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, d)).sum() / 6.0)


def _half_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed half-edges (3F, 2) in face order: (f, k) -> (faces[f,k], faces[f,(k+1)%3])."""
    a = faces.reshape(-1)
    b = faces[:, [1, 2, 0]].reshape(-1)
    return a, b


def _sorted_half_edges(faces: np.ndarray, n: int):
    a, b = _half_edges(faces)
    key = a * n + b
    order = np.argsort(key)
    return a, b, key, order, key[order]


def edge_stats(faces: np.ndarray, n_vertices: int | None = None) -> dict[str, Any]:
    """Edge counts: watertight, oriented, edge-manifold, number of unique edges.

    Sort-based (no hashing): one argsort of the directed half-edge keys, then a binary search
    for every half-edge's twin. The undirected count is only needed when that fast path fails.
    """
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return {"watertight": False, "consistently_oriented": False, "edge_manifold": True, "edges": 0}
    n = int(n_vertices if n_vertices is not None else faces.max() + 1)
    a, b, key, order, ks = _sorted_half_edges(faces, n)
    out = _edge_stats_sorted(a, b, ks, n)
    return {k: v for k, v in out.items() if not k.startswith("_")}


def _edge_stats_sorted(a, b, ks, n) -> dict[str, Any]:
    dup_directed = bool(np.any(ks[1:] == ks[:-1]))
    twin_key = b * n + a
    pos = np.minimum(np.searchsorted(ks, twin_key), ks.size - 1)
    has_twin = ks[pos] == twin_key
    if not dup_directed and bool(has_twin.all()):
        # every directed edge once, with its reverse: closed, oriented, two faces per edge
        return {"watertight": True, "consistently_oriented": True, "edge_manifold": True,
                "edges": int(ks.size // 2), "_twin_pos": pos}
    und = np.sort(np.minimum(a, b) * n + np.maximum(a, b))
    starts = np.flatnonzero(np.r_[True, und[1:] != und[:-1]])
    counts = np.diff(np.r_[starts, und.size])
    watertight = bool(np.all(counts == 2))
    return {"watertight": watertight, "consistently_oriented": bool(watertight and not dup_directed),
            "edge_manifold": bool(np.all(counts <= 2)), "edges": int(counts.size)}


def _fans_closed(a: np.ndarray, order: np.ndarray, twin_pos: np.ndarray, n: int) -> np.ndarray:
    """Fans per vertex of a closed, oriented, edge-manifold mesh (cycles of the corner rotation).

    Half-edge h starts at a[h]; rotating around that vertex, the next half-edge leaving it is the
    twin of the half-edge of the same face that arrives at it. Cycles of this permutation are
    the fans; they are counted by min-label pointer doubling (log2 of the largest fan steps).
    """
    h = np.arange(a.size)
    prev = 3 * (h // 3) + (h % 3 + 2) % 3
    twin = order[twin_pos]  # twin[h]: index of the reverse half-edge
    nxt = twin[prev]
    lab = h.copy()
    for _ in range(64):
        new = np.minimum(lab, lab[nxt])
        nxt = nxt[nxt]
        if np.array_equal(new, lab):
            break
        lab = new
    reps = a[lab == h]
    return np.bincount(reps, minlength=n)


def vertex_manifold(faces: np.ndarray, n_vertices: int | None = None) -> bool:
    """True when the triangles around each vertex form one fan (linked through shared edges).

    Closed oriented meshes use the fast corner-rotation test; other meshes link corners
    across every edge shared by exactly two triangles and count connected groups per vertex.
    """
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return True
    n = int(n_vertices if n_vertices is not None else faces.max() + 1)
    a, b, key, order, ks = _sorted_half_edges(faces, n)
    st = _edge_stats_sorted(a, b, ks, n)
    return _vertex_manifold(faces, n, a, b, order, st)


def _vertex_manifold(faces, n, a, b, order, st) -> bool:
    used = np.bincount(faces.reshape(-1), minlength=n) > 0
    if "_twin_pos" in st:
        return bool(np.all(_fans_closed(a, order, st["_twin_pos"], n)[used] == 1))
    if not st["edge_manifold"]:
        return False
    nf = len(faces)
    h = np.arange(3 * nf)
    c_first = h  # corner id of a = 3 f + k
    c_second = 3 * (h // 3) + (h % 3 + 1) % 3  # corner id of b
    key = np.minimum(a, b) * n + np.maximum(a, b)
    o = np.argsort(key, kind="stable")
    ks = key[o]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    counts = np.diff(np.r_[starts, ks.size])
    pair = starts[counts == 2]
    h1, h2 = o[pair], o[pair + 1]
    same = a[h1] == a[h2]  # same direction (inconsistent orientation) or opposite
    r1 = np.r_[c_first[h1], c_second[h1]]
    r2 = np.r_[np.where(same, c_first[h2], c_second[h2]), np.where(same, c_second[h2], c_first[h2])]
    g = sparse.coo_matrix((np.ones(r1.size, np.int8), (r1, r2)), shape=(3 * nf, 3 * nf)).tocsr()
    ncomp, comp = csgraph.connected_components(g, directed=False)
    corner_vertex = faces.reshape(-1)
    pairs = np.unique(corner_vertex.astype(np.int64) * ncomp + comp)
    fans_per_vertex = np.bincount(pairs // ncomp, minlength=n)
    return bool(np.all(fans_per_vertex[used] == 1))


def _components(faces: np.ndarray, n: int) -> int:
    if len(faces) == 0:
        return 0
    r = np.r_[faces[:, 0], faces[:, 1]]
    c = np.r_[faces[:, 1], faces[:, 2]]
    g = sparse.csr_matrix((np.ones(r.size, np.int8), (r, c)), shape=(n, n))
    ncomp, lab = csgraph.connected_components(g, directed=False)
    used = np.bincount(faces.ravel(), minlength=n) > 0
    return int(np.unique(lab[used]).size)


def compute_qa(vertices: np.ndarray, faces: np.ndarray, *, voxel_volume_mm3: float | None = None,
               smoothing_displacement_mm: float | None = None) -> dict[str, Any]:
    """QA figures for one closed surface (see module docstring for the fields).

    Parameters
    ----------
    vertices : (N, 3) float, mm (LPS for medrecon models)
    faces : (M, 3) int, counter-clockwise seen from outside
    voxel_volume_mm3 : float, optional
        Volume of the structure's voxels, to compare the mesh volume against.
    smoothing_displacement_mm : float, optional
        Largest vertex displacement caused by smoothing.

    Returns
    -------
    dict
        JSON-ready values (python bool/int/float/list).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    nv = int(len(vertices))
    if len(faces):
        ha, hb, _, order, ks = _sorted_half_edges(faces, nv)
        es = _edge_stats_sorted(ha, hb, ks, nv)
        vm = _vertex_manifold(faces, nv, ha, hb, order, es)
    else:
        es = {"watertight": False, "consistently_oriented": False, "edge_manifold": True, "edges": 0}
        vm = True
    vol = signed_volume(vertices, faces)
    out: dict[str, Any] = {
        "triangles": int(len(faces)),
        "vertices": nv,
        "watertight": es["watertight"],
        "consistently_oriented": es["consistently_oriented"],
        "edge_manifold": es["edge_manifold"],
        "vertex_manifold": vm,
        "manifold": bool(es["edge_manifold"] and vm),
        "components": _components(faces, nv),
        "euler_characteristic": int(nv - es["edges"] + len(faces)),
        "mesh_volume_mm3": round(vol, 3),
        "surface_area_mm2": round(surface_area(vertices, faces), 3),
        "bbox_mm": (np.round(np.stack([vertices.min(0), vertices.max(0)]), 3).tolist()
                    if nv else [[0.0] * 3, [0.0] * 3]),
    }
    if voxel_volume_mm3 is not None:
        out["voxel_volume_mm3"] = round(float(voxel_volume_mm3), 3)
        out["volume_diff_pct"] = (round(100.0 * (vol - voxel_volume_mm3) / voxel_volume_mm3, 3)
                                  if voxel_volume_mm3 > 0 else None)
    if smoothing_displacement_mm is not None:
        out["smoothing_max_displacement_mm"] = round(float(smoothing_displacement_mm), 4)
    return out
