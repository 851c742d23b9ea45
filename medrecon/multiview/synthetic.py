"""A small analytic test scene with known geometry, appearance and cameras.

Used by the tests, the example and the benchmark: a sphere and a box (their union is the
object) with a colourful solid 3D texture, lit by a fixed directional light plus ambient
(view-independent, so a baked texture can be compared with the truth), on a black background.
Images are ray cast exactly (numpy, 2x2 supersampling), so the ground truth is analytic.

Frames: world z is up; cameras follow the COLMAP convention ``x_cam = R @ x_world + t``,
pixel ``(u, v) = K @ x_cam / z`` with the image's top-left corner at (0, 0) (pixel centres
at +0.5). Units are arbitrary scene units (the object is about 1.4 units across).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPHERE_C = np.array([-0.22, 0.0, 0.0])
SPHERE_R = 0.45
BOX_C = np.array([0.32, 0.05, -0.12])
BOX_H = np.array([0.28, 0.24, 0.30])
LIGHT = np.array([0.4, -0.5, 0.77]) / np.linalg.norm([0.4, -0.5, 0.77])
AMBIENT = 0.45

_rng = np.random.default_rng(1234)
_FREQ = _rng.normal(size=(64, 3)) * np.repeat([6.0, 14.0, 28.0, 50.0], 16)[:, None]
_PHASE = _rng.uniform(0, 2 * np.pi, size=64)
_AMP = _rng.uniform(-1.0, 1.0, size=(64, 3)) * 0.4 + _rng.uniform(-1.0, 1.0, size=(64, 1))


def albedo(p: np.ndarray) -> np.ndarray:
    """Albedo (linear RGB in 0..1) of the solid texture at points ``p`` (N, 3)."""
    s = np.sin(p @ _FREQ.T + _PHASE)  # (N, 40)
    c = (s @ _AMP) / np.sqrt(len(_PHASE))
    return 0.52 + 0.38 * np.tanh(2.5 * c)


def shading(n: np.ndarray) -> np.ndarray:
    """Irradiance factor (ambient + Lambert) for unit normals ``n`` (N, 3)."""
    return AMBIENT + (1 - AMBIENT) * np.clip(n @ LIGHT, 0, None)


def radiance(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Observed colour (0..1, linear = stored value) of surface points with normals."""
    return np.clip(albedo(p) * shading(n)[:, None], 0, 1)


def _ray_sphere(o, d):
    oc = o - SPHERE_C
    b = d @ oc if oc.ndim == 1 else np.einsum("ij,ij->i", d, oc)
    c = oc @ oc - SPHERE_R ** 2
    disc = b * b - c
    t = -b - np.sqrt(np.maximum(disc, 0))
    t = np.where((disc > 0) & (t > 1e-6), t, np.inf)
    return t


def _ray_box(o, d):
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t0 = (BOX_C - BOX_H - o) * inv
        t1 = (BOX_C + BOX_H - o) * inv
    tmin = np.nanmax(np.minimum(t0, t1), axis=1)
    tmax = np.nanmin(np.maximum(t0, t1), axis=1)
    return np.where((tmax >= tmin) & (tmin > 1e-6), tmin, np.inf)


def normals_at(p: np.ndarray) -> np.ndarray:
    """Outward unit normals of the object's surface at surface points ``p``."""
    ds = np.abs(np.linalg.norm(p - SPHERE_C, axis=1) - SPHERE_R)
    q = (p - BOX_C) / BOX_H
    ax = np.argmax(np.abs(q), axis=1)
    nb = np.zeros_like(p)
    nb[np.arange(len(p)), ax] = np.sign(q[np.arange(len(p)), ax])
    db = np.abs(np.abs(q[np.arange(len(p)), ax]) - 1) * BOX_H[ax]
    ns = (p - SPHERE_C) / SPHERE_R
    return np.where((ds < db)[:, None], ns, nb)


def inside(p: np.ndarray) -> np.ndarray:
    """True where points are inside the object."""
    s = np.linalg.norm(p - SPHERE_C, axis=1) < SPHERE_R
    b = np.all(np.abs(p - BOX_C) < BOX_H, axis=1)
    return s | b


