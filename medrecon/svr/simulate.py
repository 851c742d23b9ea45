"""Simulate thick-slice stacks from a volume with the shared forward model."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from medrecon.svr.forward import ForwardModel
from medrecon.svr.stacks import SliceStack
from medrecon.volume import Volume


@dataclass
class SimulatedStacks:
    """Output of :func:`simulate_stacks`.

    Attributes
    ----------
    stacks : list of Volume
        One per orientation; slices along array axis 2; ``meta['slice_thickness']`` set.
    masks : list of (nx, ny, ns) bool or None
        Pixels inside the dilated volume mask (when a mask was given).
    axis_angle : (N, 3) float
        True per-slice rotations (radians), slices numbered stack by stack.
    translation : (N, 3) float
        True per-slice translations (mm).
    center : (3,) float
        Centre of rotation (LPS mm): the volume centre.
    corrupted : (M,) int
        Global indices of the slices corrupted by through-plane motion (see ``corrupt_fraction``).
    """

    stacks: list
    masks: list | None
    axis_angle: np.ndarray
    translation: np.ndarray
    center: np.ndarray
    corrupted: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    def matrices(self) -> np.ndarray:
        from medrecon.svr.poses_util import pose_matrices

        return pose_matrices(self.axis_angle, self.translation, self.center)


def matrix_to_axis_angle_np(R: np.ndarray) -> np.ndarray:
    from medrecon.inr.poses import matrix_to_axis_angle

    return matrix_to_axis_angle(torch.as_tensor(np.asarray(R, np.float64)[None]))[0].numpy()


def stack_geometry(volume: Volume, normal_axis: int, thickness: float, gap: float = 0.0,
                   inplane: float | None = None, offset_frac: float = 0.5):
    """Affine and shape of a stack of slices normal to ``volume``'s array axis ``normal_axis``
    covering the whole volume; ``offset_frac`` in [0, 1) shifts the slice positions."""
    sp = volume.spacing
    d = volume.direction
    n = np.array(volume.shape[:3])
    ax = [a for a in range(3) if a != normal_axis] + [normal_axis]
    ext = n * sp  # extent in mm along each axis (voxel edges)
    lo = -0.5 * sp  # position of the first voxel edge in index-mm coordinates (relative to voxel 0 centre)
    step = thickness + gap
    ns = int(np.ceil(ext[normal_axis] / step))
    slack = ns * step - ext[normal_axis]
    first_n = lo[normal_axis] - slack * offset_frac + 0.5 * step
    ip = [sp[ax[0]] if inplane is None else inplane, sp[ax[1]] if inplane is None else inplane]
    shape = [int(np.ceil(ext[ax[0]] / ip[0])), int(np.ceil(ext[ax[1]] / ip[1])), ns]
    first = np.zeros(3)
    for c in range(2):
        a = ax[c]
        first[a] = lo[a] + 0.5 * (ext[a] - shape[c] * ip[c]) + 0.5 * ip[c]
    first[normal_axis] = first_n
    aff = np.eye(4)
    aff[:3, 0] = d[:, ax[0]] * ip[0]
    aff[:3, 1] = d[:, ax[1]] * ip[1]
    aff[:3, 2] = d[:, normal_axis] * step
    aff[:3, 3] = volume.affine[:3, 3] + d @ first
    return aff, tuple(shape)


def simulate_stacks(volume: Volume, thickness: float = 3.0, gap: float = 0.0, n_stacks: int = 3,
                    inplane: float | None = None, rot_deg: float = 0.0, trans_mm: float = 0.0,
                    noise_sigma: float = 0.01, mask=None, mask_dilation: int = 3, seed: int = 0,
                    psf_step: float = 0.25, truncate: float = 3.0, device="cpu", axes=None,
                    corrupt_fraction: float = 0.0, corrupt_deg: float = 20.0) -> SimulatedStacks:
    """Orthogonal thick-slice stacks of ``volume`` with Gaussian slice profile, motion and noise.

    Parameters
    ----------
    volume : Volume
        Ground truth (any orientation; stacks follow its array axes).
    thickness, gap : float
        Slice thickness (FWHM of the Gaussian profile) and gap, mm.
    n_stacks : int
        1 to 3: normals along array axes 0, 1, 2 in turn.
    inplane : float, optional
        In-plane pixel size (mm); the volume's spacing by default.
    rot_deg, trans_mm : float
        Per-slice i.i.d. rigid motion: each axis-angle component uniform in +/- ``rot_deg``
        degrees and each translation component uniform in +/- ``trans_mm`` mm, about the
        volume centre.
    noise_sigma : float
        Standard deviation of additive Gaussian noise (volume intensity units).
    mask : ndarray or Volume, optional
        On ``volume``'s grid; pixels outside the mask dilated by ``mask_dilation`` voxels are set
        to 0 and flagged in ``masks``.
    seed : int
    psf_step, truncate :
        Quadrature of the slice profile (voxels, standard deviations): finer than the
        reconstruction default on purpose (no "inverse crime").
    axes : list of int, optional
        Array axes of ``volume`` the stacks are normal to (default ``0, 1, 2`` up to ``n_stacks``).
    corrupt_fraction, corrupt_deg : float
        Fraction of slices corrupted by through-plane motion during their acquisition: such a
        slice is the mean of the slice at its pose and at its pose tilted by a random
        +/- ``corrupt_deg`` rotation about an in-plane axis and shifted by half a slice
        thickness along its normal (a blurred, ghosted slice). Their indices are in
        ``corrupted``.

    Returns
    -------
    SimulatedStacks
    """
    rng = np.random.default_rng(seed)
    vol_t = torch.as_tensor(np.asarray(volume.array, np.float32), device=device)
    geoms = []
    for k in (range(n_stacks) if axes is None else axes):
        aff, shape = stack_geometry(volume, k, thickness, gap, inplane, offset_frac=float(rng.random()))
        geoms.append((aff, shape))
    dummy = [SliceStack(np.zeros(s, np.float32), a, thickness) for a, s in geoms]
    center = volume.affine[:3, :3] @ ((np.array(volume.shape[:3]) - 1) / 2) + volume.affine[:3, 3]
    fm = ForwardModel(dummy, volume.affine, volume.shape[:3], center=center, device=device,
                      mode="exact", psf_step=psf_step, truncate=truncate, chunk_points=2 ** 23)
    n = fm.n_slices
    aa = rng.uniform(-1, 1, (n, 3)) * np.deg2rad(rot_deg)
    tr = rng.uniform(-1, 1, (n, 3)) * trans_mm
    poses = (torch.as_tensor(aa, dtype=torch.float32, device=device),
             torch.as_tensor(tr, dtype=torch.float32, device=device))
    corrupted = np.zeros(0, int)
    with torch.no_grad():
        pred = fm(vol_t, poses)
        if corrupt_fraction > 0:
            corrupted = np.sort(rng.choice(n, max(1, int(round(corrupt_fraction * n))), replace=False))
            # second pose: extra tilt about an in-plane axis of the slice + half-thickness shift
            from medrecon.svr.poses_util import rotation_matrices

            R0 = rotation_matrices(aa)
            aa2, tr2 = aa.copy(), tr.copy()
            for g in corrupted:
                k = int(np.searchsorted(fm.offsets, g, side="right") - 1)
                d = geoms[k][0][:3, :3] / np.linalg.norm(geoms[k][0][:3, :3], axis=0)
                ang = rng.uniform(0.5, 1.0) * corrupt_deg * rng.choice([-1, 1])
                ax = d[:, int(rng.integers(2))] * np.deg2rad(ang)
                Rt = rotation_matrices(ax[None])[0] @ R0[g]
                aa2[g] = matrix_to_axis_angle_np(Rt)
                tr2[g] = tr[g] + d[:, 2] * 0.5 * thickness * rng.choice([-1, 1])
            poses2 = (torch.as_tensor(aa2, dtype=torch.float32, device=device),
                      torch.as_tensor(tr2, dtype=torch.float32, device=device))
            pred2 = fm(vol_t, poses2)
            cmask = torch.zeros(n, dtype=torch.bool, device=device)
            cmask[torch.as_tensor(corrupted, device=device)] = True
            pred = [torch.where(cmask[int(fm.offsets[k]):int(fm.offsets[k + 1])][:, None, None], 0.5 * (p + q), p)
                    for k, (p, q) in enumerate(zip(pred, pred2))]
        mpred = None
        if mask is not None:
            m = np.asarray(mask.array if isinstance(mask, Volume) else mask) > 0
            if mask_dilation:
                m = ndimage.binary_dilation(m, iterations=mask_dilation)
            fm_m = ForwardModel(dummy, volume.affine, volume.shape[:3], center=center, device=device, mode="fast")
            fm_m._stack = [dict(s, fast_sigma=np.zeros(3)) for s in fm_m._stack]
            mpred = fm_m(torch.as_tensor(m.astype(np.float32), device=device), poses)
    stacks, masks = [], [] if mask is not None else None
    modality = volume.meta.get("modality") or "MR"
    for k, ((aff, shape), p) in enumerate(zip(geoms, pred)):
        img = np.moveaxis(p.cpu().numpy(), 0, 2)
        if noise_sigma > 0:
            img = img + rng.normal(0.0, noise_sigma, img.shape).astype(np.float32)
        if mpred is not None:
            mk = np.moveaxis(mpred[k].cpu().numpy(), 0, 2) > 0.5
            img = np.where(mk, img, 0.0).astype(np.float32)
            masks.append(mk)
        stacks.append(Volume(img.astype(np.float32), aff, {"modality": modality, "slice_thickness": float(thickness),
                                                          "description": f"simulated stack {k}"}))
    return SimulatedStacks(stacks, masks, aa, tr, center, corrupted)
