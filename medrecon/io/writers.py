"""Write a Volume by file extension (always atomically: temp file in the folder, then rename).

| extension            | writer                                   | world space in the file |
|----------------------|------------------------------------------|-------------------------|
| ``.nii``, ``.nii.gz``| :func:`medrecon.io.nifti.write_nifti`    | RAS (NIfTI convention)  |
| ``.nrrd``            | :func:`medrecon.io.nrrd.write_nrrd`      | LPS                     |
| ``.mha``, ``.mhd``   | :func:`medrecon.io.convert.write_itk`    | LPS (ITK)               |
"""
from __future__ import annotations

import os
from pathlib import Path

from medrecon.errors import InputError
from medrecon.volume import Volume

__all__ = ["save_volume", "VOLUME_EXTENSIONS"]

VOLUME_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")


def save_volume(volume: Volume, path: str | os.PathLike) -> Path:
    """Write ``volume`` to ``path``; the format follows the extension (see module table)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".nii.gz") or name.endswith(".nii"):
        from medrecon.io.nifti import write_nifti

        write_nifti(volume, p)
    elif name.endswith(".nrrd"):
        from medrecon.io.nrrd import write_nrrd

        write_nrrd(volume, p)
    elif name.endswith(".mha") or name.endswith(".mhd"):
        from medrecon.io.convert import write_itk

        write_itk(volume, p)
    else:
        raise InputError(f"unknown output format (use one of {', '.join(VOLUME_EXTENSIONS)})", p)
    return p
