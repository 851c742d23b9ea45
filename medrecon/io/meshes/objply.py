"""Wavefront OBJ (+ ``.mtl``, + ``.png`` texture) and PLY (binary or ASCII, vertex colours): one
structure per file, ``SPACE=`` in a comment line.

OBJ: a plain model's MTL holds its colour; a model with a :class:`~medrecon.mesh.PBRMaterial`
gets ``Kd`` = base colour (viewers multiply ``map_Kd`` by ``Kd``), ``Ks 0`` and the PBR extension
lines ``Pr`` (roughness) and ``Pm`` (metallic); a textured model writes ``vt`` rows and
``<stem>.png`` (``map_Kd``). PLY: per-vertex colours (vertex colours, the texture sampled at each
UV, or the model's colour).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medrecon.io.atomic import atomic_write_bytes
from medrecon.io.images import png_bytes
from medrecon.io.meshes.common import fmt_rows, read_with_trimesh, safe_filename, tag
from medrecon.io.meshes.registry import WriteOptions, register_format
from medrecon.mesh import SurfaceModel, vertex_rgb
from medrecon.orientation import lps_to_yup_mm, to_space
from medrecon.version import generator

__all__ = ["obj_text", "mtl_text", "ply_bytes", "write_obj_file", "write_ply_file"]


def _comments(text: str | None, prefix: str) -> str:
    return "".join(f"{prefix}{line}\n" for line in str(text).splitlines()) if text else ""


def obj_text(m: SurfaceModel, v: np.ndarray, mtl_name: str, space_line: str, header: str | None = None) -> str:
    mat = safe_filename(m.material.name if m.material is not None else m.name, "material")
    units = m.extras.get("units", "mm")  # e.g. "camera units" for an unscaled multi-view model
    head = (f"# {space_line}\n# structure: {m.name} (label {m.label}); units: {units}\n" + _comments(header, "# ")
            + f"mtllib {mtl_name}\no {safe_filename(m.name)}\nusemtl {mat}\n")
    f1 = m.faces + 1
    if m.has_texture:
        return (head + fmt_rows("v %.5f %.5f %.5f", v) + fmt_rows("vt %.6f %.6f", m.uv)
                + fmt_rows("f %d/%d %d/%d %d/%d", np.repeat(f1, 2, axis=1)))
    return head + fmt_rows("v %.5f %.5f %.5f", v) + fmt_rows("f %d %d %d", f1)


def mtl_text(m: SurfaceModel, texture_name: str | None = None) -> str:
    if m.material is None:
        r, g, b = m.color
        return (f"# {generator()} material\nnewmtl {safe_filename(m.name)}\n"
                f"Ka 0 0 0\nKd {r:.6f} {g:.6f} {b:.6f}\nKs 0.1 0.1 0.1\nNs 10\nd 1\nillum 2\n")
    mat = m.material
    r, g, b, a = mat.base_color
    text = (f"# {generator()} material\nnewmtl {safe_filename(mat.name, 'material')}\nKa 0 0 0\n"
            f"Kd {r:.6f} {g:.6f} {b:.6f}\nKs 0 0 0\nNs 1\nd {a:.6f}\nillum 1\n"
            f"Pr {mat.roughness:.4f}\nPm {mat.metallic:.4f}\n")
    return text + (f"map_Kd {texture_name}\n" if texture_name else "")


def write_obj_file(models, path: Path, options: WriteOptions) -> list[Path]:
    """``<stem>.obj`` + ``<stem>.mtl`` (+ ``<stem>.png`` when textured); returns [obj, mtl(, png)]."""
    (m,) = models
    path = Path(path)
    mtl, png = path.with_suffix(".mtl"), path.with_suffix(".png")
    written = [path, mtl]
    if m.has_texture:
        written.append(atomic_write_bytes(png, png_bytes(m.texture)))
    atomic_write_bytes(mtl, mtl_text(m, png.name if m.has_texture else None).encode("utf-8"))
    if str(options.obj_axes).upper().replace("-", "") == "YUP":
        text = obj_text(m, lps_to_yup_mm(m.vertices), mtl.name,
                        f"{generator()} output. AXES=YUP (x = L, y = S, z = A; mm)", options.header)
    else:
        text = obj_text(m, to_space(m.vertices, options.space), mtl.name, tag(options.space), options.header)
    atomic_write_bytes(path, text.encode("utf-8"))
    return written


def ply_bytes(m: SurfaceModel, v: np.ndarray, space: str, binary: bool = True, header: str | None = None) -> bytes:
    rgb = vertex_rgb(m)
    nv, nf = len(v), len(m.faces)
    head = (
        "ply\n" + ("format binary_little_endian 1.0\n" if binary else "format ascii 1.0\n")
        + f"comment {tag(space)}\ncomment SPACE={space}\ncomment structure {safe_filename(m.name)} label {m.label}\n"
        + _comments(header, "comment ")
        + f"element vertex {nv}\nproperty float x\nproperty float y\nproperty float z\n"
        + "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        + f"element face {nf}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii", "replace")
    if binary:
        vr = np.zeros(nv, dtype=[("p", "<f4", (3,)), ("c", "u1", (3,))])
        vr["p"] = v
        vr["c"] = rgb
        fr = np.zeros(nf, dtype=[("n", "u1"), ("i", "<i4", (3,))])
        fr["n"] = 3
        fr["i"] = m.faces
        return head + vr.tobytes() + fr.tobytes()
    vt = fmt_rows("%.5f %.5f %.5f %d %d %d", np.column_stack([v, rgb]))
    ft = fmt_rows("3 %d %d %d", m.faces)
    return head + vt.encode("ascii") + ft.encode("ascii")


def write_ply_file(models, path: Path, options: WriteOptions) -> list[Path]:
    (m,) = models
    data = ply_bytes(m, to_space(m.vertices, options.space), options.space, options.ply_binary, options.header)
    return [atomic_write_bytes(path, data)]


register_format("obj", (".obj",), write=write_obj_file, read=read_with_trimesh, textures=True,
                description="Wavefront OBJ + MTL (+ PNG texture), one file per structure")
register_format("ply", (".ply",), write=write_ply_file, read=read_with_trimesh,
                description="PLY with vertex colours, one file per structure")
