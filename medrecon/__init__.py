"""medrecon: medical images to 3D models, with exact geometry (LPS millimetres inside)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from medrecon.errors import MedreconError
from medrecon.version import __version__

if TYPE_CHECKING:
    from medrecon.volume import Volume


def __getattr__(name: str):
    """``medrecon.Volume`` on first use: importing the package (and its command line) stays light."""
    if name == "Volume":
        from medrecon.volume import Volume

        return Volume
    raise AttributeError(f"module 'medrecon' has no attribute {name!r}")


def load(path, series=None, **kwargs) -> "Volume":
    """Load one image volume from a DICOM folder/zip/file list, NIfTI or NRRD file.

    See :func:`medrecon.io.load`.
    """
    from medrecon.io.loader import load as _load

    return _load(path, series=series, **kwargs)


def load_series(path, **kwargs):
    """Every series found at ``path`` (see :func:`medrecon.io.loader.load_series`)."""
    from medrecon.io.loader import load_series as _load_series

    return _load_series(path, **kwargs)


__all__ = ["Volume", "MedreconError", "load", "load_series", "__version__"]
