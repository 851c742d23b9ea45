"""``single``: one thick-slice stack made isotropic by self-supervised super-resolution.

The SMORE / ECLARE idea: a stack of thick slices has fine in-plane resolution and coarse
through-plane resolution. Degrade the stack's own in-plane images along one axis to the
through-plane profile (Gaussian blur to the slice profile, sampling at the slice spacing, the
noise put back, cubic B-spline interpolation back to the pixel size) and train a small 2D CNN to
undo that degradation; then apply it to the through-plane planes of the cubic-interpolated stack
(both families of planes, averaged). Nothing but the case's own pixels is used: no weights are
downloaded or shipped.

Entry point: :func:`super_resolve_stack` (options: :class:`SingleOptions`); ``reconstruct(...,
method="single")`` calls it for exactly one stack.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, asdict


import numpy as np
import torch
import torch.nn as nn
from scipy import ndimage

from medrecon.errors import MedreconError
from medrecon.progress import ProgressEvent, ProgressFn
from medrecon.svr.stacks import SliceStack
from medrecon.volume import Volume

Progress = ProgressFn
FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass
class SingleOptions:
    """Options of the ``single`` method (defaults sized for a 2-core CPU, under 10 min per brain).

    iterations : training steps (Adam); batch : patches per step; patch : patch side (pixels);
    width, depth : CNN channels and 3x3 conv layers; lr : learning rate; seed : RNG seed.
    """

    iterations: int = 1500
    batch: int = 16
    patch: int = 48
    width: int = 32
    depth: int = 6
    lr: float = 1e-3
    seed: int = 0


class _Net(nn.Module):
    """Residual CNN: input (interpolated) + correction."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        layers = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(width, 1, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x):
        return x + self.body(x)


def _cubic_along0(lr: np.ndarray, pos: np.ndarray, n_out: int) -> np.ndarray:
    """Cubic B-spline interpolation along axis 0: samples ``lr`` sit at fractional output
    positions ``pos`` (evenly spaced); returns ``n_out`` rows at integer positions."""
    step = pos[1] - pos[0] if len(pos) > 1 else 1.0
    u = (np.arange(n_out) - pos[0]) / step
    coords = np.broadcast_to(u[:, None], (n_out, lr.shape[1]))
    cols = np.broadcast_to(np.arange(lr.shape[1])[None, :], (n_out, lr.shape[1]))
    return ndimage.map_coordinates(lr, [coords, cols], order=3, mode="nearest")


def _degrade(img: np.ndarray, factor: float, sigma_px: float, noise: float, rng) -> np.ndarray:
    """In-plane image -> through-plane-like image along axis 0 (blur, sample, noise, cubic back)."""
    b = ndimage.gaussian_filter1d(img, sigma_px, axis=0, mode="nearest") if sigma_px > 0.05 else img
    phase = rng.uniform(0, factor)
    pos = np.arange(phase, img.shape[0] - 1e-6, factor)
    if len(pos) < 3:
        return b
    lr = ndimage.map_coordinates(b, [np.broadcast_to(pos[:, None], (len(pos), img.shape[1])),
                                     np.broadcast_to(np.arange(img.shape[1])[None, :], (len(pos), img.shape[1]))],
                                 order=3, mode="nearest")
    if noise > 0:
        lr = lr + rng.normal(0, noise, lr.shape)
    return _cubic_along0(lr, pos, img.shape[0])


def _kernel_energy(sigma_px: float) -> float:
    """Sum of squared weights of a discrete Gaussian (noise kept by the blur)."""
    if sigma_px < 0.05:
        return 1.0
    r = int(math.ceil(4 * sigma_px))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_px) ** 2)
    k /= k.sum()
    return float((k * k).sum())


