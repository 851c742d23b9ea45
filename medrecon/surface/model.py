"""Old import path of :mod:`medrecon.mesh` (kept for callers written before the house refactor)."""
from medrecon.mesh import SurfaceModel, face_normals, vertex_normals  # noqa: F401

__all__ = ["SurfaceModel", "vertex_normals", "face_normals"]
