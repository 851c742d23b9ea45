"""The one geometry helper: axis codes and every conversion between medrecon's frame and others.

medrecon's frame is **LPS millimetres** (DICOM patient space: +x towards the patient's Left,
+y Posterior, +z Superior); a :class:`~medrecon.volume.Volume` affine maps array index to it.
Other conventions are met only at the edges (readers, writers, viewers, the Slicer scene, MONAI),
and they convert through the functions here:

* **RAS** (NIfTI, MONAI, Slicer's legacy model files): ``RAS = diag(-1, -1, 1) LPS``. Negating two
  axes is a rotation (determinant +1): triangle winding and outward normals are kept. The flip
  is its own inverse.
* **glTF** (metres, +Y up, the asset's front faces +Z, right-handed):
  ``(x, y, z)_glTF = (x_LPS, z_LPS, -y_LPS) / 1000``; superior is up, anterior faces the viewer,
  the patient's left is +X. The rotation has determinant +1 (winding kept).
* **Named NRRD spaces** (``left-posterior-superior``, ``right-anterior-superior``...): per-axis
  sign flips to LPS (:func:`space_signs`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["LPS_TO_RAS", "RAS_FLIP", "LPS_TO_GLTF", "lps_to_ras_points", "ras_to_lps_points",
           "lps_ras_affine", "to_space", "from_space", "lps_to_gltf_points", "gltf_to_lps_points",
           "lps_to_yup_mm", "yup_mm_to_lps", "axis_codes", "space_signs", "SPACES"]

#: Sign of each axis when going LPS <-> RAS (the same both ways).
RAS_FLIP = np.array([-1.0, -1.0, 1.0])
#: 4x4 homogeneous LPS <-> RAS flip (its own inverse).
LPS_TO_RAS = np.diag([*RAS_FLIP, 1.0])
#: Rotation taking LPS millimetres to glTF axes (still millimetres; divide by 1000 for metres).
LPS_TO_GLTF = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

#: The coordinate systems a mesh file may be written in.
SPACES = ("LPS", "RAS")

_LETTERS = {0: ("L", "R"), 1: ("P", "A"), 2: ("S", "I")}

# sign flips that take each named (NRRD) space to LPS
_NAMED_SPACES = {
    "left-posterior-superior": (1, 1, 1), "lps": (1, 1, 1),
    "right-anterior-superior": (-1, -1, 1), "ras": (-1, -1, 1),
    "left-anterior-superior": (1, -1, 1), "las": (1, -1, 1),
    "scanner-xyz": (1, 1, 1), "3d-right-handed": (1, 1, 1),
}


def lps_to_ras_points(points: np.ndarray) -> np.ndarray:
    """(N, 3) LPS mm points as RAS mm (x and y negated); a new array."""
    return np.asarray(points) * RAS_FLIP


def ras_to_lps_points(points: np.ndarray) -> np.ndarray:
    """(N, 3) RAS mm points as LPS mm (x and y negated); a new array."""
    return np.asarray(points) * RAS_FLIP


def lps_ras_affine(affine: np.ndarray) -> np.ndarray:
    """A 4x4 affine into LPS expressed into RAS, or the reverse (the flip is its own inverse).

    ``lps_ras_affine(volume.affine)`` maps index -> RAS mm (what NIfTI and MONAI store);
    ``lps_ras_affine(nifti_affine)`` maps index -> LPS mm.
    """
    return LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)


def to_space(points: np.ndarray, space: str) -> np.ndarray:
    """LPS mm points expressed in ``space`` (``"LPS"``: unchanged, ``"RAS"``: x, y negated)."""
    space = str(space).upper()
    if space == "LPS":
        return points
    if space == "RAS":
        return lps_to_ras_points(points)
    raise ValueError(f"unknown space {space!r}; use one of {', '.join(SPACES)}")


def from_space(points: np.ndarray, space: str | None) -> np.ndarray:
    """Points given in ``space`` (``"LPS"``, ``"RAS"``; None = LPS) as LPS mm."""
    if space is None or str(space).upper() == "LPS":
        return points
    return to_space(points, space)  # the flip is its own inverse


def lps_to_gltf_points(points: np.ndarray) -> np.ndarray:
    """(N, 3) LPS mm -> glTF metres (+Y superior, +Z anterior)."""
    return np.asarray(points, dtype=np.float64) @ LPS_TO_GLTF.T / 1000.0


def gltf_to_lps_points(points: np.ndarray) -> np.ndarray:
    """(N, 3) glTF metres -> LPS mm (inverse of :func:`lps_to_gltf_points`)."""
    return (np.asarray(points, dtype=np.float64) * 1000.0) @ LPS_TO_GLTF


def lps_to_yup_mm(points: np.ndarray) -> np.ndarray:
    """(N, 3) LPS mm -> Y-up mm ``(x_LPS, z_LPS, -y_LPS)``: glTF's axes in millimetres (superior up,
    anterior towards +Z), the frame of Y-up OBJ (Blender, Maya) and of a photo's view (x right,
    y up, z toward the camera). A rotation: winding and outward normals are kept."""
    return lps_to_gltf_points(points) * 1000.0


def yup_mm_to_lps(points: np.ndarray) -> np.ndarray:
    """Inverse of :func:`lps_to_yup_mm`: ``LPS = (x, -z, y)``."""
    return gltf_to_lps_points(np.asarray(points, dtype=np.float64) / 1000.0)


def axis_codes(affine: np.ndarray) -> str:
    """Dominant LPS direction of each array axis of an index -> LPS affine, e.g. ``'LPS'`` or ``'PSR'``."""
    affine = np.asarray(affine)
    out = []
    for col in range(3):
        v = affine[:3, col]
        ax = int(np.argmax(np.abs(v)))
        out.append(_LETTERS[ax][0 if v[ax] >= 0 else 1])
    return "".join(out)


def space_signs(name: str | None) -> np.ndarray | None:
    """Per-axis signs taking a named space (NRRD ``space`` field) to LPS; None when unknown.

    An empty name counts as LPS.
    """
    key = str(name or "").strip().lower()
    if not key:
        return np.ones(3)
    signs = _NAMED_SPACES.get(key)
    return None if signs is None else np.array(signs, dtype=np.float64)
