"""A fast header reader for the common case: a plain file with preamble and file meta, the dataset
in explicit or implicit VR little endian (every native and encapsulated transfer syntax except
deflate and big endian).

It walks the element headers of one buffered read up to the Pixel Data element and returns a
:class:`LiteDataset`: the raw elements (values stay bytes until asked for, sequences included),
readable through :mod:`medrecon.io.dicom.rawvalues` and by keyword for the attributes medrecon
reads (:data:`KEYWORDS`), **without importing pydicom** (its import alone costs more than a
thousand small files). Anything else (a sequence, a private element, an attribute outside the
table, iteration) is answered by the equivalent pydicom :class:`~pydicom.dataset.Dataset` of the
same raw elements, built on first need (:meth:`LiteDataset.full`), which is what
``pydicom.dcmread(..., stop_before_pixels=True)`` gives. Anything unusual in the file (no
preamble, other transfer syntaxes, a header longer than the buffer, malformed lengths) returns
``None`` and the caller uses pydicom, so results never depend on this path;
``tests/io/dicom_breadth`` checks that both give the same frame headers on every file of
``../shared/data``, and that :data:`KEYWORDS` agrees with pydicom's dictionary.
"""
from __future__ import annotations

import struct
from typing import Any, NamedTuple

__all__ = ["fast_read_header", "HEAD_BYTES", "LiteDataset", "RawElem", "KEYWORDS", "TAG_VR"]

