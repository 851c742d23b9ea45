"""The package version, in a module of its own so that writers can stamp files without
importing the package root."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "generator"]


def generator() -> str:
    """The ``generator`` string written into files: ``"medrecon X.Y.Z"``."""
    return f"medrecon {__version__}"
