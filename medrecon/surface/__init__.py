"""Label map -> surface meshes (flying edges / surface nets), smoothing, decimation, QA."""
from medrecon.mesh import SurfaceModel


def build_surfaces(labelmap, labels=None, **kwargs):
    """Mesh every label of a label map (see :func:`medrecon.surface.mesher.build_surfaces`)."""
    from medrecon.surface.mesher import build_surfaces as _build

    return _build(labelmap, labels, **kwargs)


def mesh_mask(mask, affine, **kwargs):
    """Closed surface of one binary mask (see :func:`medrecon.surface.mesher.mesh_mask`)."""
    from medrecon.surface.mesher import mesh_mask as _mesh_mask

    return _mesh_mask(mask, affine, **kwargs)


__all__ = ["SurfaceModel", "build_surfaces", "mesh_mask"]
