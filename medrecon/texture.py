"""Textured meshes and PBR materials, and their export (GLB, OBJ+MTL+PNG, PLY, STL).

Shared by every capability that produces a textured surface (single photo to 3D, multi-view
reconstruction). Plain types, no rendering:

* :class:`PBRMaterial`: glTF 2.0 metallic-roughness material. Non-metallic by default
  (``metallic=0``), because a metallic surface without an environment map renders almost black
  in three.js and most viewers.
* :class:`TexturedMesh`: vertices in **LPS millimetres** (the project's one geometry
  convention), triangles counter-clockwise seen from outside, per-vertex UVs and an RGB(A)
  texture image.

UV convention: ``uv[:, 0]`` = u to the right, ``uv[:, 1]`` = v **upwards** with ``v = 0`` at the
bottom row of the image (OBJ/MTL convention). glTF puts ``v = 0`` at the top; :func:`write_glb`
flips it on writing, so callers never deal with two conventions. Pixel (row, col) of an
``H x W`` image sits at ``u = (col + 0.5) / W``, ``v = 1 - (row + 0.5) / H``.

Frames: glTF is metres, +Y up, with the asset's front facing +Z. From LPS millimetres:
``(x, y, z)_glTF = (x_LPS, z_LPS, -y_LPS) / 1000`` (:func:`medrecon.orientation.lps_to_gltf_points`),
so superior is up and anterior faces the viewer. A model that has no patient frame (a photo)
uses :func:`view_to_lps`: x to the right of the picture, y up in the picture, z toward the camera
(millimetres) becomes LPS ``(x, -z, y)``; its glTF file then shows the picture's front to a
viewer looking down -Z, as glTF expects.

Provenance: pass the ``asset`` dict from :func:`medrecon.provenance.gltf_asset` to
:func:`write_glb`; it becomes ``asset`` (``generator`` + ``extras``) of the file.
"""
from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medrecon.errors import MeshError
from medrecon.io.atomic import atomic_write_bytes
from medrecon.orientation import gltf_to_lps_points, lps_to_gltf_points

__all__ = [
    "PBRMaterial", "TexturedMesh", "view_to_lps", "lps_to_view", "vertex_normals_unit",
    "sample_texture", "pad_texture", "to_surface_model", "glb_bytes", "write_glb", "write_obj", "write_ply", "write_stl",
    "png_bytes", "jpeg_bytes", "read_glb_json",
]

def view_to_lps(points: np.ndarray) -> np.ndarray:
    """Points in a camera-facing "view" frame (x right, y up, z toward the viewer; mm) as LPS mm.

    The view frame is glTF's axes in millimetres, so this goes through
    :func:`medrecon.orientation.gltf_to_lps_points`: LPS = (x, -z, y). A rotation (determinant
    +1): triangle winding and outward normals are kept.
    """
    return gltf_to_lps_points(np.asarray(points, dtype=np.float64) / 1000.0)


def lps_to_view(points: np.ndarray) -> np.ndarray:
    """Inverse of :func:`view_to_lps` (LPS mm -> view-frame mm)."""
    return lps_to_gltf_points(points) * 1000.0


@dataclass
class PBRMaterial:
    """glTF metallic-roughness material (also written as an MTL).

    Parameters
    ----------
    name : str
    base_color : (r, g, b, a) floats 0..1, multiplied with the texture (white = texture as is)
    metallic : float, 0..1 (default 0: dielectric; metallic surfaces render dark without an environment)
    roughness : float, 0..1
    double_sided : bool
    unlit : bool
        Add ``KHR_materials_unlit`` (flat diagram colours, no shading) to the GLB.
    """

    name: str = "material"
    base_color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    metallic: float = 0.0
    roughness: float = 0.9
    double_sided: bool = False
    unlit: bool = False

    def __post_init__(self) -> None:
        c = [float(x) for x in self.base_color]
        if len(c) == 3:
            c.append(1.0)
        if len(c) != 4 or not all(0.0 <= x <= 1.0 for x in c):
            raise MeshError(f"material {self.name!r}: base_color must be 3 or 4 values in 0..1")
        self.base_color = tuple(c)
        for k in ("metallic", "roughness"):
            x = float(getattr(self, k))
            if not 0.0 <= x <= 1.0:
                raise MeshError(f"material {self.name!r}: {k} must be in 0..1, got {x}")
            setattr(self, k, x)


