"""Single picture to 3D: mask, depth (inflate / relief / slab / local learned model), closed textured mesh.

See :mod:`medrecon.photo.pipeline` for the outputs and ``docs/photo.md`` for the method and its
limits (the back is invented: a shape prior, not a measurement).
"""
from medrecon.photo.pipeline import METHODS, PhotoOptions, PhotoResult, reconstruct, run_photo

__all__ = ["METHODS", "PhotoOptions", "PhotoResult", "reconstruct", "run_photo"]
