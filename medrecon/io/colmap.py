"""COLMAP text models (``cameras.txt``, ``images.txt``, ``points3D.txt``) in and out, and the camera
type they hold (:class:`CameraSet`), shared by :mod:`medrecon.multiview` and anything that takes
known cameras.

Frames and units: a :class:`CameraSet` uses the COLMAP convention, ``x_cam = R @ x_world + t``,
pixels ``K @ x_cam / z`` with the image's top-left corner at (0, 0). World units are those of
the cameras (arbitrary after SfM; millimetres once a scale is applied). Distortion is kept as one
radial coefficient ``k1`` (SIMPLE_RADIAL/RADIAL style: ``x_d = x (1 + k1 r^2)`` on normalised
coordinates).

References
----------
J. L. Schönberger and J.-M. Frahm, "Structure-from-Motion Revisited", CVPR 2016; COLMAP's
output format: colmap.github.io/format.html (text model files).

Examples
--------
>>> import tempfile
>>> import numpy as np
>>> cams = CameraSet(["a.png"], np.array([np.diag([500.0, 500.0, 1.0])]), np.eye(3)[None], np.zeros((1, 3)),
...                  np.array([(640, 480)]), np.zeros(1))
>>> back = read_colmap_text(write_colmap_text(cams, tempfile.mkdtemp()))
>>> back.names, float(back.K[0, 0, 0])
(['a.png'], 500.0)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from medrecon.errors import MedreconError
from medrecon.io.atomic import atomic_write_text

__all__ = ["CameraSet", "CameraError", "read_colmap_text", "write_colmap_text", "quat_to_rot", "rot_to_quat"]


class CameraError(MedreconError):
    """Camera estimation failed or a camera model file is unreadable."""


@dataclass
class CameraSet:
    """Registered cameras (one entry per image that has a pose).

    Attributes
    ----------
    names : image file names (as ingested)
    K : (N, 3, 3) intrinsics in pixels
    R, t : (N, 3, 3), (N, 3) world -> camera
    sizes : (N, 2) image width, height in pixels
    k1 : (N,) radial distortion coefficient (0 for pinhole)
    points, colors : sparse 3D points (M, 3) world units and their RGB uint8 colours (M, 3)
    reprojection_error_px : mean reprojection error of the sparse model (None if unknown)
    total : number of images offered to SfM (registered + not registered)
    """

    names: list[str]
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    sizes: np.ndarray
    k1: np.ndarray
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))
    reprojection_error_px: float | None = None
    total: int = 0

    def __len__(self) -> int:
        return len(self.names)

    @property
    def centres(self) -> np.ndarray:
        """Camera centres (N, 3) in world units."""
        return -np.einsum("nji,nj->ni", self.R, self.t)

    def subset(self, idx: Sequence[int]) -> "CameraSet":
        idx = list(idx)
        return CameraSet([self.names[i] for i in idx], self.K[idx], self.R[idx], self.t[idx], self.sizes[idx],
                         self.k1[idx], self.points, self.colors, self.reprojection_error_px, self.total)

    def transformed(self, s: float, Rw: np.ndarray, tw: np.ndarray) -> "CameraSet":
        """Apply the similarity x' = s Rw x + tw to the world (cameras and points)."""
        R = self.R @ Rw.T
        t = s * self.t - np.einsum("nij,j->ni", R, tw)
        pts = (s * (Rw @ self.points.T)).T + tw if len(self.points) else self.points
        return CameraSet(list(self.names), self.K.copy(), R, t, self.sizes.copy(), self.k1.copy(), pts,
                         self.colors, self.reprojection_error_px, self.total)


