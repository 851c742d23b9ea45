"""Fake patient identifiers for the reliability tests (nothing real: every value says Fake)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medrecon.io.dicom.write import write_dicom_series
from medrecon.volume import Volume

FAKE = {
    "PatientName": "Doe^Jane^Fakeperson", "PatientID": "FAKEID-778899", "PatientBirthDate": "19410203",
    "PatientSex": "F", "PatientAge": "083Y", "OtherPatientIDs": "ALTID-5566", "AccessionNumber": "ACC99887766",
    "InstitutionName": "Fake General Hospital", "InstitutionAddress": "1 Fake Street, Nowhere",
    "ReferringPhysicianName": "Who^Doctor^Fakeref", "PerformingPhysicianName": "Strange^Stephen^Fakeperf",
    "OperatorsName": "Oper^Fakeoper", "StudyID": "STUDYFAKE42", "StationName": "FAKESTATION7",
    "StudyDate": "20200102", "StudyTime": "101112", "PatientAddress": "99 Fakeaddress Road",
    "PatientTelephoneNumbers": "555-0199-FAKE", "DeviceSerialNumber": "SNFAKE123456",
    "StudyDescription": "Fakestudy head for Jane",
}
IDENT_STRINGS = ["Fakeperson", "FAKEID-778899", "19410203", "ALTID-5566", "ACC99887766", "Fake General Hospital",
                 "Fake Street", "Fakeref", "Fakeperf", "Fakeoper", "STUDYFAKE42", "FAKESTATION7",
                 "Fakeaddress", "555-0199", "SNFAKE123456", "Fakestudy", "PRIVATE-ID-SECRET"]


def fake_id_series(folder: Path, n: int = 4, volume: Volume | None = None) -> list[Path]:
    """A CT series written by medrecon (``volume``, or a small ramp), then given fake patient
    identifiers (and a private attribute and a referenced-study sequence holding them)."""
    if volume is None:
        arr = (np.arange(12 * 10 * n).reshape(12, 10, n) % 200 - 100).astype(np.int16)
        aff = np.array([[0.8, 0, 0, -20], [0, 0.8, 0, 10], [0, 0, 2.5, 30], [0, 0, 0, 1.0]])
        volume = Volume(arr, aff, {"modality": "CT"})
    files = write_dicom_series(volume, folder, series_description="head")
    for f in files:
        ds = pydicom.dcmread(f)
        for k, v in FAKE.items():
            setattr(ds, k, v)
        block = ds.private_block(0x0011, "FAKEVENDOR", create=True)
        block.add_new(0x01, "LO", "PRIVATE-ID-SECRET")
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        ref.ReferencedSOPInstanceUID = ds.StudyInstanceUID
        ds.ReferencedStudySequence = Sequence([ref])
        ds.save_as(f)
    return files
