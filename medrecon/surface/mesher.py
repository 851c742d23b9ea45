"""Label map -> closed triangle surfaces, equivalent to 3D Slicer's closed-surface conversion.

Per structure (default, ``joint=False``):

1. crop the label map to the structure's bounding box and pad it with one voxel of background
   on every side, so that the surface closes where the structure touches the volume border;
2. contour the binary crop with ``vtkDiscreteFlyingEdges3D`` in **index space** (voxel units,
   voxel centres on integer indices);
3. smooth with ``vtkWindowedSincPolyDataFilter`` using Slicer's mapping from the smoothing
   factor ``f``: pass band ``10**(-4 f)``, ``20 + 40 f`` iterations, non-manifold smoothing on,
   boundary and feature-edge smoothing off, coordinates normalised (``f = 0``: no smoothing);
4. map index -> LPS millimetres with the volume affine;
5. finish (:mod:`medrecon.surface.finish`, the chain the GPU mesher shares): wind the triangles
   outward by the signed volume of the unsmoothed contour (a mirrored affine or a fold cannot
   flip it), restore the enclosed volume when asked (``keep_volume``: one common normal offset,
   which works for non-convex shapes), separate coincident points, relax self-intersections,
   decimate (target reduction 0..1; closed and manifold: :mod:`medrecon.surface.decimate`) and
   QA (:mod:`medrecon.surface.qa`). Decimation runs after smoothing, in LPS mm: measured on
   analytic phantoms it keeps the surface error at about 0.05 voxel for 90 % reduction, where
   Slicer's order (decimate the staircase first, ``decimate_first=True``) reaches 0.3-0.6 voxel,
   shrinks thin bone and can break watertightness;
6. the topology part of QA runs in a thread while VTK smooths; labels are meshed in parallel
   threads (VTK, numpy and the numba kernels release the GIL).

Joint mode (``joint=True``) meshes all labels at once with ``vtkSurfaceNets3D``: neighbouring
structures share the same triangles on their common boundary (no gaps, no overlaps); the
shared mesh is smoothed once with the same windowed-sinc settings, then cut per label.

Every function here works on plain numpy arrays and returns :class:`SurfaceModel` objects
whose vertices are in LPS mm and whose faces are counter-clockwise seen from outside.
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
from scipy import ndimage
from vtkmodules.util import numpy_support as ns
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkSurfaceNets3D, vtkWindowedSincPolyDataFilter
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D

from medrecon.errors import MeshError
from medrecon.surface.decimate import drop_fins as _drop_fins, simplify
from medrecon.surface.finish import finish_surface
from medrecon.surface.vtk_arrays import (_arrays_from_polydata, _image_from_array, _points_ijk,  # noqa: F401
                                          _polydata_from_arrays)
from medrecon.surface import qa as _qa
from medrecon.labelmap import PALETTE, as_labelmap
from medrecon.mesh import SurfaceModel, signed_volume
from medrecon.volume import Volume
from medrecon.progress import ProgressEvent, ProgressFn

__all__ = ["build_surfaces", "mesh_mask", "smoothing_parameters", "DEFAULT_COLORS"]

#: Colours used for labels that come without a colour (the one palette, :data:`medrecon.labelmap.PALETTE`).
DEFAULT_COLORS = PALETTE


# --------------------------------------------------------------------------- parameters
def smoothing_parameters(factor: float) -> tuple[float, int]:
    """Slicer's mapping from smoothing factor ``f`` (0..1) to windowed-sinc settings.

    Returns ``(pass_band, iterations)`` = ``(10**(-4 f), int(20 + 40 f))``.
    """
    f = float(factor)
    return 10.0 ** (-4.0 * f), int(20 + 40 * f)


def _check_params(smoothing: float, reduction: float) -> None:
    if not (0.0 <= float(smoothing) <= 1.0) or math.isnan(float(smoothing)):
        raise MeshError(f"smoothing factor must be within 0..1, got {smoothing}")
    if not (0.0 <= float(reduction) < 1.0) or math.isnan(float(reduction)):
        raise MeshError(f"reduction must be within 0..1 (exclusive of 1), got {reduction}")


# --------------------------------------------------------------------------- VTK glue
def _contour_binary(sub: np.ndarray, origin: np.ndarray) -> vtkPolyData:
    """Discrete flying edges of a padded uint8 0/1 array; points in full-volume index space."""
    fe = vtkDiscreteFlyingEdges3D()
    fe.SetInputData(_image_from_array(sub, origin))
    fe.SetValue(0, 1)
    fe.ComputeGradientsOff()
    fe.ComputeNormalsOff()
    fe.ComputeScalarsOff()
    fe.Update()
    return fe.GetOutput()


#: Smoothing on the intensity iso-surface, relative to the user's factor: the surface already
#: sits at sub-voxel positions, so it needs only a light touch (0.5 -> 0.3).
ISO_SMOOTHING_SCALE = 0.6


def _contour_field(field: np.ndarray, origin: np.ndarray) -> vtkPolyData:
    """Flying edges (continuous) of a float32 field at level 0; points in full-volume index space."""
    fe = vtkFlyingEdges3D()
    fe.SetInputData(_image_from_array(field, origin))
    fe.SetValue(0, 0.0)
    fe.ComputeGradientsOff()
    fe.ComputeNormalsOff()
    fe.ComputeScalarsOff()
    fe.Update()
    return fe.GetOutput()


def iso_field(image: np.ndarray, mask: np.ndarray, sl: tuple[slice, ...], low: float,
              high: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Signed intensity field whose zero level is the threshold iso-surface inside the segmentation.

    ``F = image - low`` (and ``high - image`` where that is smaller), cropped to ``sl`` and padded
    with one voxel of "outside". Its sign is forced to agree with ``mask`` (voxels the clean-up
    removed stay outside, filled voxels inside) with ``|F| >= 2 %`` of the structure's contrast, so
    the contour has exactly the topology of the binary mask (the same marching-cubes cases) while
    every vertex sits where the partial-volume intensities cross the threshold (linear
    interpolation along the voxel edge). Returns ``(F float32 C-ordered, index of its first voxel)``.
    """
    shp = tuple(s.stop - s.start + 2 for s in sl)
    field = np.empty(shp, np.float32)
    inner = field[1:-1, 1:-1, 1:-1]
    np.subtract(image[sl], np.float32(low), out=inner, casting="unsafe")
    if high is not None and np.isfinite(high):
        np.minimum(inner, np.float32(high) - image[sl].astype(np.float32), out=inner)
    m = mask if mask.shape == inner.shape else mask[sl]  # the crop itself, or the whole mask
    m = np.asarray(m, dtype=bool)
    contrast = float(np.median(inner[m])) if m.any() else 1.0
    c = np.float32(max(abs(contrast) * 0.02, 1e-6))
    np.copyto(inner, np.maximum(inner, c), where=m)
    np.copyto(inner, np.minimum(inner, -c), where=~m)
    edge = -np.float32(max(abs(contrast), 1e-3))
    field[0], field[-1] = edge, edge
    field[:, 0], field[:, -1] = edge, edge
    field[:, :, 0], field[:, :, -1] = edge, edge
    origin = np.array([s.start - 1 for s in sl], dtype=np.float64)
    return field, origin