def super_resolve_stack(stack: SliceStack, grid_affine=None, grid_shape=None, options: SingleOptions | None = None,
                        noise_sigma: float | None = None, progress: Progress | None = None,
                        device: str = "cpu") -> tuple[np.ndarray, np.ndarray, dict]:
    """Isotropic volume from one stack by self-supervised super-resolution.

    Parameters
    ----------
    stack : SliceStack
        Slices along array axis 2; in-plane pixels should be (nearly) square.
    grid_affine, grid_shape : optional
        Output grid (index -> LPS mm). Default: the stack's pixel grid with slices resampled to
        the in-plane pixel size. A grid whose axes are not the stack's is filled by trilinear
        resampling of the result on the stack-aligned grid.
    options : SingleOptions
    noise_sigma : float, optional
        Noise of the slices (intensity units); estimated when None.

    Returns
    -------
    (array, affine, info)
    """
    from medrecon.svr.srr import estimate_noise

    o = options or SingleOptions()
    t0 = time.perf_counter()
    img = np.asarray(stack.image, np.float32)
    nx, ny, ns = img.shape
    sp = np.asarray(stack.spacing, float)
    if ns < 3:
        raise MedreconError(f"stack {stack.name}: {ns} slice(s); the single-stack method needs at least 3")
    px = float(np.sqrt(sp[0] * sp[1]))
    if abs(sp[0] - sp[1]) > 0.05 * px:
        raise MedreconError(f"stack {stack.name}: in-plane pixels {sp[0]:.3g} x {sp[1]:.3g} mm are not square")
    factor = sp[2] / px  # slice spacing in pixels
    sig = stack.psf_sigmas()
    sigma_px = math.sqrt(max(sig[2] ** 2 - sig[0] ** 2, 0.0)) / px
    # intensity scale ~1 for bright tissue
    pos_vals = img[img > 0]
    scale = float(np.percentile(pos_vals, 99.5)) if pos_vals.size else 1.0
    if not np.isfinite(scale) or scale <= 0:
        raise MedreconError(f"stack {stack.name} holds no signal")
    a = img / scale
    if noise_sigma is None:
        t = torch.as_tensor(np.moveaxis(a, 2, 0))
        noise = estimate_noise([t], [torch.ones_like(t)])
    else:
        noise = noise_sigma / scale
    noise_lr = noise * math.sqrt(max(1.0 - _kernel_energy(sigma_px), 0.0))
    rng = np.random.default_rng(o.seed)
    torch.manual_seed(o.seed)
    dev = torch.device(device)
    net = _Net(o.width, o.depth).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=o.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, o.iterations)
    # training pool: in-plane slices holding signal, both in-plane axes as the degraded one
    fg = [k for k in range(ns) if (a[:, :, k] > 0.05).mean() > 0.05] or list(range(ns))
    P = min(o.patch, nx, ny)
    big = int(min(max(P * 2, int(math.ceil(factor * 8))), nx, ny))  # degrade a larger crop, cut the patch
    losses = []
    for it in range(o.iterations):
        xs, ts = [], []
        for _ in range(o.batch):
            sl = a[:, :, fg[rng.integers(len(fg))]]
            if rng.random() < 0.5:
                sl = sl.T
            i0 = rng.integers(0, sl.shape[0] - big + 1)
            j0 = rng.integers(0, sl.shape[1] - P + 1)
            crop = sl[i0:i0 + big, j0:j0 + P]
            d = _degrade(crop, factor, sigma_px, noise_lr, rng)
            c0 = (big - P) // 2
            xs.append(d[c0:c0 + P])
            ts.append(crop[c0:c0 + P])
        x = torch.as_tensor(np.stack(xs)[:, None], dtype=torch.float32, device=dev)
        y = torch.as_tensor(np.stack(ts)[:, None], dtype=torch.float32, device=dev)
        loss = torch.nn.functional.l1_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if progress is not None and (it % 10 == 0 or it == o.iterations - 1):
            progress(ProgressEvent("train", it + 1, o.iterations, "iteration"))
    t_train = time.perf_counter() - t0
    # output positions along the slice axis, in pixels of the stack-aligned grid
    stack_aligned = grid_affine is None
    if stack_aligned:
        n_out = int(round((ns - 1) * factor)) + 1
        pos = np.arange(ns) * factor
        affine = stack.affine.copy()
        affine[:3, 2] = stack.affine[:3, 2] / factor
        out_shape = (nx, ny, n_out)
    else:
        M = np.linalg.inv(stack.affine) @ np.asarray(grid_affine, float)
        in_plane_same = (np.allclose(M[:2, :2], np.eye(2), atol=1e-3) and np.allclose(M[:2, 3], 0, atol=1e-3)
                         and np.allclose(M[2, :2], 0, atol=1e-4) and np.allclose(M[:2, 2], 0, atol=1e-4)
                         and tuple(grid_shape[:2]) == (nx, ny) and abs(M[2, 2] * factor - 1) < 1e-3)
        if in_plane_same:  # output z index j sits at slice coordinate M[2,2] j + M[2,3]
            n_out = int(grid_shape[2])
            pos = (np.arange(ns) - M[2, 3]) / M[2, 2]
            affine, out_shape = np.asarray(grid_affine, float), tuple(int(v) for v in grid_shape)
        else:
            stack_aligned = True
            n_out = int(round((ns - 1) * factor)) + 1
            pos = np.arange(ns) * factor
            affine = stack.affine.copy()
            affine[:3, 2] = stack.affine[:3, 2] / factor
            out_shape = (nx, ny, n_out)
    # cubic interpolation along the slice axis, then the network on both families of planes
    u = (np.arange(n_out) - pos[0]) / (pos[1] - pos[0])
    coeff = ndimage.spline_filter1d(a, order=3, axis=2, mode="nearest")
    base = ndimage.map_coordinates(coeff, np.meshgrid(np.arange(nx), np.arange(ny), u, indexing="ij"),
                                   order=3, mode="nearest", prefilter=False).astype(np.float32)
    out = np.zeros_like(base)
    net.eval()
    total = nx + ny
    done = 0
    with torch.no_grad():
        for axis in (0, 1):  # planes at fixed x (y-z images) and at fixed y (x-z images)
            n = base.shape[axis]
            chunk = max(1, 2_000_000 // (base.shape[1 - axis] * n_out))
            for s0 in range(0, n, chunk):
                sl = np.take(base, np.arange(s0, min(n, s0 + chunk)), axis=axis)  # (.., other, z)
                planes = np.moveaxis(sl, axis, 0)  # (c, other, z)
                zt = torch.as_tensor(np.ascontiguousarray(np.swapaxes(planes, 1, 2))[:, None], device=dev)  # (c,1,z,other)
                r = net(zt)[:, 0].cpu().numpy()
                r = np.swapaxes(r, 1, 2)  # (c, other, z)
                if axis == 0:
                    out[s0:s0 + chunk] += r
                else:
                    out[:, s0:s0 + chunk] += np.moveaxis(r, 0, 1)
                done += planes.shape[0]
                if progress is not None:
                    progress(ProgressEvent("apply", done, total, "plane"))
    out = 0.5 * out * scale
    out = np.clip(out, 0, None)
    info = {"iterations": o.iterations, "train_s": round(t_train, 2), "total_s": round(time.perf_counter() - t0, 2),
            "final_loss": float(np.mean(losses[-50:])) if losses else None, "noise_sigma_est": noise * scale,
            "slice_spacing_px": factor, "options": asdict(o)}
    if not stack_aligned or grid_affine is None:
        return out.astype(np.float32), affine, info
    from medrecon.svr.evaluate import resample_to

    res = resample_to(Volume(out, affine), Volume(np.zeros(grid_shape, np.float32), np.asarray(grid_affine, float)))
    return res, np.asarray(grid_affine, float), info
