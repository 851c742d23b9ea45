"""Per-item rigid poses (axis-angle + translation) with differentiable Rodrigues maps."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _skew(v: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(v[..., 0])
    return torch.stack([
        torch.stack([z, -v[..., 2], v[..., 1]], -1),
        torch.stack([v[..., 2], z, -v[..., 0]], -1),
        torch.stack([-v[..., 1], v[..., 0], z], -1),
    ], -2)


def axis_angle_to_matrix(v: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` from axis-angle vectors ``(..., 3)`` (radians).

    Uses Taylor expansions of ``sin(t)/t`` and ``(1-cos t)/t^2`` near zero, so gradients are
    finite at the identity.
    """
    t2 = (v * v).sum(-1, keepdim=True)[..., None]                 # (..., 1, 1)
    small = t2 < 1e-8
    t2s = torch.where(small, torch.ones_like(t2), t2)
    t = torch.sqrt(t2s)
    a = torch.where(small, 1 - t2 / 6, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24, (1 - torch.cos(t)) / t2s)
    K = _skew(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand(K.shape)
    return eye + a * K + b * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors ``(..., 3)`` of rotation matrices ``(..., 3, 3)`` (angle in [0, pi])."""
    R = torch.as_tensor(R)
    cos = ((R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2] - 1) / 2).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    w = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = torch.sin(angle)[..., None]
    small = sin.abs() < 1e-6
    axis = torch.where(small, w / 2, w / (2 * torch.where(small, torch.ones_like(sin), sin)) * angle[..., None])
    # angle close to pi: axis from the diagonal
    near_pi = (angle > 3.14)[..., None]
    if near_pi.any():
        diag = ((torch.diagonal(R, dim1=-2, dim2=-1) + 1) / 2).clamp_min(0).sqrt()
        sign = torch.sign(w).where(w != 0, torch.ones_like(w))
        axis = torch.where(near_pi, diag * sign * angle[..., None], axis)
    return axis


class RigidPoses(nn.Module):
    """``n`` rigid transforms ``x -> R_i (x - center) + center + t_i`` as learnable parameters.

    Parameters
    ----------
    n : int
        Number of items (slices, cameras...).
    axis_angle, translation : (n, 3) array_like, optional
        Initial values (radians / point units); zeros by default.
    center : 3 floats
        Fixed centre of rotation (same unit as the points).
    """

    def __init__(self, n: int, axis_angle=None, translation=None, center: Sequence[float] = (0.0, 0.0, 0.0)):
        super().__init__()
        aa = torch.zeros(n, 3) if axis_angle is None else torch.as_tensor(axis_angle, dtype=torch.float32).reshape(n, 3).clone()
        tr = torch.zeros(n, 3) if translation is None else torch.as_tensor(translation, dtype=torch.float32).reshape(n, 3).clone()
        self.axis_angle = nn.Parameter(aa)
        self.translation = nn.Parameter(tr)
        self.register_buffer("initial_axis_angle", aa.clone())
        self.register_buffer("initial_translation", tr.clone())
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32).reshape(3))

    def __len__(self) -> int:
        return self.axis_angle.shape[0]

    def rotations(self) -> torch.Tensor:
        return axis_angle_to_matrix(self.axis_angle)

    def matrices(self) -> torch.Tensor:
        """``(n, 4, 4)`` homogeneous matrices of the current poses."""
        R = self.rotations()
        t = self.center - (R @ self.center[:, None])[..., 0] + self.translation
        M = torch.zeros(len(self), 4, 4, dtype=R.dtype, device=R.device)
        M[:, :3, :3] = R
        M[:, :3, 3] = t
        M[:, 3, 3] = 1
        return M

    def transform(self, points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Apply the pose of item ``index[j]`` to ``points[j]`` (``(N, 3)`` -> ``(N, 3)``)."""
        R = axis_angle_to_matrix(self.axis_angle[index])
        p = points - self.center
        return (R @ p[:, :, None])[..., 0] + self.center + self.translation[index]

    def deviation(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean squared rotation angle (rad^2) and translation of ``init^-1 o current``."""
        R0 = axis_angle_to_matrix(self.initial_axis_angle)
        dR = R0.transpose(-1, -2) @ self.rotations()
        cos = ((dR[:, 0, 0] + dR[:, 1, 1] + dR[:, 2, 2] - 1) / 2).clamp(-1 + 1e-7, 1 - 1e-7)
        # 2(1-cos) ~ angle^2 for small angles, smooth everywhere
        rot = (2 * (1 - cos)).mean()
        tra = ((self.translation - self.initial_translation) ** 2).sum(-1).mean()
        return rot, tra