def _decimate(points: np.ndarray, faces: np.ndarray, reduction: float) -> tuple[np.ndarray, np.ndarray]:
    """Plain quadric decimation (Slicer's decimate-first order, on the staircase)."""
    return simplify(points, faces, reduction)


def _smooth_polydata(pd: vtkPolyData, factor: float) -> vtkPolyData:
    """Windowed-sinc smoothing with Slicer's settings (same points, same order, moved)."""
    pass_band, iterations = smoothing_parameters(factor)
    ws = vtkWindowedSincPolyDataFilter()
    ws.SetInputData(pd)
    ws.SetNumberOfIterations(iterations)
    ws.SetPassBand(pass_band)
    ws.BoundarySmoothingOff()
    ws.FeatureEdgeSmoothingOff()
    ws.NonManifoldSmoothingOn()
    ws.NormalizeCoordinatesOn()
    ws.Update()
    out = ws.GetOutput()
    if out.GetNumberOfPoints() != pd.GetNumberOfPoints():
        raise MeshError("internal: smoothing changed the number of points")
    return out


class _Background:
    """Run ``fn(*args)`` in a thread (numpy and VTK release the GIL); ``result()`` joins."""

    def __init__(self, fn: Callable, *args: Any):
        self._out: dict[str, Any] = {}

        def run() -> None:
            try:
                self._out["value"] = fn(*args)
            except BaseException as exc:  # re-raised in result()
                self._out["error"] = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if "error" in self._out:
            raise self._out["error"]
        return self._out["value"]


