"""STL (binary): one structure per file; the 80-byte header carries ``medrecon ... SPACE=LPS``.
Float32 vertices, unit face normals; geometry only. Read back through trimesh."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from medrecon.io.atomic import atomic_write_bytes
from medrecon.io.meshes.common import read_with_trimesh, tag
from medrecon.io.meshes.registry import WriteOptions, register_format
from medrecon.orientation import to_space

__all__ = ["stl_bytes", "write_stl_file"]


def stl_bytes(v: np.ndarray, f: np.ndarray, space: str) -> bytes:
    """Binary STL of vertices ``v`` (already in ``space``) and triangles ``f``."""
    header = tag(space).encode("ascii")[:80].ljust(80, b" ")
    rec = np.zeros(len(f), dtype=[("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    tri = v.astype(np.float32)[f]  # (M, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    ln = np.sqrt(np.einsum("ij,ij->i", n, n))[:, None]
    ln[ln == 0] = 1.0
    rec["n"] = n / ln
    rec["v"] = tri
    return header + struct.pack("<I", len(f)) + rec.tobytes()


def write_stl_file(models, path: Path, options: WriteOptions) -> list[Path]:
    (m,) = models
    return [atomic_write_bytes(path, stl_bytes(to_space(m.vertices, options.space), m.faces, options.space))]


register_format("stl", (".stl",), write=write_stl_file, read=read_with_trimesh,
                description="binary STL, one file per structure (3D printing)")
