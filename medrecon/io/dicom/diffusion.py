"""Diffusion gradient tables of a converted series: FSL ``.bval`` / ``.bvec`` beside a NIfTI
output (what ``dcm2niix`` writes).

The b-value and gradient direction of each volume come from the frame headers where the vendor
records them (today: UIH ``(0065,1009)`` / ``(0065,1037)``, read by :mod:`.vendor`). Directions
are given in the output array's voxel axes (i = DICOM column, j = DICOM row, k = slice); FSL
reads bvecs in voxel axes with ``x`` negated when the image's affine has a positive determinant
(neurological storage), so ``x`` is negated here in that case, as FSL and dcm2niix do.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["gradient_table", "write_fsl_gradients"]


def gradient_table(series) -> tuple[list[float], np.ndarray] | None:
    """``(bvals, bvecs)`` of a 4D series, one entry per volume (bvecs (3, T) in the output's voxel
    axes), or ``None`` when the headers do not hold a b-value for every volume."""
    if series.n_per_position < 2 or not series.slices:
        return None
    bvals, bvecs = [], []
    for i in series.slices[0]:
        g = series.frames[i].extra.get("grid") or {}
        if "bval" not in g:
            return None
        bvals.append(float(g["bval"]))
        bvecs.append(g.get("bvec") or [0.0, 0.0, 0.0])
    return bvals, np.asarray(bvecs, dtype=np.float64).T


def _fmt(x: float) -> str:
    y = float(f"{x:.6g}")
    return str(int(y)) if y == int(y) else f"{y:g}"


def write_fsl_gradients(image_path: str | os.PathLike, affine_lps: np.ndarray, bvals, bvecs) -> list[Path]:
    """Write ``x.bval`` and ``x.bvec`` beside ``image_path`` (atomically); returns their paths."""
    from medrecon.io.atomic import atomic_write_text
    from medrecon.io.dicom.sidecar import sidecar_path

    v = np.array(bvecs, dtype=np.float64).reshape(3, -1)
    if np.linalg.det(np.asarray(affine_lps)[:3, :3]) > 0:
        v[0] = -v[0]
    v[np.abs(v) < 5e-7] = 0.0
    base = sidecar_path(image_path).with_suffix("")
    out = []
    for ext, text in ((".bval", " ".join(_fmt(b) for b in bvals)),
                      (".bvec", "\n".join(" ".join(_fmt(x) for x in row) for row in v))):
        p = base.with_name(base.name + ext)
        atomic_write_text(p, text + "\n")
        out.append(p)
    return out
