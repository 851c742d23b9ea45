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


def _blank_uids(files):
    for f in files:
        ds = pydicom.dcmread(f)
        ds.SOPInstanceUID = ""
        ds.SeriesInstanceUID = ""
        ds.StudyInstanceUID = ""
        ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
        ds.save_as(f)


def test_reliability_anonymize_empty_uids_lose_no_slice(tmp_path):
    """Source files with empty UIDs (as in the TotalSegmentator CT): every slice gets its own new
    SOPInstanceUID and file; the series stays one series; the count comes from the disk."""
    from medrecon.io.dicom.anonymize import anonymize_series

    src = tmp_path / "in"
    files = fake_id_series(src, n=5)
    _blank_uids(files)
    res = anonymize_series(src, tmp_path / "out")
    on_disk = sorted((tmp_path / "out").glob("*.dcm"))
    assert len(on_disk) == len(res.files) == 5
    outs = [pydicom.dcmread(p) for p in on_disk]
    assert len({d.SOPInstanceUID for d in outs}) == 5 and all(d.SOPInstanceUID for d in outs)
    assert len({d.SeriesInstanceUID for d in outs}) == 1 and len({d.StudyInstanceUID for d in outs}) == 1
    assert outs[0].SeriesInstanceUID != outs[0].StudyInstanceUID
    a, b = load(src), load(tmp_path / "out")
    assert np.array_equal(a.array, b.array) and np.allclose(a.affine, b.affine)


def test_reliability_anonymize_duplicates_and_no_overwrite(tmp_path, monkeypatch):
    """Two copies of one object keep one new UID under two file names (the loader drops the copy
    as it did in the source); a file of a different object reusing a UID gets its own; nothing
    already in the output folder is overwritten."""
    import shutil

    import pytest

    from medrecon.errors import InputError
    from medrecon.io.dicom.anonymize import anonymize_series
    from medrecon.io.loader import describe_series

    src = tmp_path / "in"
    files = fake_id_series(src / "a", n=3)
    (src / "copy").mkdir()
    shutil.copy(files[0], src / "copy" / "same.dcm")           # a copy of one object
    other = pydicom.dcmread(files[1])
    other.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"     # another object reusing the UID
    other.save_as(src / "copy" / "reused.dcm")
    res = anonymize_series(src, tmp_path / "out")
    assert len(res.files) == 5 == len(list((tmp_path / "out").glob("*.dcm")))
    uids = [str(pydicom.dcmread(p).SOPInstanceUID) for p in res.files]
    assert len(set(uids)) == 4  # the copy shares its object's UID; the reused UID does not
    sizes = lambda d: sorted(tuple(r["size"]) for r in describe_series(d))  # noqa: E731
    assert sizes(src) == sizes(tmp_path / "out") == [(12, 10, 1), (12, 10, 3)]
    # refuse to overwrite: a file of the name about to be written is already there
    from pydicom import uid as pydicom_uid

    monkeypatch.setattr(pydicom_uid, "generate_uid", lambda *a, **k: "1.2.826.0.1.3680043.8.498.99")
    out2 = tmp_path / "out2"
    out2.mkdir()
    (out2 / "1.2.826.0.1.3680043.8.498.99.dcm").write_bytes(b"keep me")
    with pytest.raises(InputError, match="nothing is overwritten"):
        anonymize_series(src / "a", out2)
    assert (out2 / "1.2.826.0.1.3680043.8.498.99.dcm").read_bytes() == b"keep me"


def test_reliability_anonymize_keeps_safe_private_and_charsets(tmp_path):
    """Retain safe private: the Philips scale slope (top level and per-frame private item) stays,
    other private attributes and standard ones inside the private item go; a nested
    SpecificCharacterSet is kept; DeidentificationMethod fits VR LO."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from medrecon.io.dicom.anonymize import METHOD, SAFE_PRIVATE_CODE, anonymize_series

    src = tmp_path / "in"
    files = fake_id_series(src, n=2)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.Manufacturer = "Philips"
        blk = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
        blk.add_new(0x0E, "FL", 0.25)
        blk.add_new(0x20, "LO", "PRIVATE-ID-SECRET")
        item = Dataset()
        item.SpecificCharacterSet = "ISO_IR 100"
        item.RequestedProcedureDescription = "Fakestudy"
        ds.RequestAttributesSequence = Sequence([item])
        ref = Dataset()
        ref.SpecificCharacterSet = "ISO_IR 192"
        ref.CodeValue, ref.CodingSchemeDesignator, ref.CodeMeaning = "T-A0100", "SRT", "Brain"
        ds.AnatomicRegionSequence = Sequence([ref])
        frame = Dataset()
        frame.SOPInstanceUID = "1.2.3.4.5.6.7.8"
        frame.ContentDate = "20200102"
        frame.ImagePositionPatient = [1, 2, 3]
        fb = frame.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
        fb.add_new(0x0E, "FL", 0.5)
        blk5 = ds.private_block(0x2005, "Philips MR Imaging DD 005", create=True)
        blk5.add_new(0x0F, "SQ", Sequence([frame]))
        ds.save_as(f)
    res = anonymize_series(src, tmp_path / "out")
    for p in res.files:
        ds = pydicom.dcmread(p)
        dd1 = ds.private_block(0x2005, "Philips MR Imaging DD 001")
        assert float(dd1[0x0E].value) == 0.25
        assert dd1.get_tag(0x20) not in ds
        item = ds.private_block(0x2005, "Philips MR Imaging DD 005")[0x0F].value[0]
        assert float(item.private_block(0x2005, "Philips MR Imaging DD 001")[0x0E].value) == 0.5
        assert "SOPInstanceUID" not in item and "ContentDate" not in item and "ImagePositionPatient" in item
        for el in ds.iterall():
            if el.keyword == "SpecificCharacterSet":
                assert el.value in ("ISO_IR 100", "ISO_IR 192", "ISO_IR 6", "", None) or "ANONYMIZED" not in str(el.value)
        if "AnatomicRegionSequence" in ds:
            assert ds.AnatomicRegionSequence[0].SpecificCharacterSet == "ISO_IR 192"
        assert len(ds.DeidentificationMethod) <= 64 and ds.DeidentificationMethod == METHOD
        codes = {c.CodeValue for c in ds.DeidentificationMethodCodeSequence}
        assert SAFE_PRIVATE_CODE[0] in codes
    blob = _all_bytes(tmp_path / "out")
    for s in IDENT_STRINGS:
        assert s.encode() not in blob, s