def _mesh_crop(sub: np.ndarray, origin_ijk: np.ndarray, affine: np.ndarray, *, smoothing: float,
               reduction: float, keep_volume: bool, voxel_count: int, with_qa: bool,
               decimate: str = "after", iso: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Mesh one padded binary crop; returns (LPS points, faces, qa dict).

    ``iso=True``: ``sub`` is an :func:`iso_field` (intensity iso-surface inside the segmentation):
    it is contoured at 0, smoothed lightly (``ISO_SMOOTHING_SCALE`` x ``smoothing``), and offset
    along the normals by one common distance so that it encloses the voxel volume of the
    segmentation (``qa["volume_offset_mm"]``; hundredths of a voxel on smooth shapes).

    After smoothing, :func:`medrecon.surface.finish.finish_surface` orients, restores the
    volume, separates coincident points, relaxes self-intersections, decimates and runs QA.

    ``decimate="before"`` reproduces Slicer's order (decimate the staircase in index space,
    then smooth); ``"after"`` smooths the full-resolution surface and decimates it in LPS mm,
    which is more accurate for the same triangle budget.

    The flying-edges output is smoothed in place of a numpy round trip (VTK -> VTK); numpy
    only sees views of VTK's arrays until the final LPS points are made.
    """
    pd = _contour_field(sub, origin_ijk) if iso else _contour_binary(sub, origin_ijk)
    if iso:
        smoothing = smoothing * ISO_SMOOTHING_SCALE
    if pd.GetNumberOfPolys() == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), {}
    if decimate == "before" and reduction > 0:
        p, f = _arrays_from_polydata(pd)
        p, f = _decimate(np.asarray(p, np.float64), f, reduction)
        pd = _polydata_from_arrays(p, f)
    before_ijk, faces = _arrays_from_polydata(pd)
    topo = None
    if with_qa and (reduction <= 0 or decimate == "before"):
        # topology depends on the faces only: work it out while VTK smooths (VTK frees the GIL)
        topo = _Background(_qa.topology_qa, faces, len(before_ijk))
    smoothed = _smooth_polydata(pd, smoothing) if smoothing > 0 else pd
    lin, off = affine[:3, :3].astype(np.float64), affine[:3, 3]
    pts_lps = _points_ijk(smoothed) @ lin.T + off  # float32 @ float64 -> float64
    before_lps = np.asarray(before_ijk, np.float64) @ lin.T + off
    faces = np.array(faces, dtype=np.int64)  # own copy: VTK's array goes with the polydata
    if topo is not None:
        topo.wait()  # it reads VTK's face array: keep the polydata until it is done
    del pd, smoothed, before_ijk
    voxel_mm3 = float(abs(np.linalg.det(lin)))
    target = None
    if iso:
        target = voxel_count * voxel_mm3
    elif keep_volume and smoothing > 0:
        target = abs(signed_volume(before_lps, faces))
    pts_lps, faces, info = finish_surface(
        pts_lps, faces, before_lps, smoothed=smoothing > 0, reduction=reduction if decimate != "before" else 0.0,
        target_volume_mm3=target, voxel_volume_mm3=voxel_count * voxel_mm3, with_qa=with_qa,
        topology=topo.result if topo is not None else None)
    if iso:
        info["surface"] = "intensity iso-surface"
    elif target is not None:
        info.pop("volume_offset_mm", None)
        if with_qa:
            info["volume_kept_mm3"] = round(float(target), 3)
    return pts_lps, faces, info


def mesh_mask(mask: np.ndarray, affine: np.ndarray, *, smoothing: float = 0.5, reduction: float = 0.0,
              keep_volume: bool = False, name: str = "structure",
              color: tuple[float, float, float] = (0.945, 0.839, 0.569), label: int = 1,
              qa: bool = True, decimate_first: bool = False) -> SurfaceModel:
    """Closed surface of one binary mask.

    Parameters
    ----------
    mask : (I, J, K) array
        Non-zero voxels belong to the structure.
    affine : (4, 4) array
        Maps array index (i, j, k) to LPS millimetres (voxel centres at integer indices).
    smoothing : float
        Slicer smoothing factor 0..1 (pass band 10^(-4 f), 20 + 40 f windowed-sinc iterations).
    reduction : float
        Decimation target: fraction of triangles removed (0 = none), applied after smoothing
        (``decimate_first=True``: before smoothing, in index space, as Slicer does).
    keep_volume : bool
        After smoothing, offset the surface along its normals so that it encloses the same
        volume as before smoothing.
    name, color, label : model attributes.
    qa : bool
        Fill ``model.qa`` (see :func:`medrecon.surface.qa.compute_qa`).

    Returns
    -------
    SurfaceModel
        Vertices in LPS mm, faces counter-clockwise seen from outside.

    Raises
    ------
    MeshError
        If the mask is not 3D, has no voxels, or the parameters are out of range.
    """
    _check_params(smoothing, reduction)
    m = np.asarray(mask)
    if m.ndim != 3:
        raise MeshError(f"mask for {name!r} must be 3D, got shape {m.shape}")
    affine = np.asarray(affine, dtype=np.float64).reshape(4, 4)
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise MeshError(f"affine for {name!r} is singular")
    binary = m != 0
    sl = ndimage.find_objects(binary.astype(np.uint8))
    if not sl or sl[0] is None:
        raise MeshError(f"mask for {name!r} is empty: nothing to mesh")
    sub, origin = _padded_crop(binary, sl[0])
    pts, faces, info = _mesh_crop(sub, origin, affine, smoothing=smoothing, reduction=reduction,
                                  keep_volume=keep_volume, voxel_count=int(np.count_nonzero(sub)),
                                  with_qa=qa, decimate="before" if decimate_first else "after")
    info = {"label": int(label), **info} if qa else {}
    return SurfaceModel(name, pts, faces, color, int(label), info)


def _padded_crop(arr: np.ndarray, sl: tuple[slice, ...], value: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Crop to the bounding box and pad one background voxel on every side.

    Returns a C-ordered uint8 0/1 array (handed to VTK without a copy, see
    :func:`_image_from_array`) and the full-volume index of its first voxel. ``value``: label to select
    (None: any non-zero voxel).
    """
    sub = np.zeros(tuple(s.stop - s.start + 2 for s in sl), dtype=np.uint8)
    inner = sub[1:-1, 1:-1, 1:-1].view(bool)
    if value is None:
        np.not_equal(arr[sl], 0, out=inner)
    else:
        np.equal(arr[sl], value, out=inner)
    origin = np.array([s.start - 1 for s in sl], dtype=np.float64)
    return sub, origin


