"""Input/output at the edges: DICOM/NIfTI/NRRD loading (:mod:`medrecon.io.loader`), writers,
and converters to nibabel (RAS), SimpleITK and VTK (LPS). Inside medrecon everything is LPS."""
from __future__ import annotations

__all__ = ["load", "load_series", "describe_series", "save_volume"]


def __getattr__(name):  # lazy: importing a sibling module does not pull the loader in
    if name in ("load", "load_series", "describe_series"):
        from medrecon.io import loader

        return getattr(loader, name)
    if name == "save_volume":
        from medrecon.io.writers import save_volume

        return save_volume
    raise AttributeError(f"module 'medrecon.io' has no attribute {name!r}")