@dataclass
class TexturedMesh:
    """A triangle mesh with per-vertex UVs and one texture image.

    Parameters
    ----------
    name : str
        Object name (file stems, glTF node). Never a patient identifier.
    vertices : (N, 3) float, LPS millimetres
    faces : (M, 3) int, counter-clockwise seen from outside
    uv : (N, 2) float or None
        Texture coordinates, ``v`` upwards (module docstring). None: untextured.
    texture : (H, W, 3 or 4) uint8 or None
        Texture image, row 0 = top.
    material : PBRMaterial
    extras : dict
        JSON-able facts stored with the object (glTF node ``extras``).
    colors : (N, 3 or 4) uint8 or None
        Per-vertex sRGB colours (e.g. a coloured scan without UVs); written as glTF ``COLOR_0``
        and PLY colours, multiplied with the texture by glTF viewers when both exist.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    material: PBRMaterial = field(default_factory=PBRMaterial)
    extras: dict[str, Any] = field(default_factory=dict)
    colors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)
        if self.uv is not None:
            self.uv = np.ascontiguousarray(self.uv, dtype=np.float64).reshape(-1, 2)
            if len(self.uv) != len(self.vertices):
                raise MeshError(f"mesh {self.name!r}: {len(self.uv)} UVs for {len(self.vertices)} vertices")
        if self.texture is not None:
            t = np.asarray(self.texture)
            if t.dtype != np.uint8:
                if np.issubdtype(t.dtype, np.floating):
                    t = np.clip(np.round(t * 255.0), 0, 255)
                t = t.astype(np.uint8)
            if t.ndim == 2:
                t = np.repeat(t[..., None], 3, axis=2)
            if t.ndim != 3 or t.shape[2] not in (3, 4):
                raise MeshError(f"mesh {self.name!r}: texture must be (H, W, 3|4), got {t.shape}")
            self.texture = np.ascontiguousarray(t)
        if self.colors is not None:
            c = np.asarray(self.colors)
            if np.issubdtype(c.dtype, np.floating):
                c = np.clip(np.round(c * 255.0), 0, 255)
            c = np.ascontiguousarray(c.astype(np.uint8))
            if c.ndim != 2 or c.shape[1] not in (3, 4) or len(c) != len(self.vertices):
                raise MeshError(f"mesh {self.name!r}: colors must be (N, 3|4) for {len(self.vertices)} vertices")
            self.colors = c
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= len(self.vertices)):
            raise MeshError(f"mesh {self.name!r}: face index out of range")

    @property
    def n_triangles(self) -> int:
        return int(len(self.faces))

    @property
    def has_texture(self) -> bool:
        return self.uv is not None and self.texture is not None

    def bounds(self) -> np.ndarray:
        """(2, 3) min and max corner, LPS mm."""
        return np.stack([self.vertices.min(0), self.vertices.max(0)])


# --------------------------------------------------------------------------- helpers
def vertex_normals_unit(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals; a vertex with no area gets the mean normal (or +z)."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for c in range(3):
        np.add.at(vn, f[:, c], fn)
    ln = np.linalg.norm(vn, axis=1)
    bad = ln < 1e-20
    if bad.any():
        mean = fn.sum(0)
        mean = mean / np.linalg.norm(mean) if np.linalg.norm(mean) > 0 else np.array([0.0, 0.0, 1.0])
        vn[bad] = mean
        ln[bad] = 1.0
    return vn / ln[:, None]


def sample_texture(mesh: TexturedMesh) -> np.ndarray:
    """(N, 3) uint8 colour of each vertex, bilinear from the texture at its UV (or the base colour)."""
    n = len(mesh.vertices)
    if not mesh.has_texture and mesh.colors is not None:
        return np.ascontiguousarray(mesh.colors[:, :3])
    if not mesh.has_texture:
        return np.tile(np.round(np.asarray(mesh.material.base_color[:3]) * 255).astype(np.uint8), (n, 1))
    tex = mesh.texture[..., :3].astype(np.float32)
    h, w = tex.shape[:2]
    x = np.clip(mesh.uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - mesh.uv[:, 1]) * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    c = (tex[y0, x0] * (1 - fx) * (1 - fy) + tex[y0, x1] * fx * (1 - fy)
         + tex[y1, x0] * (1 - fx) * fy + tex[y1, x1] * fx * fy)
    c = c * np.asarray(mesh.material.base_color[:3], np.float32)
    return np.clip(np.round(c), 0, 255).astype(np.uint8)


def pad_texture(image: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Texture with every unused pixel set to the colour of the nearest used one.

    Bilinear sampling and mipmaps near the edge of a UV island otherwise mix in the unused
    colour (a halo of background along the outline). ``used`` is (H, W) bool at the image's size.
    """
    import cv2

    img = np.asarray(image)
    used = np.asarray(used, bool)
    if used.shape != img.shape[:2]:
        raise MeshError(f"pad_texture: mask {used.shape} does not match the image {img.shape[:2]}")
    if used.all() or not used.any():
        return img.copy()
    # label of the nearest used pixel; OpenCV numbers the used (zero) pixels in raster order
    _, lab = cv2.distanceTransformWithLabels((~used).astype(np.uint8), cv2.DIST_L2, 5,
                                             labelType=cv2.DIST_LABEL_PIXEL)
    rr, cc = np.nonzero(used)
    idx = lab - 1
    return img[rr[idx], cc[idx]]


