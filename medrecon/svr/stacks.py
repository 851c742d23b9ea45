"""Thick-slice stacks and the reconstruction grid (geometry only; numpy)."""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from medrecon.errors import MedreconError
from medrecon.volume import Volume

#: FWHM of a Gaussian in units of its standard deviation (2 sqrt(2 ln 2)).
FWHM_TO_SIGMA = 1.0 / 2.3548200450309493
#: In-plane PSF FWHM in pixel sizes (SVRTK / NeSVoR convention).
INPLANE_FWHM_PIXELS = 1.2


class StackError(MedreconError):
    """Stacks that cannot be reconstructed together (no overlap, mixed modalities, bad shape)."""


@dataclass
class SliceStack:
    """One stack of thick 2D slices, slices along array axis 2.

    Attributes
    ----------
    image : (nx, ny, ns) float32
        Pixel values; ``image[:, :, s]`` is slice ``s``.
    affine : (4, 4)
        Array index -> LPS mm of the pixel centres. Column 2 is the step between slice
        centres (slice spacing = thickness + gap).
    thickness : float
        Slice thickness in mm (FWHM of the Gaussian through-plane PSF).
    mask : (nx, ny, ns) bool, optional
        Pixels used for reconstruction (all if None).
    name : str
        Label used in reports (file base name; never a patient identifier).
    modality : str
    """

    image: np.ndarray
    affine: np.ndarray
    thickness: float
    mask: np.ndarray | None = None
    name: str = ""
    modality: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def spacing(self) -> np.ndarray:
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def n_slices(self) -> int:
        return int(self.image.shape[2])

    @property
    def direction(self) -> np.ndarray:
        return self.affine[:3, :3] / self.spacing

    def psf_sigmas(self) -> np.ndarray:
        """Gaussian PSF standard deviations (mm) along the stack's row, column and normal."""
        sp = self.spacing
        return np.array([INPLANE_FWHM_PIXELS * sp[0], INPLANE_FWHM_PIXELS * sp[1], self.thickness]) * FWHM_TO_SIGMA

    def corners(self) -> np.ndarray:
        """(8, 3) LPS corners of the stack's footprint (pixel extents, slab of +/- thickness/2)."""
        n = np.array(self.image.shape[:3], dtype=float)
        half_t = 0.5 * self.thickness / self.spacing[2]
        lo = np.array([-0.5, -0.5, -half_t])
        hi = np.array([n[0] - 0.5, n[1] - 0.5, n[2] - 1 + half_t])
        c = np.array([[hi[d] if (b >> d) & 1 else lo[d] for d in range(3)] for b in range(8)])
        return c @ self.affine[:3, :3].T + self.affine[:3, 3]

    @classmethod
    def from_volume(cls, volume: Volume, thickness: float | None = None, mask=None,
                    name: str = "") -> "SliceStack":
        """Make a stack from a loaded :class:`~medrecon.volume.Volume`.

        The slice axis is the array axis with the largest spacing (axis 2 when all are equal);
        the array is transposed so that it comes last. ``thickness`` defaults to
        ``meta['slice_thickness']`` when present, else the slice spacing.
        """
        arr = np.asarray(volume.array)
        if arr.ndim == 4:
            if arr.shape[3] != 1:
                raise StackError(f"stack {name or '?'} is 4D ({arr.shape[3]} frames); give one 3D stack per input")
            arr = arr[..., 0]
        sp = volume.spacing
        axis = 2 if np.allclose(sp, sp[2], rtol=1e-3) or sp[2] >= sp.max() - 1e-6 else int(np.argmax(sp))
        order = [a for a in range(3) if a != axis] + [axis]
        img = np.transpose(arr, order).astype(np.float32)
        aff = np.eye(4)
        aff[:3, :3] = volume.affine[:3, order]
        aff[:3, 3] = volume.affine[:3, 3]
        if mask is not None:
            mask = np.transpose(np.asarray(mask), order)
        if thickness is None:
            t = volume.meta.get("slice_thickness")
            try:
                thickness = float(t) if t else float(np.linalg.norm(aff[:3, 2]))
            except (TypeError, ValueError):
                thickness = float(np.linalg.norm(aff[:3, 2]))
        return cls(img, aff, float(thickness), None if mask is None else np.asarray(mask, bool), name,
                   str(volume.meta.get("modality") or ""))


