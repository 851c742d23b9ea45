"""A de-identified copy of a DICOM series: the Basic Application Level Confidentiality Profile
(DICOM PS3.15 Annex E, table E.1-1), applied with the ``dicom-anonymizer`` package's rules
(KitwareMedical; the 2026c edition of the table).

What happens to each attribute is the profile's action code: **X** removed, **Z** emptied (or a
dummy value), **D** replaced by a dummy value, **U** UIDs replaced by new ones. UIDs are
remapped consistently for the whole run (every file of a study keeps one new
StudyInstanceUID, one SeriesInstanceUID per series, one FrameOfReferenceUID; references between
objects stay valid), private attributes are removed, and ``PatientIdentityRemoved = YES`` with
``DeidentificationMethod`` and the profile's code (``113100``) in
``DeidentificationMethodCodeSequence`` record what was done. Pixel data and geometry are kept
exactly (burned-in text in the pixels is *not* detected: see ``BurnedInAnnotation``).

The UID map is never written anywhere (it would re-identify the copy).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from medrecon.errors import DicomError, InputError
from medrecon.progress import ProgressEvent, ProgressFn

__all__ = ["anonymize_series", "anonymize_dataset", "AnonymizeResult", "PROFILE_CODE", "RULES_EDITION"]

PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
RULES_EDITION = "dicomfields_2026c"
METHOD = "DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile (medrecon, dicom-anonymizer rules)"


@dataclass
class AnonymizeResult:
    outdir: Path
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # not DICOM (names only, never written out)


def _rules():
    from dicomanonymizer.simpledicomanonymizer import initialize_actions

    try:
        return initialize_actions(RULES_EDITION)
    except ValueError:  # an older dicom-anonymizer: its newest table
        return initialize_actions()


def anonymize_dataset(ds, uid_map: dict[str, str]) -> None:
    """De-identify ``ds`` in place (profile above); ``uid_map`` (old -> new UID) is shared by all
    files of one run so that references stay consistent."""
    import dicomanonymizer.simpledicomanonymizer as sda
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    sda.dictionary = uid_map  # the package's module-level UID map: ours, for this run
    sda.anonymize_dataset(ds, delete_private_tags=True, base_rules_gen=_rules)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    fm = getattr(ds, "file_meta", None)
    if fm is not None and "SOPInstanceUID" in ds:
        fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def anonymize_series(source, outdir: str | os.PathLike,
                     progress: ProgressFn | None = None) -> AnonymizeResult:
    """Write a de-identified copy of every DICOM file under ``source`` (folder, zip, file or
    list) into ``outdir``, one file per input object, named by its new SOPInstanceUID.

    Raises
    ------
    InputError
        ``outdir`` is the input folder or holds one of the input files.
    DicomError
        A DICOM file that cannot be parsed (one line, names the file).
    """
    import pydicom

    from medrecon.io.atomic import atomic_path
    from medrecon.io.dicom.scan import discover
    from medrecon.io.limits import guard

    outdir = Path(outdir)
    files = discover(source)
    if isinstance(source, (str, os.PathLike)) and os.path.realpath(outdir) == os.path.realpath(source):
        raise InputError("the output folder is the input folder; choose another", outdir)
    uid_map: dict[str, str] = {}
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
            ds.remove_private_tags()  # before the rules: nothing private can be kept by accident
            anonymize_dataset(ds, uid_map)
            name = f"{ds.get('SOPInstanceUID', f'object{i:05d}')}.dcm"
            out = outdir / name
            if any(os.path.realpath(out) == os.path.realpath(f.path) for f in files if f.member is None):
                raise InputError("output would overwrite an input file", out)
            with atomic_path(out) as tmp:
                ds.save_as(tmp, enforce_file_format=has_preamble)
            res.files.append(out)
        if progress is not None:
            progress(ProgressEvent("anonymizing", i + 1, len(files), "file"))
    if not res.files:
        raise DicomError("no DICOM files to anonymize", source if not isinstance(source, (list, tuple)) else None)
    return res
