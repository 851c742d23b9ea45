"""Analytic test scenes of objects standing on a textured support (a table, a turntable, a floor).

A :class:`Scene` is a few primitives (spheres, boxes, upright cylinders) standing on the plane
``z = 0`` with a textured support disc, a backdrop (uniform, or "clutter": a colourful pattern
fixed to the viewing direction, i.e. infinitely far away) and solid 3D textures of chosen scale
and contrast (``contrast > 1`` saturates: patches of pure black and white with no detail).
Images are ray cast exactly (numpy, 2x2 supersampling), so depth and surface are known.

Frames: world z is up, the support is ``z = 0``; cameras follow the COLMAP convention of
:mod:`medrecon.multiview.synthetic` (whose :class:`Camera`, :func:`look_at` are reused).
Units are arbitrary scene units (objects about 1 unit across).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .synthetic import Camera, look_at, seen_by_views

LIGHT = np.array([0.4, -0.5, 0.77]) / np.linalg.norm([0.4, -0.5, 0.77])
AMBIENT = 0.45


@dataclass
class Texture:
    """Solid texture: ``mean + amp * tanh(gain * sum of random sinusoids)``, clipped to 0..1."""

    scale: float = 1.0  # frequency multiplier (2 = twice as fine)
    contrast: float = 1.0  # 1: mostly in 0.14..0.90; > 1 saturates to black and white patches
    seed: int = 1
    mean: float = 0.52

    def __post_init__(self):
        rng = np.random.default_rng(self.seed)
        self._freq = rng.normal(size=(48, 3)) * np.repeat([6.0, 14.0, 28.0], 16)[:, None] * self.scale
        self._phase = rng.uniform(0, 2 * np.pi, size=48)
        self._amp = rng.uniform(-1.0, 1.0, size=(48, 3)) * 0.4 + rng.uniform(-1.0, 1.0, size=(48, 1))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        c = (np.sin(p @ self._freq.T + self._phase) @ self._amp) / np.sqrt(len(self._phase))
        return np.clip(self.mean + 0.38 * self.contrast * np.tanh(2.5 * c), 0.0, 1.0)


@dataclass
class Prim:
    """``kind``: sphere (centre, radius), box (centre, half sizes) or cylinder (base centre, radius,
    height; axis +z)."""

    kind: str
    c: np.ndarray
    size: np.ndarray

    def intersect(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ray hits: distance ``t`` (inf if none) and outward normals (N, 3)."""
        n = np.zeros_like(d)
        if self.kind == "sphere":
            r = float(self.size[0])
            oc = o - self.c
            b = np.einsum("ij,ij->i", d, oc)
            cc = np.einsum("ij,ij->i", oc, oc) - r * r
            disc = b * b - cc
            t = -b - np.sqrt(np.maximum(disc, 0))
            t = np.where((disc > 0) & (t > 1e-6), t, np.inf)
            hit = np.isfinite(t)
            n[hit] = (o[hit] + d[hit] * t[hit, None] - self.c) / r
            return t, n
        if self.kind == "box":
            with np.errstate(divide="ignore", invalid="ignore"):
                inv = 1.0 / d
                t0 = (self.c - self.size - o) * inv
                t1 = (self.c + self.size - o) * inv
            tn = np.minimum(t0, t1)
            tmin = np.nanmax(tn, axis=1)
            tmax = np.nanmin(np.maximum(t0, t1), axis=1)
            t = np.where((tmax >= tmin) & (tmin > 1e-6), tmin, np.inf)
            ax = np.nanargmax(tn, axis=1)
            hit = np.isfinite(t)
            idx = np.nonzero(hit)[0]
            n[idx, ax[idx]] = -np.sign(d[idx, ax[idx]])
            return t, n
        # cylinder: side x^2 + y^2 = r^2 for 0 <= z <= h, top cap at z = h
        r, h = float(self.size[0]), float(self.size[1])
        ox, oy = o[:, 0] - self.c[0], o[:, 1] - self.c[1]
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = ox * d[:, 0] + oy * d[:, 1]
        cc = ox * ox + oy * oy - r * r
        disc = b * b - a * cc
        with np.errstate(divide="ignore", invalid="ignore"):
            ts = (-b - np.sqrt(np.maximum(disc, 0))) / a
        zs = o[:, 2] + d[:, 2] * ts - self.c[2]
        ts = np.where((disc > 0) & (a > 1e-12) & (ts > 1e-6) & (zs >= 0) & (zs <= h), ts, np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            tc = (self.c[2] + h - o[:, 2]) / d[:, 2]
        px, py = o[:, 0] + d[:, 0] * tc - self.c[0], o[:, 1] + d[:, 1] * tc - self.c[1]
        tc = np.where((tc > 1e-6) & (px * px + py * py <= r * r) & (d[:, 2] < 0), tc, np.inf)
        t = np.minimum(ts, tc)
        side = np.isfinite(ts) & (ts <= tc)
        p = o + d * np.where(np.isfinite(t), t, 0)[:, None]
        n[side, 0], n[side, 1] = (p[side, 0] - self.c[0]) / r, (p[side, 1] - self.c[1]) / r
        cap = np.isfinite(tc) & (tc < ts)
        n[cap, 2] = 1.0
        return t, n

    def inside(self, p: np.ndarray) -> np.ndarray:
        if self.kind == "sphere":
            return np.linalg.norm(p - self.c, axis=1) < self.size[0]
        if self.kind == "box":
            return np.all(np.abs(p - self.c) < self.size, axis=1)
        q = p - self.c
        return (q[:, 0] ** 2 + q[:, 1] ** 2 < self.size[0] ** 2) & (q[:, 2] > 0) & (q[:, 2] < self.size[1])

    def area(self) -> float:
        if self.kind == "sphere":
            return 4 * np.pi * self.size[0] ** 2
        if self.kind == "box":
            x, y, z = 2 * self.size
            return 2 * (x * y + y * z + x * z)
        r, h = self.size[:2]
        return 2 * np.pi * r * h + 2 * np.pi * r * r

    def sample(self, n: int, rng) -> np.ndarray:
        if self.kind == "sphere":
            v = rng.normal(size=(n, 3))
            return self.c + self.size[0] * v / np.linalg.norm(v, axis=1, keepdims=True)
        if self.kind == "box":
            hx, hy, hz = 2 * self.size
            areas = np.array([hy * hz, hy * hz, hx * hz, hx * hz, hx * hy, hx * hy])
            out = []
            for k, c in enumerate(rng.multinomial(n, areas / areas.sum())):
                q = rng.uniform(-1, 1, size=(c, 3))
                q[:, k // 2] = 1 if k % 2 else -1
                out.append(self.c + q * self.size)
            return np.concatenate(out)
        r, h = self.size[:2]
        a_side, a_cap = 2 * np.pi * r * h, np.pi * r * r
        ns, nc = rng.multinomial(n, np.array([a_side, a_cap, a_cap]) / (a_side + 2 * a_cap))[:2]
        ph = rng.uniform(0, 2 * np.pi, ns)
        side = np.stack([r * np.cos(ph), r * np.sin(ph), rng.uniform(0, h, ns)], 1)
        rr, ph2 = r * np.sqrt(rng.uniform(0, 1, n - ns)), rng.uniform(0, 2 * np.pi, n - ns)
        caps = np.stack([rr * np.cos(ph2), rr * np.sin(ph2), np.where(np.arange(n - ns) < nc, h, 0.0)], 1)
        return self.c + np.concatenate([side, caps])


@dataclass
class Scene:
    """Objects on a support disc (``z = 0``, radius ``ground_radius``; ``None``: no support)."""

    name: str
    prims: list[Prim]
    texture: Texture = field(default_factory=Texture)
    ground_texture: Texture = field(default_factory=lambda: Texture(scale=0.7, seed=7, mean=0.45))
    ground_radius: float | None = 1.6
    background: str = "uniform"  # uniform | clutter
    background_level: float = 0.8

    # --- geometry -----------------------------------------------------------------------
    def object_inside(self, p: np.ndarray) -> np.ndarray:
        m = np.zeros(len(p), bool)
        for pr in self.prims:
            m |= pr.inside(p)
        return m

    def bbox(self) -> np.ndarray:
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for pr in self.prims:
            if pr.kind == "sphere":
                a, b = pr.c - pr.size[0], pr.c + pr.size[0]
            elif pr.kind == "box":
                a, b = pr.c - pr.size, pr.c + pr.size
            else:
                r, h = pr.size[:2]
                a, b = pr.c - [r, r, 0], pr.c + [r, r, h]
            lo, hi = np.minimum(lo, a), np.maximum(hi, b)
        lo[2] = max(lo[2], 0.0)
        return np.stack([lo, hi])

    def diagonal(self) -> float:
        b = self.bbox()
        return float(np.linalg.norm(b[1] - b[0]))

    def sample_surface(self, n: int, seed: int = 0) -> np.ndarray:
        """About ``n`` points on the object's outer surface (above the support), uniform by area."""
        rng = np.random.default_rng(seed)
        areas = np.array([p.area() for p in self.prims])
        pts = []
        for pr, k in zip(self.prims, rng.multinomial(int(n * 1.6), areas / areas.sum())):
            q = pr.sample(int(k), rng)
            others = np.zeros(len(q), bool)
            for o in self.prims:
                if o is not pr:
                    others |= o.inside(q)
            pts.append(q[~others & (q[:, 2] >= -1e-9)])
        p = np.concatenate(pts)
        rng.shuffle(p)
        return p[:n]

    # --- appearance ---------------------------------------------------------------------
    def cast(self, o: np.ndarray, d: np.ndarray):
        """Colour (N, 3), hit kind (0 none, 1 object, 2 support) and distance along the ray."""
        t = np.full(len(d), np.inf)
        n = np.zeros_like(d)
        for pr in self.prims:
            tp, npr = pr.intersect(o, d)
            closer = tp < t
            t[closer], n[closer] = tp[closer], npr[closer]
        kind = np.where(np.isfinite(t), 1, 0)
        if self.ground_radius is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                tg = -o[:, 2] / d[:, 2]
            pg = o + d * np.where(np.isfinite(tg), tg, 0)[:, None]
            okg = (tg > 1e-6) & (pg[:, 0] ** 2 + pg[:, 1] ** 2 <= self.ground_radius ** 2) & (tg < t)
            t[okg], kind[okg] = tg[okg], 2
            n[okg] = [0, 0, 1.0]
        p = o + d * np.where(np.isfinite(t), t, 0)[:, None]
        col = np.zeros((len(d), 3))
        lit = np.isfinite(t)
        # cast shadows are left out on purpose (view-independent shading keeps the truth simple)
        shade = AMBIENT + (1 - AMBIENT) * np.clip(n @ LIGHT, 0, None)
        m1, m2 = kind == 1, kind == 2
        col[m1] = self.texture(p[m1]) * shade[m1, None]
        col[m2] = self.ground_texture(p[m2]) * shade[m2, None]
        bg = ~lit
        if self.background == "clutter":
            col[bg] = 0.5 + 0.35 * np.tanh(3 * np.sin(d[bg] @ np.array([[9.0, 3, 1], [-2, 11, 4], [5, -7, 13]]).T))
        else:
            col[bg] = self.background_level
        return np.clip(col, 0, 1), kind, t

    def render(self, cam: Camera, supersample: int = 2):
        """(rgb uint8 (h, w, 3), object mask (h, w), camera-z depth (h, w), inf where nothing)."""
        w, h, s = cam.width, cam.height, supersample
        Kinv = np.linalg.inv(cam.K)
        o = cam.centre
        acc = np.zeros((h * w, 3))
        offs = (np.arange(s) + 0.5) / s
        for dy in offs:
            for dx in offs:
                vs, us = np.meshgrid(np.arange(h) + dy, np.arange(w) + dx, indexing="ij")
                pix = np.stack([us.ravel(), vs.ravel(), np.ones(us.size)], 1)
                dd = (cam.R.T @ (Kinv @ pix.T)).T
                dd /= np.linalg.norm(dd, axis=1, keepdims=True)
                acc += self.cast(np.broadcast_to(o, dd.shape).copy(), dd)[0]
        vs, us = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
        pix = np.stack([us.ravel(), vs.ravel(), np.ones(us.size)], 1)
        dd = (cam.R.T @ (Kinv @ pix.T)).T
        dd /= np.linalg.norm(dd, axis=1, keepdims=True)
        _, kind, t = self.cast(np.broadcast_to(o, dd.shape).copy(), dd)
        z = np.where(np.isfinite(t), t * (dd @ cam.R[2]), np.inf)
        rgb = np.clip(np.round(acc / s ** 2 * 255), 0, 255).astype(np.uint8).reshape(h, w, 3)
        return rgb, (kind == 1).reshape(h, w), z.reshape(h, w)


def scene_cameras(scene: Scene, n: int = 20, width: int = 320, height: int = 240, radius: float = 3.0,
                  elevations=(20.0, 45.0), focal: float | None = None, seed: int = 0) -> list[Camera]:
    """``n`` cameras on a ring around the objects (a turntable set-up), looking at their middle."""
    rng = np.random.default_rng(seed)
    f = focal if focal is not None else 1.1 * width
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    b = scene.bbox()
    target = 0.5 * (b[0] + b[1])
    cams = []
    for i in range(n):
        az = 2 * np.pi * i / n + 0.1
        el = np.deg2rad(elevations[0] + (elevations[1] - elevations[0]) * (0.5 + 0.5 * np.sin(3 * az)))
        r = radius * (1 + 0.05 * rng.uniform(-1, 1))
        eye = target + r * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        R, t = look_at(eye, target=target)
        cams.append(Camera(K.copy(), R, t, width, height))
    return cams


def standard_scenes() -> dict[str, Scene]:
    """The benchmark scenes: textures of different scale and contrast, all on a textured support."""
    P = lambda k, c, s: Prim(k, np.asarray(c, float), np.asarray(s, float))  # noqa: E731
    return {
        # the case: a sphere and a box on a textured disc, uniform backdrop
        "sphere_box": Scene("sphere_box", [P("sphere", [-0.25, 0.0, 0.42], [0.42]),
                                           P("box", [0.35, 0.05, 0.28], [0.26, 0.22, 0.28])]),
        # fine, low-contrast texture on a cylinder and a sphere
        "fine_lowcontrast": Scene("fine_lowcontrast", [P("cylinder", [0.2, -0.1, 0.0], [0.3, 0.7]),
                                                       P("sphere", [-0.35, 0.2, 0.3], [0.3])],
                                  texture=Texture(scale=2.0, contrast=0.5, seed=3)),
        # coarse, saturated texture (flat black and white patches) on two boxes; cluttered backdrop
        "coarse_saturated": Scene("coarse_saturated", [P("box", [-0.2, 0.0, 0.3], [0.3, 0.3, 0.3]),
                                                       P("cylinder", [0.4, 0.25, 0.0], [0.2, 0.45])],
                                  texture=Texture(scale=0.6, contrast=2.2, seed=5), background="clutter"),
    }


def write_scene(scene: Scene, folder, n: int = 20, width: int = 320, height: int = 240, supersample: int = 2):
    """Render ``n`` views into ``folder/photos`` and the true cameras (COLMAP text model, empty
    ``points3D.txt``, as a calibrated rig gives) into ``folder/cameras``.

    Returns (truth CameraSet without points, list of (rgb, mask, depth)).
    """
    import PIL.Image

    from medrecon.io.atomic import atomic_path

    from ..io.colmap import CameraSet, write_colmap_text

    folder = Path(folder)
    (folder / "photos").mkdir(parents=True, exist_ok=True)
    cams = scene_cameras(scene, n, width, height)
    names = [f"view_{i:03d}.png" for i in range(n)]
    out = []
    for c, name in zip(cams, names):
        rgb, m, z = scene.render(c, supersample)
        with atomic_path(folder / "photos" / name) as tmp:
            PIL.Image.fromarray(rgb).save(tmp)
        out.append((rgb, m, z))
    truth = CameraSet(list(names), np.array([c.K for c in cams]), np.array([c.R for c in cams]),
                      np.array([c.t for c in cams]), np.array([(c.width, c.height) for c in cams]),
                      np.zeros(n), total=n)
    write_colmap_text(truth, folder / "cameras")
    return truth, out


def visible_points(scene: Scene, truth, renders, n: int = 40000, min_views: int = 2, tol_rel: float = 0.003) -> np.ndarray:
    """Object surface samples seen (unoccluded, in frame) by at least ``min_views`` views."""
    return seen_by_views(scene.sample_surface(n), truth, renders, min_views, tol_rel * scene.diagonal() * 3)


def chamfer_fscore(points: np.ndarray, gt_all: np.ndarray, gt_visible: np.ndarray, tau: float) -> dict:
    """Accuracy (model -> whole true object surface), completeness (seen true surface -> model),
    Chamfer (their mean) and precision/recall/F-score at distance ``tau``."""
    from scipy.spatial import cKDTree

    da = cKDTree(gt_all).query(points)[0]
    dc = cKDTree(points).query(gt_visible)[0]
    p, r = float((da < tau).mean()), float((dc < tau).mean())
    return {"accuracy": float(da.mean()), "completeness": float(dc.mean()),
            "chamfer": float(0.5 * (da.mean() + dc.mean())), "precision": p, "recall": r,
            "fscore": 2 * p * r / max(p + r, 1e-12)}


def score_reconstruction(scene: Scene, truth, renders, vertices: np.ndarray, faces: np.ndarray,
                         cameras=None, n_samples: int = 60000) -> dict:
    """Chamfer and F-score at 0.5 % of the diagonal of a reconstructed mesh against ``scene``.
    ``cameras``: the run's own cameras when they were estimated (the mesh is first brought into
    the true frame by the similarity that aligns them with ``truth``); ``None`` for known cameras."""
    import trimesh

    from .cameras import pose_errors

    v = np.asarray(vertices, np.float64)
    if cameras is not None:
        e = pose_errors(cameras, truth)
        v = (e["scale"] * (e["R"] @ v.T)).T + e["t"]
    pts = trimesh.Trimesh(v, faces, process=False).sample(n_samples)
    diag = scene.diagonal()
    return chamfer_fscore(pts, scene.sample_surface(100000), visible_points(scene, truth, renders), 0.005 * diag)