def read_colmap_text(folder: str | Path) -> CameraSet:
    """Read a COLMAP text model (``cameras.txt`` and ``images.txt``; ``points3D.txt`` optional).

    Supported camera models: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL (k2 ignored),
    OPENCV (only fx, fy, cx, cy, k1 are used).
    """
    folder = Path(folder)
    cams_txt, imgs_txt = folder / "cameras.txt", folder / "images.txt"
    for f in (cams_txt, imgs_txt):
        if not f.is_file():
            raise CameraError("COLMAP text model needs cameras.txt and images.txt", f)
    cams = {}
    for line in cams_txt.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        try:
            cid, model, w, h = int(parts[0]), parts[1], int(parts[2]), int(parts[3])
            p = [float(x) for x in parts[4:]]
        except (ValueError, IndexError):
            raise CameraError(f"bad camera line {line!r}", cams_txt) from None
        if model == "SIMPLE_PINHOLE":
            fx = fy = p[0]; cx, cy = p[1], p[2]; k1 = 0.0
        elif model == "PINHOLE":
            fx, fy, cx, cy = p[:4]; k1 = 0.0
        elif model in ("SIMPLE_RADIAL", "RADIAL"):
            fx = fy = p[0]; cx, cy = p[1], p[2]; k1 = p[3]
        elif model in ("OPENCV", "FULL_OPENCV"):
            fx, fy, cx, cy, k1 = p[:5]
        else:
            raise CameraError(f"camera model {model} not supported (use PINHOLE, SIMPLE_RADIAL or OPENCV)", cams_txt)
        cams[cid] = (np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), (w, h), k1)
    lines = [ln for ln in imgs_txt.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    names, Ks, Rs, ts, sizes, k1s = [], [], [], [], [], []
    # images.txt alternates a pose line and a 2D-points line; the points line may be empty, which the
    # filter above dropped, so detect pose lines by their shape (10 fields, ends with a name).
    for ln in lines:
        parts = ln.split()
        if len(parts) != 10:
            continue
        try:
            qw, qx, qy, qz, tx, ty, tz = (float(x) for x in parts[1:8])
            cid = int(parts[8])
        except ValueError:
            continue
        if cid not in cams:
            raise CameraError(f"image {parts[9]} refers to unknown camera {cid}", imgs_txt)
        K, wh, k1 = cams[cid]
        names.append(parts[9]); Ks.append(K); Rs.append(quat_to_rot([qw, qx, qy, qz]))
        ts.append([tx, ty, tz]); sizes.append(wh); k1s.append(k1)
    if not names:
        raise CameraError("no images in the model", imgs_txt)
    pts, cols = np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    p3 = folder / "points3D.txt"
    if p3.is_file():
        rows = [ln.split() for ln in p3.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        if rows:
            pts = np.array([[float(r[1]), float(r[2]), float(r[3])] for r in rows])
            cols = np.array([[int(r[4]), int(r[5]), int(r[6])] for r in rows], np.uint8)
    return CameraSet(names, np.array(Ks), np.array(Rs), np.array(ts, float), np.array(sizes), np.array(k1s, float),
                     pts, cols, None, len(names))


def write_colmap_text(cams: CameraSet, folder: str | Path) -> Path:
    """Write ``cams`` as a COLMAP text model (one PINHOLE/RADIAL camera per image) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cl = ["# Camera list: CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    il = ["# Image list: IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "#   POINTS2D[] (not stored)"]
    for i, name in enumerate(cams.names):
        K = cams.K[i]
        w, h = (int(x) for x in cams.sizes[i])
        if cams.k1[i] != 0:
            cl.append(f"{i + 1} OPENCV {w} {h} {float(K[0, 0])!r} {float(K[1, 1])!r} {float(K[0, 2])!r} {float(K[1, 2])!r} {float(cams.k1[i])!r} 0 0 0")
        else:
            cl.append(f"{i + 1} PINHOLE {w} {h} {float(K[0, 0])!r} {float(K[1, 1])!r} {float(K[0, 2])!r} {float(K[1, 2])!r}")
        q = [float(x) for x in rot_to_quat(cams.R[i])]
        t = [float(x) for x in cams.t[i]]
        il.append(f"{i + 1} {q[0]!r} {q[1]!r} {q[2]!r} {q[3]!r} {t[0]!r} {t[1]!r} {t[2]!r} {i + 1} {name}")
        il.append("")
    pl = ["# 3D point list: POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] (tracks not stored)"]
    for j, (p, c) in enumerate(zip(cams.points, cams.colors)):
        p = [float(x) for x in p]
        pl.append(f"{j + 1} {p[0]!r} {p[1]!r} {p[2]!r} {int(c[0])} {int(c[1])} {int(c[2])} 0")
    atomic_write_text(folder / "cameras.txt", "\n".join(cl) + "\n")
    atomic_write_text(folder / "images.txt", "\n".join(il) + "\n")
    atomic_write_text(folder / "points3D.txt", "\n".join(pl) + "\n")
    return folder


def quat_to_rot(q) -> np.ndarray:
    """Rotation matrix from a unit quaternion (w, x, y, z) (Hamilton, as COLMAP)."""
    w, x, y, z = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def rot_to_quat(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    q = np.array([w, x, y, z])
    return q if w >= 0 else -q
