"""Printability checks of a set of meshes: size against a common printer build volume."""
from __future__ import annotations

from typing import Any

import numpy as np


def print_check(models, space: str = "LPS") -> dict[str, Any]:
    """Size of the assembly and of each structure against a common printer's build volume.

    Returns ``{"assembly_size_mm", "build_volume_mm", "fits", "too_large", "warnings"}``; a
    structure whose own bounding box exceeds :data:`~medrecon.io.meshes.threemf.COMMON_BUILD_VOLUME_MM`
    in any axis (or the assembly, for the 3MF placed as one piece) gets a warning.
    """
    from medrecon.io.meshes.threemf import COMMON_BUILD_VOLUME_MM
    from medrecon.orientation import to_space

    vol = np.asarray(COMMON_BUILD_VOLUME_MM, float)
    lo = np.min([to_space(m.vertices, space).min(0) for m in models], axis=0)
    hi = np.max([to_space(m.vertices, space).max(0) for m in models], axis=0)
    size = hi - lo
    big = []
    for m in models:
        ext = np.ptp(to_space(m.vertices, space), axis=0)
        if np.any(ext > vol):
            big.append(m.name)
    warnings = []
    dims = "x".join(f"{v:g}" for v in vol)
    if big:
        warnings.append(f"larger than a common {dims} mm printer build volume: {', '.join(big[:10])}"
                        + (f" and {len(big) - 10} more" if len(big) > 10 else "") + "; scale or split before printing")
    elif np.any(size > vol):
        warnings.append(f"the structures together ({'x'.join(f'{v:.0f}' for v in size)} mm) exceed a common "
                        f"{dims} mm build volume: print them separately (let the slicer arrange them)")
    return {"assembly_size_mm": np.round(size, 2).tolist(), "build_volume_mm": vol.tolist(),
            "fits": bool(np.all(size <= vol)), "too_large": big, "warnings": warnings}
