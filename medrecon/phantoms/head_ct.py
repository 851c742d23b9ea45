"""An anthropomorphic head CT phantom (:func:`head_ct_phantom`): soft tissue, a three-layer skull
(cortical / diploe / cortical), brain and ventricles, sinuses, airway, maxilla and mandible, 32
teeth with enamel crowns, and cervical vertebrae; realistic Hounsfield units, Gaussian noise and
partial volume (supersampled, then block-averaged). LPS millimetres throughout.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from medrecon.volume import Volume

__all__ = ["HeadPhantom", "head_ct_phantom", "HEAD_LABELS"]


# --------------------------------------------------------------------------------------------
# anthropomorphic head CT
# --------------------------------------------------------------------------------------------
#: Label values of :func:`head_ct_phantom`'s label map.
HEAD_LABELS = {1: "skull", 2: "mandible", 3: "teeth", 4: "vertebrae", 5: "brain", 6: "ventricles"}

# Hounsfield units of the tissues (typical published ranges; cortical bone 1000-1900,
# enamel about 2500-3000, dentine about 1600-2000, brain 25-45, CSF 0-15).
_HU = {"air": -1000.0, "fat": -90.0, "soft": 45.0, "brain": 35.0, "csf": 8.0, "eye": 12.0,
       "cortical": 1500.0, "diploe": 650.0, "jaw": 1350.0, "spongy": 600.0,
       "enamel": 2600.0, "dentine": 1750.0, "vertebra": 1100.0, "disc": 85.0}


def _e(cx, cy, cz, ax, ay, az):
    """Scaled-radius field of an axis-aligned ellipsoid (<1 inside), broadcasting x, y, z."""
    def f(x, y, z):
        return np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2) - 1.0
    return f


def _capsule(p0, p1, r):
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    v = p1 - p0
    vv = float(v @ v)

    def f(x, y, z):
        dx, dy, dz = x - p0[0], y - p0[1], z - p0[2]
        h = np.clip((dx * v[0] + dy * v[1] + dz * v[2]) / vv, 0.0, 1.0)
        return np.sqrt((dx - h * v[0]) ** 2 + (dy - h * v[1]) ** 2 + (dz - h * v[2]) ** 2) - r
    return f


def _arch(cx, cy, cz, radius, tube, y_max):
    """Half torus in an axial plane, the anterior (y < y_max) part: a jaw arch."""
    def f(x, y, z):
        ring = np.hypot(x - cx, y - cy) - radius
        d = np.hypot(ring, z - cz) - tube
        return np.maximum(d, y - y_max)
    return f


def _cylinder_z(cx, cy, r, z0, z1):
    def f(x, y, z):
        return np.maximum(np.hypot(x - cx, y - cy) - r, np.maximum(z0 - z, z - z1))
    return f


def _head_parts():
    """Painter's list of (bbox_min, bbox_max, inside-field, HU, label); later parts win."""
    parts: list[tuple[tuple, tuple, Callable, float, int]] = []

    def add(lo, hi, f, hu, label):
        parts.append((tuple(lo), tuple(hi), f, hu, label))

    # head and neck soft tissue, subcutaneous fat layer
    add((-80, -105, -60), (80, 95, 130), _e(0, -5, 30, 78, 98, 100), _HU["fat"], 0)
    add((-77, -102, -57), (77, 92, 127), _e(0, -5, 30, 75, 95, 97), _HU["soft"], 0)
    add((-60, -55, -150), (60, 65, -40), _cylinder_z(0, 5, 55, -150, -40), _HU["soft"], 0)
    # skull: outer table, diploe, inner table (ellipsoid shells), cut below the skull base
    def shell(ax, ay, az, hu, label):
        f0 = _e(0, 0, 35, ax, ay, az)
        add((-ax - 1, -ay - 1, -5), (ax + 1, ay + 1, 35 + az + 1),
            lambda x, y, z, f0=f0: np.maximum(f0(x, y, z), -z), hu, label)
    shell(70, 90, 90, _HU["cortical"], 1)
    shell(68, 88, 88, _HU["diploe"], 1)
    shell(66.5, 86.5, 86.5, _HU["cortical"], 1)
    # brain, ventricles
    add((-65, -86, -4), (65, 86, 122), lambda x, y, z: np.maximum(_e(0, 0, 35, 64.5, 84.5, 84.5)(x, y, z), -z - 3),
        _HU["brain"], 5)
    # skull base: a cortical plate closing the vault, with the foramen magnum
    add((-68, -88, -6), (68, 88, 6), _e(0, 0, 0, 67, 87, 4.5), _HU["cortical"], 1)
    add((-68, -88, -4), (68, 88, 4), _e(0, 0, 0, 62, 82, 2.0), _HU["diploe"], 1)
    add((-15, 5, -8), (15, 45, 8), _cylinder_z(0, 22, 12, -8, 8), _HU["csf"], 0)
    for sx in (-1, 1):
        add((sx * 9 - 8, -30, 30), (sx * 9 + 8, 40, 60), _e(sx * 9, 5, 45, 6, 30, 10), _HU["csf"], 6)
    # facial skeleton: maxilla block, orbits, maxillary sinuses
    add((-48, -92, -42), (48, -40, 5), _e(0, -62, -18, 46, 28, 24), _HU["spongy"], 1)
    for sx in (-1, 1):
        add((sx * 30 - 17, -100, -8), (sx * 30 + 17, -66, 28), _e(sx * 30, -82, 10, 16, 15, 15), _HU["fat"], 0)
        add((sx * 30 - 13, -96, -4), (sx * 30 + 13, -72, 24), _e(sx * 30, -84, 10, 12, 11, 12), _HU["eye"], 0)
        add((sx * 22 - 13, -78, -30), (sx * 22 + 13, -46, 0), _e(sx * 22, -62, -14, 12, 15, 13), _HU["air"], 0)
    # nasal airway and pharynx (air)
    add((-8, -90, -25), (8, -35, 5), _capsule((0, -80, -11), (0, -46, -11), 5.5), _HU["air"], 0)
    add((-10, -10, -150), (10, 12, -20), _cylinder_z(0, 1, 9, -150, -20), _HU["air"], 0)
    # upper (maxillary) and lower (mandibular) arches with teeth
    add((-52, -95, -42), (52, -35, -28), _arch(0, -40, -35, 42, 6.5, -38), _HU["jaw"], 1)
    add((-52, -95, -70), (52, -35, -55), _arch(0, -40, -62, 42, 7.5, -38), _HU["jaw"], 2)
    for sx in (-1, 1):  # mandibular rami
        add((sx * 44 - 10, -45, -70), (sx * 52 + 10, 5, -5),
            _capsule((sx * 42, -40, -62), (sx * 48, -10, -15), 6.5), _HU["jaw"], 2)
    angles = np.deg2rad(np.linspace(-78, 78, 16))
    for z_root, z_crown, z_tip in ((-33, -38, -41.0), (-64, -55, -52.0)):
        for a in angles:
            tx, ty = 42 * np.sin(a), -40 - 42 * np.cos(a)
            rr = 2.4 if abs(a) < 0.6 else 3.4  # incisors/canines thinner than molars
            lo = (tx - 6, ty - 6, min(z_root, z_tip) - 5)
            hi = (tx + 6, ty + 6, max(z_root, z_tip) + 5)
            add(lo, hi, _capsule((tx, ty, z_root), (tx, ty, z_crown), rr * 0.8), _HU["dentine"], 3)
            add(lo, hi, _capsule((tx, ty, z_crown), (tx, ty, z_tip), rr), _HU["enamel"], 3)
    # cervical spine: vertebral bodies with discs, spinous processes
    for n, zc in enumerate(np.arange(-55.0, -150.0, -16.0)):
        add((-12, 8, zc - 8), (12, 32, zc + 8), _cylinder_z(0, 20, 10, zc - 6, zc + 6), _HU["vertebra"], 4)
        add((-9, 11, zc - 4), (9, 29, zc + 4), _cylinder_z(0, 20, 7, zc - 4.5, zc + 4.5), _HU["spongy"], 4)
        add((-5, 28, zc - 5), (5, 52, zc + 5), _capsule((0, 30, zc), (0, 46, zc - 4), 3.5), _HU["vertebra"], 4)
        if n:
            add((-11, 9, zc + 6), (11, 31, zc + 10), _cylinder_z(0, 20, 9, zc + 6, zc + 10), _HU["disc"], 0)
    return parts


