"""The mesh type passed between stages: :class:`SurfaceModel` (ground floor), and its material.

Vertices are in **LPS millimetres** (patient space) unless a writer is told otherwise;
faces are triangles indexing the vertex array, counter-clockwise seen from outside
(normals point out of the structure).

A model may carry its appearance, which every writer of :mod:`medrecon.io.meshes` uses as far
as its format can: one display ``color`` (sRGB 0..1; STL header, 3MF, OBJ/MTL, VTP), per-vertex
``vertex_colors`` (PLY, glTF ``COLOR_0``), texture coordinates ``uv`` with a ``texture`` image
(GLB, OBJ+MTL+PNG, USDZ; PLY gets the texture sampled per vertex) and a :class:`PBRMaterial`
(glTF metallic-roughness, MTL ``Pr``/``Pm``, USD preview surface).

UV convention: ``uv[:, 0]`` = u to the right, ``uv[:, 1]`` = v **upwards** with ``v = 0`` at the
bottom row of the image (OBJ/MTL convention; the GLB writer flips it for glTF). Pixel
(row, col) of an ``H x W`` image sits at ``u = (col + 0.5) / W``, ``v = 1 - (row + 0.5) / H``.

Examples
--------
>>> import numpy as np
>>> tet = SurfaceModel("tet", [[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]],
...                    [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], color=(1, 0, 0))
>>> tet.n_triangles, tet.has_texture, tet.bounds()[1].tolist()
(4, False, [10.0, 10.0, 10.0])
>>> textured = SurfaceModel("t", tet.vertices, tet.faces, uv=np.zeros((4, 2)),
...                         texture=np.zeros((2, 2, 3), np.uint8), material=PBRMaterial(roughness=0.5))
>>> textured.has_texture, vertex_rgb(textured).shape
(True, (4, 3))

References
----------
Vertex normals weighted by the adjacent triangles' areas (the unnormalised cross products):
N. Max, "Weights for computing vertex normals from facet normals", J. Graphics Tools 4(2), 1999.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medrecon.errors import MeshError

__all__ = ["SurfaceModel", "PBRMaterial", "vertex_normals", "vertex_normals_unit", "face_normals", "vertex_rgb",
           "signed_volume"]


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit face normals, (M, 3); (0, 0, 0) for a degenerate triangle."""
    n = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    ln = np.linalg.norm(n, axis=1, keepdims=True)
    ln[ln == 0] = 1.0
    return n / ln


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume of a closed triangle surface (divergence theorem, float64, about the
    centroid); positive when the faces are counter-clockwise seen from outside. The one signed
    volume of the house: winding decisions, QA and the photo/multiview checks use it."""
    faces = np.asarray(faces)
    if len(faces) == 0:
        return 0.0
    v = np.asarray(vertices, np.float64)
    v = v - v.mean(0)
    a = v[faces[:, 0]]
    cr = np.cross(v[faces[:, 1]] - a, v[faces[:, 2]] - a)
    return float(np.einsum("ij,ij->i", a, cr).sum() / 6.0)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, *, fill_mean: bool = False) -> np.ndarray:
    """Area-weighted unit vertex normals, (N, 3); outward for faces counter-clockwise seen from
    outside. A vertex with no area around it gets (0, 0, 0), or with ``fill_mean`` the mesh's mean
    normal (+z if that is zero), so every normal is a unit vector (as glTF requires)."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for c in range(3):
        np.add.at(vn, f[:, c], fn)
    norm = np.linalg.norm(vn, axis=1)
    bad = norm < 1e-20
    if fill_mean and bad.any():
        mean = fn.sum(0)
        vn[bad] = mean / np.linalg.norm(mean) if np.linalg.norm(mean) > 0 else np.array([0.0, 0.0, 1.0])
        norm[bad] = 1.0
    norm[norm == 0] = 1.0
    return vn / norm[:, None]


