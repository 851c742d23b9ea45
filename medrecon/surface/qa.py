"""Per-structure mesh QA: the figures stored in ``SurfaceModel.qa`` and in ``report.json``.

All geometry is in the mesh's own coordinates (LPS millimetres for medrecon models). Every
check is vectorised (numpy / scipy.sparse, no Python loop over elements) and sort-based, so
QA of a two-million-triangle surface takes about a second. Topology depends on the faces
only (:func:`topology_qa`), so it can run while the points are still being smoothed.

Fields of :func:`compute_qa`:

``triangles``            number of triangles
``vertices``             number of vertices
``watertight``           every edge is shared by exactly two triangles
``consistently_oriented`` every edge is walked once in each direction (normals agree)
``edge_manifold``        no edge is shared by more than two triangles
``vertex_manifold``      the triangles around every vertex form a single fan
``manifold``             edge-manifold and vertex-manifold
``components``           number of connected pieces
``euler_characteristic`` V - E + F (2 per closed sphere-like piece, 0 per torus)
``mesh_volume_mm3``      enclosed volume (divergence theorem; + when normals point out)
``voxel_volume_mm3``     volume of the voxels of the structure (count x voxel volume)
``volume_diff_pct``      100 (mesh - voxel) / voxel
``surface_area_mm2``     total triangle area
``bbox_mm``              [[xmin, ymin, zmin], [xmax, ymax, zmax]] in the mesh coordinates
``smoothing_max_displacement_mm`` largest distance a vertex moved during smoothing
``coincident_vertices``  vertices that share their float32 position with another one
``watertight_welded``    watertight after welding identical float32 positions, as an STL
                         reader or a printer's slicer sees the file (index-free formats)
``manifold_welded``      edge- and vertex-manifold after that welding
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from medrecon.mesh import signed_volume  # the one signed volume (ground floor); re-exported

__all__ = ["compute_qa", "topology_qa", "geometry_qa", "edge_stats", "surface_area", "signed_volume",
           "vertex_manifold", "welded_qa", "coincident_vertices", "surface_error"]


# --------------------------------------------------------------------------- geometry
def _cross(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = vertices[faces[:, 0]].astype(np.float64, copy=False)
    cr = np.cross(vertices[faces[:, 1]] - a, vertices[faces[:, 2]] - a)
    return a, cr


def surface_area(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Total area of the triangles (units of ``vertices`` squared)."""
    if len(faces) == 0:
        return 0.0
    _, cr = _cross(np.asarray(vertices, np.float64), faces)
    return float(0.5 * np.sqrt(np.einsum("ij,ij->i", cr, cr)).sum())


def geometry_qa(vertices: np.ndarray, faces: np.ndarray) -> dict[str, Any]:
    """Volume, area and bounding box with one cross product per triangle."""
    v = np.asarray(vertices, np.float64)
    if len(faces) == 0 or len(v) == 0:
        return {"mesh_volume_mm3": 0.0, "surface_area_mm2": 0.0, "bbox_mm": [[0.0] * 3, [0.0] * 3]}
    lo, hi = v.min(0), v.max(0)
    # centred float32 per-triangle terms (relative error ~1e-7 each), summed in float64
    c = (v - (lo + hi) / 2).astype(np.float32)
    a = c[faces[:, 0]]
    cr = np.cross(c[faces[:, 1]] - a, c[faces[:, 2]] - a)
    vol = np.einsum("ij,ij->i", a, cr).sum(dtype=np.float64) / 6.0
    area = 0.5 * np.sqrt(np.einsum("ij,ij->i", cr, cr)).sum(dtype=np.float64)
    return {
        "mesh_volume_mm3": round(float(vol), 3),
        "surface_area_mm2": round(float(area), 3),
        "bbox_mm": np.round(np.stack([lo, hi]), 3).tolist(),
    }


