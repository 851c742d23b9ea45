"""Synthetic phantoms with known geometry, for tests, benchmarks and the demo.

Two kinds:

* **Analytic phantoms** (:class:`Sphere`, :class:`Ellipsoid`, :class:`EllipsoidShell`,
  :class:`Torus`): each has an exact signed distance function (``sdf``, millimetres,
  negative inside), exact enclosed volume (mm3) and surface area (mm2). They are rasterised onto
  any grid (anisotropic, oblique) with partial-volume fractions computed by supersampling, so
  a mesh made from the image can be measured against the true surface
  (:func:`surface_error`).
* An **anthropomorphic head CT** (:func:`head_ct_phantom`): soft tissue, a three-layer skull
  (cortical / diploe / cortical), brain and ventricles, sinuses, airway, maxilla and mandible,
  32 teeth with enamel crowns, and cervical vertebrae; realistic Hounsfield units, Gaussian
  noise and partial volume (supersampled, then block-averaged).

All coordinates are LPS millimetres (x towards the patient's left, y posterior, z superior);
grids are given as ``(shape, affine)`` with the affine mapping array index to LPS mm.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from medrecon.volume import Volume

__all__ = [
    "Shape", "Sphere", "Ellipsoid", "EllipsoidShell", "Torus",
    "grid_affine", "rotation_matrix", "occupancy", "Phantom", "make_phantom",
    "sphere_phantom", "ellipsoid_shell_phantom", "torus_phantom", "surface_error",
    "HeadPhantom", "head_ct_phantom", "HEAD_LABELS",
]


# --------------------------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------------------------
def rotation_matrix(angles_deg: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """3x3 rotation from intrinsic x-y-z Euler angles in degrees."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rx @ ry @ rz


def grid_affine(
    shape: Sequence[int],
    spacing: Sequence[float],
    center: Sequence[float] = (0.0, 0.0, 0.0),
    rotation: np.ndarray | Sequence[float] | None = None,
) -> np.ndarray:
    """Index -> LPS mm affine of a grid whose centre sits at ``center``.

    Parameters
    ----------
    shape : (3,) ints
    spacing : (3,) mm between voxel centres along each array axis
    center : (3,) LPS mm of the grid centre
    rotation : 3x3 matrix (columns = LPS directions of the array axes) or 3 Euler angles in
        degrees (see :func:`rotation_matrix`); identity when None.
    """
    if rotation is None:
        rot = np.eye(3)
    else:
        rot = np.asarray(rotation, dtype=np.float64)
        if rot.shape != (3, 3):
            rot = rotation_matrix(rot)
    aff = np.eye(4)
    aff[:3, :3] = rot * np.asarray(spacing, dtype=np.float64)
    mid = (np.asarray(shape, dtype=np.float64) - 1) / 2.0
    aff[:3, 3] = np.asarray(center, dtype=np.float64) - aff[:3, :3] @ mid
    return aff


