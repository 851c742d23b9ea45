"""Split scanned frames into series and decide which ones are volumes.

A series here is one SeriesInstanceUID further split by image size, orientation, image type
(e.g. magnitude vs phase), echo and stack. Inside a series, several frames at the same slice
position (dynamics, time points) become a 4D volume when every position has the same number of
frames; otherwise the series is reported and not offered as a volume. Series whose
SeriesInstanceUID holds several slice orientations (localizers, scouts) are reported and not
stacked.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medrecon.io.dicom.geometry import (StackGeometry, analyse_positions, axis_codes, normal_from_iop,
                                        orientation_label, unique_positions)
from medrecon.io.dicom.headers import FrameHeader

__all__ = ["DicomSeries", "group_frames", "IOP_TOL"]

#: Max abs difference between ImageOrientationPatient components of "the same" orientation.
IOP_TOL = 1e-3
#: Slices closer than this (mm, along the normal) are at "the same" position.
SAME_POSITION_MM = 0.01


@dataclass
class DicomSeries:
    """One candidate volume (or a reported non-volume) found among the DICOM frames."""

    frames: list[FrameHeader]
    series_uid: str
    series_number: int | None
    modality: str
    description: str
    image_type: tuple[str, ...]
    echo: float | None
    index: int = 0
    is_volume: bool = True
    reason: str = ""                      # why it is not a volume
    warnings: list[str] = field(default_factory=list)
    geometry: StackGeometry | None = None
    slices: list[list[int]] = field(default_factory=list)  # frame indices per position (sorted)
    n_per_position: int = 1
    has_geometry: bool = True
    mosaic: tuple | None = None   # (n_slices, 4x4 affine in (row, col, slice) order[, (tile rows, tile cols)]):
    #                               a Siemens mosaic or a UIH grid
    index_grid: bool = False      # no patient geometry: loadable only on request, on an index grid
    pepolar_reversed: bool = False  # GE epi_pepolar volumes of reversed phase-encoding polarity

    # -- derived facts --------------------------------------------------------------------------
    @property
    def uid_hash(self) -> str:
        return hashlib.sha1(self.series_uid.encode()).hexdigest()[:10] if self.series_uid else ""

    @property
    def n_files(self) -> int:
        return len({f.source for f in self.frames})

    @property
    def transfer_syntaxes(self) -> list[str]:
        return sorted({f.transfer_syntax for f in self.frames})

    def size(self) -> list[int]:
        f0 = self.frames[0]
        out = [f0.cols, f0.rows, max(1, len(self.slices))]
        if self.mosaic is not None:
            down, across = mosaic_grid(self.mosaic)
            out = [f0.cols // across, f0.rows // down, self.mosaic[0]]
        if self.n_per_position > 1:
            out.append(self.n_per_position)
        return out

    def spacing(self) -> list[float]:
        f0 = self.frames[0]
        if self.mosaic is not None:
            return [float(x) for x in np.linalg.norm(np.asarray(self.mosaic[1])[:3, [1, 0, 2]], axis=0)]
        ps = f0.pixel_spacing or (1.0, 1.0)
        sl = self.geometry.nominal_spacing if self.geometry is not None else (
            f0.spacing_between or f0.slice_thickness or 1.0)
        return [float(ps[1]), float(ps[0]), float(sl)]

    def orientation(self) -> str:
        f0 = self.frames[0]
        if not self.has_geometry:
            return "unknown"
        label = orientation_label(f0.iop)
        if self.geometry is not None:
            A = self.geometry.sheared_affine()
            label = f"{label} ({axis_codes(A)})"
        return label

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary without identifiers (what ``medrecon info`` prints)."""
        f0 = self.frames[0]
        kind = "4D" if self.n_per_position > 1 else (
            "3D" if len(self.slices) > 1 or self.mosaic is not None else "2D")
        from medrecon.io.dicom.pixels import TRANSFER_SYNTAX_NAMES

        return {
            "index": self.index,
            "series_number": self.series_number,
            "series_uid_hash": self.uid_hash,
            "modality": self.modality,
            "description": self.description,
            "image_type": "\\".join(self.image_type),
            "echo_time": self.echo,
            "kind": kind,
            "size": self.size(),
            "spacing": [round(s, 6) for s in self.spacing()],
            "orientation": self.orientation(),
            "n_files": self.n_files,
            "n_frames": len(self.frames),
            "transfer_syntax": ", ".join(TRANSFER_SYNTAX_NAMES.get(t, t) for t in self.transfer_syntaxes),
            "tilt_deg": round(self.geometry.tilt_deg, 3) if self.geometry is not None else 0.0,
            "is_volume": self.is_volume,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "bits_stored": f0.bits_stored,
        }

    def label(self) -> str:
        sn = f"series {self.series_number}" if self.series_number is not None else "no SeriesNumber,"
        extra = []
        if self.echo is not None:
            extra.append(f"TE={self.echo:g}")
        if len(self.image_type) > 2:
            extra.append("\\".join(self.image_type[2:]))
        e = f" [{', '.join(extra)}]" if extra else ""
        return (f"#{self.index}: {sn} {self.modality} '{self.description}'{e} "
                f"{'x'.join(map(str, self.size()))}" + ("" if self.is_volume else f" (not a volume: {self.reason})"))


