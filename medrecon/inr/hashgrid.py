"""Multi-resolution hash-grid encoding in pure PyTorch (vectorised over levels and corners)."""
from __future__ import annotations

import math

import torch
from torch import nn

_PRIMES = (1, 2654435761, 805459861, 3674653429)


class HashGrid(nn.Module):
    """Instant-NGP style multi-resolution hash encoding.

    Parameters
    ----------
    dim : int
        Dimension of the input points (2 or 3).
    n_levels : int
        Number of resolution levels.
    n_features : int
        Features per level.
    log2_hashmap_size : int
        ``T = 2**log2_hashmap_size`` table entries per level (fewer for coarse levels that are
        indexed densely).
    base_resolution, finest_resolution : float
        Grid resolution (cells along the unit cube) of the coarsest and finest level; levels
        grow geometrically in between.
    init_scale : float
        Table initialised uniform in ``[-init_scale, init_scale]``.

    Notes
    -----
    ``forward(x)``: ``x`` is ``(N, dim)`` in ``[0, 1]`` (clamped), result ``(N, n_levels *
    n_features)``. Gradients flow to the table and to ``x`` (trilinear weights).
    """

    def __init__(self, dim: int = 3, n_levels: int = 12, n_features: int = 2,
                 log2_hashmap_size: int = 19, base_resolution: float = 16,
                 finest_resolution: float = 512, init_scale: float = 1e-4):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError("HashGrid supports dim 2 or 3")
        self.dim, self.n_levels, self.n_features = dim, n_levels, n_features
        T = 2 ** log2_hashmap_size
        if n_levels > 1:
            scale = math.exp((math.log(finest_resolution) - math.log(base_resolution)) / (n_levels - 1))
        else:
            scale = 1.0
        res, sizes, dense = [], [], []
        for level in range(n_levels):
            r = int(math.floor(base_resolution * scale ** level + 1e-6))
            n_dense = (r + 1) ** dim
            res.append(r)
            dense.append(n_dense <= T)
            sizes.append(min(n_dense, T))
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + s)
        self.resolutions = res
        self.per_level_scale = scale
        self.out_dim = n_levels * n_features
        self.table = nn.Parameter(torch.empty(offsets[-1], n_features).uniform_(-init_scale, init_scale))
        self.register_buffer("_res", torch.tensor(res, dtype=torch.float32), persistent=False)
        self.register_buffer("_res_i", torch.tensor(res, dtype=torch.long), persistent=False)
        self.register_buffer("_size", torch.tensor(sizes, dtype=torch.long), persistent=False)
        self.register_buffer("_offset", torch.tensor(offsets[:-1], dtype=torch.long), persistent=False)
        self.register_buffer("_dense", torch.tensor(dense, dtype=torch.bool), persistent=False)
        corners = torch.tensor([[(c >> d) & 1 for d in range(dim)] for c in range(2 ** dim)], dtype=torch.long)
        self.register_buffer("_corners", corners, persistent=False)
        self.register_buffer("_primes", torch.tensor(_PRIMES[:dim], dtype=torch.long), persistent=False)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, levels={self.n_levels}, features={self.n_features}, "
                f"resolutions={self.resolutions[0]}..{self.resolutions[-1]}, entries={self.table.shape[0]}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(0.0, 1.0).to(self.table.dtype)
        pos = x[:, None, :] * self._res[None, :, None]                     # (N, L, D)
        p0 = torch.floor(pos)
        frac = pos - p0                                                    # (N, L, D)
        p0 = p0.long().clamp_max(self._res_i[None, :, None] - 1).clamp_min(0)
        frac = pos - p0.to(pos.dtype)
        c = p0[:, :, None, :] + self._corners[None, None]                  # (N, L, C, D)
        # dense index (coarse levels)
        stride = self._res_i + 1                                           # (L,)
        dense_idx = c[..., 0]
        mult = stride[None, :, None]
        for d in range(1, self.dim):
            dense_idx = dense_idx + c[..., d] * mult
            mult = mult * stride[None, :, None]
        # hashed index (fine levels)
        h = c[..., 0] * self._primes[0]
        for d in range(1, self.dim):
            h = torch.bitwise_xor(h, c[..., d] * self._primes[d])
        h = torch.remainder(h, self._size[None, :, None])
        idx = torch.where(self._dense[None, :, None], dense_idx, h) + self._offset[None, :, None]
        feats = self.table[idx]                                            # (N, L, C, F)
        cf = self._corners.to(frac.dtype)                                  # (C, D)
        w = frac[:, :, None, :] * cf + (1 - frac[:, :, None, :]) * (1 - cf)  # (N, L, C, D)
        w = w.prod(dim=-1)                                                 # (N, L, C)
        out = (feats * w[..., None]).sum(dim=2)                            # (N, L, F)
        return out.reshape(x.shape[0], self.out_dim)
