"""Plain-language warnings, with advice, about meshes a user may want to print.

Two things a newcomer cannot see in a viewer: a surface that is not closed (a slicer may
refuse it or fill it wrongly) and a structure that lost a noticeable part of its volume to
smoothing (thin bone, cartilage on a coarse grid). Both are read from the per-structure QA
(:mod:`medrecon.surface.qa`); nothing is recomputed here.
"""
from __future__ import annotations

from typing import Iterable

__all__ = ["VOLUME_LOSS_PCT", "mesh_advice"]

#: A structure losing more than this percentage of its voxel volume to smoothing is warned about.
VOLUME_LOSS_PCT = 3.0


def _names(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def mesh_advice(models: Iterable, *, smoothing: float = 0.5, keep_volume: bool = False,
                joint: bool = False) -> list[str]:
    """Warnings (each one line, with what to do) for open surfaces and volume lost to smoothing.

    Parameters
    ----------
    models : SurfaceModel list with ``qa`` dicts (``watertight``, ``volume_diff_pct``).
    smoothing, keep_volume, joint : the settings the models were made with (for the advice).

    Returns
    -------
    list of str
        Empty when every surface is closed and within :data:`VOLUME_LOSS_PCT` of its voxels.
    """
    models = list(models)
    out: list[str] = []
    # open as written, or open once a reader (an STL slicer) merges equal vertex positions
    open_ = [m.name for m in models if (m.qa or {}).get("watertight") is False
             or (m.qa or {}).get("watertight_welded") is False or (m.qa or {}).get("manifold_welded") is False]
    if open_:
        how = ("joint meshing shares walls between structures, so its surfaces are for viewing, not printing: "
               "mesh without --joint" if joint else
               "try --reduction 0 (or a smaller value), or mesh the structure on its own; "
               "a slicer may still repair it, check before printing")
        out.append(f"not closed (not printable as is): {_names(open_)}; {how}")
    # an open surface encloses no definite volume: it is reported above, not here
    lost = [(m.name, float((m.qa or {}).get("volume_diff_pct"))) for m in models
            if isinstance((m.qa or {}).get("volume_diff_pct"), (int, float)) and m.name not in open_
            and float(m.qa["volume_diff_pct"]) < -VOLUME_LOSS_PCT]
    if lost:
        lost.sort(key=lambda t: t[1])
        items = [f"{n} {p:+.1f}%" for n, p in lost]
        how = ("lower --smoothing (e.g. 0.2) or use a finer scan" if keep_volume else
               f"add --keep-volume (moves the surface out along its normals to the voxel volume) or lower "
               f"--smoothing (now {smoothing:g})")
        out.append(f"smoothing shrank {_names(items)} of the voxel volume (thin parts get thinner); {how}")
    return out
