"""``inr`` method: a hash-grid neural field fitted to the slices through the same PSF model,
with per-slice pose refinement and per-slice uncertainty (NeSVoR-like), on top of the
explicit ``svr`` volume (the field learns the residual, so it starts from that volume)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from medrecon.inr import NeuralField, RigidPoses, fit, maybe_compile
from medrecon.svr.forward import ForwardModel
from medrecon.progress import ProgressFn

Progress = ProgressFn


def _pixels(fm: ForwardModel, ys, ws):
    """Flat list of weighted pixels: nominal world position, slice id, stack id, value, weight."""
    pos, sid, kid, val, wt = [], [], [], [], []
    for k, (y, w) in enumerate(zip(ys, ws)):
        nz = torch.nonzero(w > 0, as_tuple=False)  # (P, 3): slice, i, j
        if nz.numel() == 0:
            continue
        A = fm._stack[k]["A"]
        ijk = torch.stack([nz[:, 1], nz[:, 2], nz[:, 0]], 1).to(fm.dtype)
        pos.append(ijk @ A[:3, :3].T + A[:3, 3])
        sid.append(nz[:, 0] + int(fm.offsets[k]))
        kid.append(torch.full((nz.shape[0],), k, device=fm.device, dtype=torch.long))
        val.append(y[nz[:, 0], nz[:, 1], nz[:, 2]])
        wt.append(w[nz[:, 0], nz[:, 1], nz[:, 2]])
    return torch.cat(pos), torch.cat(sid), torch.cat(kid), torch.cat(val), torch.cat(wt)


def fit_inr(fm: ForwardModel, ys, ws, x_base: torch.Tensor, poses, sigma: float,
            n_iter: int | None = None, batch: int | None = None, n_samples: int | None = None,
            lr: float = 5e-3, n_levels: int = 12, log2_hashmap_size: int | None = None, width: int = 64,
            weight_pose: float = 0.1, weight_edge: float = 0.02, refine_poses: bool = True,
            compile: bool | None = None, progress: Progress | None = None, seed: int = 0):
    """Fit ``x_base + f(x)`` (f = hash grid + MLP, grid index frame) to the slice pixels.

    Parameters
    ----------
    fm : ForwardModel
        Geometry (stacks, grid, pose centre). Its PSF widths are used for Monte-Carlo samples.
    ys, ws : lists of (ns, nx, ny) tensors
        Slices (internal intensity scale) and pixel weights.
    x_base : tensor (grid shape)
        Explicit starting volume (the ``svr`` result); the field learns the correction.
    poses : (axis_angle, translation) tensors or None
        Starting poses (refined jointly when ``refine_poses``).
    sigma : float
        Estimated noise (initial per-slice standard deviation).
    n_iter : int, optional
        Default 3000 on GPU, 150 on CPU (CPU defaults are small: batch 1024 pixels, 8 PSF
        samples, 2^15 table entries; the CPU path is for tests and small volumes).
    weight_pose, weight_edge : float
        Pose deviation penalty and edge-preserving smoothness of the correction.

    Returns
    -------
    x : tensor (grid shape), poses, slice_weights (N,) numpy, info dict
    """
    dev = fm.device
    g = torch.Generator(device="cpu").manual_seed(seed)
    gpu = dev.type == "cuda"
    n_iter = n_iter or (3000 if gpu else 150)
    batch = batch or (4096 if gpu else 1024)
    n_samples = n_samples or (64 if gpu else 8)
    log2_hashmap_size = log2_hashmap_size or (19 if gpu else 15)
    N = fm.n_slices
    pos, sid, kid, val, wt = _pixels(fm, ys, ws)
    P = pos.shape[0]
    shape = torch.as_tensor(fm.grid_shape, device=dev, dtype=fm.dtype)
    field = NeuralField([0.0, 0.0, 0.0], (shape - 1).tolist(), out_dim=1, width=width, depth=1,
                        encoding={"n_levels": n_levels, "n_features": 2, "log2_hashmap_size": log2_hashmap_size,
                                  "base_resolution": 16, "finest_resolution": float(max(fm.grid_shape))}).to(dev)
    with torch.no_grad():
        last = field.mlp.net[-1]
        last.weight.zero_()
        last.bias.zero_()
    aa0 = torch.zeros(N, 3) if poses is None else poses[0].detach().cpu()
    tr0 = torch.zeros(N, 3) if poses is None else poses[1].detach().cpu()
    rp = RigidPoses(N, aa0, tr0, center=fm.center.cpu().tolist()).to(dev)
    log_var = torch.nn.Parameter(torch.full((N,), math.log(max(sigma, 1e-4) ** 2), device=dev))
    # per-stack PSF axes in world space
    axes = torch.stack([torch.as_tensor(s.direction, dtype=fm.dtype, device=dev) for s in fm.stacks])  # (S, 3, 3)
    sig = torch.stack([torch.as_tensor(s.psf_sigmas(), dtype=fm.dtype, device=dev) for s in fm.stacks])  # (S, 3)
    ginv_R, ginv_t = fm._ginv_R, fm._ginv_t
    vol = x_base.detach()[None, None]
    norm = fm._norm
    enc = maybe_compile(field, dev, compile)

    def base_at(idx):  # idx: (M, 3) grid index -> trilinear base volume
        gcoord = (idx * norm - 1.0).flip(-1)
        return F.grid_sample(vol, gcoord.reshape(1, 1, 1, -1, 3), mode="bilinear", padding_mode="zeros",
                             align_corners=True).reshape(-1)

    def predict(b_idx, gen=None):
        B = b_idx.numel()
        k = kid[b_idx]
        xi = torch.randn(B, n_samples, 3, device=dev, dtype=fm.dtype)
        off = torch.einsum("bsd,bd,bed->bse", xi, sig[k], axes[k])      # PSF offsets in world
        pts = pos[b_idx][:, None, :] + off                                # (B, K, 3) nominal
        s_id = sid[b_idx][:, None].expand(B, n_samples).reshape(-1)
        moved = rp.transform(pts.reshape(-1, 3), s_id) if refine_poses else pts.reshape(-1, 3)
        if not refine_poses and poses is not None:
            moved = RigidPoses.transform(rp, pts.reshape(-1, 3), s_id)
        idx = moved @ ginv_R.T + ginv_t
        v = base_at(idx) + enc(idx).reshape(-1)
        return v.reshape(B, n_samples).mean(1), idx

    delta = 0.2 * float(val[val > 0].mean()) if (val > 0).any() else 0.1

    def step(it):
        b_idx = torch.randint(0, P, (batch,), device=dev)
        pred, idx = predict(b_idx)
        lv = log_var[sid[b_idx]]
        r = pred - val[b_idx]
        nll = (wt[b_idx] * (0.5 * r * r * torch.exp(-lv) + 0.5 * lv)).mean()
        loss = nll
        if weight_edge > 0:  # edge-preserving smoothness of the correction between nearby points
            q = idx[:: n_samples]
            d = torch.randn_like(q)
            d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-6) * 0.5
            f1 = enc(q).reshape(-1)
            f2 = enc(q + d).reshape(-1)
            gr = (f1 - f2) / 0.5
            loss = loss + weight_edge * (delta * (torch.sqrt(1 + (gr / delta) ** 2) - 1)).mean() / max(sigma, 1e-4) ** 2 * 1e-2
        if refine_poses:
            rot, tra = rp.deviation()
            loss = loss + weight_pose * (rot + 1e-3 * tra)
        return {"loss": loss, "nll": float(nll.detach())}

    groups = [{"params": field.parameters(), "lr": lr},
              {"params": [log_var], "lr": lr}]
    if refine_poses:
        groups += [{"params": [rp.axis_angle], "lr": 2e-4}, {"params": [rp.translation], "lr": 5e-3}]
    log = fit(step, groups, n_iter, lr=lr, progress=progress, stage="inr", log_every=10)
    # sample the volume at the grid voxel centres
    with torch.no_grad():
        nvox = int(np.prod(fm.grid_shape))
        out = torch.empty(nvox, device=dev, dtype=fm.dtype)
        grid_idx = torch.stack(torch.meshgrid(*[torch.arange(n, device=dev, dtype=fm.dtype) for n in fm.grid_shape],
                                              indexing="ij"), -1).reshape(-1, 3)
        chunk = 1 << 20
        for s0 in range(0, nvox, chunk):
            out[s0:s0 + chunk] = enc(grid_idx[s0:s0 + chunk]).reshape(-1)
        x = x_base.detach() + out.reshape(fm.grid_shape)
        var = torch.exp(log_var.detach())
        w_slice = (var.median() / var).clamp(max=1.0).cpu().numpy()
    info = {"n_iter": n_iter, "batch": batch, "psf_samples": n_samples, "seconds_fit": round(log.seconds, 3),
            "final_loss": log.losses[-1] if log.losses else None, "hash_levels": n_levels,
            "log2_hashmap_size": log2_hashmap_size, "poses_refined": bool(refine_poses)}
    return x, (rp.axis_angle.detach(), rp.translation.detach()), w_slice, info
