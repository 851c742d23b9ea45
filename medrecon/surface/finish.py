"""The one finishing chain: what both meshers do to a structure's surface after smoothing.

:func:`medrecon.surface.mesher.build_surfaces` (VTK) and
:func:`medrecon.surface.gpu.build_surfaces_gpu` (PyTorch) contour and smooth in their own way,
then hand every structure's surface to :func:`finish_surface`, which runs these steps in order:

1. **orient** - wind the triangles outward, decided by the signed volume of the *unsmoothed*
   closed contour (a fold of the smoothed surface cannot fool it; a mirrored affine is handled);
2. **restore volume** (``keep_volume``, or the intensity iso-surface's voxel volume) - move every
   vertex along its normal by one common distance so the surface encloses the target volume;
3. **separate coincident points** - distinct vertices that smoothing put on one float32 point
   are moved apart (STL readers would weld them into a pinch);
4. **relax self-intersections** - where smoothing pushed triangles through each other, move
   those vertices back towards the contour until none intersect;
5. **decimate** (``reduction > 0``) - the one closed decimation (:mod:`medrecon.surface.decimate`);
6. **QA** - :func:`medrecon.surface.qa.compute_qa` plus the self-intersection count.

Step signatures (:class:`Steps`; every array is numpy, points ``(N, 3) float64`` in LPS mm,
faces ``(M, 3) int64``, counter-clockwise seen from outside after step 1)::

    orient(before, faces) -> faces
    restore_volume(points, faces, target_mm3) -> points
    find_coincident(points) -> (N,) bool                       # float32-equal positions
    separate_coincident(points, faces, eps_mm=1e-3) -> (points, n_moved)
    find_intersections(points, faces, *, active=None) -> (M,) bool
    relax_intersections(points, before, faces, *, find=find_intersections) -> (points, info)
    decimate(points, faces, reduction) -> (points, faces, info)
    qa(points, faces, *, voxel_volume_mm3, smoothing_displacement_mm, topology) -> dict

The device implementation (``surface/device_finish.py``, PyTorch on CUDA or the CPU) runs
the same steps in the same order on tensors, for many surfaces at once: ``finish_surface``
dispatches to it when given tensors (the GPU mesher keeps its data on the device that way).
The CPU steps (:data:`CPU_STEPS`) are what the CPU mesher uses; the equivalence of the two
implementations is tested step by step (``tests/surface/test_gpu_finish_equivalence.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from medrecon.mesh import signed_volume, vertex_normals
from medrecon.surface import qa as _qa
from medrecon.surface.decimate import decimate_closed
from medrecon.surface.intersections import self_intersecting_faces
from medrecon.surface.repair import relax_self_intersections

__all__ = ["finish_surface", "Steps", "CPU_STEPS", "orient_outward", "restore_volume", "separate_coincident"]


# --------------------------------------------------------------------------- the steps (CPU)
def orient_outward(before: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces wound so that the closed surface ``before`` (unsmoothed contour, any metric frame)
    encloses a positive volume: reversed when its signed volume is negative, else unchanged."""
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if signed_volume(before, faces) < 0:
        return np.ascontiguousarray(faces[:, ::-1])
    return faces


def restore_volume(points: np.ndarray, faces: np.ndarray, target_mm3: float) -> np.ndarray:
    """Move all vertices along their normals by one distance so the enclosed volume is ``target``.

    Newton steps on V(d) ~ V + A d (A = area) along the normals of the input (offsets are
    hundredths of a voxel: the normals do not change), two are enough for smoothing-sized changes.
    """
    vol = signed_volume(points, faces)
    area = _qa.surface_area(points, faces)
    if area <= 0 or target_mm3 <= 0 or abs(target_mm3 - vol) <= 1e-6 * target_mm3:
        return points
    normals = vertex_normals(points, faces)
    d = (target_mm3 - vol) / area
    pts = points + d * normals
    for _ in range(2):
        vol = signed_volume(pts, faces)
        if abs(target_mm3 - vol) <= 1e-6 * target_mm3:
            break
        d += (target_mm3 - vol) / area
        pts = points + d * normals
    return pts


def separate_coincident(points: np.ndarray, faces: np.ndarray, eps_mm: float = 1e-3, *,
                        find: Callable[[np.ndarray], np.ndarray] = _qa.coincident_vertices
                        ) -> tuple[np.ndarray, int]:
    """Move apart distinct vertices that smoothing put on the same (float32) point.

    Windowed-sinc smoothing can collapse a one-voxel-thin part so that two vertices of different
    sheets land on exactly the same position. The mesh is still closed and manifold by index, but
    STL keeps no indices: readers weld equal points and see a non-manifold pinch. Each such
    vertex is moved ``eps_mm`` along its own normal (a fixed pseudo-random direction where the
    normal vanishes). Returns the points (a modified copy when anything moved) and how many moved.
    """
    dup = find(points)
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
        still = find(points)
        if not still.any():
            break
        dup = still
        normals = rng.normal(size=(int(dup.sum()), 3))
    return points, n


def _qa_step(points: np.ndarray, faces: np.ndarray, *, voxel_volume_mm3: float | None = None,
             smoothing_displacement_mm: float | None = None, topology: dict | None = None) -> dict[str, Any]:
    return _qa.compute_qa(points, faces, voxel_volume_mm3=voxel_volume_mm3,
                          smoothing_displacement_mm=smoothing_displacement_mm, topology=topology)


@dataclass(frozen=True)
class Steps:
    """The functions of the chain (see the module docstring for their signatures)."""

    orient: Callable = orient_outward
    restore_volume: Callable = restore_volume
    find_coincident: Callable = _qa.coincident_vertices
    separate_coincident: Callable = separate_coincident
    find_intersections: Callable = self_intersecting_faces
    relax_intersections: Callable = relax_self_intersections
    decimate: Callable = decimate_closed
    qa: Callable = _qa_step