def mosaic_tiles(n_slices: int) -> int:
    """Tiles per mosaic row/column for ``n_slices`` (Siemens uses the smallest square)."""
    return int(np.ceil(np.sqrt(n_slices)))


def mosaic_grid(mosaic: tuple) -> tuple[int, int]:
    """(tiles down, tiles across) of a mosaic: a Siemens mosaic is square; a UIH grid is
    ``ceil(sqrt(n))`` tiles across and as many rows of tiles as the slices need (20 -> 4 x 5)."""
    if len(mosaic) > 2 and mosaic[2] is not None:
        return int(mosaic[2][0]), int(mosaic[2][1])
    t = mosaic_tiles(mosaic[0])
    return t, t


def _iop_cluster(frames: list[FrameHeader]) -> list[list[int]]:
    reps: list[np.ndarray | None] = []
    groups: list[list[int]] = []
    exact: dict = {}  # an orientation met before (same bytes): its group, without comparing again
    for i, f in enumerate(frames):
        key = None if f.iop is None else f.iop.tobytes()
        if key in exact:
            groups[exact[key]].append(i)
            continue
        for g, rep in enumerate(reps):
            if (rep is None and f.iop is None) or (
                    rep is not None and f.iop is not None and np.max(np.abs(rep - f.iop)) <= IOP_TOL):
                groups[g].append(i)
                exact[key] = g
                break
        else:
            reps.append(f.iop)
            groups.append([i])
            exact[key] = len(groups) - 1
    return groups


def _is_localizer(image_type: tuple[str, ...]) -> bool:
    return any("LOCALIZER" in t or "SCOUT" in t for t in image_type)


def _type_key(f: FrameHeader) -> tuple:
    """The part of ImageType that separates series: all of it for MR and others (magnitude /
    phase / derived maps); for CT whether it is a localizer (GE and Siemens append per-slice
    values such as ``ADD`` that do not make a different volume) and whether it is derived
    (DERIVED, MPR, ...: never a volume of the acquisition's 4D)."""
    from medrecon.io.dicom.vendor import derived_key

    if f.modality == "CT":
        return (_is_localizer(f.image_type), derived_key(f.image_type))
    return f.image_type + derived_key(f.image_type)


def _echo_of(f: FrameHeader) -> float | None:
    if f.echo_number is not None:
        return float(f.echo_number)
    return f.echo_time


