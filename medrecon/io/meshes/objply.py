"""Wavefront OBJ (+ ``.mtl`` with the colour) and PLY (binary or ASCII, vertex colours): one structure
per file, ``SPACE=`` in a comment line."""
from __future__ import annotations

import numpy as np

from medrecon.io.meshes.common import fmt_rows, rgb255, safe_filename, tag
from medrecon.mesh import SurfaceModel
from medrecon.version import generator

__all__ = ["obj_text", "mtl_text", "ply_bytes"]


def obj_text(m: SurfaceModel, v: np.ndarray, mtl_name: str, space: str) -> str:
    head = (f"# {tag(space)}\n# structure: {m.name} (label {m.label}); units: mm\n"
            f"mtllib {mtl_name}\no {safe_filename(m.name)}\nusemtl {safe_filename(m.name)}\n")
    return head + fmt_rows("v %.5f %.5f %.5f", v) + fmt_rows("f %d %d %d", m.faces + 1)


def mtl_text(m: SurfaceModel) -> str:
    r, g, b = m.color
    return (f"# {generator()} material\nnewmtl {safe_filename(m.name)}\n"
            f"Ka 0 0 0\nKd {r:.6f} {g:.6f} {b:.6f}\nKs 0.1 0.1 0.1\nNs 10\nd 1\nillum 2\n")


def ply_bytes(m: SurfaceModel, v: np.ndarray, space: str, binary: bool) -> bytes:
    rgb = rgb255(m.color)
    nv, nf = len(v), len(m.faces)
    header = (
        "ply\n" + ("format binary_little_endian 1.0\n" if binary else "format ascii 1.0\n")
        + f"comment {tag(space)}\ncomment SPACE={space}\ncomment structure {safe_filename(m.name)} label {m.label}\n"
        + f"element vertex {nv}\nproperty float x\nproperty float y\nproperty float z\n"
        + "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        + f"element face {nf}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    if binary:
        vr = np.zeros(nv, dtype=[("p", "<f4", (3,)), ("c", "u1", (3,))])
        vr["p"] = v
        vr["c"] = rgb
        fr = np.zeros(nf, dtype=[("n", "u1"), ("i", "<i4", (3,))])
        fr["n"] = 3
        fr["i"] = m.faces
        return header + vr.tobytes() + fr.tobytes()
    vt = fmt_rows(f"%.5f %.5f %.5f {rgb[0]} {rgb[1]} {rgb[2]}", v)
    ft = fmt_rows("3 %d %d %d", m.faces)
    return header + vt.encode("ascii") + ft.encode("ascii")
