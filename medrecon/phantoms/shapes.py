"""Analytic phantoms with known geometry, for tests, benchmarks and examples.

:class:`Sphere`, :class:`Ellipsoid`, :class:`EllipsoidShell`, :class:`Torus`: each has an exact
signed distance function (``sdf``, millimetres, negative inside), exact enclosed volume (mm3)
and surface area (mm2). They are rasterised onto any grid (anisotropic, oblique) with
partial-volume fractions computed by supersampling, so a mesh made from the image can be
measured against the true surface (:func:`medrecon.surface.qa.surface_error`).

All coordinates are LPS millimetres; grids are given as ``(shape, affine)`` with the affine
mapping array index to LPS mm.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from medrecon.volume import Volume

__all__ = [
    "Shape", "Sphere", "Ellipsoid", "EllipsoidShell", "Torus",
    "grid_affine", "rotation_matrix", "occupancy", "Phantom", "make_phantom",
    "sphere_phantom", "ellipsoid_shell_phantom", "torus_phantom",
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
