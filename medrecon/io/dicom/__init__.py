"""DICOM reading and writing: discovery (:mod:`.scan`, file locations in :mod:`.source`), header
parsing (:mod:`.headers`), series grouping (:mod:`.group`), slice geometry (:mod:`.geometry`),
pixel decoding (:mod:`.pixels`) and writing a Volume as a series (:mod:`.write`).

:func:`scan_series` finds every series under a path (headers only);
:func:`load_dicom_series` turns one of them into a :class:`~medrecon.volume.Volume` whose affine
maps (column, row, slice[, frame]) indices to LPS millimetres.
"""
from __future__ import annotations


import numpy as np

from medrecon.errors import DicomError
from medrecon.io.dicom.geometry import axis_codes, resample_stack
from medrecon.io.dicom.group import DicomSeries, group_frames
from medrecon.io.dicom.pixels import read_frames, rescale
from medrecon.io.dicom.scan import ScanResult, scan
from medrecon.volume import Volume
from medrecon.progress import ProgressFn

__all__ = ["DicomSeries", "scan_series", "load_dicom_series", "write_dicom_series"]


def __getattr__(name):
    """``write_dicom_series`` on first use: reading a series does not import the writer."""
    if name == "write_dicom_series":
        from medrecon.io.dicom.write import write_dicom_series

        return write_dicom_series
    raise AttributeError(f"module 'medrecon.io.dicom' has no attribute {name!r}")


def scan_series(source, progress: ProgressFn | None = None) -> tuple[list[DicomSeries], ScanResult]:
    """Every series under ``source`` (folder, zip, file or list of files), headers only."""
    res = scan(source, progress=progress)
    series = group_frames(res.frames)
    notes = []
    if res.skipped:
        notes.append(f"{len(res.skipped)} non-DICOM file(s) ignored")
    objs = res.non_image_objects
    if objs:
        kinds = sorted({o.kind for o in objs})
        notes.append(f"{len(objs)} non-image DICOM object(s) skipped ({', '.join(kinds)})")
    if res.unreadable:
        notes.append(f"{len(res.unreadable)} unreadable file(s) skipped")
    for s in series:
        s.warnings.extend(notes)
        if s.is_volume:  # what load would refuse in the pixel data, from file sizes (issue 22)
            problem = _pixel_problem(s)
            if problem:
                s.is_volume, s.reason = False, problem
    return series, res


#: Transfer syntaxes whose pixel data are not encapsulated (fragments ending in a delimiter).
_NOT_ENCAPSULATED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}


def _pixel_problem(series) -> str | None:
    """The first file of ``series`` whose pixel data ``load`` would find short, from sizes only
    (no decoding): native data shorter than rows x columns x frames, or compressed data without
    its closing delimiter (a truncated file). ``None`` when every plain file looks whole."""
    import os

    seen: set[str] = set()
    for f in series.frames:
        src = f.source
        if src.member is not None or src.path in seen or src.path.lower().endswith(".gz"):
            continue
        seen.add(src.path)
        try:
            size = os.path.getsize(src.path)
        except OSError as exc:
            return f"{src.name}: cannot read file ({exc.strerror})"
        if f.is_native and f.pixel_offset is not None:
            need = f.frame_bytes * f.n_frames_in_file
            if f.pixel_length is not None and f.pixel_length < need:
                return f"{src.name}: pixel data shorter than the header says ({f.pixel_length} of {need} bytes)"
            if f.pixel_offset + need > size:
                return (f"{src.name}: file truncated: pixel data shorter than the header says "
                        f"({max(0, size - f.pixel_offset)} of {need} bytes)")
        elif f.transfer_syntax not in _NOT_ENCAPSULATED:
            with open(src.path, "rb") as fh:
                fh.seek(max(0, size - 1024))
                tail = fh.read()
            if b"\xfe\xff\xdd\xe0\x00\x00\x00\x00" not in tail:
                return f"{src.name}: file truncated: the compressed pixel data end before their closing delimiter"
    return None


def load_dicom_series(series: DicomSeries, correct_tilt: bool = True, resample_gaps: bool = True,
                      workers: int | None = None,
                      progress: ProgressFn | None = None,
                      philips_scaling: str = "precise", allow_index_grid: bool = False) -> Volume:
    """Decode one series into a Volume (index -> LPS mm; CT in HU after rescale).

    Parameters
    ----------
    philips_scaling : {"precise", "display"}
        Philips images with a private scale slope: precise floating-point values
        FP = (SV*RS+RI)/(RS*SS) (dcm2niix's default) or the display values SV*RS+RI.
    allow_index_grid : bool
        Load frames without any patient geometry on a 1 mm index grid (with a warning) instead
        of refusing them.

    Raises
    ------
    DicomError
        if the series is not a volume (localizer, mixed orientations, unequal frames per
        position, no derivable grid), or a file is corrupt, truncated or in an undecodable
        transfer syntax.
    """
    if philips_scaling not in ("precise", "display"):
        raise DicomError(f"philips_scaling must be 'precise' or 'display', not {philips_scaling!r}")
    if not series.is_volume and not (allow_index_grid and series.index_grid):
        raise DicomError(f"series {series.label()} cannot be loaded as a volume: {series.reason}",
                         series.frames[0].source.name)
    if series.frames[0].samples_per_pixel != 1:
        raise DicomError(f"series #{series.index} is a colour image ({series.frames[0].photometric}); "
                         "only greyscale volumes are supported", series.frames[0].source.name)
    if series.frames[0].photometric.upper().startswith("PALETTE"):
        raise DicomError(f"series #{series.index} is a PALETTE COLOR image (indices into a colour table, "
                         "not intensities); only greyscale volumes are supported", series.frames[0].source.name)
    from medrecon.io.limits import guard

    with guard(series.frames[0].source.name, "cannot load series"):
        return _load(series, correct_tilt, resample_gaps, workers, progress, philips_scaling)


