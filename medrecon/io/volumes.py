"""Volume files (NIfTI, NRRD, MetaImage), read and written by file extension: one table.

:func:`read_volume` reads one such file (DICOM is :mod:`medrecon.io.dicom`, and
:func:`medrecon.io.loader.load` chooses between them); :func:`save_volume` writes one, always
atomically (temp file in the folder, then rename).

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

__all__ = ["save_volume", "read_volume", "volume_suffix", "VOLUME_EXTENSIONS", "READ_EXTENSIONS"]

#: Extensions :func:`save_volume` writes.
VOLUME_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
_NIFTI = (".nii", ".nii.gz", ".hdr", ".img")
_NRRD = (".nrrd", ".nhdr", ".seg.nrrd")
_ITK = (".mha", ".mhd")
#: Extensions :func:`read_volume` reads (longest match first).
READ_EXTENSIONS = (".nii.gz", ".seg.nrrd") + _NIFTI + _NRRD + _ITK


def volume_suffix(path: str | os.PathLike) -> str:
    """The volume-file extension of ``path`` (``".nii.gz"``, ``".nrrd"``...), or ``""``."""
    name = str(path).lower()
    for ext in READ_EXTENSIONS:
        if name.endswith(ext):
            return ext
    return ""


def read_volume(path: str | os.PathLike) -> Volume:
    """Read one NIfTI / NRRD / MetaImage file into a Volume (index -> LPS mm).

    Raises
    ------
    InputError
        Unknown extension or unreadable file.
    """
    ext = volume_suffix(path)
    if ext in _NIFTI:
        from medrecon.io.nifti import read_nifti

        return read_nifti(path)
    if ext in _NRRD:
        from medrecon.io.nrrd import read_nrrd

        return read_nrrd(path)
    if ext in _ITK:
        from medrecon.io.convert import read_itk

        return read_itk(path)
    raise InputError("unknown file type", path)


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
