"""GPU surface path: the CPU mesher's label map -> closed surfaces chain, in PyTorch.

The same code runs on CUDA and on the CPU (``device="cpu"``: what the tests and CI run). It
produces what :func:`medrecon.surface.mesher.build_surfaces` produces (independent mode):

1. **Discrete marching cubes of every label in one pass** (what ``vtkDiscreteFlyingEdges3D``
   gives per label): the label map is padded with one voxel of background, every cube whose 8
   corners are not all equal is found, and for each label among its corners the cube's case
   (which corners hold that label) selects triangles from VTK's own marching-cubes case table
   (:data:`_CASES`, read off VTK 9.7 one case at a time). Vertices sit at the midpoints of grid
   edges whose two voxels differ, in index space (voxel centres on integer indices).
2. **Welding**: a vertex is identified by ``(label, grid edge)``; one sort (``torch.unique``)
   numbers them, so each label's surface is closed and indexed, and two labels that touch get
   separate surfaces through the same edge midpoints, as the per-label CPU path gives.
3. **Windowed-sinc smoothing** (``vtkWindowedSincPolyDataFilter`` as Slicer and the CPU mesher
   set it up: Nuttall window, pass band ``10**(-4 f)``, ``20 + 40 f`` iterations, non-manifold
   smoothing with weighted edges, coordinates normalised per surface by its bounding box) as a
   Chebyshev polynomial of the sparse umbrella Laplacian: one CSR sparse-dense product per
   iteration for all labels at once (the operator is block diagonal, one block per label).
4. Index -> LPS mm with the affine (float64), triangles wound outward (the table is outward in
   index space; a mirrored affine reverses them); area-weighted vertex normals on the device.
5. The one finishing chain both meshers share (:func:`medrecon.surface.finish.finish_surface`:
   winding, ``keep_volume``, coincident-point separation, self-intersection relaxation,
   decimation, QA), given the tensors: it runs on the device for all labels at once
   (:mod:`medrecon.surface.device_finish`); only decimation (``reduction > 0``) runs on CPU
   threads. Points and faces come to host memory once, at the end, for the writers.

Joint mode (surface nets) and Slicer's decimate-first order have no GPU version: those calls
go to the CPU mesher unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from medrecon.errors import MeshError
from medrecon.mesh import SurfaceModel
from medrecon.surface import device_finish as DF
from medrecon.surface.gpu_smooth import _laplacian_csr, sinc_coefficients, windowed_sinc  # noqa: F401
from medrecon.volume import Volume
from medrecon.devices import resolve_device as _resolve_device

__all__ = ["build_surfaces_gpu", "mesh_labelmap_gpu", "mesher_for_device", "contour_labels", "windowed_sinc",
           "sinc_coefficients", "vertex_normals_torch", "resolve_device", "gpu_available"]

#: Cube corners: corner ``t`` is at index offset ``(t & 1, t >> 1 & 1, t >> 2 & 1)`` in (i, j, k).
#: Edge ``e`` joins corners ``_EDGES[e]``.
_EDGES = ((0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 3), (2, 6), (3, 7), (4, 5), (4, 6), (5, 7), (6, 7))

#: Marching-cubes triangles per case (bit t set = corner t inside), as hex edge numbers, three per
#: triangle, counter-clockwise seen from outside in (i, j, k) index space. Read off VTK 9.7's
#: vtkDiscreteFlyingEdges3D run on each of the 256 single-cube configurations (VTK's winding is
#: the reverse in (i, j, k) because VTK sees the array as (k, j, i)).
_CASES = (
    ",012,304,124143,561,562520,430561,435645246,753,201375,047075,751271472,613637,203723627,"
    "610460764,462764,982,019098,982430,984394193,829156,569859058,298430156,354458568698,982375,"
    "980190375,750470298,478718198175,376136982,769079809370,829146476104,849469476,a48,a48012,"
    "30838a,128a1831a,a48156,5620528a4,8a3083561,a38368628356,8a4753,0128a4375,8a7587085,"
    "751712a728a2,61376348a,a48072762037,08a60a76a061,a78728762,a42a29,a401a09a1,302932a39,"
    "a19a31,a429a2156,9a6a060560a4,156902309a39,6959359a3,29a42a753,375140a419a1,502a529a275a,"
    "5171a719a,761371a2942a,6070379060a4a09,a0902970a061607,a79976,6b9,0126b9,6b9430,4312416b9,"
    "b91b15,b920b25b0,b915b1043,5b9459249543,96b537,6b9201537,047507b96,6b9251752472,37b93b139,"
    "37b3b9039209,910790470b97,92b27b247,6b8682,016b0680b,6b8268430,b86836316843,821581b85,"
    "0b805b,3042585b8215,3545845b8,826b86537,537b1601b80b,504754682b86,81b16b418175714,"
    "1323b2b82b37,7b3b03b80,714104b1718281b,84bb47,6b9a48,2016b98a4,308a3896b,96ba2812a31a,"
    "15b91ba48,8a4092b905b0,a08a3091b15b,32a28a5232b9b25,a4896b753,5376b90128a4,6b9a58508a75,"
    "51275287278a6b9,a4897b379139,7b9379239320a48,1797b907178a870,92b27ba2872a,6ba46a264,"
    "ba66a1a41401,2606a0a30a6b,ba6a16a31,42a25a5ba215,40a0ba05b,b25215a2b23032a,ba55a3,"
    "7534ba6b4264,401a416a1a6b375,0a5a752a0a6b6a2,5171a7b16a1b,2b4ba41b2b373b1,7b3b034ba0b4,"
    "1027ba,a7b,7ab,012b7a,b7a304,124314ab7,1567ab,2056257ab,5610437ab,b7a364624356,ab5a53,"
    "ab53a5120,04ab0a50b,24a52ab5a125,ab61a63a1,620a603a06ab,ab6a614a1041,b6a64a624,298b7a,"
    "019809b7a,829b7a430,7ab839319843,982156b7a,b7a869568058,982304156b7a,698568458543b7a,"
    "53ab5a829,3ab53b098190,9824b0b504ab,54b4ab145498941,298b1a13ab61,0686983606aba63,"
    "b61ab10a1a04982,b6a64a869468,48b4b7,b748b4012,b730b38b0,312b328b23b7,48b74b615,0620568b4b74,"
    "15670b08b730,2363568323b7b38,534854b58,012834538b58,b0850b,2818518b5,8b6386136483,"
    "b3834863b320236,1060b608b,b68862,29b72b427,1909707409b7,73bb39309029,73b39b319,5619727429b7,"
    "4979b7094956590,029309b393b7156,69593579b397,b59549429453,941401b4945354b,9b2b02b50,9b11b5,"
    "3b1b614b3b292b4,b69340,1060b6902b09,b69,7a9796,7a9679201,967a97304,6a967a241431,157a1791a,"
    "0525a2a9257a,4305a1a9157a,95a57a259543452,965395a93,0126393a9653,a960a6506a04,"
    "452512a5459695a,1a93a1,0323923a9,4a0a10a91,4a22a9,7a8278672,80a06a67a601,4302a87a2672,"
    "18384368187a786,5711727a2a82,a87857805,a827a2172715430,a87857384583,3a8638268536,"
    "a6365386a601068,6a2a825a6a040a5,4a8516,2181a813a,03883a,4a0a102a81a2,4a8,489649746,"
    "201689486746,679709089730,786896387812183,748178918715,590920795948497,870730978715179,"
    "892735,534548658968,348538958596012,659589508,281851689586,894934913,894934092390,109908,"
    "892,642674,160640674,023273267,163367,571721742,407705,023273521725,573,345465426,"
    "345465140641,652250,651,214413,034,102,"
)


def gpu_available() -> bool:
    """True when PyTorch is installed and sees a CUDA device.

    Cheap where there is clearly no GPU: PyTorch is not imported when it is not installed, or
    (Linux) when no ``/dev/nvidia*`` device node exists."""
    import importlib.util
    import sys

    if "torch" not in sys.modules:
        if importlib.util.find_spec("torch") is None:
            return False
        if sys.platform.startswith("linux") and not any(n.startswith("nvidia") for n in os.listdir("/dev")):
            return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is an optional extra
        return False
    return bool(torch.cuda.is_available())


def mesher_for_device(device: Any = "auto") -> Callable[..., list[SurfaceModel]]:
    """The label-map mesher to use for ``device`` (the ``--device`` option).

    ``"cuda"``/``"cuda:N"``: :func:`build_surfaces_gpu` on that device (MeshError when CUDA is
    absent); ``"auto"``/None: the same on the first CUDA device when PyTorch sees one, else the
    CPU (VTK) mesher; ``"cpu"``: the CPU (VTK) mesher, which is faster than this module's CPU
    fallback. The result takes :func:`medrecon.surface.mesher.build_surfaces`'s arguments.
    """
    from functools import partial

    from medrecon.surface import build_surfaces

    d = "auto" if device is None else str(device)
    if d == "cpu" or (d == "auto" and not gpu_available()):
        return build_surfaces
    return partial(build_surfaces_gpu, device=resolve_device(d))


def resolve_device(device: Any = "auto"):
    """``"auto"``/None -> first CUDA device if there is one, else CPU
    (:func:`medrecon.devices.resolve_device`, raising :class:`MeshError`)."""
    return _resolve_device(device, MeshError)


_TABLES: dict[str, Any] = {}


def _tables(device):
    """(triangles (256, 5, 3) int64 edge numbers, triangle counts (256,), corner offsets (8, 3),
    edge origin corner (12,), edge axis (12,)) as tensors on ``device`` (cached)."""
    import torch

    key = str(device)
    if key not in _TABLES:
        tri = np.zeros((256, 5, 3), np.int64)
        cnt = np.zeros(256, np.int64)
        for case, s in enumerate("".join(_CASES).split(",")):
            t = np.array([int(ch, 16) for ch in s], np.int64).reshape(-1, 3)
            tri[case, : len(t)] = t
            cnt[case] = len(t)
        corner = np.array([[t & 1, t >> 1 & 1, t >> 2 & 1] for t in range(8)], np.int64)
        origin = np.array([a for a, _ in _EDGES], np.int64)
        axis = np.array([int(np.flatnonzero(corner[b] - corner[a])[0]) for a, b in _EDGES], np.int64)
        _TABLES[key] = tuple(torch.as_tensor(x, device=device) for x in (tri, cnt, corner, origin, axis))
    return _TABLES[key]


# --------------------------------------------------------------------------- contouring
@dataclass
class Contour:
    """All labels' unsmoothed surfaces, on the device.

    ``points`` (V, 3) float32 in **index space** of the unpadded label map; ``faces`` (F, 3)
    int64 into ``points``, counter-clockwise seen from outside in index space. Vertices are
    grouped by label (label ``labels[n]`` owns ``points[vstart[n]:vstart[n+1]]``) and so are
    faces (``faces[fstart[n]:fstart[n+1]]``); ``group`` (V,) is ``n`` per vertex.
    """

    points: Any
    faces: Any
    group: Any
    labels: list[int]
    vstart: list[int]
    fstart: list[int]

    @property
    def n_triangles(self) -> int:
        return int(self.faces.shape[0])


def contour_labels(labels, values=None, device: Any = None) -> Contour:
    """Discrete marching cubes of every label of ``labels`` in one pass.

    Parameters
    ----------
    labels : (I, J, K) integer torch tensor or numpy array (0 = background).
    values : label values to contour (others count as background); None: every non-zero label.
    device : where to compute (default: the tensor's own device, or CPU for numpy input).

    Returns
    -------
    Contour
        Surfaces grouped by label, in index space (voxel centres on integer indices).
    """
    import torch

    lab = torch.as_tensor(labels) if not isinstance(labels, torch.Tensor) else labels
    if device is not None:
        lab = lab.to(device)
    dev = lab.device
    if lab.ndim != 3:
        raise MeshError(f"label map must be 3D, got shape {tuple(lab.shape)}")
    if lab.dtype == torch.bool:
        lab = lab.to(torch.uint8)
    if values is not None:  # keep only the requested labels
        top = int(lab.max()) if lab.numel() else 0
        keep = torch.zeros(top + 1, dtype=torch.bool, device=dev)
        vals = [int(v) for v in values if 0 < int(v) <= top]
        if vals:
            keep[torch.as_tensor(vals, device=dev)] = True
        lab = torch.where(keep[lab.long()], lab, torch.zeros((), dtype=lab.dtype, device=dev))
    lab = lab.to(torch.uint8 if (lab.numel() == 0 or int(lab.max()) < 256) else torch.int32)
    pad = _pad1(lab)  # one voxel of background all round: surfaces close at the border
    tri_t, cnt_t, corner, e_origin, e_axis = _tables(dev)
    X, Y, Z = pad.shape
    # cubes whose corners are not all equal (the only ones that hold triangles)
    c = [pad[di:X - 1 + di, dj:Y - 1 + dj, dk:Z - 1 + dk] for di, dj, dk in corner.tolist()]
    active = c[0] != c[1]
    for t in range(2, 8):
        active |= c[0] != c[t]
    del c
    cube = active.reshape(-1).nonzero().squeeze(1)  # linear index in the (X-1, Y-1, Z-1) cube grid
    del active
    if cube.numel() == 0:
        return _empty_contour(dev)
    ci = cube // ((Y - 1) * (Z - 1))
    cj = (cube // (Z - 1)) % (Y - 1)
    ck = cube % (Z - 1)
    base = (ci * Y + cj) * Z + ck  # linear index of the cube's corner 0 in the padded volume
    del cube, ci, cj, ck
    strides = torch.tensor([Y * Z, Z, 1], device=dev)
    offs = (corner * strides).sum(1)  # (8,)
    flat = pad.reshape(-1)
    vals = flat[base[:, None] + offs].to(torch.int64)  # (M, 8) corner labels
    eq = vals[:, :, None] == vals[:, None, :]  # (M, 8, 8)
    # one (cube, label) pair per distinct non-zero label among the corners: its first corner
    earlier = torch.tril(torch.ones(8, 8, dtype=torch.bool, device=dev), diagonal=-1)
    primary = (vals != 0) & ~(eq & earlier).any(2)
    case = (eq.to(torch.int64) << torch.arange(8, device=dev)).sum(2)
    del eq
    m, s = primary.nonzero(as_tuple=True)
    p_case = case[m, s]
    p_label = vals[m, s]
    p_base = base[m]
    del vals, case, primary, m, s, base
    n_tri = cnt_t[p_case]
    pair = torch.repeat_interleave(torch.arange(p_case.numel(), device=dev), n_tri)
    first = torch.cumsum(n_tri, 0) - n_tri
    k = torch.arange(pair.numel(), device=dev) - first[pair]
    e_local = tri_t[p_case[pair], k]  # (T, 3) edge numbers
    del k, first, n_tri, p_case
    n_lin = X * Y * Z
    gedge = (p_base[pair][:, None] + offs[e_origin[e_local]]) * 3 + e_axis[e_local]
    f_label = p_label[pair]
    del e_local, p_base, p_label, pair
    key = f_label[:, None] * (3 * n_lin) + gedge  # label-major: each label's vertices contiguous
    del gedge
    uniq, inv = torch.unique(key.reshape(-1), sorted=True, return_inverse=True)
    del key
    faces = inv.reshape(-1, 3)
    v_label = uniq // (3 * n_lin)
    g = uniq % (3 * n_lin)
    axis = g % 3
    lin = g // 3
    pts = torch.stack([lin // (Y * Z), (lin // Z) % Y, lin % Z], 1).to(torch.float32)
    pts[torch.arange(pts.shape[0], device=dev), axis] += 0.5
    pts -= 1.0  # padding
    del uniq, g, axis, lin
    # faces grouped by label (stable: keeps cube order inside a label)
    order = torch.sort(f_label, stable=True).indices
    faces = faces[order]
    f_label = f_label[order]
    present, v_counts = torch.unique_consecutive(v_label, return_counts=True)
    _, f_counts = torch.unique_consecutive(f_label, return_counts=True)
    group = torch.repeat_interleave(torch.arange(present.numel(), device=dev), v_counts)
    vstart = [0] + torch.cumsum(v_counts, 0).tolist()
    fstart = [0] + torch.cumsum(f_counts, 0).tolist()
    return Contour(pts, faces, group, [int(v) for v in present.tolist()], vstart, fstart)


def _pad1(lab):
    import torch

    out = torch.zeros(tuple(s + 2 for s in lab.shape), dtype=lab.dtype, device=lab.device)
    out[1:-1, 1:-1, 1:-1] = lab
    return out


def _empty_contour(dev) -> Contour:
    import torch

    return Contour(torch.zeros((0, 3), device=dev), torch.zeros((0, 3), dtype=torch.int64, device=dev),
                   torch.zeros(0, dtype=torch.int64, device=dev), [], [0], [0])


# --------------------------------------------------------------------------- smoothing
#: Area-weighted unit vertex normals on the points' device (the one implementation:
#: :func:`medrecon.surface.device_finish.vertex_normals`).
vertex_normals_torch = DF.vertex_normals


# --------------------------------------------------------------------------- the mesher
def build_surfaces_gpu(labelmap: Volume, labels: dict[int, Any] | None = None, *, smoothing: float = 0.5,
                       reduction: float = 0.0, joint: bool = False, keep_volume: bool = False,
                       progress: Any = None, qa: bool = True,
                       decimate_first: bool = False, workers: int | None = None,
                       affine: np.ndarray | None = None, device: Any = "auto",
                       timings: dict[str, float] | None = None, **cpu_only: Any) -> list[SurfaceModel]:
    """Mesh every label of a label map with the PyTorch path (CUDA, or the CPU fallback).

    Same parameters, defaults and result as :func:`medrecon.surface.mesher.build_surfaces`,
    plus:

    device : ``"auto"`` (CUDA when PyTorch sees it, else the CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"``.
    timings : dict, optional
        Filled with seconds per stage (``upload``, ``contour``, ``smooth``, ``finish``: the
        finishing chain on the device - keep-volume, coincident points, self-intersection
        relaxation, QA; decimation on CPU threads with ``reduction > 0`` - and ``to_host``: one
        copy of all points and faces to host memory).

    ``joint=True``, ``decimate_first=True`` and the CPU mesher's other options (``cpu_only``,
    e.g. ``intensity=`` for intensity iso-surfaces) have no GPU version: such calls go to the CPU
    mesher with every argument unchanged.
    Within tolerance the meshes equal the CPU mesher's: the same vertices and triangles before
    smoothing (up to numbering), smoothed positions within about 1e-4 voxel (float32 on both
    sides), hence the same topology, volume and QA.

    Returns
    -------
    list[SurfaceModel]
        In label order; vertices in LPS mm, outward-facing triangles.

    Raises
    ------
    MeshError
        Bad label map, parameters or device, or none of the requested labels has any voxel.
    """
    import time

    import torch

    from medrecon.surface import mesher as M
    from medrecon.surface.finish import finish_surface

    if joint or decimate_first or any(v is not None for v in cpu_only.values()):
        return M.build_surfaces(labelmap, labels, smoothing=smoothing, reduction=reduction, joint=joint,
                                keep_volume=keep_volume, progress=progress, qa=qa,
                                decimate_first=decimate_first, workers=workers, affine=affine, **cpu_only)
    M._check_params(smoothing, reduction)
    arr, aff = M._as_labelmap(labelmap, affine)
    dev = resolve_device(device)
    tm: dict[str, float] = timings if timings is not None else {}
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    if arr.dtype not in (np.uint8, np.int16, np.int32, np.int64):
        arr = arr.astype(np.int32)
    lab = torch.from_numpy(np.ascontiguousarray(arr)).to(dev, non_blocking=False)
    counts = torch.bincount(lab.reshape(-1).to(torch.int64)).cpu().numpy() if lab.numel() else np.zeros(1, np.int64)
    sync()
    tm["upload"] = time.perf_counter() - t0
    present = [int(v) for v in np.flatnonzero(counts[1:]) + 1]
    if labels is None:
        wanted = {v: M._MetaLabel.from_meta(labelmap, v) for v in present}
    else:
        wanted = {int(v): info for v, info in labels.items() if int(v) != 0}
    pset = set(present)
    todo = [v for v in sorted(wanted) if v in pset]
    if not todo:
        raise MeshError("label map holds none of the requested labels (nothing to mesh)"
                        + (f"; present: {present[:20]}" if present else "; it is empty"))
    attrs = {v: M._label_attrs(v, wanted[v], i) for i, v in enumerate(sorted(wanted)) if v in todo}
    prog = M._Progress(progress, len(todo))

    t0 = time.perf_counter()
    con = contour_labels(lab, todo if len(todo) < len(present) else None)
    del lab
    sync()
    tm["contour"] = time.perf_counter() - t0
    if con.labels != todo:  # every present label has a boundary, so this cannot happen
        raise MeshError(f"internal: GPU contouring found labels {con.labels[:10]}, expected {todo[:10]}")
    t0 = time.perf_counter()
    pts = con.points
    if smoothing > 0:
        pass_band, iterations = M.smoothing_parameters(smoothing)
        pts = windowed_sinc(pts, con.faces, pass_band, iterations, group=con.group)
    lin = torch.as_tensor(aff[:3, :3], dtype=torch.float64, device=dev)
    off = torch.as_tensor(aff[:3, 3], dtype=torch.float64, device=dev)
    lps = pts.to(torch.float64) @ lin.T + off
    faces = con.faces if np.linalg.det(aff[:3, :3]) > 0 else con.faces[:, [0, 2, 1]]  # mirrored frame
    n_groups = len(todo)
    voxel_mm3 = float(abs(np.linalg.det(aff[:3, :3])))
    before = con.points.to(torch.float64) @ lin.T + off
    target = None
    if keep_volume and smoothing > 0:  # the unsmoothed contour's volume, in mm3
        target = DF.signed_volumes(before, faces, con.group, n_groups).abs().tolist()
    del pts, con.points
    sync()
    tm["smooth"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # the one finishing chain; given tensors it runs on their device (surface/device_finish.py)
    lps, faces, (group, infos) = finish_surface(
        lps, faces, before, smoothed=smoothing > 0, reduction=reduction, target_volume_mm3=target,
        voxel_volume_mm3=[int(counts[v]) * voxel_mm3 for v in todo], with_qa=qa, group=con.group,
        n_groups=n_groups)
    del before
    sync()
    tm["finish"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    vcount = torch.bincount(group, minlength=n_groups)
    vstart = [0] + torch.cumsum(vcount, 0).tolist()
    fcount = torch.bincount(DF.face_groups(faces, group), minlength=n_groups)
    fstart = [0] + torch.cumsum(fcount, 0).tolist()
    vs_t = torch.as_tensor(vstart[:-1], device=dev)
    local = faces - vs_t[DF.face_groups(faces, group)][:, None] if faces.shape[0] else faces
    lps_np = lps.cpu().numpy()
    faces_np = local.cpu().numpy()
    tm["to_host"] = time.perf_counter() - t0
    models: list[SurfaceModel] = []
    for n, v in enumerate(todo):
        name, color = attrs[v]
        info: dict[str, Any] = {}
        if qa:
            info = dict(infos[n])
            if target is not None:
                info.pop("volume_offset_mm", None)
                info["volume_kept_mm3"] = round(float(target[n]), 3)
            info = {"label": v, **info, "device": str(dev)}
        models.append(SurfaceModel(name, lps_np[vstart[n]:vstart[n + 1]], faces_np[fstart[n]:fstart[n + 1]],
                                   color, v, info))
        prog.step(n + 1, name)
    return models


#: The CPU mesher's signature (plus ``device``): ``mesh_labelmap_gpu(labelmap, labels, ...)``.
mesh_labelmap_gpu = build_surfaces_gpu
