"""Slice geometry: sort along the slice normal, analyse spacing, detect tilt, resample.

All coordinates are DICOM patient coordinates (LPS, mm). For one stack of parallel slices with
row direction ``r`` and column direction ``c`` (``ImageOrientationPatient``) the normal is
``n = r x c``; every slice is placed by ``d = IPP . n`` and slices are sorted by ``d`` (never by
InstanceNumber). The array built from a stack is indexed ``[i, j, k]`` = (column, row, slice),
so its affine columns are ``r * dx``, ``c * dy`` and the slice step.

* **Gantry tilt**: the slice origins drift *inside* the image plane as ``d`` grows (a sheared
  grid). Detected from the positions themselves (the GantryDetectorTilt tag is only a hint).
  By default each slice is shifted back onto an orthogonal grid (linear interpolation, the
  field of view grows to keep every pixel), like dcm2niix's ``_Tilt`` output; with
  ``correct_tilt=False`` the sheared affine is kept and the voxels are untouched.
* **Uneven spacing / missing slices**: detected; by default the stack is resampled (linear,
  along the normal) onto equal spacing equal to the smallest gap, with a warning. Never stacked
  silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from medrecon.orientation import axis_codes

__all__ = ["StackGeometry", "analyse_positions", "normal_from_iop", "resample_stack", "axis_codes",
           "orientation_label", "SPACING_RTOL"]

#: Relative tolerance on slice gaps before spacing counts as uneven.
SPACING_RTOL = 0.02
#: Absolute tolerance (mm) on slice gaps and in-plane drift.
SPACING_ATOL = 0.01
#: In-plane drift per mm along the normal above which a stack counts as sheared (tilted).
TILT_TAN_TOL = np.tan(np.deg2rad(0.05))


def normal_from_iop(iop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit row direction, column direction and slice normal from ImageOrientationPatient."""
    r = np.asarray(iop[:3], dtype=np.float64)
    c = np.asarray(iop[3:6], dtype=np.float64)
    r = r / np.linalg.norm(r)
    c = c / np.linalg.norm(c)
    n = np.cross(r, c)
    n /= np.linalg.norm(n)
    return r, c, n


@dataclass
class StackGeometry:
    """Geometry of one sorted stack of parallel slices (positions already sorted by ``d``)."""

    r: np.ndarray
    c: np.ndarray
    n: np.ndarray
    dx: float                 # mm between columns (along r)
    dy: float                 # mm between rows (along c)
    positions: np.ndarray     # (n_slices, 3) IPP, sorted
    d: np.ndarray             # (n_slices,) position along n, ascending
    a: np.ndarray             # in-plane drift of each slice origin, in columns (along r)
    b: np.ndarray             # in-plane drift, in rows (along c)
    gaps: np.ndarray          # diff(d)
    uniform: bool
    tilted: bool
    tilt_deg: float
    missing: int              # estimated number of missing slices (gaps that are multiples)
    nominal_spacing: float    # spacing used when the stack is (re)built
    warnings: list[str] = field(default_factory=list)

    @property
    def n_slices(self) -> int:
        return len(self.d)

    def sheared_affine(self) -> np.ndarray:
        """Affine of the raw stack as acquired (slice step = mean step between origins)."""
        A = np.eye(4)
        A[:3, 0] = self.r * self.dx
        A[:3, 1] = self.c * self.dy
        if self.n_slices > 1:
            A[:3, 2] = (self.positions[-1] - self.positions[0]) / (self.n_slices - 1)
        else:
            A[:3, 2] = self.n * self.nominal_spacing
        A[:3, 3] = self.positions[0]
        return A


def _median(x: np.ndarray) -> float:
    """``np.median`` of finite values without its NaN check, which imports ``numpy.ma`` (a cost
    every cold ``info`` and ``convert`` would pay)."""
    s = np.sort(x)
    m = s.size // 2
    return float(s[m]) if s.size % 2 else float((s[m - 1] + s[m]) / 2)


