"""Neural surface (``--method neural``): a NeuS-style signed distance field on the shared hash grid.

* Geometry: :class:`medrecon.inr.NeuralField` (multi-resolution hash grid + small MLP) over the
  object's box gives ``sdf`` and a feature vector; the SDF starts as a sphere (an analytic
  bias ``|x - c| - r`` added to the network's output) so the first rays see a surface.
* Appearance: an MLP of (feature, normal, viewing direction) -> RGB; rays that leave the box
  without being absorbed take a background colour from an MLP of the ray direction.
* Volume rendering (NeuS, Wang et al. 2021, discrete form): along each ray, samples ``x_i`` in
  the box, ``alpha_i = max((Phi(s f_i) - Phi(s f_{i+1})) / Phi(s f_i), 0)`` with ``Phi`` the
  sigmoid and ``s`` a learned sharpness; colour = sum of ``T_i alpha_i c_i``.
* Loss: L1 photometric + eikonal ``(|grad f| - 1)^2`` (autograd, double backward through the
  hash grid) + (with masks) a silhouette term on the accumulated opacity.
* Surface: marching cubes (scikit-image) of the SDF on a grid over the box, support cut and
  texture as in the stereo path (:mod:`medrecon.multiview.stereo`).

:func:`train_sdf` needs only torch and numpy (it runs on a bare GPU machine); :func:`neural_surface`
is the pipeline's stage. Frames and units: world units of the cameras.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..io.colmap import CameraSet

from medrecon.progress import ProgressEvent, ProgressFn

Progress = ProgressFn


class SDFModel(torch.nn.Module):
    def __init__(self, lo, hi, n_levels: int = 14, finest: int = 1024, log2_t: int = 19, feat: int = 13):
        super().__init__()
        from medrecon.inr import MLP, NeuralField

        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        self.register_buffer("centre", torch.tensor(0.5 * (lo + hi), dtype=torch.float32))
        self.radius = float(0.4 * (hi - lo).min())
        self.field = NeuralField(lo, hi, out_dim=1 + feat, width=64, depth=1, activation="softplus",
                                 encoding={"n_levels": n_levels, "n_features": 2, "log2_hashmap_size": log2_t,
                                           "base_resolution": 16, "finest_resolution": finest, "init_scale": 1e-4})
        self.color = MLP(feat + 6, 3, width=64, depth=2, out_activation=None)
        self.bg = MLP(3, 3, width=32, depth=1)
        self.log_s = torch.nn.Parameter(torch.tensor(3.0))  # s = exp(log_s); 20 at the start

    def sdf_feat(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.field(x)
        sdf = out[:, 0] + (torch.linalg.norm(x - self.centre, dim=1) - self.radius)
        return sdf, out[:, 1:]

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        return self.sdf_feat(x)[0]


def _rays(cams: CameraSet, i: int, u: torch.Tensor, v: torch.Tensor, dev) -> tuple[torch.Tensor, torch.Tensor]:
    Kinv = torch.as_tensor(np.linalg.inv(cams.K[i]), dtype=torch.float32, device=dev)
    R = torch.as_tensor(cams.R[i], dtype=torch.float32, device=dev)
    o = torch.as_tensor(cams.centres[i], dtype=torch.float32, device=dev)
    pix = torch.stack([u, v, torch.ones_like(u)], 1)
    d = (pix @ Kinv.T) @ R  # R^T (K^-1 p)
    return o.expand_as(d), F.normalize(d, dim=1)


def _box_hit(o, d, lo, hi):
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t0, t1 = (lo - o) * inv, (hi - o) * inv
    tn = torch.minimum(t0, t1).amax(1).clamp_min(1e-4)
    tf = torch.maximum(t0, t1).amin(1)
    return tn, tf, tf > tn


def render_rays(model: SDFModel, o, d, lo, hi, n_samples: int, train: bool = True):
    """Colour (R, 3), opacity (R,), expected depth (R,) and the SDF gradients at the samples."""
    tn, tf, hit = _box_hit(o, d, lo, hi)
    tf = torch.where(hit, tf, tn + 1e-3)
    R = o.shape[0]
    k = torch.linspace(0, 1, n_samples + 1, device=o.device)[None].expand(R, -1)
    if train:
        k = k + (torch.rand(R, 1, device=o.device) - 0.5) / n_samples
    t = tn[:, None] + (tf - tn)[:, None] * k.clamp(0, 1)
    x = o[:, None] + d[:, None] * t[..., None]  # (R, S+1, 3)
    xf = x.reshape(-1, 3)
    if train:
        xf.requires_grad_(True)
    with torch.enable_grad():
        xg = xf if train else xf.detach().requires_grad_(True)
        sdf, feat = model.sdf_feat(xg)
        grad = torch.autograd.grad(sdf.sum(), xg, create_graph=train)[0]
    if not train:
        sdf, feat, grad = sdf.detach(), feat.detach(), grad.detach()
    sdf = sdf.reshape(R, -1)
    s = model.log_s.exp()
    cdf = torch.sigmoid(s * sdf)
    alpha = ((cdf[:, :-1] - cdf[:, 1:]) / (cdf[:, :-1] + 1e-6)).clamp(0, 1)
    alpha = torch.where(hit[:, None], alpha, torch.zeros_like(alpha))
    T = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-7], 1), 1)[:, :-1]
    w = T * alpha  # (R, S)
    nrm = F.normalize(grad.reshape(R, -1, 3)[:, :-1], dim=-1)
    xm = x[:, :-1]
    fm = feat.reshape(R, -1, feat.shape[-1])[:, :-1]
    dirs = d[:, None].expand_as(xm)
    rgb = torch.sigmoid(model.color(torch.cat([fm, nrm, dirs], -1).reshape(-1, fm.shape[-1] + 6))).reshape(R, -1, 3)
    acc = w.sum(1)
    bg = torch.sigmoid(model.bg(d))
    col = (w[..., None] * rgb).sum(1) + (1 - acc)[:, None] * bg
    depth = (w * t[:, :-1]).sum(1) / acc.clamp_min(1e-6)
    return col, acc, depth, grad


@dataclass
class SDFResult:
    model: SDFModel
    box: np.ndarray
    seconds: float
    iters: int
    losses: list


def train_sdf(images: Sequence[np.ndarray], cams: CameraSet, box: np.ndarray, *, masks=None, iters: int = 2000,
              batch: int = 1024, n_samples: int = 64, lr: float = 1e-2, eikonal: float = 0.1, finest: int = 1024,
              log2_t: int = 19, n_levels: int = 14, device="cpu", progress: Progress | None = None, seed: int = 0,
              max_seconds: float | None = None) -> SDFResult:
    """Fit the SDF to the photos (uint8 RGB, undistorted) with known cameras; ``box`` (2, 3).
    Adam, learning rate decaying to 5 % over ``iters`` or ``max_seconds`` (whichever ends first)."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    lo = torch.as_tensor(box[0], dtype=torch.float32, device=dev)
    hi = torch.as_tensor(box[1], dtype=torch.float32, device=dev)
    model = SDFModel(box[0], box[1], n_levels=n_levels, finest=finest, log2_t=log2_t).to(dev)
    imgs = torch.as_tensor(np.stack(images), dtype=torch.float32, device=dev) / 255.0  # (N, H, W, 3)
    mts = torch.as_tensor(np.stack(masks), dtype=torch.float32, device=dev) if masks is not None else None
    N, H, W = imgs.shape[:3]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    # rays that hit the box only (the rest is backdrop the field does not model)
    per_view = []
    for i in range(N):
        vv, uu = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
        o, d = _rays(cams, i, uu.reshape(-1).to(dev) + 0.5, vv.reshape(-1).to(dev) + 0.5, dev)
        per_view.append(torch.nonzero(_box_hit(o, d, lo, hi)[2]).reshape(-1).cpu())
    counts = torch.tensor([len(p) for p in per_view], dtype=torch.float32)
    Ks = [torch.as_tensor(np.linalg.inv(cams.K[i]), dtype=torch.float32, device=dev) for i in range(N)]
    Rs = [torch.as_tensor(cams.R[i], dtype=torch.float32, device=dev) for i in range(N)]
    Cs = [torch.as_tensor(cams.centres[i], dtype=torch.float32, device=dev) for i in range(N)]
    Kinv = torch.stack(Ks); Rm = torch.stack(Rs); Cm = torch.stack(Cs)

    def step(it):
        view = torch.multinomial(counts, batch, replacement=True, generator=gen)
        j = (torch.rand(batch, generator=gen) * counts[view]).long()
        idx = torch.cat([per_view[int(a)][j[view == a]] for a in torch.unique(view)])
        vsort = torch.cat([view[view == a] for a in torch.unique(view)]).to(dev)
        idx = idx.to(dev)
        u = (idx % W).float() + 0.5
        v = (idx // W).float() + 0.5
        pix = torch.stack([u, v, torch.ones_like(u)], 1)
        d = torch.einsum("bij,bj->bi", Kinv[vsort], pix)
        d = F.normalize(torch.einsum("bji,bj->bi", Rm[vsort], d), dim=1)
        o = Cm[vsort]
        target = imgs[vsort, idx // W, idx % W]
        col, acc, _, grad = render_rays(model, o, d, lo, hi, n_samples, train=True)
        loss_c = (col - target).abs().mean()
        gn = grad.norm(dim=-1)
        loss_e = ((gn - 1) ** 2).mean()
        loss = loss_c + eikonal * loss_e
        if mts is not None:
            m = mts[vsort, idx // W, idx % W]
            loss = loss + 0.1 * F.binary_cross_entropy(acc.clamp(1e-4, 1 - 1e-4), m)
        return {"loss": loss}

    grid_params = list(model.field.encoding.parameters())
    other = [p for n, p in model.named_parameters() if not n.startswith("field.encoding")]
    opt = torch.optim.Adam([{"params": grid_params, "lr": lr}, {"params": other, "lr": lr * 0.1}],
                           betas=(0.9, 0.99), eps=1e-15)
    t0 = time.perf_counter()
    losses, done = [], 0
    for it in range(iters):
        frac = it / max(iters, 1)
        if max_seconds is not None:
            frac = max(frac, (time.perf_counter() - t0) / max_seconds)
            if frac >= 1:
                break
        for g, base in zip(opt.param_groups, (lr, lr * 0.1)):
            g["lr"] = base * (0.05 ** frac)  # exponential decay to 5 %
        out = step(it)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(out["loss"].detach()))
        done = it + 1
        if progress and (it % max(1, iters // 100) == 0 or it == iters - 1):
            progress(ProgressEvent("neural surface", it + 1, iters, "iteration"))
    return SDFResult(model, np.asarray(box, float), time.perf_counter() - t0, done, losses)


@torch.no_grad()
def sdf_grid(model: SDFModel, box: np.ndarray, resolution: int, device="cpu", chunk: int = 262144):
    """SDF sampled on a grid over ``box``: (values (X, Y, Z), origin, voxel)."""
    lo, hi = np.asarray(box[0], float), np.asarray(box[1], float)
    voxel = float((hi - lo).max() / resolution)
    dims = np.ceil((hi - lo) / voxel).astype(int) + 1
    axes = [torch.arange(n, dtype=torch.float32, device=device) * voxel + float(o) for n, o in zip(dims, lo)]
    X, Y, Z = torch.meshgrid(*axes, indexing="ij")
    P = torch.stack([X.reshape(-1), Y.reshape(-1), Z.reshape(-1)], 1)
    out = torch.cat([model.sdf(P[k:k + chunk]) for k in range(0, len(P), chunk)])
    return out.reshape(*[int(x) for x in dims]).cpu().numpy(), lo, voxel


def surface_points(model: SDFModel, box: np.ndarray, resolution: int = 256, device="cpu") -> np.ndarray:
    """Points on the zero level (grid points within a voxel of it, projected along the gradient):
    a mesh-free sampling of the surface for evaluation (torch only)."""
    vals, lo, voxel = sdf_grid(model, box, resolution, device)
    near = np.argwhere(np.abs(vals) < voxel)
    P = torch.as_tensor(near * voxel + lo, dtype=torch.float32, device=device)
    out = []
    for k in range(0, len(P), 131072):
        x = P[k:k + 131072].clone().requires_grad_(True)
        with torch.enable_grad():
            s = model.sdf(x)
            g = torch.autograd.grad(s.sum(), x)[0]
        out.append((x - s[:, None] * F.normalize(g, dim=1)).detach().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 3))


def default_iters(dev) -> int:
    return 6000 if torch.device(dev).type == "cuda" else 400


def object_box_from_points(cams: CameraSet, keep_ground: bool) -> tuple[np.ndarray, Any]:
    """The object's box from the sparse points (support plane removed), or the frustum box."""
    from . import dense as D
    from . import support as SP
    from .support import up_vector

    if len(cams.points) < 20:
        return D.frusta_bbox(cams), None
    P = cams.points
    lo, hi = np.percentile(P, 1, axis=0), np.percentile(P, 99, axis=0)
    sdiag = float(np.linalg.norm(hi - lo))
    tol = 0.006 * sdiag
    up = up_vector(cams)
    plane = None if keep_ground else SP.fit_support(P, up, tol, min_fraction=0.1)
    region = SP.object_region(P, cams, up, plane, 3 * tol, 0.03 * sdiag, D.cameras_bbox(cams).mean(0))
    return region.bbox, plane


def neural_surface(images, masks, cams: CameraSet, opts, *, resize, dev, work_dir=None, progress: Progress | None = None):
    """The pipeline's neural stage: same return values as :func:`~medrecon.multiview.stereo.stereo_surface`."""
    from skimage import measure

    from . import support as SP
    from .support import clean_mesh

    size = opts.dense_size or (min(640, max(images[0].shape[:2])) if torch.device(dev).type == "cuda" else 160)
    d_images, d_masks, d_cams = resize(images, masks, cams, size)
    box, plane = object_box_from_points(d_cams, opts.keep_ground)
    ext = np.ptp(box, axis=0)
    box = np.stack([box[0] - 0.1 * ext, box[1] + 0.1 * ext])
    iters = opts.neural_iters or default_iters(dev)
    cuda = torch.device(dev).type == "cuda"
    res = train_sdf(d_images, d_cams, box, masks=d_masks, iters=iters, batch=4096 if cuda else 512,
                    n_samples=96 if cuda else 48, finest=1024 if cuda else 128, log2_t=19 if cuda else 15,
                    device=dev, progress=progress)
    resolution = opts.resolution
    vals, lo, voxel = sdf_grid(res.model, box, resolution, dev)
    if vals.min() > 0 or vals.max() < 0:
        from ..errors import MedreconError

        raise MedreconError("the neural surface has no zero level (training diverged?)")
    v, f, _, _ = measure.marching_cubes(vals.astype(np.float32), 0.0)
    v = v * voxel + lo
    f = f[:, ::-1].copy()  # outward normals (positive SDF outside)
    removed = 0
    if plane is not None:
        v, f, removed = SP.cut_support(v, f, plane, 1.5 * voxel)
    v, f, clean_info = clean_mesh(v, f, up=None, keep_all=opts.keep_all)
    info = {"method": "NeuS-style SDF on the medrecon.inr hash grid (volume rendering + eikonal), marching cubes",
            "device": str(dev), "image_size_px": [int(d_images[0].shape[1]), int(d_images[0].shape[0])],
            "iterations": res.iters, "train_s": round(res.seconds, 2), "final_loss": float(np.mean(res.losses[-20:])),
            "object_box": box.round(6).tolist(), "voxel_world": voxel,
            "support": ({"found": True, "normal": plane.normal.round(5).tolist(), "faces_removed": removed,
                         "removed": "the support plane and everything under it"} if plane is not None else
                        {"found": False, "removed": "nothing"}),
            "clean": clean_info}
    return v, f, info, {"cams": d_cams, "images": d_images, "masks": None, "depths": None}


__all__ = ["SDFModel", "train_sdf", "render_rays", "sdf_grid", "surface_points", "neural_surface"]
