"""Small MLP and a neural field (hash-grid encoding + MLP) over a world-space box."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from medrecon.inr.hashgrid import HashGrid

_ACT = {"relu": nn.ReLU, "softplus": nn.Softplus, "silu": nn.SiLU, "gelu": nn.GELU}


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units with ``activation``; linear output layer
    (optionally followed by ``out_activation``)."""

    def __init__(self, in_dim: int, out_dim: int, width: int = 64, depth: int = 1,
                 activation: str = "relu", out_activation: str | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), _ACT[activation]()]
            d = width
        layers.append(nn.Linear(d, out_dim))
        if out_activation:
            layers.append(_ACT[out_activation]())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NeuralField(nn.Module):
    """Hash-grid encoding + MLP over the axis-aligned box ``[bbox_min, bbox_max]``.

    Parameters
    ----------
    bbox_min, bbox_max : sequence of 3 floats
        The box (world units, e.g. LPS mm) mapped to the unit cube of the encoding.
    out_dim : int
        Outputs per point.
    encoding : dict, optional
        Keyword arguments for :class:`HashGrid` (``dim`` is taken from the box).
    width, depth : int
        MLP size.
    """

    def __init__(self, bbox_min: Sequence[float], bbox_max: Sequence[float], out_dim: int = 1,
                 encoding: dict | None = None, width: int = 64, depth: int = 1,
                 activation: str = "relu"):
        super().__init__()
        lo = torch.as_tensor(bbox_min, dtype=torch.float32)
        hi = torch.as_tensor(bbox_max, dtype=torch.float32)
        self.register_buffer("bbox_min", lo)
        self.register_buffer("bbox_extent", (hi - lo).clamp_min(1e-6))
        self.encoding = HashGrid(dim=lo.numel(), **(encoding or {}))
        self.mlp = MLP(self.encoding.out_dim, out_dim, width=width, depth=depth, activation=activation)

    def normalize(self, points: torch.Tensor) -> torch.Tensor:
        return (points - self.bbox_min) / self.bbox_extent

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.encoding(self.normalize(points)))