def sample_surface(n: int, seed: int = 0) -> np.ndarray:
    """About ``n`` points uniformly on the object's outer surface (union boundary)."""
    rng = np.random.default_rng(seed)
    a_s = 4 * np.pi * SPHERE_R ** 2
    hx, hy, hz = 2 * BOX_H
    a_b = 2 * (hx * hy + hy * hz + hx * hz)
    ns = int(n * 1.4 * a_s / (a_s + a_b))
    nb = int(n * 1.4 * a_b / (a_s + a_b))
    v = rng.normal(size=(ns, 3))
    ps = SPHERE_C + SPHERE_R * v / np.linalg.norm(v, axis=1, keepdims=True)
    ps = ps[~np.all(np.abs(ps - BOX_C) < BOX_H - 1e-9, axis=1)]
    faces = []
    areas = np.array([hy * hz, hy * hz, hx * hz, hx * hz, hx * hy, hx * hy])
    counts = rng.multinomial(nb, areas / areas.sum())
    for k, c in enumerate(counts):
        axis, sign = k // 2, (1 if k % 2 else -1)
        q = rng.uniform(-1, 1, size=(c, 3))
        q[:, axis] = sign
        faces.append(BOX_C + q * BOX_H)
    pb = np.concatenate(faces)
    pb = pb[np.linalg.norm(pb - SPHERE_C, axis=1) > SPHERE_R + 1e-9]
    p = np.concatenate([ps, pb])
    rng.shuffle(p)
    return p[:n]


@dataclass
class Camera:
    """Pinhole camera: K (3x3, px), R (3x3), t (3,) world->camera; image size (w, h)."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    @property
    def centre(self) -> np.ndarray:
        return -self.R.T @ self.t


def look_at(eye, target=(0, 0, 0), up=(0, 0, 1)) -> tuple[np.ndarray, np.ndarray]:
    """R, t (world->camera, COLMAP axes: x right, y down, z forward) for a camera at ``eye``."""
    eye = np.asarray(eye, float)
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ eye


def orbit_cameras(n: int, width: int = 320, height: int = 240, focal: float | None = None,
                  radius: float = 2.6, elevations=(15.0, 40.0), seed: int = 0,
                  turns: float = 1.0) -> list[Camera]:
    """``n`` cameras on a ring around the object looking at its centre.

    Elevation alternates/varies between ``elevations`` (degrees) so the set is not coplanar.
    """
    rng = np.random.default_rng(seed)
    f = focal if focal is not None else 1.5 * width
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    cams = []
    for i in range(n):
        az = 2 * np.pi * turns * i / n
        el = np.deg2rad(elevations[0] + (elevations[1] - elevations[0]) * (0.5 + 0.5 * np.sin(3 * az)))
        r = radius * (1 + 0.05 * rng.uniform(-1, 1))
        eye = r * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        R, t = look_at(eye, target=(0.05, 0.0, -0.05))
        cams.append(Camera(K.copy(), R, t, width, height))
    return cams


def render(cam: Camera, supersample: int = 2, background: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray cast the scene from ``cam``.

    Returns
    -------
    rgb : (h, w, 3) uint8 (sRGB-coded values are the linear model values; no gamma is applied)
    mask : (h, w) bool, pixel centre sees the object
    depth : (h, w) float, z in camera coordinates at pixel centres (inf on background)
    """
    w, h, s = cam.width, cam.height, supersample
    Kinv = np.linalg.inv(cam.K)
    o = cam.centre

    def cast(us, vs):
        pix = np.stack([us.ravel(), vs.ravel(), np.ones(us.size)], axis=1)
        d = (cam.R.T @ (Kinv @ pix.T)).T
        dn = d / np.linalg.norm(d, axis=1, keepdims=True)
        t = np.minimum(_ray_sphere(o, dn), _ray_box(np.broadcast_to(o, dn.shape), dn))
        hit = np.isfinite(t)
        col = np.full((len(dn), 3), background)
        p = o + dn[hit] * t[hit, None]
        col[hit] = radiance(p, normals_at(p))
        z = np.full(len(dn), np.inf)
        z[hit] = (p - o) @ cam.R[2]
        return col, hit, z

    offs = (np.arange(s) + 0.5) / s
    acc = np.zeros((h * w, 3))
    for dy in offs:
        for dx in offs:
            vs, us = np.meshgrid(np.arange(h) + dy, np.arange(w) + dx, indexing="ij")
            col, _, _ = cast(us, vs)
            acc += col
    vs, us = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    _, hit, z = cast(us, vs)
    rgb = np.clip(np.round(acc / s ** 2 * 255), 0, 255).astype(np.uint8).reshape(h, w, 3)
    return rgb, hit.reshape(h, w), z.reshape(h, w)


