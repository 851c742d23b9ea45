"""The one decimation of the house: quadric edge collapse (fast-simplification), plain or closed.

* :func:`simplify` - the only call of ``fast_simplification.simplify`` in medrecon: to a
  reduction or a triangle count, degenerate triangles and fins removed. For surfaces that need
  not stay closed (a display copy in the HTML viewer, a multiview scan).
* :func:`decimate_closed` - decimation that keeps a closed, consistently wound, manifold
  surface closed and manifold, of the same topology, its volume within ``volume_tol`` and free
  of self-intersections: the plain quadric decimation when its result passes every check
  (smooth organs, photo meshes), else the topology-safe edge collapse of
  :mod:`medrecon.surface.qem` (one pass that refuses non-manifold collapses), re-run with the
  vertices around any self-intersection locked. Both meshers (through
  :mod:`medrecon.surface.finish`) and the photo pipeline use it.

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
from medrecon.surface.qa import topology_qa

__all__ = ["simplify", "decimate_closed", "drop_fins"]


_SIMPLIFY_LOCK = threading.Lock()  # fast-simplification keeps its mesh in global state: one call at a time


def _reduction_for(n_faces: int, reduction: float | None, target_faces: int | None) -> float:
    if target_faces is not None:
        return max(0.0, 1.0 - float(target_faces) / max(n_faces, 1))
    return float(reduction or 0.0)


def decimate_closed(points: np.ndarray, faces: np.ndarray, reduction: float | None = None, *,
                    target_faces: int | None = None, volume_tol: float = 0.02, max_error: float | None = None,
                    max_rounds: int = 5) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Decimate to ``reduction`` (or ``target_faces``) keeping the surface closed, manifold, of the
    same topology, within ``volume_tol`` of its volume and free of self-intersections.

    1. Surfaces with few tunnels (organs, shells, photo meshes): one unguarded quadric
       decimation of the whole surface (:func:`simplify`), kept when the result passes every
       check.
    2. Otherwise (and always for surfaces with many tunnels, such as trabecular bone, where
       the unguarded collapse is known to pinch): the topology-safe collapse of
       :mod:`medrecon.surface.qem`, which refuses non-manifold collapses in one pass. What it
       cannot see locally - distant sheets pushed through each other - is checked on the result;
       the input vertices that went into intersecting triangles are locked (with a ring that
       grows each round) and the collapse is run again, up to ``max_rounds`` times. A result
       outside ``volume_tol`` lowers the target (thin struts flatten at high reduction).
       No collapse moves the surface more than ``max_error`` (root mean square distance to the
       original planes around it; default 0.3 x the median edge, i.e. about 0.15 voxel): on
       one-voxel struts that, not the requested count, is where decimation stops.
       ``info["reduction"]`` is what was reached; when no round is clean, the input is kept
       (``method`` ``"refused"``).

    Returns
    -------
    points, faces, info
        ``info``: ``method`` (``"none"``, ``"quadric"``, ``"collapse"``, ``"refused"``),
        ``reduction`` (reached), ``rounds``, ``self_intersecting_faces`` (of the result).
    """
    from medrecon.surface.qem import collapse

    points = np.asarray(points, np.float64)
    faces = np.asarray(faces, np.int64)
    m = len(faces)
    reduction = _reduction_for(m, reduction, target_faces)
    if reduction <= 0 or m < 8:
        return points, faces, {"method": "none", "reduction": 0.0}
    v0 = signed_volume(points, faces)
    euler = len(np.unique(faces)) - m // 2  # V - E + F of a closed surface (E = 3F/2)
    if euler > -50:  # few tunnels: the plain quadric collapse nearly always stays clean
        p, f = simplify(points, faces, reduction)
        if len(f):
            t = topology_qa(f, len(p))
            if (t["watertight"] and t["manifold"] and t["consistently_oriented"]
                    and abs(signed_volume(p, f) - v0) <= volume_tol * abs(v0)
                    and not self_intersecting_faces(p, f).any()):
                return p, f, {"method": "quadric", "reduction": round(1.0 - len(f) / m, 4),
                              "self_intersecting_faces": 0}
        del p, f
    if max_error is None:
        e = np.linalg.norm(points[faces[::7, 1]] - points[faces[::7, 0]], axis=1)
        max_error = 0.3 * float(np.median(e))
    locked = np.zeros(len(points), bool)
    target = int(round((1.0 - reduction) * m))
    for rnd in range(1, max_rounds + 1):
        p, f, rep = collapse(points, faces, target, locked=locked, max_error=max_error)
        dv = abs(signed_volume(p, f) - v0)
        hit = self_intersecting_faces(p, f)
        if not hit.any() and dv <= volume_tol * abs(v0):
            return p, f, {"method": "collapse", "reduction": round(1.0 - len(f) / m, 4), "rounds": rnd,
                          "self_intersecting_faces": 0}
        if dv > volume_tol * abs(v0):  # flattened struts: aim lower
            target = int(round(m - 0.7 * (m - target)))
        if hit.any():  # keep the input vertices that went into crossing triangles (and a ring)
            bad = np.zeros(len(p), bool)
            bad[f[hit].reshape(-1)] = True
            for _ in range(rnd - 2):  # a growing ring from the third round on
                bad[f[bad[f].any(axis=1)].reshape(-1)] = True
            locked |= bad[rep]
    return points, faces, {"method": "refused", "reduction": 0.0, "rounds": max_rounds,
                           "self_intersecting_faces": int(self_intersecting_faces(points, faces).sum())}


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