def vertex_normals_unit(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """:func:`vertex_normals` with ``fill_mean=True`` (every normal a unit vector)."""
    return vertex_normals(vertices, faces, fill_mean=True)


@dataclass
class PBRMaterial:
    """glTF metallic-roughness material (also written as MTL and a USD preview surface).

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


def _uint8(a: Any) -> np.ndarray:
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.floating):
        a = np.clip(np.round(a * 255.0), 0, 255)
    return np.ascontiguousarray(a.astype(np.uint8))


@dataclass
class SurfaceModel:
    """One named structure's triangle mesh, with optional appearance.

    Parameters
    ----------
    name : str
        Structure name (used in file names, scene and viewer). Never a patient identifier.
    vertices : (N, 3) float array, LPS mm
    faces : (M, 3) int array, counter-clockwise seen from outside
    color : (r, g, b) floats in 0..1 (sRGB display colour)
    label : int, label value in the label map this mesh came from (0 if none)
    qa : dict, per-structure QA figures (filled by :mod:`medrecon.surface.qa`)
    uv : (N, 2) float or None, texture coordinates (``v`` upwards, see the module docstring)
    texture : (H, W, 3 or 4) uint8 or None, row 0 = top (floats 0..1 are scaled)
    material : PBRMaterial or None (None: a plain coloured model)
    vertex_colors : (N, 3 or 4) uint8 or None, per-vertex sRGB colours
    extras : dict, JSON-able facts stored with the object (glTF node ``extras``)
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    color: tuple[float, float, float] = (0.9, 0.85, 0.75)
    label: int = 0
    qa: dict[str, Any] = field(default_factory=dict)
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    material: PBRMaterial | None = None
    vertex_colors: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)
        self.color = tuple(float(c) for c in self.color[:3])
        n = len(self.vertices)
        if self.uv is not None:
            self.uv = np.ascontiguousarray(self.uv, dtype=np.float64).reshape(-1, 2)
            if len(self.uv) != n:
                raise MeshError(f"mesh {self.name!r}: {len(self.uv)} UVs for {n} vertices")
        if self.texture is not None:
            t = _uint8(self.texture)
            if t.ndim == 2:
                t = np.repeat(t[..., None], 3, axis=2)
            if t.ndim != 3 or t.shape[2] not in (3, 4):
                raise MeshError(f"mesh {self.name!r}: texture must be (H, W, 3|4), got {t.shape}")
            self.texture = t
        if self.vertex_colors is not None:
            c = _uint8(self.vertex_colors)
            if c.ndim != 2 or c.shape[1] not in (3, 4) or len(c) != n:
                raise MeshError(f"mesh {self.name!r}: vertex_colors must be (N, 3|4) for {n} vertices")
            self.vertex_colors = c
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= n):
            raise MeshError(f"mesh {self.name!r}: face index out of range")

    @property
    def n_triangles(self) -> int:
        return int(self.faces.shape[0])

    @property
    def has_texture(self) -> bool:
        return self.uv is not None and self.texture is not None

    def to_trimesh(self):
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=False)

    def bounds(self) -> np.ndarray:
        """(2, 3) min and max corner in LPS mm."""
        return np.stack([self.vertices.min(0), self.vertices.max(0)])


def vertex_rgb(m: SurfaceModel) -> np.ndarray:
    """(N, 3) uint8 colour of each vertex: bilinear from the texture at its UV (times the material's
    base colour), else its vertex colour, else the material's base colour or the model's colour."""
    n = len(m.vertices)
    if not m.has_texture:
        if m.vertex_colors is not None:
            return np.ascontiguousarray(m.vertex_colors[:, :3])
        c = m.material.base_color[:3] if m.material is not None else m.color
        return np.tile(np.round(np.asarray(c) * 255).astype(np.uint8), (n, 1))
    tex = m.texture[..., :3].astype(np.float32)
    h, w = tex.shape[:2]
    x = np.clip(m.uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - m.uv[:, 1]) * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    c = (tex[y0, x0] * (1 - fx) * (1 - fy) + tex[y0, x1] * fx * (1 - fy)
         + tex[y1, x0] * (1 - fx) * fy + tex[y1, x1] * fx * fy)
    if m.material is not None:
        c = c * np.asarray(m.material.base_color[:3], np.float32)
    return np.clip(np.round(c), 0, 255).astype(np.uint8)
