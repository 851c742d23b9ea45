"""glTF 2.0 binary (``.glb``): one scene file, one named node per structure, PBR materials,
textures embedded; read back (``.glb``/``.gltf``) through trimesh.

Axes: glTF is metres, +Y up, the asset's front faces +Z; the conversion from LPS mm is
:func:`medrecon.orientation.lps_to_gltf_points` (superior up, anterior towards the viewer).
``asset.extras`` holds ``source_space``, the conversion, and the provenance record
(``provenance``).

Materials: a plain model (no :class:`~medrecon.mesh.PBRMaterial`) gets a non-metallic material of
its colour. Models carry sRGB colours (as 3MF, Slicer and the viewer use them); glTF's
``baseColorFactor`` and ``COLOR_0`` are linear, so they are written through
:func:`~medrecon.io.meshes.common.srgb_to_linear` and read back inverted. A model with a
material writes its ``base_color`` as given (a factor multiplied with the texture), its texture
as PNG (or JPEG, ``image_format``; textures with alpha stay PNG, ``alphaMode MASK``), UVs with
``v`` flipped to glTF's top-left origin, and ``KHR_materials_unlit`` when asked.

References
----------
Khronos Group, "glTF 2.0 Specification" (registry.khronos.org/glTF/specs/2.0/glTF-2.0.html),
sections 3.9 (metallic-roughness materials), 3.7.2 (mesh attributes, ``COLOR_0``), 4.4 (GLB);
IEC 61966-2-1 (the sRGB transfer function used for colours). Checked in the tests with the
Khronos glTF validator.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medrecon.io.atomic import atomic_write_bytes
from medrecon.io.images import jpeg_bytes, png_bytes
from medrecon.io.meshes.common import linear_to_srgb, safe_filename, srgb_to_linear, trimesh_color
from medrecon.io.meshes.registry import WriteOptions, register_format
from medrecon.labelmap import color_for
from medrecon.mesh import SurfaceModel, vertex_normals_unit
from medrecon.orientation import gltf_to_lps_points, lps_to_gltf_points
from medrecon.version import generator

__all__ = ["glb_bytes", "read_gltf", "read_glb_json", "srgb_to_linear", "linear_to_srgb", "write_glb_file"]


def _json_default(x: Any) -> Any:
    """numpy values as Python numbers/lists; anything else as text (records come JSON-able from
    :func:`medrecon.provenance.provenance_record`)."""
    return x.tolist() if hasattr(x, "tolist") else str(x)


def glb_bytes(models: Sequence[SurfaceModel], provenance: dict | None = None, space: str = "LPS",
              image_format: str = "png") -> bytes:
    """One binary glTF 2.0 file holding every model (one node each)."""
    bin_parts: list[bytes] = []
    offset = 0
    views, accessors, meshes, nodes, materials, textures, images, samplers = [], [], [], [], [], [], [], []
    ext_used: set[str] = set()

    def add_view(data: bytes, target: int | None) -> int:
        nonlocal offset
        pad = (-offset) % 4
        if pad:
            bin_parts.append(b"\0" * pad)
            offset += pad
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        views.append(view)
        bin_parts.append(data)
        offset += len(data)
        return len(views) - 1

    def add_accessor(arr: np.ndarray, ctype: int, typ: str, target: int | None, minmax: bool = False,
                     **more: Any) -> int:
        acc = {"bufferView": add_view(np.ascontiguousarray(arr).tobytes(), target), "componentType": ctype,
               "count": int(arr.shape[0]), "type": typ, **more}
        if minmax:
            acc["min"] = arr.min(0).astype(float).tolist()
            acc["max"] = arr.max(0).astype(float).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    for m in models:
        v = lps_to_gltf_points(m.vertices).astype(np.float32)
        nrm = vertex_normals_unit(v.astype(np.float64), m.faces).astype(np.float32)
        attrs = {"POSITION": add_accessor(v, 5126, "VEC3", 34962, minmax=True),
                 "NORMAL": add_accessor(nrm, 5126, "VEC3", 34962)}
        mat = m.material
        if mat is None:  # a plain coloured model
            gmat: dict[str, Any] = {"name": m.name, "doubleSided": False, "pbrMetallicRoughness": {
                "baseColorFactor": [*srgb_to_linear(m.color), 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.6}}
        else:
            gmat = {"name": mat.name, "doubleSided": bool(mat.double_sided), "pbrMetallicRoughness": {
                "baseColorFactor": list(mat.base_color), "metallicFactor": mat.metallic,
                "roughnessFactor": mat.roughness}}
            if mat.unlit:
                gmat["extensions"] = {"KHR_materials_unlit": {}}
                ext_used.add("KHR_materials_unlit")
        if m.vertex_colors is not None:  # normalised unsigned bytes, linear as glTF requires
            c = m.vertex_colors
            lin = np.asarray(srgb_to_linear(c[:, :3] / 255.0))
            rgba = np.column_stack([lin, c[:, 3] / 255.0 if c.shape[1] == 4 else np.ones(len(lin))])
            attrs["COLOR_0"] = add_accessor(np.round(rgba * 255).astype(np.uint8), 5121, "VEC4", 34962,
                                            normalized=True)
        if m.has_texture:
            uv = np.column_stack([m.uv[:, 0], 1.0 - m.uv[:, 1]]).astype(np.float32)  # glTF: v down
            attrs["TEXCOORD_0"] = add_accessor(uv, 5126, "VEC2", 34962)
            jpeg = image_format == "jpeg" and m.texture.shape[2] == 3
            img_view = add_view(jpeg_bytes(m.texture) if jpeg else png_bytes(m.texture), None)
            images.append({"bufferView": img_view, "mimeType": "image/jpeg" if jpeg else "image/png",
                           "name": safe_filename(m.name, "texture")})
            if not samplers:
                samplers.append({"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071})
            textures.append({"sampler": 0, "source": len(images) - 1})
            gmat["pbrMetallicRoughness"]["baseColorTexture"] = {"index": len(textures) - 1, "texCoord": 0}
            if m.texture.shape[2] == 4:
                gmat["alphaMode"] = "MASK"
                gmat["alphaCutoff"] = 0.5
        materials.append(gmat)
        a_idx = add_accessor(np.ascontiguousarray(m.faces, dtype=np.uint32).ravel(), 5125, "SCALAR", 34963)
        meshes.append({"name": m.name, "primitives": [{"attributes": attrs, "indices": a_idx,
                                                       "material": len(materials) - 1, "mode": 4}]})
        nodes.append({"name": m.name, "mesh": len(meshes) - 1,
                      "extras": {"label": int(m.label), **m.extras}})
    binary = b"".join(bin_parts)
    binary += b"\0" * ((-len(binary)) % 4)
    extras: dict[str, Any] = {
        "source_space": "LPS",
        "requested_space": space,
        "conversion": "glTF (x, y, z) = (x_LPS, z_LPS, -y_LPS) / 1000: metres, +Y superior, +Z anterior",
    }
    if provenance:
        extras["provenance"] = provenance
    doc: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": generator(), "extras": extras},
        "scene": 0,
        "scenes": [{"name": "medrecon", "nodes": list(range(len(nodes)))}],
        "nodes": nodes, "meshes": meshes, "materials": materials, "accessors": accessors,
        "bufferViews": views, "buffers": [{"byteLength": len(binary)}],
    }
    if images:
        doc.update(images=images, textures=textures, samplers=samplers)
    if ext_used:
        doc["extensionsUsed"] = sorted(ext_used)
    js = json.dumps(doc, separators=(",", ":"), default=_json_default).encode("utf-8")
    js += b" " * ((-len(js)) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(js), b"JSON") + js
            + struct.pack("<I4s", len(binary), b"BIN\0") + binary)


def write_glb_file(models, path: Path, options: WriteOptions) -> list[Path]:
    from medrecon.errors import MeshError

    if options.image_format not in ("png", "jpeg"):
        raise MeshError(f"image_format must be png or jpeg, got {options.image_format!r}")
    return [atomic_write_bytes(path, glb_bytes(list(models), options.provenance, options.space, options.image_format))]


def read_glb_json(path_or_bytes: str | Path | bytes) -> dict:
    """The JSON chunk of a GLB file (for checks and tests)."""
    from medrecon.errors import MeshError

    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2:
        raise MeshError("not a glTF 2.0 binary file")
    n, _kind = struct.unpack_from("<I4s", data, 12)
    return json.loads(data[20:20 + n].decode("utf-8"))


def read_gltf(path: Path) -> list[SurfaceModel]:
    import trimesh

    scene = trimesh.load(str(path), force="scene")
    out = []
    for node in scene.graph.nodes_geometry:
        transform, gname = scene.graph[node]
        g = scene.geometry[gname]
        if not hasattr(g, "faces") or len(g.faces) == 0:
            continue
        v = trimesh.transform_points(np.asarray(g.vertices, float), transform)
        v_lps = gltf_to_lps_points(v)
        col = trimesh_color(g)
        if col is not None and getattr(getattr(g.visual, "material", None), "baseColorFactor", None) is not None:
            col = tuple(linear_to_srgb(col))  # glTF stores linear light; models carry sRGB
        out.append(SurfaceModel(str(node if node != gname else gname), v_lps, np.asarray(g.faces),
                                col or color_for(len(out))))
    return out


register_format("glb", (".glb", ".gltf"), write=write_glb_file, read=read_gltf, per_structure=False, textures=True,
                description="binary glTF 2.0: one scene, PBR materials, textures (web, AR, game engines)")