# --------------------------------------------------------------------------------------------
# analytic shapes
# --------------------------------------------------------------------------------------------
class Shape:
    """A closed surface with an exact signed distance (mm, negative inside)."""

    name = "shape"

    def sdf(self, points: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def volume_mm3(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def area_mm2(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Unsigned distance (mm) from (N, 3) LPS points to the surface."""
        return np.abs(self.sdf(points))

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean inside test for (N, 3) LPS points (may be cheaper than ``sdf``)."""
        return self.sdf(points) < 0


def _local(points: np.ndarray, center: np.ndarray, rot: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return (p - center) @ rot  # coordinates along the shape's own axes


@dataclass
class Sphere(Shape):
    """Sphere of ``radius`` mm centred at ``center`` (LPS mm)."""

    center: Sequence[float] = (0.0, 0.0, 0.0)
    radius: float = 20.0
    name: str = "sphere"

    def sdf(self, points):
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return np.linalg.norm(p - np.asarray(self.center, float), axis=1) - self.radius

    @property
    def volume_mm3(self):
        return 4.0 / 3.0 * np.pi * self.radius ** 3

    @property
    def area_mm2(self):
        return 4.0 * np.pi * self.radius ** 2


def _ellipsoid_sdf_local(p: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Exact signed distance from local points (N, 3) to the ellipsoid with semi-axes ``axes``.

    Nearest point x_i = e_i^2 y_i / (t + e_i^2) with t the root of
    G(t) = sum (e_i y_i / (t + e_i^2))^2 - 1 on (-e_min^2, inf), found by bisection (the
    approach of D. Eberly, "Distance from a point to an ellipse, an ellipsoid, or a
    hyperellipsoid") but solved by monotone Newton steps; the degenerate case y_min = 0 inside is solved in closed form.
    """
    order = np.argsort(-axes)
    e = axes[order].astype(np.float64)
    y = np.abs(p[:, order])
    inside = np.sum((y / e) ** 2, axis=1) < 1.0
    e2 = e ** 2
    ey = e * y

    # degenerate: smallest coordinate is zero and G stays <= 0 at t = -e_min^2
    with np.errstate(divide="ignore", invalid="ignore"):
        xd = np.where(y[:, :2] == 0, 0.0, e2[:2] * y[:, :2] / (e2[:2] - e2[2]))
    sd = np.sum((xd / e[:2]) ** 2, axis=1)
    degenerate = (y[:, 2] == 0) & (sd < 1.0) & np.isfinite(sd) & (e[1] > e[2])
    # Newton from the left: at t0 = max_i(-e_i^2 + e_i y_i) one term equals 1, so G(t0) >= 0;
    # G is convex and decreasing there, hence the iterates increase monotonically to the root.
    t = np.maximum(np.max(-e2 + ey, axis=1), -e2[2])
    t = np.where(degenerate, 0.0, t)
    active = np.flatnonzero(~degenerate)
    tol = 1e-12 * max(1.0, float(e2[0]))
    for _ in range(100):
        if active.size == 0:
            break
        ta, eya, ya = t[active], ey[active], y[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(ya == 0, 0.0, eya / (ta[:, None] + e2))
            g = np.sum(r * r, axis=1) - 1.0
            dg = -2.0 * np.sum(r * r / (ta[:, None] + e2), axis=1)
            step = np.nan_to_num(np.where(dg < 0, g / dg, 0.0))
        t[active] = ta - step
        active = active[np.abs(step) > tol]
    x = e2 * y / (t[:, None] + e2)
    if np.any(degenerate):
        xdeg = np.zeros((int(degenerate.sum()), 3))
        xdeg[:, :2] = xd[degenerate]
        xdeg[:, 2] = e[2] * np.sqrt(np.clip(1.0 - sd[degenerate], 0.0, None))
        x[degenerate] = xdeg
    dist = np.linalg.norm(x - y, axis=1)
    return np.where(inside, -dist, dist)


@dataclass
class Ellipsoid(Shape):
    """Ellipsoid with semi-axes ``axes`` (mm) along the columns of ``rotation``."""

    center: Sequence[float] = (0.0, 0.0, 0.0)
    axes: Sequence[float] = (30.0, 20.0, 15.0)
    rotation: np.ndarray | Sequence[float] | None = None
    name: str = "ellipsoid"

    def _rot(self):
        if self.rotation is None:
            return np.eye(3)
        r = np.asarray(self.rotation, dtype=np.float64)
        return r if r.shape == (3, 3) else rotation_matrix(r)

    def sdf(self, points):
        q = _local(points, np.asarray(self.center, float), self._rot())
        return _ellipsoid_sdf_local(q, np.asarray(self.axes, dtype=np.float64))

    def contains(self, points):
        q = _local(points, np.asarray(self.center, float), self._rot())
        return np.sum((q / np.asarray(self.axes, dtype=np.float64)) ** 2, axis=1) < 1.0

    @property
    def volume_mm3(self):
        a, b, c = self.axes
        return 4.0 / 3.0 * np.pi * a * b * c

    @property
    def area_mm2(self):
        return _ellipsoid_area(*self.axes)


def _ellipsoid_area(a: float, b: float, c: float) -> float:
    """Exact surface area (mm2) of an ellipsoid via Legendre's incomplete elliptic integrals."""
    from scipy.special import ellipeinc, ellipkinc

    a, b, c = sorted((float(a), float(b), float(c)), reverse=True)
    if np.isclose(a, c):
        return 4.0 * np.pi * a * a
    phi = np.arccos(c / a)
    if np.isclose(a, b):
        m = 0.0
    else:
        m = (a * a * (b * b - c * c)) / (b * b * (a * a - c * c))
    sin_phi = np.sin(phi)
    return float(2 * np.pi * c * c + 2 * np.pi * a * b / sin_phi
                 * (ellipeinc(phi, m) * sin_phi ** 2 + ellipkinc(phi, m) * np.cos(phi) ** 2))


@dataclass
class EllipsoidShell(Shape):
    """The solid between two concentric, co-axial ellipsoids (outer minus inner cavity)."""

    center: Sequence[float] = (0.0, 0.0, 0.0)
    outer: Sequence[float] = (32.0, 26.0, 20.0)
    inner: Sequence[float] = (24.0, 18.0, 12.0)
    rotation: np.ndarray | Sequence[float] | None = None
    name: str = "ellipsoid_shell"

    def __post_init__(self):
        if np.any(np.asarray(self.inner) >= np.asarray(self.outer)):
            raise ValueError("inner semi-axes must be smaller than the outer ones")

    def _parts(self):
        return (Ellipsoid(self.center, self.outer, self.rotation),
                Ellipsoid(self.center, self.inner, self.rotation))

    def sdf(self, points):
        out, inn = self._parts()
        return np.maximum(out.sdf(points), -inn.sdf(points))

    def contains(self, points):
        out, inn = self._parts()
        return out.contains(points) & ~inn.contains(points)

    @property
    def volume_mm3(self):
        out, inn = self._parts()
        return out.volume_mm3 - inn.volume_mm3

    @property
    def area_mm2(self):
        out, inn = self._parts()
        return out.area_mm2 + inn.area_mm2


@dataclass
class Torus(Shape):
    """Torus of tube radius ``minor`` around a circle of radius ``major`` (mm).

    The torus axis is the third column of ``rotation`` (LPS z when None).
    """

    center: Sequence[float] = (0.0, 0.0, 0.0)
    major: float = 25.0
    minor: float = 8.0
    rotation: np.ndarray | Sequence[float] | None = None
    name: str = "torus"

    def __post_init__(self):
        if not 0 < self.minor < self.major:
            raise ValueError("torus needs 0 < minor < major")

    def sdf(self, points):
        rot = np.eye(3) if self.rotation is None else np.asarray(self.rotation, dtype=np.float64)
        if rot.shape != (3, 3):
            rot = rotation_matrix(rot)
        q = _local(points, np.asarray(self.center, float), rot)
        ring = np.hypot(q[:, 0], q[:, 1]) - self.major
        return np.hypot(ring, q[:, 2]) - self.minor

    @property
    def volume_mm3(self):
        return 2.0 * np.pi ** 2 * self.major * self.minor ** 2

    @property
    def area_mm2(self):
        return 4.0 * np.pi ** 2 * self.major * self.minor


# --------------------------------------------------------------------------------------------
# rasterisation
# --------------------------------------------------------------------------------------------
def occupancy(shape: Shape, grid_shape: Sequence[int], affine: np.ndarray, supersample: int = 6,
              chunk: int = 20000) -> np.ndarray:
    """Fraction (0..1, float32) of each voxel's cell that lies inside ``shape``.

    The voxel cell is the parallelepiped spanned by the affine's columns around the voxel
    centre. Voxels whose centre is farther than the cell's half-diagonal from the surface are
    wholly inside/outside; the others are sampled with ``supersample**3`` points.
    """
    grid_shape = tuple(int(s) for s in grid_shape)
    aff = np.asarray(affine, dtype=np.float64)
    m, t = aff[:3, :3], aff[:3, 3]
    ijk = np.indices(grid_shape, dtype=np.float32).reshape(3, -1).T
    d = np.empty(ijk.shape[0])
    for s in range(0, len(ijk), 1 << 20):
        d[s:s + (1 << 20)] = shape.sdf(ijk[s:s + (1 << 20)].astype(np.float64) @ m.T + t)
    frac = (d < 0).astype(np.float32)
    corners = np.array([[sx, sy, sz] for sx in (-.5, .5) for sy in (-.5, .5) for sz in (-.5, .5)])
    half_diag = float(np.max(np.linalg.norm(corners @ m.T, axis=1)))
    near = np.flatnonzero(np.abs(d) <= half_diag)
    n = int(supersample)
    o = (np.arange(n) + 0.5) / n - 0.5
    offs = np.stack(np.meshgrid(o, o, o, indexing="ij"), -1).reshape(-1, 3)
    step = max(1, chunk // len(offs))
    for s in range(0, len(near), step):
        idx = near[s:s + step]
        sub = (ijk[idx].astype(np.float64)[:, None, :] + offs[None]).reshape(-1, 3) @ m.T + t
        inside = shape.contains(sub).reshape(len(idx), -1)
        frac[idx] = inside.mean(axis=1)
    return frac.reshape(grid_shape)


@dataclass
class Phantom:
    """An analytic phantom rasterised on a grid.

    Attributes
    ----------
    volume : Volume
        Intensity image (CT: HU) with partial volume and optional noise.
    labelmap : Volume
        uint8 label map: 1 where at least half the voxel is inside the shape.
    shape : Shape
        The true surface (``sdf``, ``volume_mm3``, ``area_mm2``).
    fraction : numpy.ndarray
        Partial-volume fractions (0..1).
    """

    volume: Volume
    labelmap: Volume
    shape: Shape
    fraction: np.ndarray
    inside_value: float = 1000.0
    outside_value: float = -1000.0

    @property
    def midpoint(self) -> float:
        """The intensity a 50 % partial-volume voxel has: the unbiased threshold."""
        return 0.5 * (self.inside_value + self.outside_value)


def make_phantom(
    shape: Shape,
    grid_shape: Sequence[int],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    rotation=None,
    center: Sequence[float] | None = None,
    inside: float = 1000.0,
    outside: float = -1000.0,
    noise: float = 0.0,
    supersample: int = 6,
    seed: int = 0,
    modality: str = "CT",
) -> Phantom:
    """Rasterise ``shape`` on a grid of ``grid_shape`` voxels of ``spacing`` mm.

    The grid centre defaults to the shape's centre; ``rotation`` (3x3 or Euler degrees) makes
    the grid oblique. Intensities are ``outside + fraction * (inside - outside)`` plus Gaussian
    noise of standard deviation ``noise``.
    """
    if center is None:
        center = getattr(shape, "center", (0.0, 0.0, 0.0))
    aff = grid_affine(grid_shape, spacing, center, rotation)
    frac = occupancy(shape, grid_shape, aff, supersample)
    img = outside + frac.astype(np.float64) * (inside - outside)
    if noise:
        img = img + np.random.default_rng(seed).normal(0.0, noise, img.shape)
    meta = {"modality": modality, "description": f"{shape.name} phantom", "units": "HU" if modality == "CT" else ""}
    vol = Volume(img.astype(np.float32), aff, meta)
    lab = Volume((frac >= 0.5).astype(np.uint8), aff.copy(), {"kind": "labelmap", "label_names": {1: shape.name}})
    return Phantom(vol, lab, shape, frac, float(inside), float(outside))


def sphere_phantom(radius: float = 20.0, spacing=(1.0, 1.0, 1.0), rotation=None, margin: float = 6.0,
                   **kw) -> Phantom:
    """A sphere of ``radius`` mm on a grid just large enough (``margin`` mm free each side)."""
    shape = Sphere((1.5, -2.25, 3.1), radius)
    return make_phantom(shape, _fit_shape(2 * (radius + margin), spacing), spacing, rotation=rotation, **kw)


def ellipsoid_shell_phantom(outer=(32.0, 26.0, 20.0), inner=(24.0, 18.0, 12.0), spacing=(1.0, 1.0, 1.0),
                            rotation=None, shape_rotation=(10.0, 20.0, 30.0), margin: float = 6.0,
                            **kw) -> Phantom:
    """A hollow ellipsoid (closed cavity inside) tilted by ``shape_rotation`` degrees."""
    shape = EllipsoidShell((-1.2, 0.7, 2.3), outer, inner, shape_rotation)
    return make_phantom(shape, _fit_shape(2 * (max(outer) + margin), spacing), spacing, rotation=rotation, **kw)


def torus_phantom(major: float = 25.0, minor: float = 8.0, spacing=(1.0, 1.0, 1.0), rotation=None,
                  shape_rotation=(30.0, 15.0, 0.0), margin: float = 6.0, **kw) -> Phantom:
    """A torus (genus 1) whose axis is tilted by ``shape_rotation`` degrees."""
    shape = Torus((0.6, -1.1, 0.9), major, minor, shape_rotation)
    return make_phantom(shape, _fit_shape(2 * (major + minor + margin), spacing), spacing, rotation=rotation, **kw)


def _fit_shape(extent_mm: float, spacing) -> tuple[int, int, int]:
    return tuple(int(np.ceil(extent_mm / float(s))) + 1 for s in spacing)


def surface_error(vertices: np.ndarray, shape: Shape) -> dict[str, float]:
    """Distance (mm) from mesh vertices (N, 3, LPS mm) to the true surface.

    Returns ``mean``, ``rms``, ``max`` of the unsigned distance and ``bias`` (mean signed
    distance; positive = mesh lies outside the true surface).
    """
    d = shape.sdf(np.asarray(vertices, dtype=np.float64))
    a = np.abs(d)
    return {"mean": float(a.mean()), "rms": float(np.sqrt(np.mean(d * d))),
            "max": float(a.max()), "bias": float(d.mean())}


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