def group_frames(frames: list[FrameHeader]) -> list[DicomSeries]:
    """Group frames into series, analyse each, and number them 1..N in a stable order.

    The same image found twice in one series (same SOPInstanceUID and frame, e.g. a folder copied
    into itself or the series in two encodings) is kept once, with a warning on its series.
    """
    by_key: dict[tuple, list[FrameHeader]] = {}
    by_uid: dict[str, list[FrameHeader]] = {}
    seen: set[tuple] = set()
    duplicates: dict[str, int] = {}
    unique = []
    for f in frames:
        if f.sop_instance:
            ident = (f.sop_instance, f.frame, f.series_uid, f.series_number)
            if ident in seen:
                duplicates[f.series_uid] = duplicates.get(f.series_uid, 0) + 1
                continue
            seen.add(ident)
        unique.append(f)
    types: dict[tuple, tuple] = {}  # (modality, ImageType) -> (type key, localizer): computed once per kind
    spacings: dict = {}  # PixelSpacing -> its rounded key, computed once per value
    for f in unique:
        ps = spacings.get(f.pixel_spacing, spacings)
        if ps is spacings:
            ps = spacings[f.pixel_spacing] = tuple(round(x, 4) for x in f.pixel_spacing) if f.pixel_spacing else None
        tk = types.get((f.modality, f.image_type))
        if tk is None:
            tk = types[(f.modality, f.image_type)] = (_type_key(f), _is_localizer(f.image_type))
        key = (f.series_uid, f.series_number, f.rows, f.cols, ps, tk[0], _echo_of(f),
               f.stack_id, f.samples_per_pixel, f.mosaic)
        by_key.setdefault(key, []).append(f)
        if not tk[1]:
            by_uid.setdefault(f.series_uid, []).append(f)
    # how many slice orientations each SeriesInstanceUID holds (localizer frames aside)
    orientations_per_uid = {uid: len(_iop_cluster(fr)) for uid, fr in by_uid.items()}
    # split each key by orientation
    pieces: list[tuple[tuple, list[FrameHeader]]] = []
    for key, fr in by_key.items():
        for idx in _iop_cluster(fr):
            pieces.append((key, [fr[i] for i in idx]))
    series: list[DicomSeries] = []
    for key, fr in pieces:
        f0 = fr[0]
        s = DicomSeries(frames=fr, series_uid=f0.series_uid, series_number=f0.series_number,
                        modality=f0.modality, description=f0.description, image_type=f0.image_type,
                        echo=f0.echo_time if f0.echo_time is not None else None)
        _analyse(s, n_orientations=orientations_per_uid.get(key[0], 1))
        if duplicates.get(s.series_uid):
            s.warnings.append(f"{duplicates[s.series_uid]} duplicate image(s) (same SOPInstanceUID) ignored")
        series.extend(_split_pepolar(s, orientations_per_uid.get(key[0], 1)))
    series.sort(key=lambda s: (s.series_number if s.series_number is not None else 1 << 30,
                               s.description, s.series_uid, s.image_type, s.echo or 0.0,
                               s.frames[0].iop.tolist() if s.frames[0].iop is not None else []))
    for i, s in enumerate(series, start=1):
        s.index = i
    return series


def _split_pepolar(s: DicomSeries, n_orientations: int) -> list[DicomSeries]:
    """GE ``epi_pepolar``: the volumes of reversed phase-encoding polarity become their own series
    (SeriesNumber + 1000 unless every volume is reversed), as dcm2niix splits them."""
    from medrecon.io.dicom.vendor import pepolar_reversed

    ud = s.frames[0].extra.get("pepolar")
    if ud is None or not s.slices or not s.has_geometry:
        return [s]
    # the volume number: TemporalPositionIdentifier (1-based) as dcm2niix reads it, else the
    # frame's rank among the frames at its position
    def volume_number(i: int, rank: int) -> int:
        t = s.frames[i].temporal
        return int(t) if t is not None else rank + 1

    flags = {i: pepolar_reversed(int(ud), volume_number(i, rank)) for pos in s.slices for rank, i in enumerate(pos)}
    note = "GE epi_pepolar: reversed phase-encoding volumes, mirrored back along the phase-encoding axis"
    if not any(flags.values()):
        return [s]
    if all(flags.values()):
        s.pepolar_reversed = True
        s.warnings.append(note)
        return [s]
    parts = []
    for reversed_ in (False, True):
        idx = [i for i, r in flags.items() if r == reversed_]
        fr = [s.frames[i] for i in sorted(idx)]
        t = DicomSeries(frames=fr, series_uid=s.series_uid,
                        series_number=(s.series_number or 0) + (1000 if reversed_ else 0) if s.series_number is not None
                        else None, modality=s.modality, description=s.description, image_type=s.image_type,
                        echo=s.echo)
        _analyse(t, n_orientations)
        t.warnings.extend(w for w in s.warnings if w not in t.warnings and "duplicate" in w)
        t.pepolar_reversed = reversed_
        if reversed_:
            t.warnings.append(note)
        parts.append(t)
    return parts


