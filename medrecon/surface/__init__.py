"""Label map -> surface meshes (flying edges / surface nets), smoothing, decimation, QA."""
from medrecon.surface.model import SurfaceModel

__all__ = ["SurfaceModel"]