# --------------------------------------------------------------------------- topology
def _half_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed half-edges in face order: h = 3 f + k goes faces[f,k] -> faces[f,(k+1)%3]."""
    return faces.reshape(-1), faces[:, [1, 2, 0]].reshape(-1)


class _Edges:
    """Half-edges sorted by (undirected edge, direction): one argsort serves every test."""

    def __init__(self, faces: np.ndarray, n: int):
        self.a, self.b = _half_edges(faces)
        lo = np.minimum(self.a, self.b)
        hi = np.maximum(self.a, self.b)
        key = (lo * n + hi) * 2 + (self.a > self.b)
        self.order = np.argsort(key)
        ks = key[self.order]
        self.edge = ks >> 1
        self.dirn = ks & 1
        h = ks.size
        # fast path: the sorted list is pairs (edge, 0), (edge, 1) with distinct edges
        self.closed_oriented = bool(
            h % 2 == 0
            and np.array_equal(self.edge[0::2], self.edge[1::2])
            and not np.any(self.dirn[0::2]) and np.all(self.dirn[1::2])
            and not np.any(self.edge[2::2] == self.edge[1:-1:2])
        )
        if self.closed_oriented:
            self.n_edges = h // 2
            self.watertight = self.edge_manifold = self.oriented = True
        else:
            starts = np.flatnonzero(np.r_[True, self.edge[1:] != self.edge[:-1]])
            counts = np.diff(np.r_[starts, h])
            self.n_edges = int(counts.size)
            self.watertight = bool(np.all(counts == 2))
            self.edge_manifold = bool(np.all(counts <= 2))
            # oriented: each two-triangle edge is walked once each way
            two = starts[counts == 2]
            self.oriented = bool(self.watertight and np.all(self.dirn[two] != self.dirn[two + 1]))

    def twin(self) -> np.ndarray:
        """twin[h] = the reverse half-edge (closed, oriented meshes only)."""
        o = self.order.astype(np.int32 if self.order.size < 2**31 else np.int64)
        tw = np.empty_like(o)
        tw[o[0::2]] = o[1::2]
        tw[o[1::2]] = o[0::2]
        return tw


def _fans_closed(a: np.ndarray, twin: np.ndarray, n: int) -> np.ndarray:
    """Fans per vertex of a closed, oriented, edge-manifold mesh (cycles of the corner rotation).

    Half-edge h starts at a[h]; rotating around that vertex, the next half-edge leaving it is the
    twin of the half-edge of the same face that arrives at it. Cycles of this permutation are
    the fans; they are counted by min-label pointer doubling (log2 of the largest fan steps).
    """
    h = np.arange(a.size, dtype=twin.dtype)
    prev = h - h % 3 + (h + 2) % 3
    nxt = twin[prev]
    lab = h.copy()
    for _ in range(64):
        new = np.minimum(lab, lab[nxt])
        if np.array_equal(new, lab):
            break
        lab = new
        nxt = nxt[nxt]
    return np.bincount(a[lab == h], minlength=n)


def vertex_fans(faces: np.ndarray, n: int) -> np.ndarray:
    """Number of triangle fans around each vertex (corners linked across two-triangle edges)."""
    nf = len(faces)
    a = faces.reshape(-1).astype(np.int64)
    b = faces[:, [1, 2, 0]].reshape(-1).astype(np.int64)
    key = np.minimum(a, b) * n + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    counts = np.diff(np.r_[starts, ks.size])
    pair = starts[counts == 2]
    h1, h2 = order[pair], order[pair + 1]

    def second(h):  # the corner at the end vertex of half-edge h
        return 3 * (h // 3) + (h % 3 + 1) % 3

    same = a[h1] == a[h2]
    r1 = np.r_[h1, second(h1)]
    r2 = np.r_[np.where(same, h2, second(h2)), np.where(same, second(h2), h2)]
    g = sparse.coo_matrix((np.ones(r1.size, np.int8), (r1, r2)), shape=(3 * nf, 3 * nf)).tocsr()
    ncomp, comp = csgraph.connected_components(g, directed=False)
    pairs = np.unique(a * ncomp + comp)
    return np.bincount(pairs // ncomp, minlength=n)


def _vertex_manifold_general(faces: np.ndarray, n: int, e=None) -> bool:
    """Corners linked across every two-triangle edge; one fan per used vertex = manifold."""
    fans = vertex_fans(faces, n)
    used = np.bincount(faces.reshape(-1), minlength=n) > 0
    return bool(np.all(fans[used] == 1))


def _components(faces: np.ndarray, n: int) -> int:
    if len(faces) == 0:
        return 0
    r = np.r_[faces[:, 0], faces[:, 1]]
    c = np.r_[faces[:, 1], faces[:, 2]]
    g = sparse.csr_matrix((np.ones(r.size, np.int8), (r, c)), shape=(n, n))
    _, lab = csgraph.connected_components(g, directed=False)
    used = np.bincount(faces.reshape(-1), minlength=n) > 0
    return int(np.unique(lab[used]).size)


def topology_qa(faces: np.ndarray, n_vertices: int) -> dict[str, Any]:
    """Watertight / oriented / manifold / components / Euler characteristic from faces alone."""
    faces = np.asarray(faces, dtype=np.int64)
    n = int(n_vertices)
    if len(faces) == 0:
        return {"triangles": 0, "vertices": n, "watertight": False, "consistently_oriented": False,
                "edge_manifold": True, "vertex_manifold": True, "manifold": False, "components": 0,
                "euler_characteristic": n}
    e = _Edges(faces, n)
    if e.closed_oriented:
        used = np.bincount(faces.reshape(-1), minlength=n) > 0
        vm = bool(np.all(_fans_closed(e.a, e.twin(), n)[used] == 1))
    elif e.edge_manifold:
        vm = _vertex_manifold_general(faces, n, e)
    else:
        vm = False
    return {
        "triangles": int(len(faces)),
        "vertices": n,
        "watertight": e.watertight,
        "consistently_oriented": e.oriented,
        "edge_manifold": e.edge_manifold,
        "vertex_manifold": vm,
        "manifold": bool(e.edge_manifold and vm),
        "components": _components(faces, n),
        "euler_characteristic": int(n - e.n_edges + len(faces)),
    }


def edge_stats(faces: np.ndarray, n_vertices: int | None = None) -> dict[str, Any]:
    """Watertight, oriented, edge-manifold and the number of unique edges."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return {"watertight": False, "consistently_oriented": False, "edge_manifold": True, "edges": 0}
    e = _Edges(faces, int(n_vertices if n_vertices is not None else faces.max() + 1))
    return {"watertight": e.watertight, "consistently_oriented": e.oriented,
            "edge_manifold": e.edge_manifold, "edges": e.n_edges}