def motion_blur(rgb: np.ndarray, length: int = 9, angle_deg: float = 0.0) -> np.ndarray:
    """Linear motion blur of ``length`` px (OpenCV filter) - a hand-held shake."""
    import cv2

    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    M = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle_deg, 1.0)
    k = cv2.warpAffine(k, M, (length, length))
    k /= k.sum()
    return cv2.filter2D(rgb, -1, k, borderType=cv2.BORDER_REFLECT)


def bbox_diagonal() -> float:
    """Diagonal of the object's axis-aligned bounding box (scene units)."""
    lo = np.minimum(SPHERE_C - SPHERE_R, BOX_C - BOX_H)
    hi = np.maximum(SPHERE_C + SPHERE_R, BOX_C + BOX_H)
    return float(np.linalg.norm(hi - lo))


def truth_cameras(cams: list[Camera], names: list[str]):
    """The cameras as a :class:`~medrecon.multiview.cameras.CameraSet` (with surface sample points)."""
    from .cameras import CameraSet

    return CameraSet(list(names), np.array([c.K for c in cams]), np.array([c.R for c in cams]),
                     np.array([c.t for c in cams]), np.array([(c.width, c.height) for c in cams]),
                     np.zeros(len(cams)), sample_surface(2000, seed=5), np.zeros((2000, 3), np.uint8), None, len(cams))


def write_photo_set(folder, n: int = 20, width: int = 320, height: int = 240, supersample: int = 2):
    """Render ``n`` orbit views as PNG files ``view_000.png``... into ``folder``.

    Returns (truth CameraSet, list of (rgb, mask, depth)).
    """
    from pathlib import Path

    import PIL.Image

    from medrecon.io.atomic import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cams = orbit_cameras(n, width, height)
    names = [f"view_{i:03d}.png" for i in range(n)]
    out = []
    for c, name in zip(cams, names):
        rgb, m, z = render(c, supersample)
        with atomic_path(folder / name) as tmp:
            PIL.Image.fromarray(rgb).save(tmp)
        out.append((rgb, m, z))
    return truth_cameras(cams, names), out


def visible_surface_points(truth, renders, n: int = 40000, min_views: int = 2, tol: float = 0.01) -> np.ndarray:
    """Surface samples seen (unoccluded, in frame) by at least ``min_views`` of the rendered views."""
    return seen_by_views(sample_surface(n), truth, renders, min_views, tol)


def seen_by_views(gt: np.ndarray, truth, renders, min_views: int, tol: float) -> np.ndarray:
    """The points of ``gt`` in frame and unoccluded (depth within ``tol``) in at least
    ``min_views`` of the rendered views ``renders`` ((rgb, mask, depth) per camera of ``truth``)."""
    vis = np.zeros(len(gt), int)
    for i, (_, _, depth) in enumerate(renders):
        Xc = gt @ truth.R[i].T + truth.t[i]
        q = Xc @ truth.K[i].T
        u = np.floor(q[:, 0] / q[:, 2]).astype(int)
        v = np.floor(q[:, 1] / q[:, 2]).astype(int)
        H, W = depth.shape
        ok = (u >= 0) & (u < W) & (v >= 0) & (v < H)
        z = np.full(len(gt), np.inf)
        z[ok] = depth[v[ok], u[ok]]
        vis += ok & (np.abs(Xc[:, 2] - z) < tol)
    return gt[vis >= min_views]