#: keyword -> (tag, VR) of the attributes medrecon reads by keyword (checked against pydicom's
#: dictionary by the tests). Others are looked up in pydicom's dictionary.
KEYWORDS: dict[str, tuple[int, str]] = {
    "AcquisitionDuration": (0x00189073, "FD"),
    "AcquisitionMatrix": (0x00181310, "US"),
    "AcquisitionNumber": (0x00200012, "IS"),
    "AcquisitionTime": (0x00080032, "TM"),
    "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"),
    "BodyPartExamined": (0x00180015, "CS"),
    "CTImageFrameTypeSequence": (0x00189329, "SQ"),
    "Columns": (0x00280011, "US"),
    "ConvolutionKernel": (0x00181210, "SH"),
    "EchoNumbers": (0x00180086, "IS"),
    "EchoPlanarPulseSequence": (0x00189018, "CS"),
    "EchoPulseSequence": (0x00189008, "CS"),
    "EchoTime": (0x00180081, "DS"),
    "EchoTrainLength": (0x00180091, "IS"),
    "EffectiveEchoTime": (0x00189082, "FD"),
    "FlipAngle": (0x00181314, "DS"),
    "FrameAcquisitionDateTime": (0x00189074, "DT"),
    "FrameContentSequence": (0x00209111, "SQ"),
    "FrameOfReferenceUID": (0x00200052, "UI"),
    "FrameType": (0x00089007, "CS"),
    "GantryDetectorTilt": (0x00181120, "DS"),
    "HighBit": (0x00280102, "US"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "ImagePositionPatient": (0x00200032, "DS"),
    "ImageType": (0x00080008, "CS"),
    "ImagerPixelSpacing": (0x00181164, "DS"),
    "ImagingFrequency": (0x00180084, "DS"),
    "ImplementationClassUID": (0x00020012, "UI"),
    "InPlanePhaseEncodingDirection": (0x00181312, "CS"),
    "InstanceNumber": (0x00200013, "IS"),
    "InversionTime": (0x00180082, "DS"),
    "MRAcquisitionPhaseEncodingStepsInPlane": (0x00189231, "US"),
    "MRAcquisitionType": (0x00180023, "CS"),
    "MREchoSequence": (0x00189114, "SQ"),
    "MRImageFrameTypeSequence": (0x00189226, "SQ"),
    "MRModifierSequence": (0x00189115, "SQ"),
    "MRTimingAndRelatedParametersSequence": (0x00189112, "SQ"),
    "MagneticFieldStrength": (0x00180087, "DS"),
    "Manufacturer": (0x00080070, "LO"),
    "ManufacturerModelName": (0x00081090, "LO"),
    "MediaStorageSOPClassUID": (0x00020002, "UI"),
    "MediaStorageSOPInstanceUID": (0x00020003, "UI"),
    "Modality": (0x00080060, "CS"),
    "NumberOfFrames": (0x00280008, "IS"),
    "ParallelReductionFactorInPlane": (0x00189069, "FD"),
    "PatientPosition": (0x00185100, "CS"),
    "PerFrameFunctionalGroupsSequence": (0x52009230, "SQ"),
    "PercentPhaseFieldOfView": (0x00180094, "DS"),
    "PercentSampling": (0x00180093, "DS"),
    "PhotometricInterpretation": (0x00280004, "CS"),
    "PixelBandwidth": (0x00180095, "DS"),
    "PixelData": (0x7FE00010, "OB or OW"),
    "PixelMeasuresSequence": (0x00289110, "SQ"),
    "PixelRepresentation": (0x00280103, "US"),
    "PixelSpacing": (0x00280030, "DS"),
    "PixelValueTransformationSequence": (0x00289145, "SQ"),
    "PlaneOrientationSequence": (0x00209116, "SQ"),
    "PlanePositionSequence": (0x00209113, "SQ"),
    "ProtocolName": (0x00181030, "LO"),
    "PulseSequenceName": (0x00189005, "SH"),
    "RealWorldValueIntercept": (0x00409224, "FD"),
    "RealWorldValueMappingSequence": (0x00409096, "SQ"),
    "RealWorldValueSlope": (0x00409225, "FD"),
    "RepetitionTime": (0x00180080, "DS"),
    "RescaleIntercept": (0x00281052, "DS"),
    "RescaleSlope": (0x00281053, "DS"),
    "Rows": (0x00280010, "US"),
    "SAR": (0x00181316, "DS"),
    "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"),
    "SamplesPerPixel": (0x00280002, "US"),
    "ScanOptions": (0x00180022, "CS"),
    "ScanningSequence": (0x00180020, "CS"),
    "SegmentIdentificationSequence": (0x0062000A, "SQ"),
    "SequenceName": (0x00180024, "SH"),
    "SequenceVariant": (0x00180021, "CS"),
    "SeriesDescription": (0x0008103E, "LO"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "SeriesNumber": (0x00200011, "IS"),
    "SharedFunctionalGroupsSequence": (0x52009229, "SQ"),
    "SliceThickness": (0x00180050, "DS"),
    "SoftwareVersions": (0x00181020, "LO"),
    "SpacingBetweenSlices": (0x00180088, "DS"),
    "StackID": (0x00209056, "SH"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "TemporalPositionIdentifier": (0x00200100, "IS"),
    "TemporalPositionIndex": (0x00209128, "UL"),
    "TransferSyntaxUID": (0x00020010, "UI"),
    "TransmitterFrequency": (0x00189098, "FD"),
    "TriggerTime": (0x00181060, "DS"),
    "WindowCenter": (0x00281050, "DS"),
    "WindowWidth": (0x00281051, "DS"),
    "XAXRFFrameCharacteristicsSequence": (0x00189412, "SQ"),
}
#: tag -> VR for the same attributes (implicit VR files)
TAG_VR = {t: vr for t, vr in KEYWORDS.values()}
_STR_VRS = {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UI", "UT", "UC", "UR"}
_BIN = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}


class RawElem(NamedTuple):
    """One element as read from the file (the fields of pydicom's ``RawDataElement``)."""

    tag: int
    VR: str | None
    length: int
    value: bytes
    value_tell: int
    is_implicit_VR: bool
    is_little_endian: bool = True
    is_raw: bool = True


class _Elem:
    """What ``get(tag)`` gives for an element (pydicom's DataElement has ``.value`` too)."""

    __slots__ = ("tag", "VR", "value")

    def __init__(self, tag, vr, value):
        self.tag, self.VR, self.value = tag, vr, value


def _convert(vr: str, raw: bytes):
    """A raw value as pydicom gives it for the plain VRs (None when another VR needs pydicom)."""
    if vr in _STR_VRS or vr in ("DS", "IS"):
        text = raw.decode("latin-1").rstrip("\x00 ").lstrip(" ")
        parts = [p.strip() for p in text.split("\\")] if "\\" in text else [text.strip()]
        if vr in ("DS", "IS"):
            out = []
            for p_ in parts:
                if p_ == "":
                    out.append("")
                    continue
                try:
                    out.append(float(p_) if vr == "DS" else int(p_))
                except ValueError:
                    return None
            parts = out
        if len(parts) == 1:
            return parts[0]
        return parts
    fmt = _BIN.get(vr)
    if fmt is not None:
        size = struct.calcsize(fmt)
        n = len(raw) // size
        if n == 0:
            return None
        vals = struct.unpack("<" + fmt * n, raw[: n * size])
        return vals[0] if n == 1 else list(vals)
    return None


class LiteDataset:
    """The raw elements of one header (see the module docstring); pydicom only when needed."""

    def __init__(self, elems: dict, implicit: bool = False):
        self._dict = elems
        self._implicit = implicit
        self._full = None
        self.file_meta = None
        self.preamble = b""
        self.original_encoding = (implicit, True)

    is_little_endian = True

    @property
    def is_implicit_VR(self) -> bool:
        return self._implicit

    def set_original_encoding(self, implicit, little, _charset=None):
        self.original_encoding = (implicit, little)

    @staticmethod
    def _key(key):
        if key.__class__ is int:
            return key
        if isinstance(key, tuple):
            return (key[0] << 16) | key[1]
        if isinstance(key, str):
            kt = KEYWORDS.get(key)
            return kt[0] if kt is not None else None
        return int(key)  # a pydicom BaseTag

    def full(self):
        """The equivalent pydicom Dataset (raw elements), built once."""
        if self._full is None:
            from pydicom.dataelem import RawDataElement
            from pydicom.dataset import Dataset, FileMetaDataset
            from pydicom.tag import TupleTag

            def conv(d):
                return {t: RawDataElement(TupleTag((t >> 16, t & 0xFFFF)), e.VR, e.length, e.value, e.value_tell,
                                          e.is_implicit_VR, True, True, False) for t, e in d.items()}

            ds = Dataset(conv(self._dict))
            if self.file_meta is not None:
                ds.file_meta = FileMetaDataset(conv(self.file_meta._dict))
            ds.preamble = self.preamble
            ds.set_original_encoding(self._implicit, True, None)
            for k, v in self.__dict__.items():
                if k.startswith("_medrecon"):
                    setattr(ds, k, v)
            self._full = ds
        return self._full

    def __contains__(self, key) -> bool:
        tag = self._key(key)
        if tag is None:
            return key in self.full()
        return tag in self._dict

    def get(self, key, default=None) -> Any:
        tag = self._key(key)
        if tag is None:
            return self.full().get(key, default)
        elem = self._dict.get(tag)
        if elem is None:
            return default
        vr = elem.VR or TAG_VR.get(tag)
        value = _convert(vr, elem.value) if vr is not None and vr != "SQ" else None
        if value is None:
            return self.full().get(key, default)
        if isinstance(key, str):
            return value
        return _Elem(tag, vr, value)

    def __getitem__(self, key):
        return self.full()[key]

    def __iter__(self):
        return iter(self.full())

    def __len__(self) -> int:
        return len(self._dict)

    def has_group(self, group: int) -> bool:
        """Whether any element of ``group`` is present (without pydicom)."""
        return any(t >> 16 == group for t in self._dict)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in KEYWORDS:
            v = self.get(name)
            if v is None and KEYWORDS[name][0] not in self._dict:
                raise AttributeError(name)
            return v
        return getattr(self.full(), name)



#: Bytes read at once; a header longer than this goes through pydicom.
HEAD_BYTES = 1 << 18
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OW", b"SQ", b"UC", b"UR", b"UT", b"UN", b"OV", b"SV", b"UV"}
_LE_TS = {"1.2.840.10008.1.2": True, "1.2.840.10008.1.2.1": False}  # value: implicit VR
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_UNDEF = 0xFFFFFFFF
_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_tag = struct.Struct("<HH").unpack_from


def _skip_undefined(buf: bytes, pos: int, implicit: bool, depth: int = 0) -> int:
    """Position just after the sequence delimiter of an undefined-length sequence whose value
    starts at ``pos``; raises ValueError when the buffer ends first."""
    n = len(buf)
    if depth > 16:
        raise ValueError("sequence nesting too deep")
    while pos + 8 <= n:
        g, e = _tag(buf, pos)
        length = _u32(buf, pos + 4)[0]
        pos += 8
        if (g, e) == (0xFFFE, 0xE0DD):  # sequence delimiter
            return pos
        if (g, e) != (0xFFFE, 0xE000):
            raise ValueError("item expected in sequence")
        if length != _UNDEF:
            pos += length
            continue
        # undefined-length item: elements until the item delimiter
        while True:
            if pos + 8 > n:
                raise ValueError("buffer ends inside an item")
            g, e = _tag(buf, pos)
            if (g, e) == (0xFFFE, 0xE00D):
                pos += 8
                break
            pos, _vr, vlen, vstart = _element_header(buf, pos, implicit)
            if vlen == _UNDEF:
                pos = _skip_undefined(buf, vstart, implicit, depth + 1)
            else:
                pos = vstart + vlen
    raise ValueError("buffer ends inside a sequence")


def _element_header(buf: bytes, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
    """(tag, VR, length, value start) of the element at ``pos``."""
    if pos + 8 > len(buf):
        raise ValueError("buffer ends inside an element header")
    g, e = _tag(buf, pos)
    tag = (g << 16) | e
    if implicit or g == 0xFFFE:
        return tag, None, _u32(buf, pos + 4)[0], pos + 8
    vr = buf[pos + 4:pos + 6]
    if vr in _LONG_VRS:
        if pos + 12 > len(buf):
            raise ValueError("buffer ends inside an element header")
        return tag, vr, _u32(buf, pos + 8)[0], pos + 12
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise ValueError("bad VR")
    return tag, vr, _u16(buf, pos + 6)[0], pos + 8


def fast_read_header(fh, file_size: int) -> tuple[LiteDataset, int] | None:
    """Read the header of an open plain file (position 0). Returns ``(dataset, pixel_offset)``
    with ``pixel_offset`` the file offset of the Pixel Data element tag (the file size when the
    file has no pixel data), or ``None`` when the file needs pydicom."""
    buf = fh.read(HEAD_BYTES)
    if len(buf) < 144 or buf[128:132] != b"DICM":
        return None
    try:
        pos = 132
        meta: dict = {}
        # file meta: explicit VR little endian, group 0002
        while pos + 8 <= len(buf) and _u16(buf, pos)[0] == 0x0002:
            tag, vr, length, vstart = _element_header(buf, pos, False)
            if length == _UNDEF:
                return None
            meta[tag] = RawElem(tag, vr.decode(), length, buf[vstart:vstart + length], vstart, False)
            pos = vstart + length
        ts_el = meta.get(0x00020010)
        if ts_el is None:
            return None
        ts = ts_el.value.decode("ascii", "replace").rstrip("\x00 ")
        if ts in _LE_TS:
            implicit = _LE_TS[ts]
        elif ts.startswith("1.2.840.10008.1.2.4.") or ts in ("1.2.840.10008.1.2.5",):
            implicit = False  # encapsulated: the dataset itself is explicit VR little endian
        else:
            return None
        elems: dict = {}
        n = len(buf)
        pixel_offset = None
        while pos < n:
            if pos + 8 > n:
                if n < HEAD_BYTES and pos == n:
                    break
                return None
            tag, vr, length, vstart = _element_header(buf, pos, implicit)
            if tag in _PIXEL_TAGS:
                pixel_offset = pos
                break
            vr_s = vr.decode() if vr is not None else None
            if length == _UNDEF:
                if vr_s not in (None, "SQ", "UN"):
                    return None
                end = _skip_undefined(buf, vstart, implicit)
                value = buf[vstart:end - 8]  # without the sequence delimiter
                vr_s = "SQ" if vr_s in (None, "UN") and tag != 0xFFFEE000 else vr_s
                elems[tag] = RawElem(tag, vr_s, len(value), value, vstart, implicit)
                pos = end
                continue
            if vstart + length > n:
                return None  # header longer than the buffer (or truncated): pydicom decides
            elems[tag] = RawElem(tag, vr_s, length, buf[vstart:vstart + length], vstart, implicit)
            pos = vstart + length
        if pixel_offset is None:
            if n >= HEAD_BYTES:
                return None
            pixel_offset = n
    except (ValueError, struct.error, IndexError, UnicodeDecodeError):
        return None
    ds = LiteDataset(elems, implicit)
    ds.file_meta = LiteDataset(meta, False)
    ds.preamble = buf[:128]
    ds._medrecon_pixhead = buf[pixel_offset:pixel_offset + 12]
    ds._medrecon_head = buf[:pixel_offset]  # for medrecon.io.dicom.template
    return ds, pixel_offset