def _analyse(s: DicomSeries, n_orientations: int) -> None:
    f0 = s.frames[0]
    if f0.samples_per_pixel != 1:
        s.is_volume, s.reason = False, (f"colour image ({f0.photometric}); only greyscale volumes are loaded (a "
                                       "greyscale export of the series would be)")
    if f0.photometric == "MONOCHROME1":
        s.warnings.append("MONOCHROME1 (inverted display): values are kept as stored, not inverted")
    if _is_localizer(s.image_type):
        s.is_volume, s.reason = False, ("localizer (ImageType LOCALIZER/SCOUT): planning images, not a "
                                       "volume; choose the acquisition's own series")
    elif n_orientations > 1:
        s.is_volume = False
        s.reason = (f"localizer / mixed orientations: the series holds slices in {n_orientations} "
                    f"different orientations, which cannot be one volume (dcm2niix writes them image by "
                    f"image); a series of parallel slices would load")
    if f0.mosaic and f0.extra.get("mosaic"):
        n_tiles, A = f0.extra["mosaic"]
        s.mosaic = (n_tiles, A)
        s.warnings.append(f"Siemens mosaic: {n_tiles} slices taken from the tiles (CSA header)")
    elif f0.extra.get("uih_grid"):
        _uih_grid(s, f0)
    elif f0.mosaic:
        # a mosaic loaded as one 2D image would be a grid that is not the patient's: refuse
        s.is_volume = False
        s.reason = ("mosaic image (ImageType MOSAIC) without a readable Siemens CSA header: the number "
                    "of slices and their geometry cannot be derived; loadable from files that keep the "
                    "CSA header (0029,1010), which some anonymisers strip")
    if f0.ipp is None or f0.iop is None or f0.pixel_spacing is None or any(f.ipp is None for f in s.frames):
        s.has_geometry = False
        order = sorted(range(len(s.frames)), key=lambda i: (s.frames[i].instance or 0, s.frames[i].frame or 0))
        s.slices = [[i] for i in order]
        if f0.extra.get("no_frame_positions"):
            s.is_volume = False
            s.reason = ("frames carry no per-frame position (no functional groups, no private positions): "
                        "the slice grid cannot be derived; loadable from files that keep their per-frame "
                        "positions")
        elif len(s.frames) > 1 and s.is_volume:
            # never a silent index grid: loadable only when asked (allow_index_grid)
            s.is_volume = False
            s.index_grid = True
            s.reason = ("no patient geometry (ImagePositionPatient/Orientation/PixelSpacing missing): the "
                        "frames cannot be placed in the patient; pass allow_index_grid=True "
                        "(--allow-index-grid) to load them on a 1 mm index grid")
        elif s.mosaic is None:
            s.warnings.append("no patient geometry (ImagePositionPatient/Orientation/PixelSpacing missing): "
                              "one 2D image on a pixel-spacing grid")
        return
    r, c, n = normal_from_iop(f0.iop)
    groups = unique_positions([f.ipp for f in s.frames], n, tol=SAME_POSITION_MM)
    counts = {len(g) for g in groups}
    if f0.extra.get("synthetic_positions"):
        s.warnings.append("multi-frame without per-frame positions: frames stacked along the normal "
                          "using SpacingBetweenSlices")
    if f0.extra.get("private_positions"):
        s.warnings.append("multi-frame without functional groups: per-frame positions taken from a "
                          "private sequence")
    if f0.extra.get("philips_ss"):
        s.warnings.append("Philips: precise floating-point values by default, FP = (SV*RS+RI)/(RS*SS) "
                          "(dcm2niix default); philips_scaling='display' gives the display values")
    if len(counts) > 1:
        s.is_volume = False
        s.reason = (f"unequal number of images per slice position ({min(counts)} to {max(counts)}); "
                    "cannot be stacked; loadable when every position has the same number of images "
                    "(a file missing, or two acquisitions in one series?)")
    per = max(counts)

    def within(i):
        f = s.frames[i]
        if f.n_frames_in_file > 1 and f.frame is not None:
            # enhanced / multi-frame objects: volumes in the order of the frames in the file (as
            # dcm2niix: a Philips ASL file holds all label volumes, then all control volumes)
            return (0.0, 0.0, f.instance or 0, f.frame)
        return (f.temporal if f.temporal is not None else 0.0,
                f.trigger_time if f.trigger_time is not None else 0.0,
                f.instance or 0, f.frame or 0)

    s.slices = [sorted(g, key=within) for g in groups]
    s.n_per_position = per if len(counts) == 1 else 1
    if s.n_per_position > 1:
        s.warnings.append(f"{per} images per slice position: loaded as 4D (last axis = time/dynamic)")
    fallback = f0.spacing_between or f0.slice_thickness
    first = [s.frames[g[0]] for g in s.slices]
    s.geometry = analyse_positions(np.array([f.ipp for f in first]), f0.iop, f0.pixel_spacing, fallback)
    # the geometry sorts again (stably); keep our slice order consistent with it
    d = np.array([float(np.dot(f.ipp, s.geometry.n)) for f in first])
    s.slices = [s.slices[i] for i in np.argsort(d, kind="stable")]
    if s.mosaic is None:
        s.warnings.extend(s.geometry.warnings)
    if f0.gantry_tilt and abs(f0.gantry_tilt) > 0.01 and not s.geometry.tilted and len(s.slices) > 1:
        s.warnings.append(f"GantryDetectorTilt says {f0.gantry_tilt:g} deg but the slice positions are "
                          "not sheared (nothing to correct)")


