"""STL (binary): one structure per file; the 80-byte header carries ``medrecon ... SPACE=LPS``.
Float32 vertices, unit face normals. Read back through trimesh (see :func:`medrecon.io.meshes.load_mesh_file`)."""
from __future__ import annotations

import struct

import numpy as np

from medrecon.io.meshes.common import tag

__all__ = ["stl_bytes"]


def stl_bytes(v: np.ndarray, f: np.ndarray, space: str) -> bytes:
    header = tag(space).encode("ascii")[:80].ljust(80, b" ")
    rec = np.zeros(len(f), dtype=[("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    tri = v.astype(np.float32)[f]  # (M, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    ln = np.sqrt(np.einsum("ij,ij->i", n, n))[:, None]
    ln[ln == 0] = 1.0
    rec["n"] = n / ln
    rec["v"] = tri
    return header + struct.pack("<I", len(f)) + rec.tobytes()
