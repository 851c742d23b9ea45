"""Error types. Every user-facing failure is a :class:`MedreconError` with a one-line message
that names the file (or object) and the problem; the CLI turns it into exit code 2."""
from __future__ import annotations

from pathlib import Path


class MedreconError(Exception):
    """Base class: a one-line, user-facing message. ``path`` names the offending file, if any."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        msg = " ".join(str(message).split())  # one line, always
        if self.path and self.path not in msg:
            msg = f"{self.path}: {msg}"
        super().__init__(msg)


class GeometryError(MedreconError, ValueError):
    """An affine that cannot place voxels: not 4x4, not finite, or singular."""


class InputError(MedreconError):
    """The input path is missing, empty, or holds nothing we can read."""


class DicomError(MedreconError):
    """A DICOM file or series is corrupt, truncated, undecodable or geometrically inconsistent."""


class SeriesSelectionError(MedreconError):
    """Several series were found and none (or an unknown one) was chosen."""


class ConfigError(MedreconError):
    """A preset, label table or pipeline configuration is invalid."""


class SegmentationError(MedreconError):
    """Segmentation failed or produced nothing (e.g. an empty mask)."""


class BundleError(MedreconError):
    """A MONAI bundle is incomplete or inconsistent (missing weights, wrong network...)."""


class MeshError(MedreconError):
    """Meshing or mesh export failed."""


def validation_message(exc) -> str:
    """One line from a pydantic ``ValidationError``: ``field: problem; field: problem``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
