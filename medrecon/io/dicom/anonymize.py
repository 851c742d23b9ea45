"""A de-identified copy of a DICOM series: the Basic Application Level Confidentiality Profile
(DICOM PS3.15 Annex E, table E.1-1) with the **Retain Safe Private Option**, applied with the
``dicom-anonymizer`` package's rules (KitwareMedical; the 2026c edition of the table).

What happens to each attribute is the profile's action code: **X** removed, **Z** emptied (or a
dummy value), **D** replaced by a dummy value, **U** UIDs replaced by new ones. UIDs are
remapped consistently for the whole run (every file of a study keeps one new
StudyInstanceUID, one SeriesInstanceUID per series, one FrameOfReferenceUID; references between
objects stay valid). Every source object gets its own new SOPInstanceUID, also when the source
UIDs are empty, missing or reused by different objects (two copies of one object, same UID and
same series and instance number, stay copies of one object, under two file names). No output
file is ever overwritten.

Private attributes are removed except the few in :data:`SAFE_PRIVATE`, which carry no identity
but define the image (the profile's "retain safe private" option): Philips scale slope and
intercept (also in the per-frame private items, filtered down to those and the frame geometry),
the Siemens CSA image header (mosaic slice count and geometry), Siemens/GE diffusion, timing and
phase-encoding values, the UIH grid size. ``PatientIdentityRemoved = YES``,
``DeidentificationMethod`` and the codes 113100 (basic profile) and 113111 (retain safe
private) in ``DeidentificationMethodCodeSequence`` record what was done. Nested
``SpecificCharacterSet`` values are kept (they say how the text is encoded). Pixel data and
geometry are kept exactly (burned-in text in the pixels is *not* detected: see
``BurnedInAnnotation``).

The UID map is never written anywhere (it would re-identify the copy).
"""
from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from medrecon.errors import DicomError, InputError
from medrecon.progress import ProgressEvent, ProgressFn

__all__ = ["anonymize_series", "anonymize_dataset", "AnonymizeResult", "PROFILE_CODE", "SAFE_PRIVATE_CODE",
           "RULES_EDITION", "SAFE_PRIVATE", "METHOD", "patient_identity", "identity_basename",
           "IDENTITY_KEYWORDS"]

PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
SAFE_PRIVATE_CODE = ("113111", "DCM", "Retain Safe Private Option")
RULES_EDITION = "dicomfields_2026c"
#: DeidentificationMethod (VR LO: at most 64 characters).
METHOD = "DICOM PS3.15 E.1 Basic Profile + Retain Safe Private (medrecon)"

#: Private attributes kept: (private creator, group, element within the block) -> what it is.
#: Nothing here names a person, a place, a date or a device; each defines how the pixels map to
#: values or to the patient grid (the loader reads them).
SAFE_PRIVATE: dict[tuple[str, int, int], str] = {
    ("Philips MR Imaging DD 001", 0x2005, 0x0D): "scale intercept",
    ("Philips MR Imaging DD 001", 0x2005, 0x0E): "scale slope",
    ("Philips MR Imaging DD 005", 0x2005, 0x0F): "per-frame private item (filtered)",
    ("SIEMENS CSA HEADER", 0x0029, 0x08): "CSA image header type",
    ("SIEMENS CSA HEADER", 0x0029, 0x09): "CSA image header version",
    ("SIEMENS CSA HEADER", 0x0029, 0x10): "CSA image header (mosaic slices, slice normal, phase encoding)",
    ("SIEMENS MR HEADER", 0x0019, 0x0A): "number of images in mosaic",
    ("SIEMENS MR HEADER", 0x0019, 0x0B): "slice measurement duration",
    ("SIEMENS MR HEADER", 0x0019, 0x0C): "b value",
    ("SIEMENS MR HEADER", 0x0019, 0x0D): "diffusion directionality",
    ("SIEMENS MR HEADER", 0x0019, 0x0E): "diffusion gradient direction",
    ("SIEMENS MR HEADER", 0x0019, 0x27): "b matrix",
    ("SIEMENS MR HEADER", 0x0019, 0x28): "bandwidth per pixel phase encode",
    ("SIEMENS MR HEADER", 0x0019, 0x29): "slice acquisition times",
    ("GEMS_ACQU_01", 0x0019, 0x9C): "pulse sequence name (epi_pepolar)",
    ("GEMS_ACQU_01", 0x0019, 0xB3): "user data 12 (reversed-polarity volumes)",
    ("GEMS_PARM_01", 0x0043, 0x2A): "phase-encoding polarity",
    ("GEMS_PARM_01", 0x0043, 0x2C): "effective echo spacing",
    ("GEMS_PARM_01", 0x0043, 0x39): "slop integers (b value)",
    ("GEMS_PARM_01", 0x0043, 0x83): "ASSET factor",
    ("Image Private Header", 0x0065, 0x50): "UIH number of images in grid",
    ("Image Private Header", 0x0065, 0x51): "UIH per-tile item (filtered: each tile's position)",
    ("Image Private Header", 0x0065, 0x09): "UIH b value",
    ("Image Private Header", 0x0065, 0x37): "UIH gradient direction",
    ("Image Private Header", 0x0065, 0x58): "UIH flipped-image flag",
}
#: Standard attributes kept inside a kept private item (frame geometry and scaling only).
_ITEM_KEEP = frozenset({"ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
                        "SpacingBetweenSlices", "RescaleSlope", "RescaleIntercept", "RescaleType"})


