"""RT Structure Sets (RTSTRUCT): closed planar contours rasterised onto an image grid.

Each ROI (StructureSetROISequence) becomes one label value (1, 2, ... in ROINumber order), named
by ROIName and coloured by ROIDisplayColor. Its CLOSED_PLANAR contours (ContourData, LPS mm) are
mapped to the reference volume's index space with the inverse affine; a contour must lie in
one slice plane of the grid (within ``PLANE_TOL`` of a slice, in slices). Inside it, every voxel
whose **centre** falls inside the polygon is set (scanline fill, the rule planning systems use); several contours of one ROI on the same slice are combined with an even-odd rule,
so a contour inside another makes a hole. POINT and OPEN contours are skipped with a warning.

Where ROIs overlap, the later ROI (higher label) wins, with a warning.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medrecon.errors import DicomError, InputError
from medrecon.labelmap import LabelInfo, color_for
from medrecon.volume import Volume

__all__ = ["read_rtstruct", "rasterise_contours", "fill_polygon", "PLANE_TOL"]

#: A contour must lie within this many slices of a slice plane of the reference grid.
PLANE_TOL = 0.25


def fill_polygon(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the pixels whose centre ``(i, j)`` lies inside the closed polygon with
    vertices ``(x[k], y[k])`` (x along axis 0, y along axis 1; even-odd rule, scanline)."""
    out = np.zeros(shape, dtype=bool)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x0, y0 = x, y
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    lo = max(int(np.ceil(y.min())), 0)
    hi = min(int(np.floor(y.max())), shape[1] - 1)
    if hi < lo:
        return out
    js = np.arange(lo, hi + 1, dtype=np.float64)
    # edges crossing each scanline y = j (half-open: each vertex counted once)
    cross = ((y0[None, :] <= js[:, None]) & (y1[None, :] > js[:, None])) | \
            ((y1[None, :] <= js[:, None]) & (y0[None, :] > js[:, None]))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (js[:, None] - y0[None, :]) / (y1 - y0)[None, :]
    xs = np.where(cross, x0[None, :] + t * (x1 - x0)[None, :], np.nan)
    for r, j in enumerate(range(lo, hi + 1)):
        xi = np.sort(xs[r][np.isfinite(xs[r])])
        for a, b in zip(xi[0::2], xi[1::2]):
            i0 = max(int(np.floor(a)) + 1, 0)
            i1 = min(int(np.ceil(b)) - 1, shape[0] - 1)
            if i1 >= i0:
                out[i0:i1 + 1, j] = True
    return out


def rasterise_contours(contours: list[np.ndarray], shape: tuple[int, int, int], affine: np.ndarray,
                       where: str = "") -> tuple[np.ndarray, list[str]]:
    """Rasterise closed planar contours (each (N, 3) in LPS mm) into a boolean mask of ``shape``.

    Returns ``(mask, warnings)``. Contours on the same slice are combined with XOR (holes).
    """
    inv = np.linalg.inv(np.asarray(affine, dtype=np.float64))
    mask = np.zeros(shape, dtype=bool)
    warnings: list[str] = []
    off_plane = 0
    outside = 0
    for pts in contours:
        if len(pts) < 3:
            continue
        ijk = (inv[:3, :3] @ np.asarray(pts, dtype=np.float64).T).T + inv[:3, 3]
        k = ijk[:, 2]
        k0 = float(np.round(np.mean(k)))
        if np.max(np.abs(k - k0)) > PLANE_TOL:
            off_plane += 1
            continue
        if not 0 <= k0 < shape[2]:
            outside += 1
            continue
        mask[:, :, int(k0)] ^= fill_polygon(ijk[:, 0], ijk[:, 1], shape[:2])
    if off_plane:
        warnings.append(f"{off_plane} contour(s) not in a slice plane of the image grid were skipped")
    if outside:
        warnings.append(f"{outside} contour(s) outside the image were skipped")
    return mask, warnings


def read_rtstruct(path: str | os.PathLike, reference: Volume) -> tuple[Volume, dict[int, LabelInfo]]:
    """Rasterise every ROI of an RTSTRUCT file onto ``reference``'s grid.

    Parameters
    ----------
    path : path
        RT Structure Set file.
    reference : Volume
        The image the contours were drawn on (its grid: shape and index -> LPS mm affine).

    Returns
    -------
    (Volume, dict[int, LabelInfo])
        uint8/uint16 label map on ``reference``'s grid and the ROI names and colours.
    """
    import pydicom

    p = Path(path)
    try:
        ds = pydicom.dcmread(str(p), force=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"not a readable DICOM file ({exc})", p) from exc
    if "ROIContourSequence" not in ds or "StructureSetROISequence" not in ds:
        raise InputError("not an RT Structure Set (no ROIContourSequence)", p)
    names = {int(r.ROINumber): str(r.get("ROIName", "") or f"roi_{r.ROINumber}").strip()
             for r in ds.StructureSetROISequence}
    shape = tuple(int(s) for s in reference.shape[:3])
    order = sorted(names)
    dtype = np.uint8 if len(order) < 256 else np.uint16
    out = np.zeros(shape, dtype=dtype)
    table: dict[int, LabelInfo] = {}
    warnings: list[str] = []
    skipped_types: set[str] = set()
    by_roi = {int(c.ReferencedROINumber): c for c in ds.ROIContourSequence}
    overlap = 0
    for value, roi in enumerate(order, start=1):
        item = by_roi.get(roi)
        color = color_for(value)
        if item is not None and item.get("ROIDisplayColor") is not None and len(item.ROIDisplayColor) == 3:
            color = tuple(float(c) / 255.0 for c in item.ROIDisplayColor)
        table[value] = LabelInfo(value, names[roi] or f"roi_{roi}", color)
        if item is None:
            continue
        contours = []
        for c in item.get("ContourSequence") or []:
            gtype = str(c.get("ContourGeometricType", "CLOSED_PLANAR")).upper()
            if gtype != "CLOSED_PLANAR":
                skipped_types.add(gtype)
                continue
            data = np.asarray([float(x) for x in c.ContourData], dtype=np.float64)
            if data.size % 3:
                raise DicomError(f"ROI '{names[roi]}': ContourData length is not a multiple of 3", p)
            contours.append(data.reshape(-1, 3))
        mask, w = rasterise_contours(contours, shape, reference.affine, where=str(p))
        warnings.extend(f"ROI '{names[roi]}': {x}" for x in w)
        overlap += int(np.count_nonzero(out[mask]))
        out[mask] = value
    if skipped_types:
        warnings.append(f"contours of type {', '.join(sorted(skipped_types))} skipped (only CLOSED_PLANAR "
                        "contours enclose a volume)")
    if overlap:
        warnings.append(f"ROIs overlap in {overlap} voxel(s): the later ROI is kept there")
    meta = {"source": "rtstruct", "label_names": {v: li.name for v, li in table.items()},
            "warnings": warnings, "modality": "RTSTRUCT"}
    return Volume(out, np.asarray(reference.affine, dtype=np.float64).copy(), meta), table
