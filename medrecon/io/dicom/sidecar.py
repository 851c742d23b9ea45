"""BIDS-style JSON sidecar for a converted DICOM series (what ``dcm2niix -b y`` writes).

The fields neuroimaging tools read, with dcm2niix's field names and units (times in seconds,
angles in degrees, field strength in tesla), taken from the first image of the series (and, for
per-slice facts such as ``SliceTiming``, from one image per slice). **No patient identifiers**:
nothing about the patient, the institution, the station, the device serial number, the dates or
times of day, or any UID is written.

Orientation-dependent fields refer to the **medrecon output array** (axis ``i`` = DICOM column
index, ``j`` = DICOM row index, ``k`` = slices in ascending order along the normal). dcm2niix
flips the rows of every image, so its ``j`` points the other way: a dcm2niix ``"j-"`` is a
medrecon ``"j"`` for the same acquisition (``i`` / ``ROW`` encodings are unaffected).

Phase-encoding sign, where the vendor records it:

* Siemens: CSA ``PhaseEncodingDirectionPositive`` (1 = toward increasing row/column index);
* GE: the polarity bit and ky direction in the private ``(0043,102A)`` header (the same offsets
  dcm2niix reads); a reversed ``epi_pepolar`` volume toggles it;
* UIH: ``(0065,1058)``, 1 = flipped.

Without it only ``PhaseEncodingAxis`` is written (as dcm2niix does for Philips and Canon).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["sidecar_from_datasets", "sidecar_for_series", "sidecar_path", "write_sidecar", "manufacturer_short",
           "ge_phase_polarity", "philips_scaling", "IDENTIFYING_KEYS", "CONVERSION_SOFTWARE"]

CONVERSION_SOFTWARE = "medrecon"

#: Keys never written (dcm2niix writes some of them; they identify a patient, a site or a time).
IDENTIFYING_KEYS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientWeight", "PatientAge",
    "AccessionNumber", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "StationName", "DeviceSerialNumber", "ReferringPhysicianName", "StudyInstanceUID",
    "SeriesInstanceUID", "StudyID", "AcquisitionDateTime", "AcquisitionTime", "AcquisitionDate",
    "StudyDate", "StudyTime", "SeriesDate", "ProcedureStepDescription", "StudyDescription",
)


def manufacturer_short(name: str) -> str:
    """dcm2niix's short manufacturer name (``'GE MEDICAL SYSTEMS'`` -> ``'GE'``)."""
    u = (name or "").upper()
    for key, short in (("SIEMENS", "Siemens"), ("PHILIPS", "Philips"), ("GE ", "GE"), ("GE_", "GE"),
                       ("GEMS", "GE"), ("TOSHIBA", "Canon"), ("CANON", "Canon"), ("UIH", "UIH"),
                       ("UNITED IMAGING", "UIH"), ("HITACHI", "Hitachi"), ("BRUKER", "Bruker"),
                       ("MEDISO", "Mediso"), ("HYPERFINE", "Hyperfine")):
        if key in u + " ":
            return short
    if u == "GE":
        return "GE"
    return (name or "").strip()


def _f(v) -> float | None:
    try:
        if v is None or v == "":
            return None
        x = float(v)
        return x if np.isfinite(x) else None
    except (TypeError, ValueError):
        return None


def _num_out(x: float | None, digits: int = 6):
    """Numbers as dcm2niix prints them (``%g``: 6 significant digits; integers without .0)."""
    if x is None:
        return None
    y = float(f"{x:.{digits}g}")
    return int(y) if y == int(y) and abs(y) < 1e15 else y


