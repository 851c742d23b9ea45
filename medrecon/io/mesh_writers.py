"""Old import path of :mod:`medrecon.io.meshes` (kept for callers written before the house refactor)."""
from medrecon.io.meshes import (FORMATS, LPS_TO_GLTF, load_mesh_file, parse_formats, safe_filename,  # noqa: F401
                                to_space, write_models)
from medrecon.io.meshes.stl import stl_bytes as _stl_bytes  # noqa: F401

__all__ = ["write_models", "safe_filename", "FORMATS", "LPS_TO_GLTF", "to_space", "parse_formats", "load_mesh_file"]