def to_surface_model(mesh: TexturedMesh, color: Sequence[float] | None = None):
    """The mesh as a plain :class:`SurfaceModel` (LPS mm) for QA, previews and STL; colour = mean texture colour."""
    from medrecon.mesh import SurfaceModel
    if color is None:
        color = sample_texture(mesh).reshape(-1, 3).mean(0) / 255.0 if len(mesh.vertices) else (0.8, 0.8, 0.8)
    return SurfaceModel(mesh.name, mesh.vertices, mesh.faces, tuple(float(c) for c in color))


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of an (H, W[, 3|4]) uint8 or uint16 array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


def jpeg_bytes(image: np.ndarray, quality: int = 92) -> bytes:
    """JPEG encoding of an (H, W, 3) uint8 array (alpha dropped)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.asarray(image)[..., :3])).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def _check(mesh: TexturedMesh) -> None:
    if mesh.n_triangles == 0 or len(mesh.vertices) == 0:
        raise MeshError(f"mesh {mesh.name!r} has no triangles; nothing to write")
    if not np.all(np.isfinite(mesh.vertices)):
        raise MeshError(f"mesh {mesh.name!r} has non-finite vertices")


# --------------------------------------------------------------------------- GLB
def glb_bytes(meshes: Sequence[TexturedMesh], asset: dict | None = None, image_format: str = "png") -> bytes:
    """One binary glTF 2.0 file holding every mesh (one node each), textures embedded as PNG.

    Parameters
    ----------
    meshes : sequence of TexturedMesh (LPS mm)
    asset : dict, optional
        glTF ``asset`` object, e.g. from :func:`medrecon.provenance.gltf_asset`; ``version`` is
        forced to ``"2.0"`` and a ``generator`` added when missing.
    image_format : "png" or "jpeg"
        Encoding of embedded textures. JPEG (quality 92) makes photo textures several times
        smaller; textures with alpha always stay PNG.
    """
    meshes = list(meshes)
    if not meshes:
        raise MeshError("no meshes to write")
    bin_parts: list[bytes] = []
    offset = 0
    views: list[dict] = []
    accessors: list[dict] = []
    gmeshes, nodes, materials, textures, images, samplers = [], [], [], [], [], []
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

    def add_accessor(arr: np.ndarray, ctype: int, typ: str, target: int | None, minmax: bool = False) -> int:
        acc = {"bufferView": add_view(arr.tobytes(), target), "componentType": ctype,
               "count": int(arr.shape[0]), "type": typ}
        if minmax:
            acc["min"] = arr.min(0).astype(float).tolist()
            acc["max"] = arr.max(0).astype(float).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    for m in meshes:
        _check(m)
        v = lps_to_gltf_points(m.vertices).astype(np.float32)
        nrm = vertex_normals_unit(v.astype(np.float64), m.faces).astype(np.float32)
        attrs = {"POSITION": add_accessor(v, 5126, "VEC3", 34962, minmax=True),
                 "NORMAL": add_accessor(nrm, 5126, "VEC3", 34962)}
        mat = m.material
        pbr: dict[str, Any] = {"baseColorFactor": list(mat.base_color), "metallicFactor": mat.metallic,
                               "roughnessFactor": mat.roughness}
        if m.colors is not None:  # normalised unsigned bytes, sRGB -> linear as glTF requires
            lin = _srgb_to_linear(m.colors[:, :3].astype(np.float64) / 255.0)
            rgba = np.column_stack([lin, m.colors[:, 3] / 255.0 if m.colors.shape[1] == 4 else np.ones(len(lin))])
            attrs["COLOR_0"] = add_accessor(np.ascontiguousarray(np.round(rgba * 255).astype(np.uint8)), 5121,
                                            "VEC4", 34962)
            accessors[-1]["normalized"] = True
        if m.has_texture:
            uv = np.column_stack([m.uv[:, 0], 1.0 - m.uv[:, 1]]).astype(np.float32)  # glTF: v down
            attrs["TEXCOORD_0"] = add_accessor(uv, 5126, "VEC2", 34962)
            jpeg = image_format == "jpeg" and m.texture.shape[2] == 3
            img_view = add_view(jpeg_bytes(m.texture) if jpeg else png_bytes(m.texture), None)
            images.append({"bufferView": img_view, "mimeType": "image/jpeg" if jpeg else "image/png",
                           "name": safe_filename(m.name)})
            if not samplers:
                samplers.append({"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071})
            textures.append({"sampler": 0, "source": len(images) - 1})
            pbr["baseColorTexture"] = {"index": len(textures) - 1, "texCoord": 0}
        gmat: dict[str, Any] = {"name": mat.name, "pbrMetallicRoughness": pbr, "doubleSided": bool(mat.double_sided)}
        if m.texture is not None and m.texture.shape[2] == 4 and m.has_texture:
            gmat["alphaMode"] = "MASK"
            gmat["alphaCutoff"] = 0.5
        if mat.unlit:
            gmat["extensions"] = {"KHR_materials_unlit": {}}
            ext_used.add("KHR_materials_unlit")
        materials.append(gmat)
        idx = np.ascontiguousarray(m.faces, dtype=np.uint32).reshape(-1, 1)
        a_idx = add_accessor(idx, 5125, "SCALAR", 34963)
        gmeshes.append({"name": m.name, "primitives": [{"attributes": attrs, "indices": a_idx,
                                                        "material": len(materials) - 1, "mode": 4}]})
        node = {"name": m.name, "mesh": len(gmeshes) - 1}
        if m.extras:
            node["extras"] = json.loads(json.dumps(m.extras, default=_json_default))
        nodes.append(node)

    binary = b"".join(bin_parts)
    binary += b"\0" * ((-len(binary)) % 4)
    asset_obj = json.loads(json.dumps(dict(asset or {}), default=_json_default))
    asset_obj["version"] = "2.0"
    asset_obj.setdefault("generator", f"medrecon {_version()}")
    extras = asset_obj.setdefault("extras", {})
    if isinstance(extras, dict):
        extras.setdefault("frame", "glTF: metres, +Y up; (x, y, z) = (x_LPS, z_LPS, -y_LPS) / 1000")
    doc: dict[str, Any] = {
        "asset": asset_obj, "scene": 0,
        "scenes": [{"name": "medrecon", "nodes": list(range(len(nodes)))}],
        "nodes": nodes, "meshes": gmeshes, "materials": materials, "accessors": accessors,
        "bufferViews": views, "buffers": [{"byteLength": len(binary)}],
    }
    if images:
        doc.update(images=images, textures=textures, samplers=samplers)
    if ext_used:
        doc["extensionsUsed"] = sorted(ext_used)
    js = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    js += b" " * ((-len(js)) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(js), b"JSON") + js
            + struct.pack("<I4s", len(binary), b"BIN\0") + binary)


def write_glb(meshes: TexturedMesh | Sequence[TexturedMesh], path: str | Path, asset: dict | None = None,
              image_format: str = "png") -> Path:
    """Write a binary glTF (atomically); see :func:`glb_bytes`. Returns the path."""
    if isinstance(meshes, TexturedMesh):
        meshes = [meshes]
    path = Path(path)
    if image_format not in ("png", "jpeg"):
        raise MeshError(f"image_format must be png or jpeg, got {image_format!r}")
    return _guarded(path, lambda: atomic_write_bytes(path, glb_bytes(meshes, asset, image_format)))


def read_glb_json(path_or_bytes: str | Path | bytes) -> dict:
    """The JSON chunk of a GLB file (for checks and tests)."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2:
        raise MeshError("not a glTF 2.0 binary file")
    n, kind = struct.unpack_from("<I4s", data, 12)
    return json.loads(data[20:20 + n].decode("utf-8"))


