"""Synthetic phantoms with known geometry, for tests, benchmarks and the demo.

* :mod:`.shapes`: analytic shapes (sphere, ellipsoid, shell, torus) with exact SDF, volume and
  area, rasterised with partial volume onto any grid;
* :mod:`.head_ct`: an anthropomorphic head CT in Hounsfield units with a tissue label map.

Measure a mesh against a shape's true surface with :func:`medrecon.surface.qa.surface_error`.
"""
from __future__ import annotations

from medrecon.phantoms.head_ct import HEAD_LABELS, HeadPhantom, head_ct_phantom
from medrecon.phantoms.shapes import (Ellipsoid, EllipsoidShell, Phantom, Shape, Sphere, Torus,
                                      ellipsoid_shell_phantom, grid_affine, make_phantom, occupancy,
                                      rotation_matrix, sphere_phantom, torus_phantom)
from medrecon.surface.qa import surface_error  # its home is the surface QA; kept here for older callers

__all__ = [
    "Shape", "Sphere", "Ellipsoid", "EllipsoidShell", "Torus",
    "grid_affine", "rotation_matrix", "occupancy", "Phantom", "make_phantom",
    "sphere_phantom", "ellipsoid_shell_phantom", "torus_phantom",
    "HeadPhantom", "head_ct_phantom", "HEAD_LABELS", "surface_error",
]
