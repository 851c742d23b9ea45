"""What kind of DICOM object a file holds, from its SOP Class UID.

A folder exported from a PACS or a scanner holds more than images: MR spectroscopy, structured
reports, key object selections, presentation states, raw data, RT plans/doses/structure sets,
encapsulated PDFs, waveforms... They are identified here by SOP Class UID (dataset, or the file
meta's MediaStorageSOPClassUID when the dataset lacks it), so that the scanner can list them by
kind and skip them with a warning instead of trying to decode pixels they do not have.

>>> non_image_kind("1.2.840.10008.5.1.4.1.1.4.2")
'MR Spectroscopy'
>>> non_image_kind("1.2.840.10008.5.1.4.1.1.2") is None   # CT Image Storage
True
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NonImageObject", "non_image_kind", "sop_class_name", "sop_class_of", "SEGMENTATION_UIDS",
           "RTSTRUCT_UID", "is_segmentation", "is_rtstruct"]

#: DICOM Segmentation Storage (binary/fractional label maps, read by ``--labels``).
SEGMENTATION_UIDS = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}
#: RT Structure Set Storage (contours, read by ``--labels``).
RTSTRUCT_UID = "1.2.840.10008.5.1.4.1.1.481.3"

#: Explicit kinds for classes whose standard name is long or ambiguous, and private classes.
_EXPLICIT = {
    "1.2.840.10008.5.1.4.1.1.4.2": "MR Spectroscopy",
    "1.2.840.10008.5.1.4.1.1.66": "Raw Data",
    "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "Encapsulated CDA",
    "1.2.840.10008.5.1.4.1.1.104.3": "Encapsulated STL",
    "1.2.840.10008.5.1.4.1.1.104.4": "Encapsulated OBJ",
    "1.2.840.10008.5.1.4.1.1.104.5": "Encapsulated MTL",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT Dose",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set",
    "1.2.840.10008.5.1.4.1.1.481.5": "RT Plan",
    "1.2.840.10008.5.1.4.1.1.481.8": "RT Ion Plan",
    "1.2.840.10008.1.3.10": "DICOMDIR (media directory)",
    # private classes seen in scanner exports
    "1.3.12.2.1107.5.9.1": "Siemens CSA Non-Image",
    "1.2.840.113619.4.26": "GE Private Data",
    "1.2.840.113619.4.27": "GE Private Data",
    "1.3.46.670589.11.0.0.12.1": "Philips Private MR Spectrum",
    "1.3.46.670589.11.0.0.12.2": "Philips Private MR Series Data",
    "1.3.46.670589.11.0.0.12.4": "Philips Private MR Examcard",
}

#: Substrings of standard SOP class names -> kind (checked in order after ``_EXPLICIT``).
_BY_NAME = (
    ("Presentation State", "Presentation State"),
    ("SR Storage", "Structured Report"),
    ("Structured Report", "Structured Report"),
    ("Key Object", "Key Object Selection"),
    ("Waveform", "Waveform"),
    ("ECG", "Waveform"),
    ("Spectroscopy", "Spectroscopy"),
    ("Encapsulated", "Encapsulated document"),
    ("Raw Data", "Raw Data"),
    ("Registration", "Spatial Registration"),
    ("Fiducials", "Spatial Fiducials"),
    ("Surface Segmentation", "Surface Segmentation"),
    ("Real World Value Mapping", "Real World Value Mapping"),
    ("Measurement", "Measurements"),
    ("Tractography", "Tractography Results"),
)


@dataclass(frozen=True)
class NonImageObject:
    """One DICOM file without a loadable image, with what it is (no identifiers)."""

    name: str                 # file name (as the scanner saw it)
    kind: str                 # e.g. "MR Spectroscopy", "Structured Report", "unreadable file"
    sop_class: str = ""       # SOP Class UID ("" when unknown)
    modality: str = ""
    series_number: int | None = None
    reason: str = ""          # for unreadable files: why


def sop_class_name(uid: str) -> str:
    """The standard name of a SOP Class UID (``''`` when pydicom does not know it)."""
    if not uid:
        return ""
    try:
        from pydicom.uid import UID

        name = UID(str(uid)).name
    except Exception:  # noqa: BLE001
        return ""
    return "" if name == str(uid) else name


def sop_class_of(ds) -> str:
    """SOP Class UID of a dataset: the dataset's own, else the file meta's."""
    from medrecon.io.dicom.rawvalues import get_str

    sop = get_str(ds, "SOPClassUID") if hasattr(ds, "get") else ""
    if not sop:
        fm = getattr(ds, "file_meta", None)
        sop = get_str(fm, "MediaStorageSOPClassUID") if fm is not None else ""
    return str(sop or "").strip()


#: Image storage SOP classes met every day (CT, MR, their enhanced and legacy-converted forms,
#: PET, NM, CR/DX, XA/RF, US, secondary capture); names checked against pydicom by the tests.
_IMAGE_UIDS = frozenset("1.2.840.10008.5.1.4.1.1." + s for s in (
    "1", "1.1", "2", "2.1", "2.2", "3.1", "4", "4.1", "4.3", "4.4", "6.1", "7", "7.1", "7.2", "7.3", "7.4",
    "12.1", "12.2", "20", "128", "128.1", "130"))


def is_segmentation(uid: str) -> bool:
    return str(uid) in SEGMENTATION_UIDS


def is_rtstruct(uid: str) -> bool:
    return str(uid) == RTSTRUCT_UID


def non_image_kind(uid: str, has_pixels: bool | None = None) -> str | None:
    """Kind of non-image object for SOP Class ``uid``, or ``None`` for an image class.

    Parameters
    ----------
    uid : str
        SOP Class UID.
    has_pixels : bool, optional
        Whether the file has image attributes (Rows/Columns). Used only for UIDs that are not
        known: an unknown class with image attributes counts as an image, one without as a
        non-image object of kind ``"unknown SOP class <uid>"``.
    """
    uid = str(uid or "").strip()
    if uid in _IMAGE_UIDS:
        return None  # the common image classes, answered without pydicom's UID dictionary
    if uid in _EXPLICIT:
        return _EXPLICIT[uid]
    if uid in SEGMENTATION_UIDS:
        return None  # has pixels: a label map, loadable (and read by --labels)
    name = sop_class_name(uid)
    if name:
        if "Image Storage" in name and "Presentation" not in name:
            return None
        if name.startswith("RT ") and "Image" not in name:
            return name.replace(" Storage", "")
        for sub, kind in _BY_NAME:
            if sub in name:
                return kind
        if "Storage" in name and "Image" not in name:
            return name.replace(" Storage", "")
        return None
    if not uid:
        return None if has_pixels in (None, True) else "DICOM without SOP class or image"
    if has_pixels is False:
        return f"unknown SOP class {uid}"
    return None