# --------------------------------------------------------------------------- many labels
def _label_attrs(value: int, info: Any, idx: int) -> tuple[str, tuple[float, float, float]]:
    name = getattr(info, "name", None) or f"label_{value}"
    color = getattr(info, "color", None)
    if color is None:
        color = DEFAULT_COLORS[idx % len(DEFAULT_COLORS)]
    color = tuple(float(c) for c in list(color)[:3])
    if max(color) > 1.0:  # 0..255 given
        color = tuple(c / 255.0 for c in color)
    return str(name), color  # type: ignore[return-value]


def _as_labelmap(labelmap: Volume | np.ndarray, affine: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(labelmap, Volume):
        arr, aff = labelmap.array, labelmap.affine
    else:
        if affine is None:
            raise MeshError("a numpy label map needs an affine")
        arr, aff = labelmap, np.asarray(affine, dtype=np.float64)
    arr = as_labelmap(arr, error=MeshError, narrow=False)
    if abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise MeshError("label map affine is singular")
    return arr, aff


class _MetaLabel:
    """Name/colour of a label taken from ``Volume.meta['label_names'/'label_colors']``, if any."""

    def __init__(self, name: str | None, color: Any):
        self.name, self.color = name, color

    @classmethod
    def from_meta(cls, labelmap: Any, value: int) -> "_MetaLabel | None":
        meta = getattr(labelmap, "meta", None) or {}
        names = meta.get("label_names") or {}
        colors = meta.get("label_colors") or {}
        name = names.get(value, names.get(str(value)))
        color = colors.get(value, colors.get(str(value)))
        return cls(str(name), color) if name is not None or color is not None else None


class _Progress:
    """Calls ``progress(ProgressEvent("meshing", done, total, message=name))`` after each structure."""

    def __init__(self, progress: ProgressFn | None, total: int):
        self.total = total
        self.progress = progress

    def step(self, done: int, name: str) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent("meshing", done, self.total, "structure", name))


