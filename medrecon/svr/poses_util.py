"""Pose bookkeeping in numpy: matrices, composition and pose errors."""
from __future__ import annotations

import numpy as np
import torch

from medrecon.inr.poses import axis_angle_to_matrix, matrix_to_axis_angle


def rotation_matrices(axis_angle) -> np.ndarray:
    return axis_angle_to_matrix(torch.as_tensor(np.asarray(axis_angle, np.float64))).numpy()


def pose_matrices(axis_angle, translation, center) -> np.ndarray:
    """(N, 4, 4) matrices of ``x -> R (x - c) + c + t``."""
    R = rotation_matrices(axis_angle)
    c = np.asarray(center, float)
    M = np.tile(np.eye(4), (len(R), 1, 1))
    M[:, :3, :3] = R
    M[:, :3, 3] = c - R @ c + np.asarray(translation, float)
    return M


def matrices_to_pose(M, center) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pose_matrices`: axis-angle (rad) and translation (mm) about ``center``."""
    M = np.asarray(M, float)
    R = M[:, :3, :3]
    c = np.asarray(center, float)
    aa = matrix_to_axis_angle(torch.as_tensor(R)).numpy()
    t = M[:, :3, 3] - c + R @ c
    return aa, t


def pose_errors(M_est, M_true, points) -> dict:
    """Rotation error (deg) and displacement of each slice's centre point (mm).

    ``points`` (N, 3): the nominal centre of each slice (LPS mm). Errors are independent of the
    centre of rotation used to parametrise the poses.
    """
    M_est, M_true = np.asarray(M_est), np.asarray(M_true)
    dR = np.transpose(M_true[:, :3, :3], (0, 2, 1)) @ M_est[:, :3, :3]
    cos = np.clip((np.trace(dR, axis1=1, axis2=2) - 1) / 2, -1, 1)
    rot = np.rad2deg(np.arccos(cos))
    p = np.concatenate([points, np.ones((len(points), 1))], 1)
    pe = np.einsum("nab,nb->na", M_est, p)[:, :3]
    pt = np.einsum("nab,nb->na", M_true, p)[:, :3]
    disp = np.linalg.norm(pe - pt, axis=1)
    return {"rot_deg_mean": float(rot.mean()), "rot_deg_median": float(np.median(rot)),
            "trans_mm_mean": float(disp.mean()), "trans_mm_median": float(np.median(disp)),
            "rot_deg": rot, "trans_mm": disp}