def analyse_positions(positions: np.ndarray, iop: np.ndarray, pixel_spacing: tuple[float, float],
                      fallback_spacing: float | None = None) -> StackGeometry:
    """Sort unique slice positions along the normal and analyse gaps and tilt.

    Parameters
    ----------
    positions : (N, 3) array
        ImagePositionPatient of each (unique) slice, LPS mm, any order.
    iop : (6,) array
        ImageOrientationPatient shared by the slices.
    pixel_spacing : (float, float)
        DICOM PixelSpacing: (between rows, between columns), mm.
    fallback_spacing : float, optional
        Slice spacing (mm) to use for a single slice (SpacingBetweenSlices / SliceThickness).
    """
    r, c, n = normal_from_iop(iop)
    dy, dx = float(pixel_spacing[0]), float(pixel_spacing[1])
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    d = pos @ n
    order = np.argsort(d, kind="stable")
    pos, d = pos[order], d[order]
    rel = pos - pos[0]
    a = rel @ r / dx
    b = rel @ c / dy
    warnings: list[str] = []
    if len(d) < 2:
        sp = float(fallback_spacing or 1.0)
        return StackGeometry(r, c, n, dx, dy, pos, d, a, b, np.zeros(0), True, False, 0.0, 0, sp,
                             ["single slice: slice spacing taken from the header"
                              if fallback_spacing else "single slice: slice spacing unknown, 1 mm assumed"])
    gaps = np.diff(d)
    smallest = float(np.min(gaps))
    med = _median(gaps)
    tol = max(SPACING_RTOL * med, SPACING_ATOL)
    uniform = bool(np.all(np.abs(gaps - med) <= tol))
    # tilt: in-plane drift growing with d (fit a line through the drift in mm)
    drift_mm = np.stack([a * dx, b * dy], axis=1)
    span = d[-1] - d[0]
    slope = (drift_mm[-1] - drift_mm[0]) / span if span > 0 else np.zeros(2)
    tan_tilt = float(np.linalg.norm(slope))
    tilted = tan_tilt > TILT_TAN_TOL and float(np.max(np.abs(drift_mm))) > SPACING_ATOL
    tilt_deg = float(np.degrees(np.arctan(tan_tilt))) if tilted else 0.0
    missing = 0
    if uniform:
        nominal = float(span / (len(d) - 1))
    else:
        nominal = smallest
        ratios = gaps / smallest
        if np.all(np.abs(ratios - np.round(ratios)) <= max(SPACING_RTOL, SPACING_ATOL / smallest)):
            missing = int(np.sum(np.round(ratios) - 1))
        if missing:
            where = [f"{d[i]:.2f}..{d[i + 1]:.2f} mm" for i in np.nonzero(np.round(ratios) > 1)[0][:5]]
            warnings.append(f"missing slices: about {missing} slice(s) absent "
                            f"(gaps of {', '.join(where)} along the normal; spacing {smallest:.3g} mm)")
        else:
            warnings.append(f"non-uniform slice spacing: {smallest:.3g} to {float(np.max(gaps)):.3g} mm")
    if tilted:
        warnings.append(f"gantry tilt / sheared slices: {tilt_deg:.2f} deg")
    return StackGeometry(r, c, n, dx, dy, pos, d, a, b, gaps, uniform, tilted, tilt_deg, missing,
                         nominal, warnings)


def _shift_into(src: np.ndarray, off_rows: float, off_cols: float, out_shape: tuple[int, int],
                fill: float) -> np.ndarray:
    """Sample ``src`` (rows, cols[, T]) at ``(y + off_rows, x + off_cols)`` on an ``out_shape`` grid
    (bilinear; ``fill`` outside)."""
    from scipy import ndimage

    if (abs(off_rows - round(off_rows)) < 1e-6 and abs(off_cols - round(off_cols)) < 1e-6):
        oy, ox = int(round(off_rows)), int(round(off_cols))
        out = np.full(out_shape + src.shape[2:], fill, dtype=np.float32)
        ys0, xs0 = max(0, -oy), max(0, -ox)
        ys1 = min(out_shape[0], src.shape[0] - oy)
        xs1 = min(out_shape[1], src.shape[1] - ox)
        if ys1 > ys0 and xs1 > xs0:
            out[ys0:ys1, xs0:xs1] = src[ys0 + oy:ys1 + oy, xs0 + ox:xs1 + ox]
        return out
    if src.ndim == 2:
        return ndimage.affine_transform(src.astype(np.float32), np.eye(2), offset=(off_rows, off_cols),
                                        output_shape=out_shape, order=1, cval=fill, mode="constant")
    return np.stack([_shift_into(src[..., t], off_rows, off_cols, out_shape, fill)
                     for t in range(src.shape[2])], axis=-1)