def vertex_manifold(faces: np.ndarray, n_vertices: int | None = None) -> bool:
    """True when the triangles around each vertex form one fan (linked through shared edges)."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return True
    return topology_qa(faces, int(n_vertices if n_vertices is not None else faces.max() + 1))["vertex_manifold"]


def coincident_vertices(points: np.ndarray) -> np.ndarray:
    """Boolean mask of vertices whose float32 position (as STL stores it) equals another's.

    Sort-based and cheap when nothing coincides: distinct smoothed vertices rarely share even
    their x coordinate, so only vertices with a repeated x are compared in full.
    """
    p32 = np.asarray(points, dtype=np.float32) + np.float32(0.0)  # -0.0 -> 0.0
    out = np.zeros(len(p32), bool)
    if len(p32) < 2:
        return out
    order = np.argsort(p32[:, 0], kind="stable")
    xs = p32[order, 0]
    eq = xs[1:] == xs[:-1]
    same_x = np.zeros(len(xs), bool)
    same_x[1:] |= eq
    same_x[:-1] |= eq
    cand = order[same_x]
    if len(cand) < 2:
        return out
    keys = np.ascontiguousarray(p32[cand]).view(np.dtype((np.void, 12))).ravel()
    _, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    out[cand[counts[inv.reshape(-1)] > 1]] = True
    return out


def welded_qa(vertices: np.ndarray, faces: np.ndarray) -> dict[str, Any]:
    """Topology after welding vertices with identical float32 positions.

    STL stores no vertex indices: readers (trimesh, printers' slicers) weld points that are
    equal. Two distinct vertices that smoothing moved onto the same float32 position - a thin
    part collapsing, a pinch - are one point there, and may break watertightness.
    """
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return {"coincident_vertices": 0, "watertight_welded": False, "manifold_welded": False}
    if not coincident_vertices(vertices).any():
        return {"coincident_vertices": 0, "watertight_welded": None, "manifold_welded": None}
    v32 = np.ascontiguousarray(np.asarray(vertices, dtype=np.float32) + np.float32(0.0))  # -0.0 -> 0.0
    keys = v32.view(np.dtype((np.void, 12))).ravel()
    uniq, inverse = np.unique(keys, return_inverse=True)
    coincident = int(len(v32) - len(uniq))
    if coincident == 0:
        return {"coincident_vertices": 0, "watertight_welded": None, "manifold_welded": None}
    welded = inverse.reshape(-1)[faces]
    welded = welded[(welded[:, 0] != welded[:, 1]) & (welded[:, 1] != welded[:, 2]) & (welded[:, 0] != welded[:, 2])]
    t = topology_qa(welded, len(uniq))
    return {"coincident_vertices": coincident, "watertight_welded": bool(t["watertight"]),
            "manifold_welded": bool(t["manifold"])}


def compute_qa(vertices: np.ndarray, faces: np.ndarray, *, voxel_volume_mm3: float | None = None,
               smoothing_displacement_mm: float | None = None,
               topology: dict[str, Any] | None = None) -> dict[str, Any]:
    """QA figures for one closed surface (see module docstring for the fields).

    Parameters
    ----------
    vertices : (N, 3) float, mm (LPS for medrecon models)
    faces : (M, 3) int, counter-clockwise seen from outside
    voxel_volume_mm3 : float, optional
        Volume of the structure's voxels, to compare the mesh volume against.
    smoothing_displacement_mm : float, optional
        Largest vertex displacement caused by smoothing.
    topology : dict, optional
        A :func:`topology_qa` result for these faces, computed earlier (e.g. during smoothing).

    Returns
    -------
    dict
        JSON-ready values (python bool/int/float/list).
    """
    faces = np.asarray(faces, dtype=np.int64)
    out = dict(topology) if topology is not None else topology_qa(faces, len(vertices))
    out.update(geometry_qa(vertices, faces))
    welded = welded_qa(vertices, faces)
    if welded["watertight_welded"] is None:  # no coincident points: welding changes nothing
        welded.update(watertight_welded=out["watertight"], manifold_welded=out["manifold"])
    out.update(welded)
    if voxel_volume_mm3 is not None:
        vol = out["mesh_volume_mm3"]
        out["voxel_volume_mm3"] = round(float(voxel_volume_mm3), 3)
        out["volume_diff_pct"] = (round(100.0 * (vol - voxel_volume_mm3) / voxel_volume_mm3, 3)
                                  if voxel_volume_mm3 > 0 else None)
    if smoothing_displacement_mm is not None:
        out["smoothing_max_displacement_mm"] = round(float(smoothing_displacement_mm), 4)
    return out


# --------------------------------------------------------------------------- accuracy
def surface_error(vertices: np.ndarray, shape: Any) -> dict[str, float]:
    """Distance (mm) from mesh vertices (N, 3, LPS mm) to the true surface.

    ``shape`` is anything with an exact signed distance function: an object with ``.sdf(points)``
    (the analytic shapes of :mod:`medrecon.phantoms`) or a callable ``sdf(points)``, in mm,
    negative inside.

    Returns ``mean``, ``rms``, ``max`` of the unsigned distance and ``bias`` (mean signed
    distance; positive = mesh lies outside the true surface).
    """
    sdf = shape.sdf if hasattr(shape, "sdf") else shape
    d = sdf(np.asarray(vertices, dtype=np.float64))
    a = np.abs(d)
    return {"mean": float(a.mean()), "rms": float(np.sqrt(np.mean(d * d))),
            "max": float(a.max()), "bias": float(d.mean())}
