"""Trabecular-bone CT phantom: a spine-like column of vertebral bodies whose inside is a
spongy network of thin rods and plates, at clinical CT resolution.

Real bone is not a smooth shell: its cancellous part is a lattice of struts one or two voxels
thick, with isolated fragments where struts are thinner than a voxel. Meshing such bone after
a threshold is where decimation and smoothing break closed surfaces and lose volume, so this
phantom is the stress case of the mesher's tests and benchmark.

Geometry (LPS millimetres, axial grid, array axes i = x (L), j = y (P), k = z (S)):

* soft tissue (45 HU) in an elliptic body outline, air (-1000 HU) outside;
* a column of vertebral bodies (elliptic cylinders) along z, separated by discs (85 HU);
  the column runs through the first and the last slice, so structures are cut by the volume's
  border as in a real scan;
* each body has a cortical shell and end plates (1400 HU) around a cancellous core: the solid
  phase of a gyroid level set ``g(x) > t(x)``, with a period of a few millimetres and a
  slowly varying level ``t`` (thick plates where ``t`` is low, thin rods and loose fragments
  where it is high), marrow (40 HU) in between;
* partial volume: each voxel's bone fraction follows the signed distance to the level set
  (a one-voxel ramp), then Gaussian noise.

The **known voxel volume** is the number of voxels inside the bone threshold (default
``(520, 3071)`` HU, the issue's ``--threshold 520:3071``) times the voxel volume; it is what a
threshold segmentation of the image gives and what meshing QA compares against
(``voxel_volume_mm3``). The image is built slab by slab, so peak memory is the int16 image
plus the boolean mask plus one slab.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from medrecon.phantoms.shapes import rotation_matrix
from medrecon.volume import Volume

__all__ = ["TrabecularPhantom", "trabecular_ct_phantom", "BONE_THRESHOLD"]

#: Threshold (HU) that selects the phantom's bone, as in ``medrecon mesh --threshold 520:3071``.
BONE_THRESHOLD = (520.0, 3071.0)

_HU = {"air": -1000.0, "soft": 45.0, "marrow": 40.0, "trabecula": 1050.0, "cortical": 1400.0, "disc": 85.0}


@dataclass
class TrabecularPhantom:
    """Result of :func:`trabecular_ct_phantom`.

    Attributes
    ----------
    volume : Volume
        CT image, int16 Hounsfield units, index -> LPS mm affine.
    mask : numpy.ndarray
        bool, the voxels inside ``threshold`` (what a threshold segmentation yields).
    threshold : (low, high) HU
    voxel_count : int
        ``mask.sum()``.
    voxel_volume_mm3 : float
        ``voxel_count`` x the volume of one voxel: the known bone volume in voxels.
    """

    volume: Volume
    mask: np.ndarray
    threshold: tuple[float, float]
    voxel_count: int
    voxel_volume_mm3: float

    @property
    def labelmap(self) -> Volume:
        """uint8 label map (1 = bone) on the image grid."""
        return Volume(self.mask.view(np.uint8), self.volume.affine.copy(),
                      {"kind": "labelmap", "label_names": {1: "bone"}})


def _smooth_field(shape: Sequence[int], cells: int, rng: np.random.Generator) -> callable:
    """A smooth random field in [-1, 1] on the unit cube, sampled by trilinear interpolation."""
    from scipy import ndimage

    coarse = ndimage.gaussian_filter(rng.normal(size=(cells, cells, cells)), 1.0, mode="wrap")
    coarse = coarse / (np.abs(coarse).max() + 1e-12)

    def sample(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        pts = [np.clip(a, 0.0, 1.0) * (cells - 1) for a in np.broadcast_arrays(u, v, w)]
        return ndimage.map_coordinates(coarse, [p.ravel() for p in pts], order=1,
                                       mode="nearest").reshape(pts[0].shape)

    return sample


def trabecular_ct_phantom(shape: Sequence[int] = (512, 512, 300), spacing: Sequence[float] = (0.45, 0.45, 0.8), *,
                          period_mm: float = 3.0, level: tuple[float, float] = (0.55, 1.05),
                          body_radii_mm: tuple[float, float] = (24.0, 18.0), vertebra_mm: float = 26.0,
                          disc_mm: float = 6.0, cortex_mm: float = 1.2, noise: float = 20.0,
                          threshold: tuple[float, float] = BONE_THRESHOLD, seed: int = 0,
                          slab: int = 16) -> TrabecularPhantom:
    """Synthetic CT of a vertebral column with trabecular bone (see the module docstring).

    Parameters
    ----------
    shape : (3,) ints
        Grid size (x, y, z); the default is the issue's 512 x 512 x 300.
    spacing : (3,) mm
        Voxel size along x, y, z (default 0.45 x 0.45 x 0.8 mm).
    period_mm : float
        Spacing of the trabecular lattice.
    level : (lo, hi)
        Range of the gyroid level ``t``; higher = thinner struts (the gyroid spans about +-1.5).
    body_radii_mm : (rx, ry)
        Radii of the vertebral bodies.
    vertebra_mm, disc_mm : float
        Height of a vertebral body and of the disc between two bodies.
    cortex_mm : float
        Thickness of the cortical shell and the end plates.
    noise : float
        Gaussian noise, HU (standard deviation).
    threshold : (low, high) HU
        Bone window that defines ``mask`` and the known voxel volume.
    seed : int
        Random seed (noise, level field, lattice orientation).
    slab : int
        Slices computed at a time (memory).

    Returns
    -------
    TrabecularPhantom
    """
    nx, ny, nz = (int(s) for s in shape)
    sp = np.asarray(spacing, dtype=np.float64)
    rng = np.random.default_rng(seed)
    aff = np.eye(4)
    aff[:3, :3] = np.diag(sp)
    aff[:3, 3] = -sp * (np.array([nx, ny, nz]) - 1) / 2.0
    x = (aff[0, 3] + np.arange(nx) * sp[0]).astype(np.float32)[:, None, None]
    y = (aff[1, 3] + np.arange(ny) * sp[1]).astype(np.float32)[None, :, None]
    zs = aff[2, 3] + np.arange(nz) * sp[2]
    ext = np.array([nx, ny, nz]) * sp
    level_field = _smooth_field((nx, ny, nz), 6, rng)
    # lattice slightly rotated against the grid, so no axis lines up with the struts
    ang = rng.uniform(-0.35, 0.35, 3)
    rot = rotation_matrix(np.rad2deg(ang)).astype(np.float32)
    kw = np.float32(2 * np.pi / period_mm)
    rx, ry = body_radii_mm
    body_ax, body_ay = 0.42 * ext[0], 0.36 * ext[1]
    step = float(np.min(sp))  # ramp width for partial volume (mm)
    img = np.empty((nx, ny, nz), dtype=np.int16)
    mask = np.empty((nx, ny, nz), dtype=bool)
    pitch = vertebra_mm + disc_mm
    z0 = float(rng.uniform(0, pitch))
    lo_t, hi_t = level
    r2 = (x / rx) ** 2 + (y / ry) ** 2  # (nx, ny, 1)
    rr = np.sqrt(r2)
    # distance (mm, approximate) inside the elliptic cylinder wall, negative outside
    wall = (1.0 - rr) * np.float32(min(rx, ry))
    soft = ((x / body_ax) ** 2 + (y / body_ay) ** 2) <= 1.0
    for k0 in range(0, nz, slab):
        k1 = min(nz, k0 + slab)
        z = zs[k0:k1].astype(np.float32)[None, None, :]
        # position within the vertebra pitch: distance to the nearest end plate (mm)
        zp = np.mod(z - z0, pitch)
        in_body = zp < vertebra_mm
        d_end = np.minimum(zp, vertebra_mm - zp)  # mm to the body's top/bottom
        # lattice coordinates
        px, py, pz = (kw * (rot[c, 0] * x + rot[c, 1] * y + rot[c, 2] * z) for c in range(3))
        g = np.sin(px) * np.cos(py) + np.sin(py) * np.cos(pz) + np.sin(pz) * np.cos(px)
        del px, py, pz
        u = (x - aff[0, 3]) / ext[0]
        v = (y - aff[1, 3]) / ext[1]
        w = (z - aff[2, 3]) / ext[2]
        t = lo_t + (hi_t - lo_t) * 0.5 * (1.0 + level_field(u, v, w)).astype(np.float32)
        # |grad g| is about kw * 1.2 on the level set: signed distance ~ (g - t) / (1.2 kw)
        frac_trab = np.clip(0.5 + (g - t) / (1.2 * kw * step), 0.0, 1.0)
        del g, t
        # cortical shell + end plates: inside the body, within cortex_mm of its surface
        inner = np.minimum(wall, d_end)  # distance to the body surface (mm), > 0 inside
        frac_body = np.clip(0.5 + inner / step, 0.0, 1.0) * in_body
        frac_cort = np.clip(0.5 - (inner - cortex_mm) / step, 0.0, 1.0) * frac_body
        hu = np.where(soft, np.float32(_HU["soft"]), np.float32(_HU["air"]))
        hu = np.broadcast_to(hu, frac_body.shape).astype(np.float32)
        disc = (~in_body) & (rr <= 1.0)
        hu = np.where(disc, np.float32(_HU["disc"]), hu)
        core = _HU["marrow"] + frac_trab * (_HU["trabecula"] - _HU["marrow"])
        core = core + frac_cort * (_HU["cortical"] - core)
        hu = hu + frac_body * (core - hu)
        if noise:
            hu += rng.normal(0.0, noise, hu.shape).astype(np.float32)
        np.rint(hu, out=hu)
        img[:, :, k0:k1] = hu
        mask[:, :, k0:k1] = (hu >= threshold[0]) & (hu <= threshold[1])
    count = int(np.count_nonzero(mask))
    vox = float(abs(np.linalg.det(aff[:3, :3])))
    meta = {"modality": "CT", "units": "HU", "description": "trabecular bone phantom"}
    return TrabecularPhantom(Volume(img, aff, meta), mask, (float(threshold[0]), float(threshold[1])),
                             count, count * vox)