def _load(series, correct_tilt, resample_gaps, workers, progress, philips_scaling) -> Volume:
    n_pos, per = len(series.slices), series.n_per_position
    # volume-major (every position of volume 0, then volume 1...): the (column, row, slice, volume)
    # array is then a Fortran-ordered view of what was read, written out without another copy
    order = [pos[t] for t in range(per) for pos in series.slices] if per > 1 else [pos[0] for pos in series.slices]
    frames = [series.frames[i] for i in order]
    stored = read_frames(frames, workers=workers, progress=progress)
    slopes = [f.slope for f in frames]
    intercepts = [f.intercept for f in frames]
    philips = None
    if any(f.extra.get("philips_ss") for f in frames):
        philips = philips_scaling
        if philips_scaling == "precise":
            from medrecon.io.dicom.vendor import philips_precise

            si = [philips_precise(f.slope, f.intercept, f.extra.get("philips_ss")) for f in frames]
            slopes, intercepts = [a for a, _ in si], [b for _, b in si]
    values = rescale(stored, slopes, intercepts)
    del stored
    f0 = series.frames[0]
    rows, cols = f0.rows, f0.cols
    values = values.reshape((per, n_pos, rows, cols))
    if per == 1:
        values = values[0]
    else:
        values = values.transpose(1, 2, 3, 0)  # (n_pos, rows, cols, T), a view
    warnings = [w for w in series.warnings if not w.startswith("Philips: precise")]
    if philips == "precise":
        warnings.append("Philips precise floating-point values (dcm2niix default): FP = (SV*RS+RI)/(RS*SS)")
    elif philips == "display":
        warnings.append("Philips display values (SV*RS+RI), as dcm2niix -p n")
    if series.pepolar_reversed:
        # GE stores reversed-polarity volumes mirrored along the phase-encoding axis: flip back
        # (rows for a COL encoding, columns for ROW), as dcm2niix does for the rows
        axis = 2 if f0.extra.get("pe_dir") == "ROW" else 1
        values = np.flip(values, axis=axis)
    resampled = False
    tilt = 0.0
    if series.mosaic is not None:
        arr, affine = _demosaic(values, series.mosaic)
    elif series.geometry is None:
        arr = np.swapaxes(np.moveaxis(values, 0, 2), 0, 1)
        ps = f0.pixel_spacing or (1.0, 1.0)
        affine = np.diag([ps[1], ps[0], 1.0, 1.0])
        if series.index_grid:
            warnings.append("no patient geometry: frames stacked in file order on a 1 mm index grid "
                            "(allow_index_grid); this is not the patient's grid")
    else:
        geo = series.geometry
        arr, affine, notes, resampled = resample_stack(values, geo, correct_tilt=correct_tilt,
                                                       resample_gaps=resample_gaps)
        tilt = geo.tilt_deg
        warnings.extend(notes)
    if not arr.flags.f_contiguous and not arr.flags.c_contiguous:
        arr = np.asfortranarray(arr)
    meta = {
        "modality": series.modality,
        "series_description": series.description,
        "series_number": series.series_number,
        "series_uid_hash": series.uid_hash,
        "spacing": [float(x) for x in np.linalg.norm(affine[:3, :3], axis=0)],
        "orientation": axis_codes(affine),
        "warnings": warnings,
        "source": "dicom",
        "n_files": series.n_files,
        "body_part": f0.extra.get("body_part", ""),
        "manufacturer_model": f0.extra.get("manufacturer_model", ""),
        "protocol_name": f0.extra.get("protocol_name", ""),
        "convolution_kernel": f0.extra.get("convolution_kernel", ""),
        "image_type": "\\".join(series.image_type),
        "echo_time": series.echo,
        "repetition_time": f0.extra.get("repetition_time"),
        "slice_thickness": f0.slice_thickness,
        "tilt_deg": tilt,
        "resampled": resampled,
        "kind": "4D" if per > 1 else "3D",
    }
    if philips:
        meta["units"] = "Philips precise floating point (FP)" if philips == "precise" else "Philips display values (DV)"
    if per > 1:
        meta["frame_axis"] = "time"
        meta["frame_values"] = [
            series.frames[i].temporal if series.frames[i].temporal is not None else j
            for j, i in enumerate(series.slices[0])]
    return Volume(arr, affine, meta)


def _demosaic(values: np.ndarray, mosaic) -> tuple[np.ndarray, np.ndarray]:
    """Cut Siemens mosaic / UIH grid images into slices.

    ``values`` is (1, rows, cols[, T]); returns the (col, row, slice[, T]) array and its affine,
    converted from nibabel's (row, col, slice) index order to medrecon's (col, row, slice).
    """
    from medrecon.io.dicom.group import mosaic_grid

    n, A_nib = mosaic[0], mosaic[1]
    img = values[0]
    down, across = mosaic_grid(mosaic)
    tr, tc = img.shape[0] // down, img.shape[1] // across
    out = np.empty((tc, tr, n) + img.shape[2:], dtype=img.dtype)
    for s in range(n):
        r0, c0 = (s // across) * tr, (s % across) * tc
        out[:, :, s] = np.swapaxes(img[r0:r0 + tr, c0:c0 + tc], 0, 1)
    A_nib = np.asarray(A_nib, dtype=np.float64)
    affine = A_nib[:, [1, 0, 2, 3]].copy()
    return out, affine