# --------------------------------------------------------------------------- OBJ / PLY / STL
def _fmt_rows(fmt: str, arr: np.ndarray) -> str:
    if len(arr) == 0:
        return ""
    return "\n".join(fmt % tuple(r) for r in arr.tolist()) + "\n"


def write_obj(mesh: TexturedMesh, path: str | Path, header: str | None = None) -> list[Path]:
    """Write ``NAME.obj`` + ``NAME.mtl`` (+ ``NAME.png`` texture) next to each other, atomically.

    Vertices are written in LPS mm (``# SPACE=LPS`` comment, as 3D Slicer reads it). The MTL uses
    ``Kd 1 1 1`` times the base colour (many viewers multiply ``map_Kd`` by ``Kd``), ``Ks 0``, and
    the PBR extension lines ``Pr`` (roughness) and ``Pm`` (metallic).

    Returns
    -------
    list of written paths (obj, mtl[, png]).
    """
    _check(mesh)
    path = Path(path)
    stem = path.stem
    mtl_path = path.with_suffix(".mtl")
    png_path = path.with_suffix(".png")
    mat = mesh.material
    mname = safe_filename(mat.name, "material")
    r, g, b, a = mat.base_color
    mtl = (f"# medrecon {_version()} material\nnewmtl {mname}\nKa 0 0 0\nKd {r:.6f} {g:.6f} {b:.6f}\n"
           f"Ks 0 0 0\nNs 1\nd {a:.6f}\nillum 1\nPr {mat.roughness:.4f}\nPm {mat.metallic:.4f}\n")
    written = []
    if mesh.has_texture:
        mtl += f"map_Kd {png_path.name}\n"
        written.append(_guarded(png_path, lambda: atomic_write_bytes(png_path, png_bytes(mesh.texture))))
    written.insert(0, _guarded(mtl_path, lambda: atomic_write_bytes(mtl_path, mtl.encode("utf-8"))))
    head = f"# medrecon {_version()} output. SPACE=LPS; units: mm\n"
    if header:
        head += "".join(f"# {line}\n" for line in str(header).splitlines())
    head += f"mtllib {mtl_path.name}\no {safe_filename(mesh.name)}\nusemtl {mname}\n"
    f1 = mesh.faces + 1
    if mesh.has_texture:
        body = (_fmt_rows("v %.5f %.5f %.5f", mesh.vertices) + _fmt_rows("vt %.6f %.6f", mesh.uv)
                + _fmt_rows("f %d/%d %d/%d %d/%d", np.repeat(f1, 2, axis=1)))
    else:
        body = _fmt_rows("v %.5f %.5f %.5f", mesh.vertices) + _fmt_rows("f %d %d %d", f1)
    written.insert(0, _guarded(path, lambda: atomic_write_bytes(path, (head + body).encode("utf-8"))))
    return written