#: What ``--keep-identifiers`` keeps (and only then): who and which study the model is of.
IDENTITY_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyID",
                     "AccessionNumber")


def patient_identity(source, series=None) -> dict[str, str] | None:
    """The identifiers (:data:`IDENTITY_KEYWORDS`, those present) of the series that
    ``load(source, series)`` reads; ``None`` for a volume file (NIfTI/NRRD carry none). Used only
    when the user opts in (``medrecon mesh --keep-identifiers``): nothing else reads them."""
    import pydicom

    from medrecon.io.loader import _choose_dicom, is_volume_file

    if is_volume_file(source):
        return None
    chosen = _choose_dicom(source, series, allow_index_grid=True)
    data = chosen.frames[0].source.read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
    out = {kw: str(ds.get(kw, "") or "").strip() for kw in IDENTITY_KEYWORDS}
    return {k: v for k, v in out.items() if v}


def identity_basename(ident: dict | None):
    """File stems ``PatientID_structure`` when identifiers are kept (else None: the default
    names, which never hold an identifier)."""
    pid = (ident or {}).get("PatientID")
    return (lambda m: f"{pid}_{m.name}") if pid else None


@dataclass
class AnonymizeResult:
    outdir: Path
    files: list[Path] = field(default_factory=list)     # as found on disk after writing
    skipped: list[str] = field(default_factory=list)   # not DICOM (names only, never written out)


@functools.lru_cache(maxsize=1)
def _rules_cached() -> dict:
    from dicomanonymizer.simpledicomanonymizer import initialize_actions

    try:
        rules = initialize_actions(RULES_EDITION)
    except ValueError:  # an older dicom-anonymizer: its newest table
        rules = initialize_actions()
    # repeating groups (curves 50xx, overlay data/comments 60xx) are removed in our own single
    # pass (:func:`_filter_private`); the package would walk every file once per rule
    return {k: v for k, v in rules.items() if len(k) == 2}


def _rules():
    return _rules_cached()


def _is_repeating_removed(tag) -> bool:
    g, e = tag.group, tag.element
    return (g & 0xFF00) == 0x5000 or ((g & 0xFF00) == 0x6000 and e in (0x3000, 0x4000))


def _vr(ds, tag) -> str:
    """VR of an element without decoding its value (implicit VR: the dictionary's)."""
    raw = ds.get_item(tag)
    vr = getattr(raw, "VR", None)
    if vr:
        return str(vr)
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag)
    except KeyError:
        return ds[tag].VR  # private or unknown: decode to learn it


def _filter_private(ds, inside_private: bool = False) -> None:
    """Remove private attributes except :data:`SAFE_PRIVATE` (and their creators), in ``ds`` and
    every sequence item; inside a kept private item only frame geometry and scaling stay. Also
    removes curves and overlay data/comments (the profile's repeating groups). Standard
    attributes are not decoded (only looked at by tag)."""
    from pydicom.datadict import keyword_for_tag

    tags = list(ds.keys())
    creators = {(t.group, t.element): str(ds[t].value).strip() for t in tags
                if t.is_private and 0x10 <= t.element <= 0xFF}
    keep_blocks: set[tuple[int, int]] = set()
    for t in tags:
        if not t.is_private:
            if _is_repeating_removed(t) or (inside_private and keyword_for_tag(t) not in _ITEM_KEEP):
                del ds[t]
            elif _vr(ds, t) == "SQ":
                for item in ds[t].value or []:
                    _filter_private(item)
            continue
        if 0x10 <= t.element <= 0xFF:
            continue  # a creator: kept below if one of its elements is
        block = t.element >> 8
        key = (creators.get((t.group, block), ""), t.group, t.element & 0xFF)
        if t.element < 0x10 or key not in SAFE_PRIVATE:
            del ds[t]
            continue
        el = ds[t]
        if el.VR == "SQ":
            for item in el.value or []:
                _filter_private(item, inside_private=True)
        elif el.VR == "UN" and "item" in SAFE_PRIVATE[key]:
            del ds[t]  # a private item that cannot be parsed cannot be filtered: drop it
            continue
        keep_blocks.add((t.group, block))
    for gb in creators:
        if gb not in keep_blocks:
            del ds[gb[0] << 16 | gb[1]]


def _nested_charsets(ds) -> list:
    """(item, SpecificCharacterSet) of every sequence item that declares its own character set."""
    out = []
    for t in list(ds.keys()):
        if _vr(ds, t) == "SQ":
            for item in ds[t].value or []:
                if "SpecificCharacterSet" in item:
                    out.append((item, item.SpecificCharacterSet))
                out.extend(_nested_charsets(item))
    return out