def build_surfaces(labelmap: Volume, labels: dict[int, Any] | None = None, *, smoothing: float = 0.5,
                   reduction: float = 0.0, joint: bool = False, keep_volume: bool = False,
                   progress: ProgressFn | None = None, qa: bool = True,
                   decimate_first: bool = False, workers: int | None = None,
                   affine: np.ndarray | None = None, intensity: Volume | np.ndarray | None = None,
                   windows: dict[int, tuple[float, float]] | None = None) -> list[SurfaceModel]:
    """Mesh every label of a label map into one closed surface per structure.

    Parameters
    ----------
    labelmap : Volume
        Integer label map (0 = background); its affine maps index -> LPS mm. A plain numpy
        array is accepted together with ``affine=``.
    labels : dict[int, LabelInfo] or None
        Which labels to mesh, with names and colours (objects with ``.name`` and ``.color``;
        colour in 0..1 or 0..255). ``None``: every non-zero label present, named ``label_<v>``.
        Labels listed but absent from the map are skipped. With ``None``, names and colours
        come from ``labelmap.meta['label_names']`` / ``['label_colors']`` when present.
    smoothing : float
        Slicer smoothing factor 0..1 (default 0.5: pass band 0.01, 40 iterations).
    reduction : float
        Fraction of triangles removed by decimation (0 = none), after smoothing unless
        ``decimate_first``. Ignored in joint mode, where decimation would break the shared
        boundaries (recorded in ``qa``).
    joint : bool
        Mesh all labels together with surface nets so that neighbours share boundaries.
    keep_volume : bool
        Offset each smoothed surface along its normals to restore its pre-smoothing volume.
    progress : ``progress(ProgressEvent)`` (:mod:`medrecon.progress`), optional
        Called after each structure is meshed.
    qa : bool
        Fill each model's ``qa`` dict (triangle count, watertight, manifold, volumes, area,
        bounding box, smoothing displacement).
    decimate_first : bool
        Decimate before smoothing, in index space (Slicer's order). Not recommended: the
        smoothing then acts on a coarse mesh and shrinks thin structures (measured: ribs of a
        synthetic torso lost 35-60 % of their volume at reduction 0.8-0.9; check
        ``qa["volume_diff_pct"]``).
    workers : int, optional
        Threads meshing labels in parallel (default: CPU count). Results do not depend on it.
    intensity : Volume or array, optional
        The image the labels were thresholded from (same grid). Together with ``windows``, the
        labels listed there are meshed on the **intensity iso-surface** at their threshold
        inside the segmented region (:func:`iso_field`): sub-voxel accurate on partial volume,
        lightly smoothed, enclosing the voxel volume. Other labels (label maps from files or
        networks) take the binary path.
    windows : dict[int, (low, high)], optional
        Threshold window (intensity units, e.g. HU) of each thresholded label.

    Returns
    -------
    list[SurfaceModel]
        In label order; vertices in LPS mm, outward-facing triangles.

    Raises
    ------
    MeshError
        Bad label map or parameters, or none of the requested labels has any voxel.
    """
    _check_params(smoothing, reduction)
    arr, aff = _as_labelmap(labelmap, affine)
    present_objs = ndimage.find_objects(arr) if arr.size else []
    present = [v + 1 for v, s in enumerate(present_objs) if s is not None]
    if labels is None:
        wanted = {v: _MetaLabel.from_meta(labelmap, v) for v in present}
    else:
        wanted = {int(v): info for v, info in labels.items() if int(v) != 0}
    todo = [v for v in sorted(wanted) if v in set(present)]
    if not todo:
        raise MeshError("label map holds none of the requested labels (nothing to mesh)"
                        + (f"; present: {present[:20]}" if present else "; it is empty"))
    attrs = {v: _label_attrs(v, wanted[v], i) for i, v in enumerate(sorted(wanted)) if v in todo}
    prog = _Progress(progress, len(todo))
    if joint:
        return _joint_surfaces(arr, aff, todo, attrs, present_objs, smoothing, keep_volume, qa, prog, reduction)
    img = None
    if intensity is not None and windows:
        img = intensity.array if isinstance(intensity, Volume) else np.asarray(intensity)
        if img.shape != arr.shape:
            raise MeshError(f"intensity image {img.shape} and label map {arr.shape} differ in shape")

    def one(v: int) -> SurfaceModel:
        name, color = attrs[v]
        sl = present_objs[v - 1]
        iso = img is not None and v in windows and not decimate_first
        if iso:
            crop = arr[sl] == v
            count = int(np.count_nonzero(crop))
            low, high = windows[v]
            sub, origin = iso_field(img, crop, sl, float(low), None if high is None else float(high))
            del crop
        else:
            sub, origin = _padded_crop(arr, sl, v)
            count = int(np.count_nonzero(sub))
        pts, faces, info = _mesh_crop(sub, origin, aff, smoothing=smoothing, reduction=reduction,
                                      keep_volume=keep_volume, voxel_count=count, with_qa=qa,
                                      decimate="before" if decimate_first else "after", iso=iso)
        return SurfaceModel(name, pts, faces, color, v, {"label": v, **info} if qa else {})

    n_workers = max(1, min(int(workers or os.cpu_count() or 1), len(todo)))
    models = []
    if n_workers == 1:
        for n, v in enumerate(todo, 1):
            models.append(one(v))
            prog.step(n, models[-1].name)
        return models
    # labels in parallel threads: VTK and numpy release the GIL for the heavy work
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for n, fut in enumerate([pool.submit(one, v) for v in todo], 1):
            models.append(fut.result())
            prog.step(n, models[-1].name)
    return models


