"""The mesh type passed between stages: :class:`SurfaceModel` (ground floor).

Vertices are in **LPS millimetres** (patient space) unless a writer is told otherwise;
faces are triangles indexing the vertex array, counter-clockwise seen from outside
(normals point out of the structure).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


__all__ = ["SurfaceModel", "vertex_normals", "face_normals", "signed_volume"]


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit face normals, (M, 3); (0, 0, 0) for a degenerate triangle."""
    n = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    ln = np.linalg.norm(n, axis=1, keepdims=True)
    ln[ln == 0] = 1.0
    return n / ln


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume of a closed triangle surface (divergence theorem, float64, about the
    centroid); positive when the faces are counter-clockwise seen from outside. The one signed
    volume of the house: winding decisions, QA and the photo/multiview checks use it.
    Computed in chunks of triangles (bounded temporaries, cache-friendly)."""
    faces = np.asarray(faces)
    if len(faces) == 0:
        return 0.0
    v = np.asarray(vertices, np.float64)
    c = v.mean(0)
    total = 0.0
    for s in range(0, len(faces), 262144):
        f = faces[s:s + 262144]
        a = v[f[:, 0]] - c
        cr = np.cross(v[f[:, 1]] - c, v[f[:, 2]] - c)
        total += float(np.einsum("ij,ij->", a, cr))
    return total / 6.0


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, (N, 3); outward for faces counter-clockwise seen from
    outside. A vertex with no area around it gets (0, 0, 0)."""
    fn = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    n = len(vertices)
    idx = np.asarray(faces).reshape(-1)
    vn = np.empty((n, 3), dtype=np.float64)
    for k in range(3):  # bincount: an order of magnitude faster than np.add.at
        vn[:, k] = np.bincount(idx, weights=np.repeat(fn[:, k], 3), minlength=n)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return vn / norm


@dataclass
class SurfaceModel:
    """One named structure's triangle mesh.

    Parameters
    ----------
    name : str
        Structure name (used in file names, scene and viewer). Never a patient identifier.
    vertices : (N, 3) float array, LPS mm
    faces : (M, 3) int array
    color : (r, g, b) floats in 0..1
    label : int, label value in the label map this mesh came from (0 if none)
    qa : dict, per-structure QA figures (filled by :mod:`medrecon.surface.qa`)
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    color: tuple[float, float, float] = (0.9, 0.85, 0.75)
    label: int = 0
    qa: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)
        self.color = tuple(float(c) for c in self.color[:3])

    @property
    def n_triangles(self) -> int:
        return int(self.faces.shape[0])

    def to_trimesh(self):
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=False)

    def bounds(self) -> np.ndarray:
        """(2, 3) min and max corner in LPS mm."""
        return np.stack([self.vertices.min(0), self.vertices.max(0)])