def _prepare_uids(ds, seen: dict, empties: dict) -> None:
    """Make the UIDs the profile remaps say what the object is: an empty Study/Series/Frame of
    reference UID gets one UID per run (files that shared it stay together), and a missing or
    empty SOPInstanceUID, or one reused by a different object, a fresh one."""
    from pydicom.uid import generate_uid

    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        if kw in ds and not str(ds[kw].value or "").strip():
            ds[kw].value = empties.setdefault(kw, generate_uid())
    sop = str(ds.get("SOPInstanceUID", "") or "").strip()
    ident = (str(ds.get("SeriesInstanceUID", "") or ""), str(ds.get("InstanceNumber", "") or ""),
             str(ds.get("NumberOfFrames", "") or ""))
    if sop and seen.setdefault(sop, ident) == ident:
        return  # the first object with this UID, or another copy of it
    ds.SOPInstanceUID = generate_uid()  # a different object: its own UID


def anonymize_dataset(ds, uid_map: dict[str, str]) -> None:
    """De-identify ``ds`` in place (profile above, retain safe private option); ``uid_map`` (old ->
    new UID) is shared by all files of one run so that references stay consistent."""
    import dicomanonymizer.simpledicomanonymizer as sda
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    _filter_private(ds)  # before the rules: nothing private beyond the safe list can be kept
    charsets = _nested_charsets(ds)
    uid_map.setdefault("", "")  # an empty UID stays empty (never one shared made-up UID)
    sda.dictionary = uid_map  # the package's module-level UID map: ours, for this run
    sda.anonymize_dataset(ds, delete_private_tags=False, base_rules_gen=_rules)
    for item, value in charsets:  # D on a sequence replaces every text, the character set too
        if "SpecificCharacterSet" in item:
            item.SpecificCharacterSet = value
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    codes = []
    for value, scheme, meaning in (PROFILE_CODE, SAFE_PRIVATE_CODE):
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    fm = getattr(ds, "file_meta", None)
    if fm is not None and "SOPInstanceUID" in ds:
        fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def anonymize_series(source, outdir: str | os.PathLike,
                     progress: ProgressFn | None = None) -> AnonymizeResult:
    """Write a de-identified copy of every DICOM file under ``source`` (folder, zip, file or
    list) into ``outdir``, one file per input object, named by its new SOPInstanceUID (a second
    copy of one object: ``UID.2.dcm``). ``AnonymizeResult.files`` lists what is on disk.

    Raises
    ------
    InputError
        ``outdir`` is the input folder, holds one of the input files, or already holds a file of
        the name about to be written (nothing is overwritten).
    DicomError
        A DICOM file that cannot be parsed (one line, names the file), or fewer files on disk
        than objects written.
    """
    import pydicom

    from medrecon.io.atomic import atomic_path
    from medrecon.io.dicom.scan import discover
    from medrecon.io.limits import guard

    outdir = Path(outdir)
    files = discover(source)
    if isinstance(source, (str, os.PathLike)) and os.path.realpath(outdir) == os.path.realpath(source):
        raise InputError("the output folder is the input folder; choose another", outdir)
    inputs = {os.path.realpath(f.path) for f in files if f.member is None}
    uid_map: dict[str, str] = {}
    seen: dict[str, tuple] = {}
    empties: dict[str, str] = {}
    written: list[Path] = []
    names: set[str] = set()
    res = AnonymizeResult(outdir)
    for i, src in enumerate(files):
        with guard(src.name, "cannot anonymize"):
            data = src.read_bytes()
            has_preamble = data[128:132] == b"DICM"
            try:
                ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
            except Exception:  # noqa: BLE001
                if has_preamble:
                    raise
                ds = None
            if ds is None or ("SOPInstanceUID" not in ds and "PixelData" not in ds):
                res.skipped.append(src.name)
                continue
            _prepare_uids(ds, seen, empties)
            anonymize_dataset(ds, uid_map)
            stem = str(ds.SOPInstanceUID)
            name, k = f"{stem}.dcm", 1
            while name in names:  # another copy of the same object
                k += 1
                name = f"{stem}.{k}.dcm"
            out = outdir / name
            if os.path.realpath(out) in inputs:
                raise InputError("output would overwrite an input file", out)
            if out.exists():
                raise InputError("output file exists (nothing is overwritten): choose an empty output folder", out)
            with atomic_path(out) as tmp:
                ds.save_as(tmp, enforce_file_format=has_preamble)
            names.add(name)
            written.append(out)
        if progress is not None:
            progress(ProgressEvent("anonymizing", i + 1, len(files), "file"))
    res.files = [p for p in written if p.is_file()]  # counted from the disk
    if len(res.files) != len(written):
        raise DicomError(f"{len(written) - len(res.files)} of {len(written)} de-identified files are missing "
                         "after writing", outdir)
    if not res.files:
        raise DicomError("no DICOM files to anonymize", source if not isinstance(source, (list, tuple)) else None)
    return res
