"""Header facts of every image frame, taken from a parsed pydicom dataset.

A classic file gives one :class:`FrameHeader`; an enhanced multi-frame object gives one per
frame, with geometry, rescale, frame type, echo time and temporal index from the per-frame and
shared functional groups; a Siemens mosaic carries its slice count and geometry from the CSA
header. No patient identifier is copied into a :class:`FrameHeader`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medrecon.io.dicom.rawvalues import get_float, get_floats, get_int, get_str, get_strs
from medrecon.io.dicom.source import Source

__all__ = ["FrameHeader", "headers_from_dataset", "NATIVE_LE"]

#: Transfer syntaxes whose pixel data are stored natively, little endian (read straight from disk).
NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_NATIVE_LE = NATIVE_LE

@dataclass
class FrameHeader:
    """Header facts about one image frame. Geometry in LPS mm (DICOM patient space)."""

    source: Source
    frame: int | None            # frame index inside a multi-frame object, None for single-frame
    n_frames_in_file: int
    series_uid: str
    series_number: int | None
    modality: str
    description: str
    sop_class: str
    sop_instance: str             # SOPInstanceUID (to drop duplicate copies; never put in metadata)
    rows: int
    cols: int
    ipp: np.ndarray | None        # ImagePositionPatient (3,)
    iop: np.ndarray | None        # ImageOrientationPatient (6,): row direction, column direction
    pixel_spacing: tuple[float, float] | None  # (between rows, between columns)
    slice_thickness: float | None
    spacing_between: float | None
    slope: float
    intercept: float
    image_type: tuple[str, ...]
    echo_number: int | None
    echo_time: float | None
    temporal: float | None        # TemporalPositionIdentifier / TemporalPositionIndex
    trigger_time: float | None
    instance: int | None
    acquisition: int | None
    stack_id: str | None
    transfer_syntax: str
    bits_allocated: int
    bits_stored: int
    high_bit: int
    pixel_representation: int
    samples_per_pixel: int
    photometric: str
    gantry_tilt: float | None
    mosaic: bool
    pixel_offset: int | None = None   # byte offset of native pixel data (value) in a plain file
    pixel_length: int | None = None   # its declared length (bytes)
    extra: dict[str, Any] = field(default_factory=dict)  # safe, descriptive only

    @property
    def is_native(self) -> bool:
        return self.transfer_syntax in _NATIVE_LE

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.cols * self.samples_per_pixel * self.bits_allocated // 8



def _num(v, cast=float):
    try:
        if v is None or v == "":
            return None
        return cast(v)
    except (TypeError, ValueError):
        return None


def _seq_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    if ds is None:
        return None
    seq = ds.get(keyword)
    if seq is None or len(seq) == 0:
        return None
    return seq[0]


def _fg(keyword: str, per_frame: Dataset | None, shared: Dataset | None) -> Dataset | None:
    """A functional-group macro item: per-frame first, shared second."""
    return _seq_item(per_frame, keyword) or _seq_item(shared, keyword)


def _common(ds: Dataset, src: Source, offset: int | None, pixel_length: int | None) -> dict:
    # values through medrecon.io.dicom.rawvalues: the raw bytes decoded directly, without
    # pydicom's per-element conversion (the cost that dominated many-small-file folders)
    from medrecon.io.dicom import vendor

    fm = getattr(ds, "file_meta", None)
    ts = get_str(fm, "TransferSyntaxUID") if fm is not None else ""
    if not ts:
        ts = "1.2.840.10008.1.2"  # no meta: pydicom parsed it as implicit (or told us otherwise)
        if not getattr(ds, "is_implicit_VR", True):
            ts = "1.2.840.10008.1.2.1"
    sop = get_str(ds, "SOPClassUID") or (get_str(fm, "MediaStorageSOPClassUID") if fm is not None else "")
    image_type = tuple(x.upper() for x in get_strs(ds, "ImageType"))
    bits_allocated = get_int(ds, "BitsAllocated", 16) or 16
    bits_stored = get_int(ds, "BitsStored", bits_allocated) or 16
    manufacturer = get_str(ds, "Manufacturer").upper()
    uih_grid = vendor.uih_grid_slices(ds) if "UIH" in manufacturer or "UNITED IMAGING" in manufacturer else None
    return dict(
        source=src,
        series_uid=get_str(ds, "SeriesInstanceUID"),
        series_number=get_int(ds, "SeriesNumber"),
        modality=get_str(ds, "Modality"),
        description=get_str(ds, "SeriesDescription") or get_str(ds, "ProtocolName"),
        sop_class=sop,
        sop_instance=get_str(ds, "SOPInstanceUID"),
        rows=get_int(ds, "Rows", 0) or 0,
        cols=get_int(ds, "Columns", 0) or 0,
        transfer_syntax=ts,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        high_bit=get_int(ds, "HighBit", bits_stored - 1),
        pixel_representation=get_int(ds, "PixelRepresentation", 0) or 0,
        samples_per_pixel=get_int(ds, "SamplesPerPixel", 1) or 1,
        photometric=get_str(ds, "PhotometricInterpretation") or "MONOCHROME2",
        gantry_tilt=get_float(ds, "GantryDetectorTilt"),
        mosaic="MOSAIC" in image_type or uih_grid is not None,
        image_type=image_type,
        instance=get_int(ds, "InstanceNumber"),
        acquisition=get_int(ds, "AcquisitionNumber"),
        pixel_offset=offset,
        pixel_length=pixel_length,
        extra={
            "body_part": get_str(ds, "BodyPartExamined"),
            "manufacturer_model": get_str(ds, "ManufacturerModelName"),
            "protocol_name": get_str(ds, "ProtocolName"),
            "convolution_kernel": get_str(ds, "ConvolutionKernel"),
            "repetition_time": get_float(ds, "RepetitionTime"),
            "skip": ds.__dict__.get("_medrecon_skip", 0),
            "mosaic": _mosaic_geometry(ds) if "MOSAIC" in image_type else None,
            "uih_grid": uih_grid,
            **({"grid": vendor.uih_grid_facts(ds, uih_grid)} if uih_grid else {}),
            "pe_dir": get_str(ds, "InPlanePhaseEncodingDirection").upper(),
            "pepolar": vendor.ge_pepolar(ds) if manufacturer.startswith("GE") else None,
            "philips_ss": vendor.philips_scale_slope(ds) if "PHILIPS" in manufacturer else None,
        },
    )


def _mosaic_geometry(ds: Dataset):
    """Siemens mosaic: (number of slices, 4x4 affine in nibabel's (row, col, slice) order, LPS),
    read from the CSA header with nibabel's DICOM wrappers; None when it cannot be read."""
    import logging
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("nibabel").setLevel(logging.ERROR)
            from nibabel.nicom import dicomwrappers

            w = dicomwrappers.wrapper_from_data(ds.full() if hasattr(ds, "full") else ds)
            if not isinstance(w, dicomwrappers.MosaicWrapper):
                return None
            n = int(w.n_mosaic)
            A = np.asarray(w.affine, dtype=np.float64)
    except Exception:  # noqa: BLE001 - no CSA header or an unusual one: keep the 2D mosaic
        return None
    return n, A


def _classic_frames(ds: Dataset, common: dict, n_frames: int) -> list[FrameHeader]:
    from medrecon.io.dicom.vendor import private_frame_positions

    ipp = get_floats(ds, "ImagePositionPatient", 3)
    iop = get_floats(ds, "ImageOrientationPatient", 6)
    ps = get_floats(ds, "PixelSpacing", 2) or get_floats(ds, "ImagerPixelSpacing", 2)
    base = dict(
        ipp=np.array(ipp, dtype=np.float64) if ipp else None,
        iop=np.array(iop, dtype=np.float64) if iop else None,
        pixel_spacing=(ps[0], ps[1]) if ps else None,
        slice_thickness=get_float(ds, "SliceThickness"),
        spacing_between=get_float(ds, "SpacingBetweenSlices"),
        slope=get_float(ds, "RescaleSlope") or 1.0,
        intercept=get_float(ds, "RescaleIntercept") or 0.0,
        echo_number=get_int(ds, "EchoNumbers"),
        echo_time=get_float(ds, "EchoTime"),
        temporal=get_float(ds, "TemporalPositionIdentifier"),
        trigger_time=get_float(ds, "TriggerTime"),
        stack_id=None,
    )
    grid = common["extra"].get("grid")
    if base["ipp"] is None and grid and grid.get("positions"):
        # a UIH grid saved by slice: the first tile's position (0065,1051) places the grid
        base["ipp"] = np.array(grid["positions"][0], dtype=np.float64)
    if n_frames <= 1:
        return [FrameHeader(frame=None, n_frames_in_file=1, **common, **base)]
    # multi-frame without functional groups (e.g. NM, US, old multi-frame CT, UIH VFRAME):
    # per-frame positions from a private sequence when there is one; else, for objects whose
    # frames are slices of one stack, along the normal with SpacingBetweenSlices. A VFRAME object
    # without positions cannot be placed: its frames get no position (refused by the grouping).
    out = []
    private = private_frame_positions(ds, n_frames) if base["iop"] is not None else None
    vframe = any("VFRAME" in t for t in common["image_type"])
    sp = base["spacing_between"] or (None if vframe else base["slice_thickness"])
    for i in range(n_frames):
        b = dict(base)
        cm = dict(common, extra=dict(common["extra"]))
        if private is not None:
            b["ipp"] = private[i]
            cm["extra"]["private_positions"] = True
        elif vframe:
            b["ipp"] = None
            cm["extra"]["no_frame_positions"] = True
        elif base["ipp"] is not None and base["iop"] is not None and sp:
            n = np.cross(base["iop"][:3], base["iop"][3:])
            b["ipp"] = base["ipp"] + i * sp * n / np.linalg.norm(n)
            cm["extra"]["synthetic_positions"] = True
        out.append(FrameHeader(frame=i, n_frames_in_file=n_frames, **cm, **b))
    return out


def _enhanced_frames(ds: Dataset, common: dict, n_frames: int) -> list[FrameHeader]:
    shared = _seq_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    top_type = common.pop("image_type")
    out = []
    for i in range(n_frames):
        pf = per_frame[i] if i < len(per_frame) else None
        pos = _fg("PlanePositionSequence", pf, shared)
        ori = _fg("PlaneOrientationSequence", pf, shared)
        meas = _fg("PixelMeasuresSequence", pf, shared)
        pvt = _fg("PixelValueTransformationSequence", pf, shared)
        content = _fg("FrameContentSequence", pf, shared)
        echo = _fg("MREchoSequence", pf, shared)
        ftype_item = None
        for kw in ("MRImageFrameTypeSequence", "CTImageFrameTypeSequence", "XAXRFFrameCharacteristicsSequence"):
            ftype_item = _fg(kw, pf, shared)
            if ftype_item is not None:
                break
        seg = _fg("SegmentIdentificationSequence", pf, shared)
        ftype = tuple(str(x).upper() for x in (ftype_item.get("FrameType") or [])) if ftype_item else top_type
        if seg is not None:
            ftype = ftype + (f"SEGMENT {seg.get('ReferencedSegmentNumber')}",)
        ipp = pos.get("ImagePositionPatient") if pos is not None else ds.get("ImagePositionPatient")
        iop = ori.get("ImageOrientationPatient") if ori is not None else ds.get("ImageOrientationPatient")
        ps = meas.get("PixelSpacing") if meas is not None else ds.get("PixelSpacing")
        echo_time = _num(echo.get("EffectiveEchoTime")) if echo is not None else None
        temporal = _num(content.get("TemporalPositionIndex")) if content is not None else None
        cm = dict(common)
        cm["image_type"] = ftype
        if common["extra"].get("philips_ss") is not None or "PHILIPS" in get_str(ds, "Manufacturer").upper():
            from medrecon.io.dicom.vendor import philips_scale_slope

            cm["extra"] = dict(common["extra"], philips_ss=philips_scale_slope(ds, pf))
        out.append(FrameHeader(
            frame=i, n_frames_in_file=n_frames, **cm,
            ipp=np.array([float(x) for x in ipp], dtype=np.float64) if ipp and len(ipp) == 3 else None,
            iop=np.array([float(x) for x in iop], dtype=np.float64) if iop and len(iop) == 6 else None,
            pixel_spacing=(float(ps[0]), float(ps[1])) if ps and len(ps) == 2 else None,
            slice_thickness=_num(meas.get("SliceThickness")) if meas is not None else _num(ds.get("SliceThickness")),
            spacing_between=_num(meas.get("SpacingBetweenSlices")) if meas is not None else _num(ds.get("SpacingBetweenSlices")),
            slope=(_num(pvt.get("RescaleSlope")) if pvt is not None else _num(ds.get("RescaleSlope"))) or 1.0,
            intercept=(_num(pvt.get("RescaleIntercept")) if pvt is not None else _num(ds.get("RescaleIntercept"))) or 0.0,
            echo_number=None,
            echo_time=echo_time,
            temporal=temporal,
            trigger_time=None,
            stack_id=str(content.get("StackID")) if content is not None and content.get("StackID") is not None else None,
        ))
    return out


def headers_from_dataset(ds: Dataset, src: Source, offset: int | None = None,
                         file_size: int | None = None) -> list[FrameHeader]:
    """Turn one parsed dataset into frame headers ([] if it holds no image)."""
    if "Rows" not in ds or "Columns" not in ds:
        return []
    n_frames = get_int(ds, "NumberOfFrames") or 1
    pixel_length = None
    if offset is not None and file_size is not None:
        found = _native_pixel_length(src.path, offset, file_size, ds)
        offset, pixel_length = found if found is not None else (None, None)
    else:
        offset = None
    common = _common(ds, src, offset, pixel_length)
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return _enhanced_frames(ds, common, n_frames)
    return _classic_frames(ds, common, n_frames)


def _native_pixel_length(path: str, offset: int, file_size: int, ds: Dataset) -> tuple[int, int] | None:
    """If the element at ``offset`` is native (7FE0,0010) with a defined length, return
    ``(data_start, declared_length)`` (bytes); else ``None``."""
    fm = getattr(ds, "file_meta", None)
    ts = get_str(fm, "TransferSyntaxUID") if fm is not None else ""
    if ts not in _NATIVE_LE or offset + 8 > file_size:
        return None
    head = getattr(ds, "_medrecon_pixhead", None)
    if head is None:
        with open(path, "rb") as fh:
            fh.seek(offset)
            head = fh.read(12)
    if head[:4] != b"\xe0\x7f\x10\x00":
        return None
    if ts == "1.2.840.10008.1.2":  # implicit VR: tag + 4-byte length
        length = int.from_bytes(head[4:8], "little")
        start = 8
    else:
        vr = head[4:6]
        if vr in (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"):
            length = int.from_bytes(head[8:12], "little")
            start = 12
        else:
            length = int.from_bytes(head[6:8], "little")
            start = 8
    if length == 0xFFFFFFFF:
        return None
    return offset + start, length
