"""CPU path of the posed forward model: trilinear sampling as a sparse matrix.

With slice poses the ``fast`` forward model is "blur the volume per stack, then sample it
trilinearly at the moved pixel centres". ``grid_sample`` and its autograd adjoint are quick on a
GPU and slow on a CPU (the adjoint is a scatter). Here the trilinear weights of one stack under
fixed poses are built once as a CSR matrix ``S`` (8 entries per pixel) and reused: forward
``S G x``, adjoint ``G S^T y`` (``G``, the Gaussian blur with zero padding, is symmetric).
Same operator as :meth:`ForwardModel.sample_stack` with ``mode="fast"`` up to float rounding;
pixels outside the stack's pixel mask are predicted as 0 (they carry no weight anywhere).
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from scipy import sparse


def pose_key(poses) -> str:
    """A digest of pose tensors (the cache key of a sparse operator)."""
    h = hashlib.sha1()
    for p in poses:
        h.update(np.ascontiguousarray(p.detach().cpu().numpy()).tobytes())
    return h.hexdigest()


def build_interp(fm, k: int, poses) -> tuple[sparse.csr_matrix, np.ndarray]:
    """(S, pixels): S maps the flattened grid to stack ``k``'s masked pixels (flat (ns, nx, ny)
    index ``pixels``) under ``poses``."""
    st = fm._stack[k]
    s = fm.stacks[k]
    nx, ny = st["shape"]
    ns = s.n_slices
    if s.mask is not None:
        pix = np.flatnonzero(np.moveaxis(np.asarray(s.mask) > 0, 2, 0))
    else:
        pix = np.arange(ns * nx * ny)
    shape = np.array(fm.grid_shape)
    strides = np.array([shape[1] * shape[2], shape[2], 1], np.int64)
    per = max(1, 2_000_000 // max(1, nx * ny))
    idx_all = []
    with torch.no_grad():
        for s0 in range(0, ns, per):
            sl = torch.arange(s0, min(ns, s0 + per), device=fm.device)
            R, t = fm._poses(poses, k, sl)
            p = fm.pixel_points(k, sl, R, t)
            idx_all.append((p @ fm._ginv_R.T + fm._ginv_t).reshape(-1, 3).cpu().numpy())
    q = np.concatenate(idx_all)[pix].astype(np.float64)
    del idx_all
    i0 = np.floor(q).astype(np.int64)
    f = (q - i0).astype(np.float32)
    n = len(pix)
    cols = np.zeros((n, 8), np.int64)
    vals = np.zeros((n, 8), np.float32)
    c = 0
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1 - f[:, 0]
        ix = i0[:, 0] + dx
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1 - f[:, 1]
            iy = i0[:, 1] + dy
            for dz in (0, 1):
                wz = f[:, 2] if dz else 1 - f[:, 2]
                iz = i0[:, 2] + dz
                ok = (ix >= 0) & (ix < shape[0]) & (iy >= 0) & (iy < shape[1]) & (iz >= 0) & (iz < shape[2])
                cols[:, c] = np.where(ok, ix * strides[0] + iy * strides[1] + iz, 0)
                vals[:, c] = np.where(ok, wx * wy * wz, 0.0)
                c += 1
    nvox = int(np.prod(shape))
    itype = np.int32 if nvox < 2 ** 31 - 1 else np.int64
    S = sparse.csr_matrix((vals.ravel(), cols.ravel().astype(itype), np.arange(0, 8 * n + 1, 8, dtype=itype)),
                          shape=(n, nvox))
    return S, pix


class SparseOps:
    """Cache of per-stack sparse sampling matrices for the current poses."""

    def __init__(self, fm):
        self.fm = fm
        self.key = None
        self.mats: list = []

    def get(self, poses):
        key = pose_key(poses)
        if key != self.key:
            self.mats = []  # free the old ones first
            self.mats = [build_interp(self.fm, k, poses) for k in range(len(self.fm.stacks))]
            self.key = key
        return self.mats

    def sample(self, k: int, vb: torch.Tensor, poses) -> torch.Tensor:
        S, pix = self.get(poses)[k]
        nx, ny = self.fm._stack[k]["shape"]
        ns = self.fm.stacks[k].n_slices
        out = np.zeros(ns * nx * ny, np.float32)
        out[pix] = S @ vb.detach().cpu().numpy().ravel()
        return torch.from_numpy(out.reshape(ns, nx, ny)).to(self.fm.dtype)

    def sample_adjoint(self, k: int, y: torch.Tensor, poses) -> torch.Tensor:
        S, pix = self.get(poses)[k]
        v = S.T @ y.detach().cpu().numpy().reshape(-1)[pix]
        return torch.from_numpy(np.asarray(v, np.float32).reshape(self.fm.grid_shape))
