"""`medrecon anonymize`: the basic confidentiality profile, tag by tag, on a series carrying fake
identifiers; consistent UID remapping; pixels and geometry unchanged; no identifier byte left."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom

from medrecon.io.loader import load

from rel_fake_ids import FAKE, IDENT_STRINGS, fake_id_series  # noqa: E402


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() + str(p.relative_to(folder)).encode() for p in sorted(folder.rglob("*"))
                    if p.is_file())


def test_reliability_anonymize_tag_by_tag(tmp_path):
    from medrecon.io.dicom.anonymize import PROFILE_CODE, anonymize_series

    src = tmp_path / "in"
    files = fake_id_series(src)
    before = {f.name: f.read_bytes() for f in files}
    orig = [pydicom.dcmread(f) for f in files]
    res = anonymize_series(src, tmp_path / "out")
    assert len(res.files) == len(files)
    assert {f.name: f.read_bytes() for f in files} == before  # the input is untouched
    outs = [pydicom.dcmread(p) for p in res.files]
    for ds in outs:
        # X: removed; Z/D: empty or a dummy without the original value; U: new UIDs
        for kw in ("OtherPatientIDs", "InstitutionAddress", "PerformingPhysicianName", "OperatorsName",
                   "StationName", "PatientAddress", "PatientTelephoneNumbers", "DeviceSerialNumber",
                   "PatientAge", "InstitutionName"):
            assert kw not in ds or str(ds.get(kw, "")) in ("", "ANONYMIZED", "ANONYMOUS"), kw
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "ReferringPhysicianName",
                   "StudyID", "StudyDate", "StudyTime"):
            assert str(ds.get(kw, "")) != str(FAKE[kw]), kw
        assert "StudyDescription" not in ds or "Fake" not in str(ds.StudyDescription)
        assert not any(el.tag.is_private for el in ds.iterall())
        assert ds.PatientIdentityRemoved == "YES"
        code = ds.DeidentificationMethodCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator) == PROFILE_CODE[:2]
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    # UIDs: all new, consistent across the series, references remapped the same way
    old_uids = {str(d.StudyInstanceUID) for d in orig} | {str(d.SeriesInstanceUID) for d in orig} | \
        {str(d.SOPInstanceUID) for d in orig} | {str(d.FrameOfReferenceUID) for d in orig}
    assert len({d.StudyInstanceUID for d in outs}) == 1 and len({d.SeriesInstanceUID for d in outs}) == 1
    assert len({d.FrameOfReferenceUID for d in outs}) == 1 and len({d.SOPInstanceUID for d in outs}) == len(outs)
    new_uids = {str(d.StudyInstanceUID) for d in outs} | {str(d.SOPInstanceUID) for d in outs}
    assert not (new_uids & old_uids)
    for d in outs:
        for item in d.get("ReferencedStudySequence", []):  # removed, emptied or remapped alike
            assert str(item.get("ReferencedSOPInstanceUID", "")) in ("", str(d.StudyInstanceUID))
    # every output byte (file names included) is free of the identifiers
    blob = _all_bytes(tmp_path / "out")
    for s in IDENT_STRINGS:
        assert s.encode() not in blob, s
    # pixels and geometry unchanged
    a, b = load(src), load(tmp_path / "out")
    assert np.array_equal(a.array, b.array) and np.allclose(a.affine, b.affine)


def test_reliability_anonymize_cli(tmp_path):
    src = tmp_path / "in"
    fake_id_series(src, n=2)
    r = subprocess.run([sys.executable, "-m", "medrecon", "anonymize", str(src), "-o", str(tmp_path / "anon")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "wrote 2 de-identified" in r.stdout
    r = subprocess.run([sys.executable, "-m", "medrecon", "anonymize", str(src), "-o", str(src)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "output folder is the input folder" in r.stderr