@dataclass
class HeadPhantom:
    """The anthropomorphic head CT: HU volume, tissue label map (:data:`HEAD_LABELS`)."""

    volume: Volume
    labelmap: Volume
    labels: dict[int, str] = field(default_factory=lambda: dict(HEAD_LABELS))


def head_ct_phantom(spacing: Sequence[float] = (1.0, 1.0, 1.25), *, noise: float = 15.0,
                    supersample: int = 2, seed: int = 0,
                    fov_lo: Sequence[float] = (-84.0, -108.0, -150.0),
                    fov_hi: Sequence[float] = (84.0, 98.0, 132.0)) -> HeadPhantom:
    """Synthetic head-and-neck CT in Hounsfield units, axial grid, LPS axes.

    Parameters
    ----------
    spacing : (3,) mm
        Voxel size along x (L), y (P), z (S).
    noise : float
        Standard deviation (HU) of the added Gaussian noise.
    supersample : int
        Sub-samples per axis for partial volume (block average).
    fov_lo, fov_hi : (3,) LPS mm
        Field of view (voxel centres).

    Returns
    -------
    HeadPhantom
        ``volume`` (int16 HU values held as float32) and ``labelmap`` (uint8) on one grid.
    """
    sp = np.asarray(spacing, dtype=np.float64)
    lo, hi = np.asarray(fov_lo, float), np.asarray(fov_hi, float)
    shape = tuple(int(np.floor((hi[i] - lo[i]) / sp[i])) + 1 for i in range(3))
    n = int(supersample)
    sub = (np.arange(n) + 0.5) / n - 0.5
    axes_hr = [(lo[i] + (np.arange(shape[i])[:, None] + sub[None]) * sp[i]).ravel() for i in range(3)]
    hu = np.full(tuple(len(a) for a in axes_hr), _HU["air"], dtype=np.float32)
    axes_c = [lo[i] + np.arange(shape[i]) * sp[i] for i in range(3)]
    lab = np.zeros(shape, dtype=np.uint8)
    for (blo, bhi, f, value, label) in _head_parts():
        sl_hr, sl_c = [], []
        for ax_hr, ax_c, a, b in zip(axes_hr, axes_c, blo, bhi):
            sl_hr.append(slice(*np.searchsorted(ax_hr, [a, b])))
            sl_c.append(slice(*np.searchsorted(ax_c, [a, b])))
        x, y, z = (axes_hr[0][sl_hr[0]][:, None, None], axes_hr[1][sl_hr[1]][None, :, None],
                   axes_hr[2][sl_hr[2]][None, None, :])
        if x.size and y.size and z.size:
            inside = f(x, y, z) < 0
            hu[tuple(sl_hr)][inside] = value
        x, y, z = (axes_c[0][sl_c[0]][:, None, None], axes_c[1][sl_c[1]][None, :, None],
                   axes_c[2][sl_c[2]][None, None, :])
        if x.size and y.size and z.size:
            inside = f(x, y, z) < 0
            lab[tuple(sl_c)][inside] = label
    hu = hu.reshape(shape[0], n, shape[1], n, shape[2], n).mean(axis=(1, 3, 5))
    if noise:
        hu += np.random.default_rng(seed).normal(0.0, noise, hu.shape).astype(np.float32)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.float32)
    aff = np.eye(4)
    aff[:3, :3] = np.diag(sp)
    aff[:3, 3] = lo
    meta = {"modality": "CT", "description": "medrecon head phantom", "units": "HU"}
    vol = Volume(hu, aff, meta)
    labvol = Volume(lab, aff.copy(), {"kind": "labelmap", "label_names": dict(HEAD_LABELS)})
    return HeadPhantom(vol, labvol)