def write_ply(mesh: TexturedMesh, path: str | Path) -> Path:
    """Binary little-endian PLY in LPS mm with per-vertex colours sampled from the texture."""
    _check(mesh)
    path = Path(path)
    v = mesh.vertices.astype("<f4")
    rgb = sample_texture(mesh)
    vert = np.zeros(len(v), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                   ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vert["x"], vert["y"], vert["z"] = v[:, 0], v[:, 1], v[:, 2]
    vert["red"], vert["green"], vert["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    faces = np.zeros(len(mesh.faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    faces["n"] = 3
    faces["i"] = mesh.faces
    header = (f"ply\nformat binary_little_endian 1.0\ncomment medrecon {_version()} output. SPACE=LPS\n"
              f"comment units: mm\nelement vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\n"
              f"element face {len(mesh.faces)}\nproperty list uchar int vertex_indices\nend_header\n")
    data = header.encode("ascii") + vert.tobytes() + faces.tobytes()
    return _guarded(path, lambda: atomic_write_bytes(path, data))


def write_stl(mesh: TexturedMesh, path: str | Path) -> Path:
    """Binary STL in LPS mm (geometry only; header ``SPACE=LPS`` as 3D Slicer reads it)."""
    _check(mesh)
    path = Path(path)
    v, f = mesh.vertices, mesh.faces
    header = f"medrecon {_version()} output. SPACE=LPS".encode("ascii")[:80].ljust(80, b" ")
    rec = np.zeros(len(f), dtype=[("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    tri = v.astype(np.float32)[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    ln = np.linalg.norm(n, axis=1, keepdims=True)
    ln[ln == 0] = 1.0
    rec["n"] = n / ln
    rec["v"] = tri
    data = header + struct.pack("<I", len(f)) + rec.tobytes()
    return _guarded(path, lambda: atomic_write_bytes(path, data))


# --------------------------------------------------------------------------- internals
def safe_filename(name: str, fallback: str = "model") -> str:
    """A portable name: ASCII letters, digits, ``.``, ``_`` and ``-`` only, at most 100 characters."""
    import re
    import unicodedata

    s = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._-")[:100]
    return s or fallback


def _guarded(path: Path, fn) -> Path:
    try:
        out = fn()
    except MeshError:
        raise
    except OSError as exc:
        raise MeshError(f"cannot write ({exc.strerror or exc})", path=path) from exc
    return Path(out) if out is not None else path


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    return str(x)


def _version() -> str:
    try:
        from medrecon.version import __version__

        return str(__version__)
    except Exception:  # pragma: no cover
        return "unknown"
