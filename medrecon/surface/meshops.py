"""Small geometric operations on closed triangle meshes (numpy): signed volume, outward
winding, separating coincident vertices, restoring a volume by a normal offset. Points in any
metric frame (the mesher calls them in LPS mm)."""
from __future__ import annotations

import numpy as np

from medrecon.mesh import vertex_normals
from medrecon.surface import qa as _qa


def _signed_volume(points: np.ndarray, faces: np.ndarray) -> float:
    if faces.shape[0] == 0:
        return 0.0
    c = points.mean(0)
    a, b, d = points[faces[:, 0]] - c, points[faces[:, 1]] - c, points[faces[:, 2]] - c
    return float(np.einsum("ij,ij->i", a, np.cross(b, d)).sum() / 6.0)


def _outward(points: np.ndarray, faces: np.ndarray) -> bool:
    """Whether a closed, consistently wound surface has outward normals.

    Cheap test at the vertex with the largest x: the surface lies on the -x side of it, so the
    summed (area-weighted) normal of its triangles points to +x exactly when normals point out.
    """
    top = int(np.argmax(points[:, 0]))
    around = faces[np.flatnonzero((faces == top).any(axis=1))]
    p0, p1, p2 = (points[around[:, c]].astype(np.float64) for c in range(3))
    n = np.cross(p1 - p0, p2 - p0)
    sx = float(n[:, 0].sum())
    if sx == 0.0:  # degenerate tie: fall back to the enclosed volume
        return _signed_volume(np.asarray(points, np.float64), faces) >= 0
    return sx > 0


def separate_coincident(points: np.ndarray, faces: np.ndarray, eps_mm: float = 1e-3) -> tuple[np.ndarray, int]:
    """Move apart distinct vertices that smoothing put on the same point.

    Windowed-sinc smoothing can collapse a one-voxel-thin part so that two vertices of different
    sheets land on exactly the same position. The mesh is still closed and manifold by index, but
    STL keeps no indices: readers weld equal points and see a non-manifold pinch. Each such
    vertex is moved ``eps_mm`` along its own normal (a fixed pseudo-random direction where the
    normal vanishes), which keeps the sheets apart in every format.

    Returns the points (a modified copy when anything moved) and the number of vertices moved.
    """
    dup = _qa.coincident_vertices(points)
    n = int(dup.sum())
    if n == 0:
        return points, 0
    points = np.array(points, dtype=np.float64, copy=True)
    normals = vertex_normals(points, faces)[dup]
    rng = np.random.default_rng(0)
    for _ in range(4):
        zero = np.linalg.norm(normals, axis=1) < 0.5
        if zero.any():
            r = rng.normal(size=(int(zero.sum()), 3))
            normals[zero] = r / np.linalg.norm(r, axis=1, keepdims=True)
        points[dup] += eps_mm * normals
        still = _qa.coincident_vertices(points)
        if not still.any():
            break
        dup = still
        normals = rng.normal(size=(int(dup.sum()), 3))
    return points, n


def _restore_volume(points: np.ndarray, faces: np.ndarray, target: float) -> np.ndarray:
    """Move all vertices along their normals by one distance so the enclosed volume is ``target``.

    Two Newton steps on V(d) ~ V + A d (A = area) are enough for smoothing-sized changes.
    """
    pts = points
    for _ in range(3):
        vol = _signed_volume(pts, faces)
        area = _qa.surface_area(pts, faces)
        if area <= 0 or target <= 0:
            break
        d = (target - vol) / area
        if abs(target - vol) <= 1e-6 * target:
            break
        pts = pts + d * vertex_normals(pts, faces)
    return pts


# --------------------------------------------------------------------------- one mask
