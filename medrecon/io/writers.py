"""Old import path of :mod:`medrecon.io.volumes` (kept for callers written before the house refactor)."""
from medrecon.io.volumes import VOLUME_EXTENSIONS, save_volume  # noqa: F401

__all__ = ["save_volume", "VOLUME_EXTENSIONS"]
