"""Texture baking helpers shared by the commands that make textured surfaces (photo, multiview).

A textured model is a plain :class:`medrecon.mesh.SurfaceModel` with ``uv``, ``texture`` and a
:class:`medrecon.mesh.PBRMaterial` (UV convention in :mod:`medrecon.mesh`); it is written by the
one writer family, :mod:`medrecon.io.meshes` (GLB, OBJ+MTL+PNG, PLY, STL, 3MF, VTP, USDZ). What
stays here is what baking a texture needs:

* :func:`pad_texture`: unused texels take the colour of the nearest used one (edge padding, so
  bilinear sampling and mipmaps do not bleed the background into a UV island's outline);
* :func:`to_surface_model`: a flat-coloured copy (mean texture colour) for previews and QA.

References
----------
Edge padding ("dilation") of texture atlases: B. Lévy et al., "Least squares conformal maps for
automatic texture atlas generation", SIGGRAPH 2002, section 6; the nearest-texel fill uses
OpenCV's distance transform with labels (Borgefors 1986).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from medrecon.errors import MeshError
from medrecon.mesh import SurfaceModel, vertex_rgb

__all__ = ["pad_texture", "to_surface_model"]


def pad_texture(image: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Texture with every unused pixel set to the colour of the nearest used one.

    Bilinear sampling and mipmaps near the edge of a UV island otherwise mix in the unused
    colour (a halo of background along the outline). ``used`` is (H, W) bool at the image's size.

    Examples
    --------
    >>> img = np.zeros((1, 3, 3), np.uint8); img[0, 0] = 200
    >>> pad_texture(img, np.array([[True, False, False]]))[0, :, 0].tolist()
    [200, 200, 200]
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


def to_surface_model(mesh: SurfaceModel, color: Sequence[float] | None = None) -> SurfaceModel:
    """A flat-coloured copy (no texture) for QA and previews; colour = mean texture colour."""
    if color is None:
        color = vertex_rgb(mesh).reshape(-1, 3).mean(0) / 255.0 if len(mesh.vertices) else (0.8, 0.8, 0.8)
    return SurfaceModel(mesh.name, mesh.vertices, mesh.faces, tuple(float(c) for c in color), mesh.label,
                        extras=dict(mesh.extras))