def resample_stack(slices: np.ndarray, geo: StackGeometry, correct_tilt: bool = True,
                   resample_gaps: bool = True, fill: float | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
    """Build a regular volume from sorted slices.

    Parameters
    ----------
    slices : array (n_slices, rows, cols[, T])
        Pixel values in the order of ``geo.d`` (ascending along the normal).
    geo : StackGeometry
    correct_tilt, resample_gaps : bool
        See the module docstring.
    fill : float, optional
        Value for voxels outside every slice (default: the data minimum).

    Returns
    -------
    array : (cols', rows', k'[, T]) array indexed (i, j, k) = (column, row, slice)
    affine : (4, 4) index -> LPS mm
    notes : list of str, what was done (for the metadata warnings)
    resampled : bool, True if any voxel was interpolated
    """
    notes: list[str] = []
    n_src = slices.shape[0]
    need_tilt = geo.tilted and correct_tilt
    need_gaps = (not geo.uniform) and resample_gaps and n_src > 1
    if not need_tilt and not need_gaps:
        arr = np.moveaxis(slices, 0, 2)  # (rows, cols, n[, T])
        arr = np.swapaxes(arr, 0, 1)     # (cols, rows, n[, T])
        if geo.tilted:
            A = geo.sheared_affine()
            notes.append(f"gantry tilt {geo.tilt_deg:.2f} deg kept: affine is sheared (not corrected)")
        else:
            A = geo.sheared_affine()
            if n_src > 1:
                # drop sub-tolerance in-plane jitter: exact orthogonal slice step
                A[:3, 2] = geo.n * ((geo.d[-1] - geo.d[0]) / (n_src - 1))
        if not geo.uniform and n_src > 1:
            notes.append("uneven slice spacing kept (resample_gaps=False): the affine uses the mean "
                         "spacing and is only approximate")
        return arr, A, notes, False

    if fill is None:
        fill = float(np.min(slices)) if slices.size else 0.0
    # target slice positions along the normal
    if need_gaps:
        s = geo.nominal_spacing
        n_out = int(np.floor((geo.d[-1] - geo.d[0]) / s + 1e-6)) + 1
        d_out = geo.d[0] + s * np.arange(n_out)
        notes.append(f"resampled to equal slice spacing {s:.4g} mm ({n_src} -> {n_out} slices, linear)")
    else:
        d_out = geo.d.copy()
        s = float((geo.d[-1] - geo.d[0]) / (n_src - 1)) if n_src > 1 else geo.nominal_spacing
    # in-plane offsets of source slices and of target slices
    rows, cols = slices.shape[1], slices.shape[2]
    if need_tilt:
        a_min, a_max = float(np.min(geo.a)), float(np.max(geo.a))
        b_min, b_max = float(np.min(geo.b)), float(np.max(geo.b))
        A_out = np.full(len(d_out), a_min)
        B_out = np.full(len(d_out), b_min)
        out_cols = int(np.ceil(a_max - a_min - 1e-6)) + cols
        out_rows = int(np.ceil(b_max - b_min - 1e-6)) + rows
        notes.append(f"gantry tilt {geo.tilt_deg:.2f} deg corrected: slices shifted onto an orthogonal grid "
                     f"({rows}x{cols} -> {out_rows}x{out_cols} pixels per slice)")
    else:
        # keep the (possibly sheared) in-plane drift, interpolated linearly along d
        A_out = np.interp(d_out, geo.d, geo.a)
        B_out = np.interp(d_out, geo.d, geo.b)
        out_rows, out_cols = rows, cols
    out_shape = (out_rows, out_cols)
    out = np.empty((len(d_out),) + out_shape + slices.shape[3:], dtype=np.float32)
    cache: dict[int, np.ndarray] = {}

    def shifted(k: int, w: int) -> np.ndarray:
        key = (k, round(float(A_out[w]), 6), round(float(B_out[w]), 6))
        if key not in cache:
            if len(cache) > 4:
                cache.clear()
            cache[key] = _shift_into(slices[k], float(B_out[w] - geo.b[k]), float(A_out[w] - geo.a[k]),
                                     out_shape, fill)
        return cache[key]

    for w, dw in enumerate(d_out):
        k = int(np.searchsorted(geo.d, dw, side="right") - 1)
        k = min(max(k, 0), n_src - 1)
        # a target slice within SPACING_ATOL of a source slice is that slice (no blending with a
        # neighbour because of floating-point drift in the positions)
        if k + 1 < n_src and abs(geo.d[k + 1] - dw) <= SPACING_ATOL:
            k += 1
        if k >= n_src - 1 or abs(dw - geo.d[k]) <= SPACING_ATOL:
            out[w] = shifted(k, w)
            continue
        t = float((dw - geo.d[k]) / (geo.d[k + 1] - geo.d[k]))
        out[w] = (1.0 - t) * shifted(k, w) + t * shifted(k + 1, w)
    A = np.eye(4)
    A[:3, 0] = geo.r * geo.dx
    A[:3, 1] = geo.c * geo.dy
    origin0 = geo.positions[0] + (d_out[0] - geo.d[0]) * geo.n
    if need_tilt:
        A[:3, 2] = geo.n * s
        A[:3, 3] = origin0 + A_out[0] * geo.dx * geo.r + B_out[0] * geo.dy * geo.c
    else:
        # sheared stack on equal spacing: the slice step carries the mean drift
        if len(d_out) > 1:
            first = geo.positions[0] + A_out[0] * geo.dx * geo.r + B_out[0] * geo.dy * geo.c
            last = (geo.positions[0] + (d_out[-1] - geo.d[0]) * geo.n
                    + A_out[-1] * geo.dx * geo.r + B_out[-1] * geo.dy * geo.c)
            A[:3, 2] = (last - first) / (len(d_out) - 1)
        else:
            A[:3, 2] = geo.n * s
        A[:3, 3] = geo.positions[0] + A_out[0] * geo.dx * geo.r + B_out[0] * geo.dy * geo.c
        if geo.tilted:
            notes.append(f"gantry tilt {geo.tilt_deg:.2f} deg kept: affine is sheared (not corrected)")
    arr = np.swapaxes(np.moveaxis(out, 0, 2), 0, 1)
    if np.issubdtype(slices.dtype, np.integer):
        info = np.iinfo(slices.dtype)
        arr = np.clip(np.rint(arr), info.min, info.max).astype(slices.dtype)
    return arr, A, notes, True


def orientation_label(iop: np.ndarray | None) -> str:
    """``axial`` / ``coronal`` / ``sagittal`` (with ``oblique`` when > 1 deg off the axes)."""
    if iop is None:
        return "unknown"
    _, _, n = normal_from_iop(iop)
    ax = int(np.argmax(np.abs(n)))
    name = {0: "sagittal", 1: "coronal", 2: "axial"}[ax]
    off = float(np.degrees(np.arccos(min(1.0, abs(n[ax])))))
    r, c, _ = normal_from_iop(iop)
    inplane_off = min(float(np.degrees(np.arccos(min(1.0, np.max(np.abs(v)))))) for v in (r, c))
    if off > 1.0 or inplane_off > 1.0:
        name = f"oblique {name}"
    return name


def unique_positions(positions: Sequence[np.ndarray], n: np.ndarray, tol: float = 1e-3) -> list[list[int]]:
    """Cluster frame indices that sit at the same place along ``n`` (within ``tol`` mm)."""
    d = np.array([float(np.dot(p, n)) for p in positions])
    order = np.argsort(d, kind="stable")
    groups: list[list[int]] = []
    last = None
    for i in order:
        if last is None or d[i] - last > tol:
            groups.append([int(i)])
            last = d[i]
        else:
            groups[-1].append(int(i))
    return groups