def _uih_grid(s: DicomSeries, f0: FrameHeader) -> None:
    """UIH grid ("VFRAME" saved by slice): ``n`` slices tiled ``ceil(sqrt(n))`` across; tile ``k``
    lies at the ImagePositionPatient of item ``k`` of the private per-tile sequence (0065,1051)
    (the position of the first tile when the file has one of its own; no Siemens mosaic shift, as
    dcm2niix), tiles follow the normal at the spacing of those positions (else
    SpacingBetweenSlices/SliceThickness)."""
    n_tiles = int(f0.extra["uih_grid"])
    across = mosaic_tiles(n_tiles)
    down = -(-n_tiles // across)
    positions = (f0.extra.get("grid") or {}).get("positions")
    sp = f0.spacing_between or f0.slice_thickness
    missing = [name for name, v in (("ImageOrientationPatient", f0.iop), ("PixelSpacing", f0.pixel_spacing),
                                    ("ImagePositionPatient or per-tile positions (0065,1051)", f0.ipp))
               if v is None]
    if not missing and not positions and not sp:
        missing.append("SpacingBetweenSlices/SliceThickness (the slice spacing)")
    if missing:
        s.is_volume = False
        s.reason = (f"UIH grid of {n_tiles} slices without {', '.join(missing)}: the slice grid cannot be "
                    "derived; loadable when the files carry them (dcm2niix needs them too)")
        return
    if f0.rows % down or f0.cols % across:
        s.is_volume = False
        s.reason = (f"UIH grid of {n_tiles} slices in a {f0.rows}x{f0.cols} image: not a whole number of "
                    f"{down}x{across} tiles; loadable when the image holds whole tiles")
        return
    r, c, n = normal_from_iop(f0.iop)
    A = np.eye(4)
    A[:3, 0] = c * f0.pixel_spacing[0]
    A[:3, 1] = r * f0.pixel_spacing[1]
    if positions is not None and len(positions) == n_tiles and n_tiles > 1:
        first, last = np.asarray(positions[0], float), np.asarray(positions[-1], float)
        A[:3, 2] = (last - first) / (n_tiles - 1)
        A[:3, 3] = first
    else:
        A[:3, 2] = n * sp
        A[:3, 3] = f0.ipp
    s.mosaic = (n_tiles, A, (down, across))
    s.warnings.append(f"UIH grid: {n_tiles} slices taken from {down}x{across} tiles (0065,1050)")