#: The CPU implementation of every step (numpy, scipy, fast-simplification, numba kernels).
CPU_STEPS = Steps()


# --------------------------------------------------------------------------- the chain
def finish_surface(points: np.ndarray, faces: np.ndarray, before: np.ndarray, *, smoothed: bool,
                   reduction: float = 0.0, target_volume_mm3: float | None = None,
                   voxel_volume_mm3: float | None = None, with_qa: bool = True,
                   topology: dict | Callable[[], dict] | None = None, maybe_coincident: bool = True,
                   displacement_mm: float | None = None, steps: Steps = CPU_STEPS,
                   group: Any = None, n_groups: int | None = None) -> tuple[Any, Any, Any]:
    """Finish one structure's surface: orient, restore volume, separate, relax, decimate, QA.

    **On the device**: given PyTorch tensors (``points``, ``faces``, ``before``; CUDA or CPU),
    the chain runs on the tensors' device for every surface packed in them at once
    (:func:`medrecon.surface.device_finish.finish_surfaces`: the same steps in this order, the
    same ``info`` fields; only ``reduction > 0`` decimates on the CPU). Then ``group`` (V,) is
    the surface of each vertex (vertices grouped by surface), ``n_groups`` their number,
    ``target_volume_mm3`` / ``voxel_volume_mm3`` hold one value per surface, and the result
    is ``(points, faces, (group, infos))``: tensors, and one info dict per surface.

    Parameters
    ----------
    points : (N, 3) float
        Smoothed vertices in LPS mm (the contour itself when not smoothed).
    faces : (M, 3) int
        Closed, consistently wound triangles (either winding: step 1 decides).
    before : (N, 3) float
        The same vertices before smoothing, in LPS mm (intersection-free contour).
    smoothed : bool
        Whether ``points`` were smoothed (or offset): then coincident points are separated and
        self-intersections relaxed; an unsmoothed contour has neither.
    reduction : float
        Decimation target (fraction of triangles removed; 0: none).
    target_volume_mm3 : float, optional
        Restore this enclosed volume by a normal offset (``keep_volume``; the iso-surface's
        voxel volume). ``info["volume_offset_mm"]`` is the offset applied.
    voxel_volume_mm3 : float, optional
        The structure's voxel volume, for QA's ``volume_diff_pct``.
    with_qa : bool
        Compute QA (else ``info`` holds only the chain's own figures).
    topology : dict or callable, optional
        A :func:`medrecon.surface.qa.topology_qa` result for ``faces`` worked out earlier (or a
        callable returning it); used only when nothing is decimated.
    maybe_coincident : bool
        False when the caller knows no two vertices share a float32 position (the GPU mesher
        checks on the device) and nothing moved them since.
    displacement_mm : float, optional
        Largest smoothing displacement when the caller already knows it (else measured here).
    steps : Steps
        The implementation of each step (:data:`CPU_STEPS`, or a device one).

    Returns
    -------
    points, faces, info
        Points (N', 3) float64 LPS mm, faces (M', 3) int64 outward, QA and chain figures.
    """
    if type(points).__module__.split(".")[0] == "torch":  # dispatch by the tensors' device
        from medrecon.surface.device_finish import finish_surfaces

        p, f, g, infos = finish_surfaces(points, faces, before, group, int(n_groups), smoothed=smoothed,
                                         reduction=reduction, target_volume_mm3=target_volume_mm3,
                                         voxel_volume_mm3=voxel_volume_mm3, with_qa=with_qa, decimate=steps.decimate)
        return p, f, (g, infos)
    points = np.asarray(points, np.float64)
    before = np.asarray(before, np.float64)
    faces = steps.orient(before, faces)
    extra: dict[str, Any] = {}
    moved = smoothed
    if target_volume_mm3 is not None and target_volume_mm3 > 0 and len(faces):
        vol0 = signed_volume(points, faces)
        area = _qa.surface_area(points, faces)
        points = steps.restore_volume(points, faces, float(target_volume_mm3))
        extra["volume_offset_mm"] = round(float((target_volume_mm3 - vol0) / area), 5) if area > 0 else 0.0
        moved = True
    n_hit: int | None = None
    if moved:
        if maybe_coincident or target_volume_mm3 is not None:
            points, _ = steps.separate_coincident(points, faces)
        # last: smoothing (and the volume offset) may push triangles through each other
        points, relax = steps.relax_intersections(points, before, faces, find=steps.find_intersections)
        n_hit = relax["self_intersecting_faces"]
        if relax["self_intersecting_faces_smoothed"]:
            extra["self_intersections_relaxed"] = relax["self_intersecting_faces_smoothed"]
        if with_qa and (displacement_mm is None or relax["vertices_relaxed"] or target_volume_mm3 is not None):
            d = points - before
            displacement_mm = float(np.sqrt(np.einsum("ij,ij->i", d, d).max())) if len(d) else 0.0
            del d
    if reduction > 0:
        points, faces, dec = steps.decimate(points, faces, reduction)
        extra["reduction_reached"] = dec["reduction"]
        extra["decimation"] = dec["method"]
        n_hit = dec.get("self_intersecting_faces")
        topology = None
    if not with_qa:
        return points, faces, extra
    topo = topology() if callable(topology) else topology
    info = steps.qa(points, faces, voxel_volume_mm3=voxel_volume_mm3,
                    smoothing_displacement_mm=(displacement_mm or 0.0) if smoothed else 0.0, topology=topo)
    if n_hit is None:
        n_hit = int(steps.find_intersections(points, faces).sum())
    info["self_intersecting_faces"] = int(n_hit)
    info.update(extra)
    return points, faces, info
