"""The :class:`Volume`: one image array plus the geometry that places it in the patient.

Convention (the only one used inside medrecon):

* ``array`` is indexed ``array[i, j, k]`` (optionally a 4th axis for time/echo) in whatever
  order the data came in; no axis is implied to be "x".
* ``affine`` is a 4x4 matrix mapping the homogeneous *array index* ``(i, j, k, 1)`` to patient
  coordinates in **millimetres, LPS** (DICOM patient space: +x towards the patient's Left,
  +y Posterior, +z Superior). Voxel *centres* sit at integer indices.
* ``meta`` holds only non-identifying facts (modality, series description, spacing, warnings).

Conversion to NIfTI's RAS, ITK and VTK conventions happens only at the edges (:mod:`medrecon.io`,
the viewers), through :mod:`medrecon.orientation`.

The affine is guarded: it must be a finite, non-singular 4x4 matrix, and the Volume keeps its
own copy (changing the array passed in does not move the volume).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medrecon.errors import GeometryError
from medrecon.orientation import LPS_TO_RAS, lps_ras_affine

#: Metadata keys that may be stored on a Volume. Anything else is dropped, so that no patient
#: identifier can ride along by accident.
SAFE_META_KEYS = frozenset(
    {
        "modality", "series_description", "series_number", "series_uid_hash", "spacing",
        "orientation", "warnings", "source", "n_files", "body_part", "manufacturer_model",
        "image_type", "echo_time", "repetition_time", "tilt_deg", "resampled", "units",
        "label_names", "label_colors", "frame_axis", "frame_values", "kind", "description",
        "protocol_name", "sequence_name", "slice_thickness", "convolution_kernel",
    }
)

__all__ = ["Volume", "SAFE_META_KEYS", "LPS_TO_RAS", "check_affine"]


def check_affine(affine) -> np.ndarray:
    """A float64 copy of ``affine`` after checking that it is a finite, non-singular 4x4 matrix.

    Raises
    ------
    GeometryError
        Wrong shape, NaN/inf entries, or a singular (degenerate) matrix.
    """
    a = np.array(affine, dtype=np.float64, copy=True)
    if a.shape != (4, 4):
        raise GeometryError(f"affine must be a 4x4 matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise GeometryError("affine holds NaN or infinite values")
    if abs(np.linalg.det(a[:3, :3])) < 1e-12 or abs(np.linalg.det(a)) < 1e-12:
        raise GeometryError("affine is singular (zero spacing or collinear axes)")
    return a


def _clean_meta(meta: dict[str, Any] | None) -> dict[str, Any]:
    meta = dict(meta or {})
    out = {k: v for k, v in meta.items() if k in SAFE_META_KEYS}
    out["warnings"] = list(out.get("warnings", []))
    return out


@dataclass
class Volume:
    """An image array with an index-to-LPS-millimetre affine and identifier-free metadata.

    Parameters
    ----------
    array : numpy.ndarray
        3D (or 4D, last axis = frames) voxel data. CT values are in Hounsfield units.
    affine : (4, 4) array_like
        Maps array index ``(i, j, k, 1)`` to LPS millimetres (voxel centres). Must be finite
        and non-singular (:class:`~medrecon.errors.GeometryError` otherwise); it is copied.
    meta : dict, optional
        Non-identifying metadata; keys outside :data:`SAFE_META_KEYS` are dropped.

    Examples
    --------
    >>> import numpy as np
    >>> affine = np.diag([0.8, 0.8, 2.0, 1.0]); affine[:3, 3] = [-100, -120, 40]
    >>> vol = Volume(np.zeros((4, 5, 6), np.int16), affine, {"modality": "CT"})
    >>> vol.shape, vol.spacing.tolist(), vol.index_to_lps([1, 0, 2]).tolist()
    ((4, 5, 6), [0.8, 0.8, 2.0], [-99.2, -120.0, 44.0])
    """

    array: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        self.affine = check_affine(self.affine)
        if self.array.ndim not in (3, 4):
            raise ValueError(f"Volume needs a 3D or 4D array, got shape {self.array.shape}")
        self.meta = _clean_meta(self.meta)

    # --- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def spacing(self) -> np.ndarray:
        """Distance in mm between neighbouring voxel centres along each array axis."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are unit LPS vectors of the array axes."""
        return self.affine[:3, :3] / self.spacing

    @property
    def origin(self) -> np.ndarray:
        """LPS mm position of the centre of voxel (0, 0, 0)."""
        return self.affine[:3, 3].copy()

    @property
    def ras_affine(self) -> np.ndarray:
        """The same mapping into RAS millimetres (what NIfTI stores)."""
        return lps_ras_affine(self.affine)

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Map (N, 3) array indices (may be fractional) to (N, 3) LPS mm."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def lps_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Map (N, 3) LPS mm points to fractional array indices."""
        inv = np.linalg.inv(self.affine)
        xyz = np.asarray(xyz, dtype=np.float64)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def corners_lps(self) -> np.ndarray:
        """(8, 3) LPS mm of the centres of the eight corner voxels."""
        shape = self.shape[:3]
        corners = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                            for k in (0, shape[2] - 1)], dtype=np.float64)
        return self.index_to_lps(corners)

    def same_grid(self, other: "Volume", tol_mm: float = 1e-3) -> bool:
        """Whether ``other`` has the same 3D shape and its voxel centres lie within ``tol_mm``
        of this volume's (compared at the eight corner voxels, in LPS mm)."""
        if tuple(other.shape[:3]) != tuple(self.shape[:3]):
            return False
        return float(np.abs(self.corners_lps() - other.corners_lps()).max()) <= float(tol_mm)

    def is_oblique(self, tol: float = 1e-3) -> bool:
        d = np.abs(self.direction)
        return not np.allclose(np.sort(d, axis=0)[:2], 0, atol=tol)

    def with_array(self, array: np.ndarray, **meta_updates: Any) -> "Volume":
        """A new Volume on the same grid (same affine) holding ``array``."""
        meta = dict(self.meta)
        meta.update(meta_updates)
        return Volume(array, self.affine.copy(), meta)

    def warn(self, message: str) -> None:
        self.meta.setdefault("warnings", []).append(message)

    def __repr__(self) -> str:  # short, no data dump
        sp = ", ".join(f"{s:.3g}" for s in self.spacing)
        return (f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing=({sp}) mm, "
                f"modality={self.meta.get('modality')!r})")
