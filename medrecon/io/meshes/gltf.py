"""glTF 2.0 binary (``.glb``): one scene file, one named, coloured node per structure; read back
(``.glb``/``.gltf``) through trimesh.

Axes: glTF is metres, +Y up, the asset's front faces +Z; the conversion from LPS mm is
:func:`medrecon.orientation.lps_to_gltf_points` (superior up, anterior towards the viewer).
``asset.extras`` holds ``source_space``, the conversion, and the provenance record.

Colours: models carry sRGB colours (as 3MF, Slicer and the viewer use them); glTF's
``baseColorFactor`` is linear, so it is written as ``srgb_to_linear(color)`` and read back inverted.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medrecon.io.meshes.common import trimesh_color
from medrecon.labelmap import color_for
from medrecon.mesh import SurfaceModel, vertex_normals
from medrecon.orientation import gltf_to_lps_points, lps_to_gltf_points
from medrecon.version import generator

__all__ = ["glb_bytes", "read_gltf", "srgb_to_linear", "linear_to_srgb"]


def srgb_to_linear(c) -> list[float]:
    """sRGB-encoded colour components (0..1, as in 3MF, Slicer, CSS) -> linear light (glTF's
    ``baseColorFactor`` is linear: the viewer applies the sRGB curve when it displays)."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).tolist()


def linear_to_srgb(c) -> list[float]:
    """Inverse of :func:`srgb_to_linear`."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055).tolist()


def glb_bytes(models: Sequence[SurfaceModel], provenance: dict | None, space: str) -> bytes:
    bin_parts: list[bytes] = []
    offset = 0
    views, accessors, meshes, nodes, materials = [], [], [], [], []

    def add_view(data: bytes, target: int) -> int:
        nonlocal offset
        pad = (-offset) % 4
        if pad:
            bin_parts.append(b"\0" * pad)
            offset += pad
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data), "target": target})
        bin_parts.append(data)
        offset += len(data)
        return len(views) - 1

    for m in models:
        v = lps_to_gltf_points(m.vertices).astype(np.float32)
        n = vertex_normals(v.astype(np.float64), m.faces).astype(np.float32)
        idx = np.ascontiguousarray(m.faces, dtype=np.uint32).ravel()
        pv = add_view(v.tobytes(), 34962)
        accessors.append({"bufferView": pv, "componentType": 5126, "count": int(len(v)), "type": "VEC3",
                          "min": v.min(0).tolist() if len(v) else [0, 0, 0],
                          "max": v.max(0).tolist() if len(v) else [0, 0, 0]})
        a_pos = len(accessors) - 1
        nvw = add_view(n.tobytes(), 34962)
        accessors.append({"bufferView": nvw, "componentType": 5126, "count": int(len(n)), "type": "VEC3"})
        a_nrm = len(accessors) - 1
        iv = add_view(idx.tobytes(), 34963)
        accessors.append({"bufferView": iv, "componentType": 5125, "count": int(idx.size), "type": "SCALAR"})
        a_idx = len(accessors) - 1
        materials.append({"name": m.name, "doubleSided": False,
                          "pbrMetallicRoughness": {"baseColorFactor": [*srgb_to_linear(m.color), 1.0],
                                                   "metallicFactor": 0.0, "roughnessFactor": 0.6}})
        meshes.append({"name": m.name, "primitives": [{"attributes": {"POSITION": a_pos, "NORMAL": a_nrm},
                                                       "indices": a_idx, "material": len(materials) - 1,
                                                       "mode": 4}]})
        nodes.append({"name": m.name, "mesh": len(meshes) - 1, "extras": {"label": int(m.label)}})
    binary = b"".join(bin_parts)
    binary += b"\0" * ((-len(binary)) % 4)
    extras: dict[str, Any] = {
        "source_space": "LPS",
        "requested_space": space,
        "conversion": "glTF (x, y, z) = (x_LPS, z_LPS, -y_LPS) / 1000: metres, +Y superior, +Z anterior",
    }
    if provenance:
        extras["provenance"] = provenance
    doc = {
        "asset": {"version": "2.0", "generator": generator(), "extras": extras},
        "scene": 0,
        "scenes": [{"name": "medrecon", "nodes": list(range(len(nodes)))}],
        "nodes": nodes, "meshes": meshes, "materials": materials, "accessors": accessors,
        "bufferViews": views, "buffers": [{"byteLength": len(binary)}],
    }
    js = json.dumps(doc, separators=(",", ":"), default=str).encode("utf-8")
    js += b" " * ((-len(js)) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(js), b"JSON") + js
            + struct.pack("<I4s", len(binary), b"BIN\0") + binary)


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
