"""Top-level slice-to-volume reconstruction: ``average``, ``srr``, ``svr`` and ``inr``."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from scipy import ndimage

from medrecon.errors import MedreconError
from medrecon.inr.train import pick_device
from medrecon.svr.forward import ForwardModel
from medrecon.svr.poses_util import pose_matrices
from medrecon.svr.register import slice_ncc
from medrecon.svr.srr import (auto_lambda, backproject_average, estimate_noise, mean_foreground,
                              solve_srr)
from medrecon.svr.stacks import SliceStack, StackError, check_compatible, make_grid
from medrecon.volume import Volume
from medrecon.progress import ProgressFn

Progress = ProgressFn
METHODS = ("average", "srr", "svr", "inr", "single")


@dataclass
class SVRResult:
    """A reconstruction and what was estimated on the way.

    Attributes
    ----------
    volume : Volume
        Isotropic volume in the stacks' world space (index -> LPS mm), input intensity units.
    method : str
    axis_angle, translation : (N, 3)
        Final per-slice rigid poses (radians, mm) about ``center`` (LPS mm); identity for
        ``average``/``srr``. A slice's pixel at nominal position ``x`` is modelled at
        ``R (x - center) + center + t``.
    slice_weights : (N,)
        Per-slice weight used in the last reconstruction (0 = excluded).
    slice_ncc : (N,)
        NCC between each acquired slice and the same slice simulated from the result.
    stack_index, slice_index : (N,) int
        Which stack / slice within it each entry is.
    stack_names : list of str
    params : dict
        Noise estimate, prior weight, spacing, iterations, device...
    timings : dict
        Seconds per stage.
    """

    volume: Volume
    method: str
    axis_angle: np.ndarray
    translation: np.ndarray
    center: np.ndarray
    slice_weights: np.ndarray
    slice_ncc: np.ndarray
    stack_index: np.ndarray
    slice_index: np.ndarray
    stack_names: list
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def matrices(self) -> np.ndarray:
        """(N, 4, 4) world-space (LPS mm) rigid transforms of the slices."""
        return pose_matrices(self.axis_angle, self.translation, self.center)

    def to_dict(self) -> dict:
        """JSON-able summary: per-slice poses and weights, parameters, timings (no identifiers)."""
        M = self.matrices()
        slices = []
        for n in range(len(self.slice_weights)):
            slices.append({
                "stack": self.stack_names[int(self.stack_index[n])], "stack_index": int(self.stack_index[n]),
                "slice": int(self.slice_index[n]), "weight": round(float(self.slice_weights[n]), 5),
                "ncc": round(float(self.slice_ncc[n]), 5),
                "rotation_deg": [round(float(v), 5) for v in np.rad2deg(self.axis_angle[n])],
                "translation_mm": [round(float(v), 5) for v in self.translation[n]],
                "matrix_lps": [[round(float(v), 7) for v in row] for row in M[n]],
            })
        return {"method": self.method, "frame": "LPS mm", "center_lps_mm": [float(v) for v in self.center],
                "pose_convention": "x -> R (x - center) + center + t; R from axis-angle rotation_deg (degrees)",
                "stacks": list(self.stack_names), "params": self.params, "timings_s": self.timings,
                "slices": slices}


def _as_stacks(stacks, thickness=None, names=None, stack_masks=None) -> list[SliceStack]:
    out = []
    for i, s in enumerate(stacks):
        name = names[i] if names else f"stack{i}"
        th = None if thickness is None else (thickness[i] if isinstance(thickness, (list, tuple)) else float(thickness))
        if isinstance(s, SliceStack):
            out.append(s)
        elif isinstance(s, Volume):
            m = None if stack_masks is None else stack_masks[i]
            out.append(SliceStack.from_volume(s, th, m, name))
        else:
            raise MedreconError(f"stack {name}: expected a Volume or SliceStack, got {type(s).__name__}")
        if out[-1].image.ndim != 3 or min(out[-1].image.shape[:2]) < 4:
            raise StackError(f"stack {name} is not a stack of 2D slices (shape {out[-1].image.shape})")
    return out


def _mask_weights(fm: ForwardModel, mask: Volume, dilation: int = 3) -> list[torch.Tensor]:
    """1 for pixels whose centre falls inside the (dilated) mask, resampled to the grid."""
    from medrecon.svr.evaluate import resample_to

    grid = Volume(np.zeros(fm.grid_shape, np.float32), fm.grid_affine)
    m = resample_to(Volume((np.asarray(mask.array) > 0).astype(np.float32), mask.affine), grid, order=0) > 0.5
    if dilation:
        m = ndimage.binary_dilation(m, iterations=dilation)
    mt = torch.as_tensor(m.astype(np.float32), device=fm.device)
    saved = [s["fast_sigma"] for s in fm._stack]
    mode = fm.mode
    fm.mode = "fast"
    for s in fm._stack:
        s["fast_sigma"] = np.zeros(3)
    with torch.no_grad():
        pred = fm(mt)
    for s, sig in zip(fm._stack, saved):
        s["fast_sigma"] = sig
    fm.mode = mode
    return [(p > 0.5).to(fm.dtype) for p in pred], m


def reconstruct(stacks: Sequence, method: str = "svr", spacing: float | None = None,
                mask: Volume | None = None, thickness=None, device: str = "auto",
                progress: Progress | None = None, names: Sequence[str] | None = None,
                stack_masks=None, grid: tuple | None = None, lam: float | str = "auto",
                n_outer: int = 6, initial_poses=None, inr_options: dict | None = None,
                svr_options: dict | None = None, single_options=None,
                motion_correction: bool = True, seed: int = 0) -> SVRResult:
    """Reconstruct one isotropic volume from thick-slice stacks.

    Parameters
    ----------
    stacks : list of Volume (or SliceStack)
        The acquired stacks (any loaded series); the slice axis is the axis with the largest
        spacing. They must share a frame of reference and overlap.
    method : {"average", "srr", "svr", "inr"}
        ``average``: PSF back-projection (baseline). ``srr``: super-resolution with an
        edge-preserving prior whose weight follows the estimated noise. ``svr``: stack-to-stack
        alignment, per-slice rigid registration and robust ``srr``. ``inr``: ``svr`` followed by
        a hash-grid neural field fitted through the same forward model with pose refinement
        and per-slice uncertainty (GPU recommended). ``single``: exactly one stack made
        isotropic by self-supervised super-resolution (a CNN trained on its own in-plane
        images degraded to the slice profile; SMORE family).
    spacing : float, optional
        Output voxel size in mm; default the smallest in-plane pixel size (>= 0.5 mm).
    mask : Volume, optional
        Region of interest (any grid): pixels outside it (dilated 3 voxels) are ignored and the
        output is cropped to its box and zeroed outside.
    thickness : float or list, optional
        Slice thickness per stack (mm); default ``meta['slice_thickness']`` or the spacing.
    device : {"auto", "cpu", "cuda", "cuda:N"}
    progress : callable(stage, done, total), optional
    names : list of str, optional
        Labels of the stacks in the JSON report (file base names).
    stack_masks : list of (nx, ny, ns) bool, optional
        Per-stack pixel masks (stack array order).
    grid : (affine, shape), optional
        Output grid to use instead of the automatic one.
    lam : float or "auto"
        Prior weight (intensities scaled to ~[0, 1] internally); "auto" follows the noise.
    n_outer : int
        Registration/reconstruction cycles for ``svr`` (all but the last two on a 2x coarser grid).
    svr_options : dict, optional
        Overrides for :func:`medrecon.svr.register.svr_loop` (``coarse``, ``n_fine``,
        ``robust``, ``ncc_threshold``).
    initial_poses : (axis_angle (N, 3) rad, translation (N, 3) mm), optional
        Starting poses about the grid centre (e.g. known poses).
    inr_options : dict, optional
        Overrides for :func:`medrecon.svr.inr_method.fit_inr`.
    single_options : medrecon.svr.single.SingleOptions, optional
        Options of ``single`` (one stack made isotropic by self-supervised super-resolution).
    motion_correction : bool
        For ``inr``: start from ``svr`` (True) or from ``srr`` with the given poses (False,
        for stacks known to be still); the field still refines the poses.

    Returns
    -------
    SVRResult
    """
    if method not in METHODS:
        raise MedreconError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if not stacks:
        raise StackError("no stacks given")
    t_all = time.perf_counter()
    timings: dict = {}
    torch.manual_seed(seed)
    dev = pick_device(device)
    ss = _as_stacks(stacks, thickness, names, stack_masks)
    check_compatible(ss)
    spacing_given = spacing is not None
    if method == "single" and len(ss) != 1:
        raise MedreconError(f"method single takes exactly one stack ({len(ss)} given); use svr or srr for several")
    if spacing is None:
        spacing = max(0.5, float(min(min(s.spacing[0], s.spacing[1]) for s in ss)))
    if grid is None:
        affine, shape = make_grid(ss, float(spacing), mask, margin_mm=3.0)
    else:
        affine, shape = np.asarray(grid[0], float), tuple(int(v) for v in grid[1])
    nvox = int(np.prod(shape))
    if nvox > 80_000_000:
        raise MedreconError(f"output grid {shape} at {spacing} mm is too large ({nvox / 1e6:.0f} M voxels); "
                            "use a larger --spacing or a --mask")
    if method == "single":
        return _single(ss, affine if grid is not None or spacing_given else None, shape, dev, progress,
                       single_options, t_all)
    fm = ForwardModel(ss, affine, shape, device=dev)
    ys = fm.images()
    ws = fm.images(weights=True)
    out_mask = None
    if mask is not None:
        mw, out_mask = _mask_weights(fm, mask)
        ws = [w * m for w, m in zip(ws, mw)]
    # internal intensity scale: ~1 for bright tissue
    vals = torch.cat([y[w > 0].flatten()[:: 7] for y, w in zip(ys, ws)])
    if vals.numel() == 0:
        raise StackError("no pixel of the stacks lies inside the mask")
    scale = float(torch.quantile(vals[:: max(1, vals.numel() // 2_000_000)].float(), 0.995))
    if not np.isfinite(scale) or scale <= 0:
        raise StackError("the stacks hold no signal (all pixels <= 0)")
    ys = [y / scale for y in ys]
    N = fm.n_slices
    poses = None
    if initial_poses is not None:
        poses = (torch.as_tensor(np.asarray(initial_poses[0]), dtype=torch.float32, device=dev),
                 torch.as_tensor(np.asarray(initial_poses[1]), dtype=torch.float32, device=dev))
    sigma = estimate_noise(ys, ws)
    fg = mean_foreground(ys, ws)
    lam_v = auto_lambda(sigma, 1.0) if lam == "auto" else float(lam)
    delta = 0.2 * fg
    params = {"spacing_mm": float(spacing), "grid_shape": list(shape), "device": str(dev),
              "noise_sigma_est": sigma * scale, "intensity_scale": scale, "lambda": lam_v,
              "edge_delta": delta * scale, "psf": "gaussian: in-plane FWHM 1.2 x pixel, through-plane FWHM = thickness",
              "thickness_mm": [float(s.thickness) for s in ss]}
    slice_w = np.ones(N)

    t0 = time.perf_counter()
    x = backproject_average(fm, ys, ws, poses)
    timings["average"] = time.perf_counter() - t0
    ws_r = ws
    if method == "srr" or (method == "inr" and not motion_correction):
        t0 = time.perf_counter()
        x = solve_srr(fm, ys, ws, x, lam_v, delta, poses, progress=progress)
        timings["srr"] = time.perf_counter() - t0
    elif method in ("svr", "inr"):
        from medrecon.svr.register import svr_loop

        t0 = time.perf_counter()
        x, poses, ws_r, slice_w, info = svr_loop(fm, ys, ws, x, poses, lam_v, delta, sigma,
                                                 n_outer=n_outer, progress=progress, **(svr_options or {}))
        params.update(info)
        timings["svr"] = time.perf_counter() - t0
    if method == "inr":
        from medrecon.svr.inr_method import fit_inr

        t0 = time.perf_counter()
        x, poses, slice_w_inr, inr_info = fit_inr(fm, ys, ws_r, x, poses, sigma, progress=progress,
                                                  **(inr_options or {}))
        slice_w = slice_w * slice_w_inr
        params["inr"] = inr_info
        timings["inr"] = time.perf_counter() - t0
    x = x.clamp_min(0)
    ncc = slice_ncc(fm, x, ys, ws, poses)
    arr = x.detach().cpu().numpy().astype(np.float32) * scale
    if out_mask is not None:
        arr = np.where(out_mask, arr, 0).astype(np.float32)
    meta = {"modality": ss[0].modality or None, "description": f"medrecon svr ({method})",
            "slice_thickness": float(spacing)}
    vol = Volume(arr, affine, {k: v for k, v in meta.items() if v is not None})
    if poses is None:
        aa, tr = np.zeros((N, 3)), np.zeros((N, 3))
    else:
        aa, tr = poses[0].detach().cpu().numpy().astype(float), poses[1].detach().cpu().numpy().astype(float)
    stack_index = np.concatenate([np.full(s.n_slices, k) for k, s in enumerate(ss)])
    slice_index = np.concatenate([np.arange(s.n_slices) for s in ss])
    timings["total"] = time.perf_counter() - t_all
    return SVRResult(vol, method, aa, tr, fm.center_np.copy(), np.asarray(slice_w, float), ncc,
                     stack_index, slice_index, [s.name for s in ss], params,
                     {k: round(v, 3) for k, v in timings.items()})


def _single(ss, affine, shape, dev, progress, options, t_all) -> SVRResult:
    """``single``: :func:`medrecon.svr.single.super_resolve_stack` wrapped as an :class:`SVRResult`."""
    from medrecon.svr.single import super_resolve_stack

    from medrecon.svr.single import SingleOptions

    if isinstance(options, dict):
        options = SingleOptions(**options)
    st = ss[0]
    arr, aff, info = super_resolve_stack(st, affine, shape if affine is not None else None, options,
                                         progress=progress, device=str(dev))
    n = st.n_slices
    fm = ForwardModel(ss, aff, arr.shape, device=dev)
    x = torch.as_tensor(arr, dtype=torch.float32, device=dev)
    ncc = slice_ncc(fm, x, fm.images(), fm.images(weights=True))
    meta = {"modality": st.modality or None, "description": "medrecon svr (single)",
            "slice_thickness": float(np.linalg.norm(aff[:3, 0]))}
    vol = Volume(arr.astype(np.float32), aff, {k: v for k, v in meta.items() if v is not None})
    z = np.zeros((n, 3))
    params = {"spacing_mm": float(np.linalg.norm(aff[:3, 0])), "grid_shape": list(arr.shape), "device": str(dev),
              "noise_sigma_est": info["noise_sigma_est"], "single": info,
              "thickness_mm": [float(st.thickness)]}
    timings = {"train": info["train_s"], "single": info["total_s"], "total": round(time.perf_counter() - t_all, 3)}
    return SVRResult(vol, "single", z, z.copy(), fm.center_np.copy(), np.ones(n), ncc, np.zeros(n, int),
                     np.arange(n), [st.name], params, timings)
