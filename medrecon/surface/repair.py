"""Self-intersection relaxation after smoothing (keeping surfaces printable).

Where a structure is cut by the first or last slice, or two sheets lie a voxel apart,
windowed-sinc smoothing can push triangles through each other. The contour before smoothing has
no self-intersections, so the vertices of intersecting triangles and their neighbours are moved
back towards their unsmoothed positions, halving the smoothing there per round until no
triangle intersects (after the last round those vertices are fully unsmoothed). Only the
triangles around moved vertices are checked again (a grid over the changed region). Memory is
bounded for any input: the intersection search never materialises candidate pairs
(:mod:`medrecon.surface.intersections`).

The decimation that used to live here is :mod:`medrecon.surface.decimate` (the one decimation).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from medrecon.surface.intersections import self_intersecting_faces

__all__ = ["relax_self_intersections"]


def relax_self_intersections(points: np.ndarray, before: np.ndarray, faces: np.ndarray, *,
                             rounds: int = 6, find: Callable[..., np.ndarray] = self_intersecting_faces
                             ) -> tuple[np.ndarray, dict[str, Any]]:
    """Undo smoothing locally until no triangle cuts through another.

    Parameters
    ----------
    points : (N, 3) smoothed positions
    before : (N, 3) positions before smoothing (same vertices; assumed intersection-free)
    faces : (M, 3) int
    find : the intersection test, ``find(points, faces, active=None) -> (M,) bool``

    One full check, then each round re-checks only the pairs that involve a triangle with a
    moved vertex.

    Returns
    -------
    points, info
        ``info``: ``self_intersecting_faces_smoothed`` (found after smoothing),
        ``vertices_relaxed`` and ``self_intersecting_faces`` (left at the end, normally 0).
    """
    faces = np.asarray(faces, np.int64)
    points = np.asarray(points, np.float64)
    hit = find(points, faces)
    info: dict[str, Any] = {"self_intersecting_faces_smoothed": int(hit.sum()), "vertices_relaxed": 0}
    if not hit.any():
        info["self_intersecting_faces"] = 0
        return points, info
    pts = points.copy()
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
        hit = find(pts, faces, active=relaxed[faces].any(axis=1))
        if not hit.any():
            break
    info["vertices_relaxed"] = int(relaxed.sum())
    info["self_intersecting_faces"] = int(hit.sum())
    return pts, info
