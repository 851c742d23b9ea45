"""DICOM writing: a :class:`~medrecon.volume.Volume` as a classic single-frame DICOM series.

Geometry comes straight from the Volume's index -> LPS affine: array axis 0 runs along the
image rows (the column index of a pixel), axis 1 down the image columns (the row index), and
axis 2 (by default) is the slice axis, so that for slice ``k``

* ``ImagePositionPatient`` = ``affine @ (0, 0, k, 1)`` (LPS mm of the first pixel's centre),
* ``ImageOrientationPatient`` = unit columns 0 and 1 of ``affine[:3, :3]``,
* ``PixelSpacing`` = ``[spacing[1], spacing[0]]`` (row spacing first, as DICOM wants).

Oblique and anisotropic grids are written exactly; the two in-plane axes must be orthogonal
(DICOM cannot express anything else), the slice axis may be sheared (gantry tilt).

Pixel data are stored as signed 16-bit integers with ``RescaleSlope``/``RescaleIntercept``
chosen so that the stored values reproduce the array (exactly for integer data in int16
range, to ``slope / 2`` otherwise). Patient fields are anonymous (``ANON``); every call
creates fresh Study/Series/Frame-of-Reference/SOP Instance UIDs.

Lossless compression: ``"rle"`` is encoded with pydicom (pylibjpeg-rle); ``"jpeg2000"``,
``"jpegls"`` and ``"jpeg-lossless"`` with GDCM (python-gdcm), which also copes with small
images that OpenJPEG's default resolution levels refuse.
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from medrecon.errors import MedreconError
from medrecon.io.atomic import atomic_path
from medrecon.volume import Volume

__all__ = ["write_dicom_series", "TRANSFER_SYNTAXES", "rescale_for"]

#: Accepted ``transfer_syntax`` names -> DICOM Transfer Syntax UID.
TRANSFER_SYNTAXES: dict[str, str] = {
    "explicit": "1.2.840.10008.1.2.1",       # Explicit VR Little Endian
    "implicit": "1.2.840.10008.1.2",         # Implicit VR Little Endian
    "deflated": "1.2.840.10008.1.2.1.99",    # Deflated Explicit VR Little Endian
    "rle": "1.2.840.10008.1.2.5",            # RLE Lossless
    "jpeg2000": "1.2.840.10008.1.2.4.90",    # JPEG 2000 Lossless Only
    "jpegls": "1.2.840.10008.1.2.4.80",      # JPEG-LS Lossless
    "jpeg-lossless": "1.2.840.10008.1.2.4.70",  # JPEG Lossless, Process 14, SV1
}

_SOP_CLASS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",   # CT Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",   # MR Image Storage
}

_ALIASES = {
    "explicitvrlittleendian": "explicit", "explicit-vr": "explicit", "ele": "explicit",
    "implicitvrlittleendian": "implicit", "ile": "implicit",
    "j2k": "jpeg2000", "jpeg-2000": "jpeg2000", "jp2": "jpeg2000",
    "jpeg-ls": "jpegls", "jls": "jpegls",
    "jpeglossless": "jpeg-lossless", "jpeg_lossless": "jpeg-lossless", "jpeg70": "jpeg-lossless",
    "rlelossless": "rle",
}

_INT16_MIN, _INT16_MAX = -32768, 32767


def _syntax_name(transfer_syntax: str) -> str:
    key = str(transfer_syntax).strip().lower()
    if key in TRANSFER_SYNTAXES:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    for name, uid in TRANSFER_SYNTAXES.items():
        if key == uid:
            return name
    raise MedreconError(
        f"unknown transfer syntax {transfer_syntax!r}; use one of {', '.join(TRANSFER_SYNTAXES)}"
    )


def rescale_for(array: np.ndarray, rescale: bool | tuple[float, float] = True) -> tuple[float, float]:
    """Choose ``(slope, intercept)`` so that ``stored * slope + intercept`` reproduces ``array``.

    Parameters
    ----------
    array : numpy.ndarray
        Values in output units (HU for CT).
    rescale : bool or (slope, intercept)
        ``True``: slope 1 / intercept 0 when the values are integers that fit int16, otherwise
        the finest slope that fits the value range into int16. ``False``: slope 1, intercept 0
        (values are rounded and clipped to int16). A tuple is used as given.

    Returns
    -------
    (slope, intercept) : floats
    """
    if isinstance(rescale, tuple):
        slope, intercept = float(rescale[0]), float(rescale[1])
        if not np.isfinite(slope) or slope == 0 or not np.isfinite(intercept):
            raise MedreconError(f"invalid rescale (slope, intercept) = {rescale!r}")
        return slope, intercept
    if not rescale or array.size == 0:
        return 1.0, 0.0
    lo, hi = float(np.min(array)), float(np.max(array))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise MedreconError("cannot write DICOM: the volume holds NaN or infinite values")
    is_integral = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_) or bool(
        np.all(np.mod(array, 1) == 0))
    if is_integral and lo >= _INT16_MIN and hi <= _INT16_MAX:
        return 1.0, 0.0
    if is_integral and hi - lo <= _INT16_MAX - _INT16_MIN:
        return 1.0, float(np.floor(lo) - _INT16_MIN)
    span = hi - lo
    if span == 0:
        return 1.0, lo
    # DS holds 16 characters: round the slope to 8 significant digits, then recentre.
    slope = float(f"{span / 65000.0:.8g}")
    intercept = float(f"{(hi + lo) / 2.0:.10g}")
    return slope, intercept


def _ds(x: float) -> str:
    """A DICOM Decimal String (at most 16 characters)."""
    for prec in (12, 10, 8, 6):
        s = f"{float(x):.{prec}g}"
        if len(s) <= 16:
            return s
    return f"{float(x):.4e}"


def _geometry(volume: Volume, slice_axis: int):
    """Return (in-plane axes (col_axis, row_axis), iop, pixel_spacing, normal)."""
    a = volume.affine[:3, :3]
    sp = volume.spacing
    if np.any(sp <= 0) or not np.all(np.isfinite(volume.affine)):
        raise MedreconError("cannot write DICOM: the volume's affine is degenerate")
    plane = [ax for ax in (0, 1, 2) if ax != slice_axis]
    col_ax, row_ax = plane  # column index of a pixel runs along col_ax
    u = a[:, col_ax] / sp[col_ax]
    v = a[:, row_ax] / sp[row_ax]
    if abs(float(u @ v)) > 1e-4:
        raise MedreconError(
            "cannot write DICOM: the in-plane axes of the volume are not orthogonal "
            f"(cos angle {float(u @ v):.4f}); resample it first"
        )
    normal = np.cross(u, v)
    if abs(float(normal @ (a[:, slice_axis] / sp[slice_axis]))) < 1e-3:
        raise MedreconError("cannot write DICOM: the slice axis lies in the image plane")
    iop = [*u.tolist(), *v.tolist()]
    pixel_spacing = [float(sp[row_ax]), float(sp[col_ax])]
    return (col_ax, row_ax), iop, pixel_spacing, normal


def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike,
    *,
    modality: str = "CT",
    transfer_syntax: str = "explicit",
    series_description: str = "medrecon synthetic series",
    rescale: bool | tuple[float, float] = True,
    series_number: int = 1,
    slice_axis: int = 2,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    prefix: str = "IM",
) -> list[Path]:
    """Write ``volume`` as one DICOM file per slice into ``folder``.

    Parameters
    ----------
    volume : Volume
        3D array (CT: Hounsfield units) and its index -> LPS mm affine.
    folder : path
        Output folder (created). Files are named ``{prefix}{n:05d}.dcm``; each is written
        atomically. Existing files of the same names are replaced.
    modality : {"CT", "MR"}
        Selects the SOP Class (CT Image Storage or MR Image Storage).
    transfer_syntax : str
        ``"explicit"`` (default), ``"implicit"``, ``"deflated"``, ``"rle"``, ``"jpeg2000"``,
        ``"jpegls"`` or ``"jpeg-lossless"`` (all lossless), or the Transfer Syntax UID.
    series_description : str
        Written to SeriesDescription (must not contain identifiers).
    rescale : bool or (slope, intercept)
        See :func:`rescale_for`.
    series_number : int
        SeriesNumber.
    slice_axis : {0, 1, 2}
        Array axis written as the slice (file) axis; the other two form the image plane.
    study_uid, frame_of_reference_uid : str, optional
        Reuse these UIDs (to put several series in one study / one frame of reference).
    prefix : str
        File name prefix.

    Returns
    -------
    list of Path
        The written files, in slice order.

    Raises
    ------
    MedreconError
        Unknown modality or transfer syntax, 4D or degenerate volume, non-orthogonal plane,
        non-finite values, or an encoder that fails.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid, UID

    folder = Path(folder)
    modality = str(modality).upper()
    if modality not in _SOP_CLASS:
        raise MedreconError(f"{folder}: unsupported modality {modality!r} (use CT or MR)")
    ts_name = _syntax_name(transfer_syntax)
    arr = np.asarray(volume.array)
    if arr.ndim != 3:
        raise MedreconError(f"{folder}: write_dicom_series needs a 3D volume, got shape {arr.shape}")
    if slice_axis not in (0, 1, 2):
        raise MedreconError(f"{folder}: slice_axis must be 0, 1 or 2, got {slice_axis}")
    try:
        (col_ax, row_ax), iop, pixel_spacing, normal = _geometry(volume, slice_axis)
        slope, intercept = rescale_for(arr, rescale)
    except MedreconError as exc:
        raise MedreconError(str(exc), path=folder) from None

    # (rows, cols, slices) view: rows run along row_ax, columns along col_ax.
    data = np.transpose(arr, (row_ax, col_ax, slice_axis))
    n_rows, n_cols, n_slices = data.shape
    exact_int = (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_) and slope == 1.0 \
        and float(intercept).is_integer()

    def stored_plane(k: int) -> np.ndarray:
        plane = data[:, :, k]
        if exact_int:
            if intercept == 0 and arr.dtype == np.int16:
                return np.ascontiguousarray(plane)
            return np.clip(plane.astype(np.int64) - int(intercept), _INT16_MIN, _INT16_MAX).astype(np.int16)
        v = np.rint((plane.astype(np.float64) - intercept) / slope)
        return np.clip(v, _INT16_MIN, _INT16_MAX).astype(np.int16)

    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    for_uid = frame_of_reference_uid or generate_uid()
    now = _dt.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    sop_class = _SOP_CLASS[modality]
    slice_step = volume.affine[:3, slice_axis]
    thickness = abs(float(normal @ slice_step))
    vmin, vmax = (float(np.min(arr)), float(np.max(arr))) if arr.size else (0.0, 0.0)
    wc, ww = (40.0, 400.0) if modality == "CT" else ((vmax + vmin) / 2, max(vmax - vmin, 1.0))

    compressed_by_pydicom = ts_name == "rle"
    via_gdcm = ts_name in ("jpeg2000", "jpegls", "jpeg-lossless")
    file_ts = TRANSFER_SYNTAXES["explicit"] if via_gdcm else TRANSFER_SYNTAXES[ts_name]

    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for k in range(n_slices):
        pos = volume.affine[:3, :3] @ np.eye(3)[slice_axis] * k + volume.affine[:3, 3]
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(sop_class)
        meta.MediaStorageSOPInstanceUID = UID(sop_uid)
        meta.TransferSyntaxUID = UID(file_ts)
        meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")
        meta.ImplementationVersionName = "MEDRECON_010"

        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"] if modality == "CT" else ["DERIVED", "SECONDARY"]
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
        ds.AccessionNumber = ""
        ds.Modality = modality
        ds.Manufacturer = "medrecon"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "medrecon synthetic study"
        ds.SeriesDescription = str(series_description)[:64]
        ds.PatientName = "ANON"
        ds.PatientID = "ANON"
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.BodyPartExamined = ""
        ds.SliceThickness = _ds(thickness)
        if modality == "CT":
            ds.KVP = ""
        else:
            ds.ScanningSequence = "RM"
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "3D"
            ds.EchoTime = ""
            ds.RepetitionTime = ""
            ds.EchoTrainLength = ""
            ds.MagneticFieldStrength = ""
            ds.SpacingBetweenSlices = _ds(thickness)
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = int(series_number)
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(x) for x in pos]
        ds.ImageOrientationPatient = [_ds(x) for x in iop]
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds(float(normal @ pos))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = n_rows
        ds.Columns = n_cols
        ds.PixelSpacing = [_ds(x) for x in pixel_spacing]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.WindowCenter = _ds(wc)
        ds.WindowWidth = _ds(ww)
        ds.RescaleIntercept = _ds(intercept)
        ds.RescaleSlope = _ds(slope)
        if modality == "CT":
            ds.RescaleType = "HU"
        plane = stored_plane(k)
        if compressed_by_pydicom:
            try:
                ds.compress(TRANSFER_SYNTAXES[ts_name], plane, generate_instance_uid=False)
            except Exception as exc:  # encoder missing or failing
                raise MedreconError(f"{folder}: cannot encode {ts_name}: {exc}") from exc
        else:
            ds.PixelData = plane.tobytes()
        out = folder / f"{prefix}{k + 1:05d}.dcm"
        with atomic_path(out) as tmp:
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
            if via_gdcm:
                _transcode_gdcm(tmp, ts_name, folder)
        paths.append(out)
    return paths


def _transcode_gdcm(path: Path, ts_name: str, folder: Path) -> None:
    """Re-encode the file at ``path`` in place with GDCM (JPEG-LS / JPEG lossless)."""
    import gdcm

    syntax = {
        "jpeg2000": gdcm.TransferSyntax.JPEG2000Lossless,
        "jpegls": gdcm.TransferSyntax.JPEGLSLossless,
        "jpeg-lossless": gdcm.TransferSyntax.JPEGLosslessProcess14_1,
    }[ts_name]
    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read():
        raise MedreconError(f"{folder}: GDCM could not re-read {path.name} for {ts_name} encoding")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(syntax))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise MedreconError(f"{folder}: GDCM could not encode {ts_name}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(path))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise MedreconError(f"{folder}: GDCM could not write {ts_name} file")


def series_files(folder: str | os.PathLike, prefix: str = "IM") -> Sequence[Path]:
    """The files :func:`write_dicom_series` wrote into ``folder``, sorted."""
    return sorted(Path(folder).glob(f"{prefix}*.dcm"))