def _joint_surfaces(arr: np.ndarray, aff: np.ndarray, todo: list[int], attrs: dict, objs: list,
                    smoothing: float, keep_volume: bool, with_qa: bool, prog: _Progress,
                    reduction: float = 0.0) -> list[SurfaceModel]:
    """Surface nets over all labels at once; per-label surfaces share boundary triangles."""
    lo = np.min([[objs[v - 1][d].start for d in range(3)] for v in todo], axis=0)
    hi = np.max([[objs[v - 1][d].stop for d in range(3)] for v in todo], axis=0)
    crop = arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    keep = np.zeros(int(arr.max()) + 1, dtype=bool)
    keep[todo] = True
    crop = np.where(keep[crop], crop, 0)
    dtype = np.uint16 if max(todo) < 65536 else np.int32
    sub = np.zeros(tuple(int(n) + 2 for n in crop.shape), dtype=dtype)
    sub[1:-1, 1:-1, 1:-1] = crop
    origin = lo.astype(np.float64) - 1.0
    sn = vtkSurfaceNets3D()
    sn.SetInputData(_image_from_array(sub, origin))
    sn.SetBackgroundLabel(0)
    sn.SetNumberOfLabels(len(todo))
    for i, v in enumerate(todo):
        sn.SetLabel(i, float(v))
    sn.SetOutputMeshTypeToTriangles()
    sn.SmoothingOff()
    sn.Update()
    out = sn.GetOutput()
    before, faces = _arrays_from_polydata(out)
    bl = ns.vtk_to_numpy(out.GetCellData().GetArray("BoundaryLabels")).astype(np.int64).reshape(-1, 2)
    smoothed = _smooth_polydata(out, smoothing) if smoothing > 0 and len(faces) else out
    pts_lps = _points_ijk(smoothed) @ aff[:3, :3].T + aff[:3, 3]
    before_lps = before @ aff[:3, :3].T + aff[:3, 3]
    voxel_mm3 = float(abs(np.linalg.det(aff[:3, :3])))
    models = []
    for n, v in enumerate(todo, 1):
        name, color = attrs[v]
        sel0 = bl[:, 0] == v
        sel1 = bl[:, 1] == v
        # triangles see label v on side 0 or side 1: reverse one group so all wind the same way,
        # then make the whole surface outward (the frame may be mirrored)
        f = np.concatenate([faces[sel0], faces[sel1][:, ::-1]])
        used, inv = np.unique(f.ravel(), return_inverse=True)
        f_local = inv.reshape(-1, 3).astype(np.int64)
        p_local = pts_lps[used]
        if signed_volume(p_local, f_local) < 0:
            f_local = f_local[:, ::-1].copy()
        info: dict[str, Any] = {}
        if with_qa:
            disp = np.linalg.norm(p_local - before_lps[used], axis=1)
            info = _qa.compute_qa(p_local, f_local,
                                  voxel_volume_mm3=int(np.count_nonzero(sub == v)) * voxel_mm3,
                                  smoothing_displacement_mm=float(disp.max()) if disp.size else 0.0)
            info["joint"] = True
            if keep_volume:
                info["keep_volume_ignored"] = "joint mode keeps shared boundaries instead"
            if reduction > 0:
                info["reduction_ignored"] = "joint mode keeps shared boundaries instead"
        models.append(SurfaceModel(name, p_local, f_local, color, v, {"label": v, **info} if with_qa else {}))
        prog.step(n, name)
    return models