def check_compatible(stacks: list[SliceStack]) -> None:
    """Raise :class:`StackError` for mixed modalities or stacks whose footprints do not overlap."""
    mods = {s.modality.upper() for s in stacks if s.modality}
    if len(mods) > 1:
        names = ", ".join(f"{s.name or i}={s.modality}" for i, s in enumerate(stacks))
        raise StackError(f"stacks have mixed modalities ({names}); give stacks of one contrast")
    for (i, a), (j, b) in combinations(enumerate(stacks), 2):
        if not _boxes_overlap(a, b):
            raise StackError(f"stacks {a.name or i} and {b.name or j} do not overlap in patient space "
                             "(different frames of reference or wrong geometry?)")


def _boxes_overlap(a: SliceStack, b: SliceStack) -> bool:
    """Separating-axis test between the two oriented boxes (stack footprints)."""
    ca, cb = a.corners(), b.corners()
    axes = list(a.direction.T) + list(b.direction.T)
    axes += [np.cross(u, v) for u in a.direction.T for v in b.direction.T]
    for ax in axes:
        n = np.linalg.norm(ax)
        if n < 1e-9:
            continue
        ax = ax / n
        pa, pb = ca @ ax, cb @ ax
        if pa.max() < pb.min() - 1e-6 or pb.max() < pa.min() - 1e-6:
            return False
    return True


def orthonormal(direction: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(direction)
    return u @ vt


def make_grid(stacks: list[SliceStack], spacing: float, mask: Volume | None = None,
              margin_mm: float = 0.0) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Isotropic output grid (affine index -> LPS mm, shape) covering the stacks.

    The grid axes follow the first stack's row, column and slice directions. Its extent is
    the intersection of the stack footprints when there are several (the region all stacks
    constrain), further cut to the bounding box of ``mask`` (if given) plus ``margin_mm``.
    """
    R = orthonormal(stacks[0].direction)
    lo, hi = None, None
    for s in stacks:
        c = s.corners() @ R  # coordinates in the grid frame
        slo, shi = c.min(0), c.max(0)
        lo = slo if lo is None else np.maximum(lo, slo)
        hi = shi if hi is None else np.minimum(hi, shi)
    if mask is not None:
        idx = np.argwhere(np.asarray(mask.array) > 0)
        if idx.size == 0:
            raise StackError("the mask is empty")
        mi, ma = idx.min(0).astype(float), idx.max(0).astype(float)
        cidx = np.array([[ma[d] if (b >> d) & 1 else mi[d] for d in range(3)] for b in range(8)])
        corners = mask.index_to_lps(cidx) @ R  # the mask's index box in the grid frame
        lo = np.maximum(lo, corners.min(0) - margin_mm)
        hi = np.minimum(hi, corners.max(0) + margin_mm)
    if np.any(hi <= lo):
        raise StackError("the stacks (and mask) have no common region to reconstruct")
    shape = tuple(max(1, int(np.ceil((hi[d] - lo[d]) / spacing - 1e-3))) for d in range(3))
    center = 0.5 * (lo + hi)
    start = center - 0.5 * spacing * (np.array(shape) - 1)
    aff = np.eye(4)
    aff[:3, :3] = R * spacing
    aff[:3, 3] = R @ start
    return aff, shape


def stack_name(path) -> str:
    """A report-safe label for an input path (base name only)."""
    p = Path(str(path))
    name = p.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".zip"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name