def _s(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def ge_phase_polarity(ds) -> int | None:
    """GE phase-encoding polarity from the private ``(0043,102A)`` header.

    Returns 0 (unflipped), 1 (flipped) or None (absent, unreadable or not EPI). Offsets as read
    by dcm2niix: header offset at byte 24, version (float32) at that offset; from version
    25.002 on the fields move by 0x4C and the ky-direction offset by -0x8C; EPI flag 0x800 at
    +0x3A, polarity bit 0x0004 at +0x30, ky direction (2 = bottom-up, which inverts the
    polarity) at +0x394.
    """
    el = ds.get((0x0043, 0x102A)) if hasattr(ds, "get") else None
    if el is None:
        return None
    blob = el.value
    if not isinstance(blob, (bytes, bytearray)) or len(blob) < 916:
        return None
    try:
        hdr_offset = struct.unpack_from("<H", blob, 24)[0]
        if len(blob) < hdr_offset + 916:
            return None
        version = struct.unpack_from("<f", blob, hdr_offset)[0]
        if not 5.0 <= version <= 40.0:
            return None
        base, ky_off = hdr_offset, 0x394
        if version >= 25.002:
            base += 0x4C
            ky_off -= 0x8C
        if not struct.unpack_from("<H", blob, base + 0x3A)[0] & 0x800:
            return None  # not EPI
        flipped = bool(struct.unpack_from("<H", blob, base + 0x30)[0] & 0x0004)
        ky = struct.unpack_from("<H", blob, base + ky_off)[0]
    except struct.error:
        return None
    if ky == 2:  # bottom-up ky order inverts the polarity
        flipped = not flipped
    return int(flipped)


def _csa_value(ds, key: str):
    """A value list from the Siemens CSA image header (None when absent)."""
    import warnings

    ds = getattr(ds, "_ds", ds)  # a _Flat view: the CSA header lives in the dataset itself
    if hasattr(ds, "has_group"):  # a header read without pydicom: no CSA header, no pydicom
        if not ds.has_group(0x0029):
            return None
        ds = ds.full()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from nibabel.nicom import csareader

            csa = csareader.get_csa_header(ds, "image")
            if not csa or key not in csa.get("tags", {}):
                return None
            items = csa["tags"][key].get("items") or []
            return list(items) if items else None
    except Exception:  # noqa: BLE001 - no or odd CSA header
        return None


def _siemens_positive(ds) -> int | None:
    """Siemens CSA PhaseEncodingDirectionPositive (1/0), None when absent."""
    v = _csa_value(ds, "PhaseEncodingDirectionPositive")
    try:
        return None if not v else int(v[0])
    except (TypeError, ValueError):
        return None


def philips_scaling(ds) -> dict[str, float] | None:
    """Philips scale factors: RescaleSlope/Intercept (display), private scale slope (2005,100E),
    RealWorldValue slope/intercept; None when the private scale slope is absent."""
    from medrecon.io.dicom.vendor import philips_scale_slope  # the one (2005,100E) reader

    ss = philips_scale_slope(ds)
    pvt = None
    shared = ds.get("SharedFunctionalGroupsSequence")
    pf = ds.get("PerFrameFunctionalGroupsSequence")
    for seq in (pf, shared):
        if seq and "PixelValueTransformationSequence" in seq[0]:
            pvt = seq[0].PixelValueTransformationSequence[0]
            break
    src = pvt if pvt is not None else ds
    rs = _f(src.get("RescaleSlope"))
    ri = _f(src.get("RescaleIntercept"))
    if ss is None and pvt is not None:
        ss = philips_scale_slope(pvt)
    if ss is None or ss == 0:
        return None
    rwv = ds.get("RealWorldValueMappingSequence")
    if not rwv and pf and "RealWorldValueMappingSequence" in pf[0]:
        rwv = pf[0].RealWorldValueMappingSequence
    out = {"rescale_slope": rs if rs is not None else 1.0, "rescale_intercept": ri or 0.0, "scale_slope": ss}
    if rwv:
        out["rwv_slope"] = _f(rwv[0].get("RealWorldValueSlope"))
        out["rwv_intercept"] = _f(rwv[0].get("RealWorldValueIntercept"))
    return out


class _Flat:
    """Read-only view of a dataset that also finds attributes inside the shared and first
    per-frame functional groups of an enhanced object (one level of nesting), so that every
    sidecar field is found wherever the object keeps it."""

    def __init__(self, ds):
        self._ds = ds
        self._items = []
        for kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            seq = ds.get(kw)
            if seq:
                for el in seq[0]:
                    if el.VR == "SQ" and el.value:
                        self._items.append(el.value[0])

    def get(self, key, default=None):
        v = self._ds.get(key)
        if v is not None:
            return v
        for it in self._items:
            v = it.get(key)
            if v is not None:
                return v
        return default

    def __contains__(self, key):
        return self.get(key) is not None

    def __getattr__(self, name):
        return getattr(self._ds, name)


def _rc(ds) -> str:
    """InPlanePhaseEncodingDirection as ROW / COL (enhanced objects write COLUMN)."""
    rc = str(ds.get("InPlanePhaseEncodingDirection", "") or "").upper().strip()
    return "COL" if rc == "COLUMN" else rc


def _phase_encoding(ds, polarity_override: int | None = None) -> dict[str, Any]:
    rc = _rc(ds)
    out: dict[str, Any] = {}
    if rc not in ("ROW", "COL"):
        return out
    axis = "j" if rc == "COL" else "i"
    man = manufacturer_short(str(ds.get("Manufacturer", "")))
    positive = None
    if man == "Siemens":
        positive = _siemens_positive(ds)
        if positive is None:  # XA enhanced/classic: (0021,111C), 1 = positive
            el = ds.get((0x0021, 0x111C))
            if el is not None and not isinstance(el.value, (bytes, bytearray)):
                try:
                    positive = int(str(el.value[0] if isinstance(el.value, (list, tuple)) or
                                       type(el.value).__name__ == "MultiValue" else el.value).strip())
                except (TypeError, ValueError):
                    positive = None
    elif man == "GE":
        pol = ge_phase_polarity(ds)
        positive = None if pol is None else 1 - pol
    elif man == "UIH":
        el = ds.get((0x0065, 0x1058))
        if el is not None:
            try:
                positive = 0 if int(str(el.value).strip() or 0) == 1 else 1
            except ValueError:
                positive = None
    if polarity_override is not None and positive is not None:
        positive = 1 - positive if polarity_override else positive
    if positive is None:
        out["PhaseEncodingAxis"] = axis
    else:
        out["PhaseEncodingDirection"] = axis + ("" if positive else "-")
    if man == "GE":
        pol = ge_phase_polarity(ds)
        if pol is not None:
            if polarity_override:
                pol = 1 - pol
            out["PhaseEncodingPolarityGE"] = "Flipped" if pol else "Unflipped"
    return out


def _matrix_pe(ds) -> tuple[int | None, int | None]:
    rc = _rc(ds)
    am = ds.get("AcquisitionMatrix")
    acq = None
    if am is not None and len(am) == 4:
        acq = int(am[2]) + int(am[3]) if rc in ("ROW", "COL") else None
        if acq == 0:
            acq = None
    if acq is None and _f(ds.get("MRAcquisitionPhaseEncodingStepsInPlane")):
        acq = int(_f(ds.get("MRAcquisitionPhaseEncodingStepsInPlane")))
    recon = None
    if rc == "COL":
        recon = int(ds.get("Rows", 0) or 0) or None
    elif rc == "ROW":
        recon = int(ds.get("Columns", 0) or 0) or None
    return acq, recon


def _echo_spacing(ds, recon_pe: int | None, accel: float | None) -> dict[str, float]:
    """EffectiveEchoSpacing / TotalReadoutTime (s) where the header allows."""
    man = manufacturer_short(str(ds.get("Manufacturer", "")))
    ees = None
    if man == "GE":
        el = ds.get((0x0043, 0x102C))
        if el is not None and _f(el.value):
            ees = float(el.value) * 1e-6 / (accel or 1.0)
    elif man == "Siemens":
        el = ds.get((0x0019, 0x1028))  # BandwidthPerPixelPhaseEncode (Hz)
        bw = _f(el.value) if el is not None and not isinstance(el.value, (bytes, bytearray)) else None
        if bw is None:  # XA enhanced: private per-frame item (0021,11FE) -> (0021,1153)
            el = ds.get((0x0021, 0x1153))
            bw = _f(el.value) if el is not None and not isinstance(el.value, (bytes, bytearray)) else None
        if bw and recon_pe:
            ees = 1.0 / (bw * recon_pe)
    if ees is None or not recon_pe:
        return {}
    return {"EffectiveEchoSpacing": _num_out(ees), "TotalReadoutTime": _num_out(ees * (recon_pe - 1))}


def _slice_timing(datasets: list, man: str) -> list[float] | None:
    """Per-slice acquisition times (s, first slice acquired = 0) in the output slice order."""
    if not datasets:
        return None
    ds0 = datasets[0]
    if man == "UIH":
        from medrecon.io.dicom.vendor import uih_grid_facts, uih_grid_slices

        n = uih_grid_slices(ds0)
        t = uih_grid_facts(ds0, n).get("times") if n else None
        if t:  # one AcquisitionTime per tile (0065,1051)
            return [_num_out(x - min(t)) for x in t]
    if man == "Siemens" and "MOSAIC" in [str(x).upper() for x in (ds0.get("ImageType") or [])]:
        el = ds0.get((0x0019, 0x1029))
        if el is not None and el.value is not None and not isinstance(el.value, (bytes, bytearray)):
            t = [float(x) for x in el.value]
            if len(t) > 1:
                return [_num_out(x / 1000.0) for x in t]
        t = _csa_value(ds0, "MosaicRefAcqTimes")
        if t is not None and len(t) > 1:
            n = _csa_value(ds0, "NumberOfImagesInMosaic")
            t = [float(x) for x in t][: int(n[0]) if n else len(t)]
            return [_num_out(x / 1000.0) for x in t]
        return None
    if len(datasets) < 2:
        return None
    times = []
    for ds in datasets:
        v = None
        if man == "GE":
            el = ds.get((0x0021, 0x105E))  # RTIA timer, 1/10 ms
            v = _f(el.value) / 10000.0 if el is not None and _f(el.value) is not None else None
        if v is None or (man == "GE" and v == 0.0):
            tt = _f(ds.get("TriggerTime"))
            v = tt / 1000.0 if tt is not None else None
        times.append(v)
    if any(t is None for t in times) or max(times) - min(times) <= 0:
        return None
    lo = min(times)
    return [_num_out(t - lo) for t in times]


def sidecar_from_datasets(datasets: Iterable, *, image_type: Iterable[str] | None = None,
                          polarity_reversed: bool = False, philips: str | None = None,
                          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the sidecar dictionary.

    Parameters
    ----------
    datasets : iterable of pydicom Dataset
        The first image of each output slice, in output slice order (the first one supplies
        every per-series field).
    image_type : iterable of str, optional
        The series' ImageType (enhanced objects: the frame type); default the first dataset's.
    polarity_reversed : bool
        The series holds the reversed-polarity volumes of a GE ``epi_pepolar`` acquisition.
    philips : {"precise", "display"}, optional
        Which Philips values the volume holds (recorded with the scale factors).
    extra : dict, optional
        Further fields (e.g. medrecon's own notes), merged last.
    """
    dss = list(datasets)
    ds = _Flat(dss[0])
    man = manufacturer_short(str(ds.get("Manufacturer", "")))
    sc: dict[str, Any] = {}

    def put(key, value):
        if value is None or value == "" or value == []:
            return
        sc[key] = value

    put("Modality", _s(ds.get("Modality")))
    put("MagneticFieldStrength", _num_out(_f(ds.get("MagneticFieldStrength"))))
    freq = _f(ds.get("ImagingFrequency"))
    if freq is None:  # enhanced MR: MR Imaging Modifier macro
        tf = ds.get("TransmitterFrequency")
        freq = _f(tf[0] if isinstance(tf, (list, tuple)) or type(tf).__name__ == "MultiValue" else tf)
    put("ImagingFrequency", _num_out(freq, 9))
    put("Manufacturer", man)
    put("ManufacturersModelName", _s(ds.get("ManufacturerModelName")))
    put("BodyPart", _s(ds.get("BodyPartExamined")))
    put("PatientPosition", _s(ds.get("PatientPosition")))
    put("SoftwareVersions", _s(ds.get("SoftwareVersions")))
    put("MRAcquisitionType", _s(ds.get("MRAcquisitionType")))
    put("SeriesDescription", _s(ds.get("SeriesDescription")))
    put("ProtocolName", _s(ds.get("ProtocolName")))
    put("ScanningSequence", _s(ds.get("ScanningSequence")) or _enhanced_scanning_sequence(ds))
    put("SequenceVariant", _s(ds.get("SequenceVariant")))
    put("ScanOptions", _s(ds.get("ScanOptions")))
    seq_name = _s(ds.get("SequenceName"))
    if not seq_name and man == "GE":
        el = ds.get((0x0019, 0x109C))
        seq_name = _s(el.value) if el is not None else ""
    if not seq_name and man == "Philips":
        el = ds.get((0x2001, 0x1020))  # Scanning Technique Description MR
        seq_name = _s(el.value) if el is not None and not isinstance(el.value, (bytes, bytearray)) else ""
    if not seq_name:
        seq_name = _s(ds.get("PulseSequenceName"))
    put("SequenceName", seq_name)
    itype = list(image_type) if image_type is not None else [str(x) for x in (ds.get("ImageType") or [])]
    put("ImageType", [str(x) for x in itype])
    sn = ds.get("SeriesNumber")
    put("SeriesNumber", int(sn) if sn not in (None, "") else None)
    an = ds.get("AcquisitionNumber")
    put("AcquisitionNumber", int(an) if an not in (None, "") else None)
    if philips and man == "Philips":
        p = philips_scaling(ds)
        if p is not None:
            if p.get("rwv_slope") is not None:
                put("PhilipsRWVSlope", _num_out(p["rwv_slope"]))
                put("PhilipsRWVIntercept", _num_out(p.get("rwv_intercept") or 0.0))
            put("PhilipsRescaleSlope", _num_out(p["rescale_slope"]))
            put("PhilipsRescaleIntercept", _num_out(p["rescale_intercept"]))
            put("PhilipsScaleSlope", _num_out(p["scale_slope"]))
            sc["UsePhilipsFloatNotDisplayScaling"] = 1 if philips == "precise" else 0
    put("SliceThickness", _num_out(_f(ds.get("SliceThickness"))))
    put("SpacingBetweenSlices", _num_out(_f(ds.get("SpacingBetweenSlices"))))
    put("SAR", _num_out(_f(ds.get("SAR"))))
    te = _f(ds.get("EchoTime"))
    if te is None:
        for seq in (ds.get("PerFrameFunctionalGroupsSequence"), ds.get("SharedFunctionalGroupsSequence")):
            if seq and "MREchoSequence" in seq[0]:
                te = _f(seq[0].MREchoSequence[0].get("EffectiveEchoTime"))
                break
    if te is not None and te > 0:
        put("EchoTime", _num_out(te / 1000.0))
    tr = _timing_value(ds, "RepetitionTime")
    if tr:
        put("RepetitionTime", _num_out(tr / 1000.0))
    ti = _f(ds.get("InversionTime"))
    if not ti and man == "Philips":
        el = ds.get((0x2001, 0x101B))  # Philips prepulse delay (dcm2niix's InversionTime)
        ti = _f(el.value) if el is not None and not isinstance(el.value, (bytes, bytearray)) else None
    if ti:
        put("InversionTime", _num_out(ti / 1000.0))
    fa = _timing_value(ds, "FlipAngle")
    put("FlipAngle", _num_out(fa))
    put("PercentPhaseFOV", _num_out(_f(ds.get("PercentPhaseFieldOfView"))))
    put("PercentSampling", _num_out(_f(ds.get("PercentSampling"))))
    etl = _f(ds.get("EchoTrainLength"))
    put("EchoTrainLength", int(etl) if etl else None)
    acq_pe, recon_pe = _matrix_pe(ds)
    if "MOSAIC" in [str(x).upper() for x in itype] and recon_pe and acq_pe:
        recon_pe = acq_pe if recon_pe % acq_pe == 0 and recon_pe > acq_pe else recon_pe
    put("AcquisitionMatrixPE", acq_pe)
    put("ReconMatrixPE", recon_pe)
    accel = None
    el = ds.get((0x0043, 0x1083)) if man == "GE" else None  # GE ASSET factor(s)
    if el is not None:
        try:
            v = el.value
            accel = 1.0 / float(v[0] if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue" else v)
            accel = accel if accel >= 1 else None
        except (TypeError, ValueError, ZeroDivisionError):
            accel = None
    if accel is None:
        for seq in (ds.get("SharedFunctionalGroupsSequence"),):
            if seq and "MRModifierSequence" in seq[0]:
                accel = _f(seq[0].MRModifierSequence[0].get("ParallelReductionFactorInPlane"))
    sc.update(_echo_spacing(ds, recon_pe, accel))
    if man == "UIH" and "TotalReadoutTime" not in sc:
        seq = ds.get((0x0065, 0x1051))  # per-tile items: AcquisitionDuration (ms) of the readout, as dcm2niix
        dur = _f(seq.value[0].get("AcquisitionDuration")) if seq is not None and seq.value else None
        if dur:
            sc["TotalReadoutTime"] = _num_out(dur / 1000.0)
    put("PixelBandwidth", _num_out(_f(ds.get("PixelBandwidth"))))
    sc.update(_phase_encoding(ds, 1 if polarity_reversed else None))
    st = _slice_timing(dss, man)
    if st:
        sc["SliceTiming"] = st
    iop = ds.get("ImageOrientationPatient")
    if iop is None:
        for seq in (ds.get("SharedFunctionalGroupsSequence"), ds.get("PerFrameFunctionalGroupsSequence")):
            if seq and "PlaneOrientationSequence" in seq[0]:
                iop = seq[0].PlaneOrientationSequence[0].get("ImageOrientationPatient")
                break
    if iop is not None and len(iop) == 6:
        sc["ImageOrientationPatientDICOM"] = [_num_out(float(x)) for x in iop]
    put("InPlanePhaseEncodingDirectionDICOM", _rc(ds))
    if extra:
        sc.update(extra)
    for k in IDENTIFYING_KEYS:
        sc.pop(k, None)
    from medrecon.version import __version__ as _v  # noqa: PLC0415

    sc["ConversionSoftware"] = CONVERSION_SOFTWARE
    sc["ConversionSoftwareVersion"] = str(_v)
    return sc


def _enhanced_scanning_sequence(ds) -> str:
    """ScanningSequence of an enhanced MR object, from EchoPulseSequence and
    EchoPlanarPulseSequence (as dcm2niix): EP (gradient-echo EPI), SE\\EP, SE, GR, SE\\GR."""
    echo = _s(ds.get("EchoPulseSequence")).upper()
    epi = _s(ds.get("EchoPlanarPulseSequence")).upper() == "YES"
    base = {"SPIN": "SE", "GRADIENT": "GR", "BOTH": "SE\\GR"}.get(echo, "")
    if epi:
        return "SE\\EP" if base == "SE" else "EP"
    return base


def _timing_value(ds, key: str):
    """``key`` from the top level, else from the enhanced MR timing functional group (shared first)."""
    v = _f(ds.get(key))
    if v is None:
        for seq in (ds.get("SharedFunctionalGroupsSequence"), ds.get("PerFrameFunctionalGroupsSequence")):
            if seq and "MRTimingAndRelatedParametersSequence" in seq[0]:
                return _f(seq[0].MRTimingAndRelatedParametersSequence[0].get(key))
    return v


def sidecar_path(image_path: str | os.PathLike) -> Path:
    """``x.nii.gz`` / ``x.nii`` / ``x.nrrd`` -> ``x.json`` (beside it)."""
    p = Path(image_path)
    name = p.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            return p.with_name(name[: -len(ext)] + ".json")
    return p.with_name(name + ".json")


def write_sidecar(image_path: str | os.PathLike, sidecar: dict[str, Any]) -> Path:
    """Write ``sidecar`` as JSON beside ``image_path`` (atomically); returns the JSON path."""
    from medrecon.io.atomic import atomic_write_text

    out = sidecar_path(image_path)
    text = json.dumps(sidecar, indent="\t", ensure_ascii=True) + "\n"
    atomic_write_text(out, text)
    return out


def sidecar_for_series(series, philips_scaling: str | None = "precise") -> dict[str, Any]:
    """The sidecar of one :class:`~medrecon.io.dicom.group.DicomSeries` (headers re-read from the
    first image of each slice position; one file for a mosaic or a multi-frame object)."""
    from medrecon.io.dicom.scan import read_dataset

    firsts = [series.frames[pos[0]] for pos in series.slices] if series.slices else series.frames[:1]
    seen: set = set()
    dss = []
    for f in firsts:
        if f.source in seen:
            continue
        seen.add(f.source)
        res = read_dataset(f.source, stop_before_pixels=True)
        if res is not None:
            dss.append(res[0])
    if not dss:
        return {"ConversionSoftware": CONVERSION_SOFTWARE}
    philips = philips_scaling if any(f.extra.get("philips_ss") for f in series.frames) else None
    extra: dict[str, Any] = {}
    if series.series_number is not None:
        extra["SeriesNumber"] = int(series.series_number)
    if series.echo is not None and series.echo > 0:  # this series' echo (multi-echo enhanced objects)
        extra["EchoTime"] = _num_out(series.echo / 1000.0)
    extra.update(_series_timing(series, dss, firsts))
    if series.mosaic is not None:  # a mosaic / UIH grid: the reconstructed matrix is one tile's
        cols, rows = series.size()[:2]
        rc = str(series.frames[0].extra.get("pe_dir") or "")
        if rc in ("ROW", "COL"):
            extra["ReconMatrixPE"] = rows if rc == "COL" else cols
    itype = list(series.image_type)
    return sidecar_from_datasets(dss, image_type=itype, polarity_reversed=series.pepolar_reversed,
                                 philips=philips, extra=extra)


def _series_timing(series, dss: list, firsts: list) -> dict[str, Any]:
    """SliceTiming and RepetitionTime facts that need more than the first file (see
    :mod:`medrecon.io.dicom.slicetiming`): per-frame times of enhanced objects, the next volume's
    mosaic times when the first volume's exceed TR, inference from the vendor's slice order, and
    Philips' TR of a multi-dynamic series from (2005,10A0) (dynamic scan begin times)."""
    from medrecon.io.dicom import slicetiming
    from medrecon.io.dicom.scan import read_dataset

    ds0 = dss[0]
    man = manufacturer_short(str(ds0.get("Manufacturer", "")))
    tr = _f(_timing_value(_Flat(ds0), "RepetitionTime"))
    out: dict[str, Any] = {}
    st = _slice_timing(dss, man)
    if st and tr and max(st) >= tr / 1000.0 and series.mosaic is not None and len(series.slices) == 1:
        st = None
        for i in series.slices[0][1:3]:  # the first volume's times are not of one TR: the next volume's
            res = read_dataset(series.frames[i].source, stop_before_pixels=True)
            t = _slice_timing([res[0]], man) if res is not None else None
            if t and max(t) < tr / 1000.0:
                st = t
                break
        out["SliceTiming"] = st
    if st is None and all(f.frame is not None for f in firsts) and firsts and firsts[0].n_frames_in_file > 1:
        by_src: dict = {}
        for f in firsts:
            by_src.setdefault(f.source, []).append(f.frame)
        if len(by_src) == 1:
            t = slicetiming.frame_times(ds0, next(iter(by_src.values())))
            st = out["SliceTiming"] = [_num_out(x) for x in t] if t else None
    if st is None:
        t = slicetiming.inferred_slice_timing(series, ds0, man)
        if t:
            out["SliceTiming"] = [_num_out(x) for x in t]
    if "SliceTiming" in out and not out["SliceTiming"]:
        del out["SliceTiming"]
    if man == "Philips" and series.n_per_position > 1 and series.slices:
        vols = [series.frames[i] for i in series.slices[0]]
        last = read_dataset(vols[-1].source, stop_before_pixels=True) if vols[-1].source != vols[0].source else (ds0,)
        t = [_philips_dynamic_time(ds, f.frame) for ds, f in ((ds0, vols[0]), (last[0] if last else None, vols[-1]))]
        if None not in t and t[1] > t[0]:
            out["RepetitionTime"] = _num_out((t[1] - t[0]) / (len(vols) - 1))
    return out


def _philips_dynamic_time(ds, frame: int | None) -> float | None:
    """Philips dynamic scan begin time (2005,10A0), s: top level, or in the frame's private item."""
    if ds is None:
        return None
    cands = [ds]
    pf = ds.get("PerFrameFunctionalGroupsSequence") if frame is not None else None
    if pf and frame < len(pf):
        priv = pf[frame].get((0x2005, 0x140F))
        if priv is not None and priv.value:
            cands.insert(0, priv.value[0])
    for c in cands:
        el = c.get((0x2005, 0x10A0))
        if el is not None and not isinstance(el.value, (bytes, bytearray)) and _f(el.value) is not None:
            return _f(el.value)
    return None
