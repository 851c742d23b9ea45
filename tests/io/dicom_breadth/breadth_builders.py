"""Builders of one synthetic DICOM case per class of issue 9, made with pydicom from the real
files in ../shared/data (headers and pixels of real scans, changed only where the class needs)."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import shared_path

GE_EPI = ("mr_ge_epi_4d_same_positions_dcm_qa_nih", "dicom")
MR_SMALL = ("dicom_small_singles_pydicom", "from_pydicom_test_files", "MR_small.dcm")


def ge_epi_files() -> list[Path]:
    return sorted(p for p in shared_path(*GE_EPI).iterdir() if p.suffix == ".dcm")


def ge_epi_datasets(pixels: bool = True) -> list[Dataset]:
    """The GE EPI series (15 positions x 10 time points), in file (instance) order."""
    return [pydicom.dcmread(p, stop_before_pixels=not pixels) for p in ge_epi_files()]


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = sop_class
    fm.MediaStorageSOPInstanceUID = sop_instance
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    return fm


def non_image_object(path: Path, sop_class: str, modality: str, series_number: int = 77,
                     rows_cols: bool = False) -> Path:
    """A minimal non-image DICOM object of ``sop_class`` (optionally with Rows/Columns but no
    pixel data, as MR Spectroscopy has)."""
    base = pydicom.dcmread(shared_path(*MR_SMALL), stop_before_pixels=True)
    ds = Dataset()
    for kw in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "FrameOfReferenceUID"):
        if kw in base:
            setattr(ds, kw, getattr(base, kw))
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.Modality = modality
    ds.SeriesDescription = f"{modality} object"
    if rows_cols:  # MR Spectroscopy: Rows/Columns describe the voxel grid; SpectroscopyData, no pixels
        ds.Rows, ds.Columns = 1, 1
        ds.DataPointRows, ds.DataPointColumns = 1, 512
        ds.SpectroscopyData = np.zeros(1024, dtype=np.float32).tobytes()
    ds.file_meta = _meta(sop_class, ds.SOPInstanceUID)
    return save(ds, path)


def mr_stack(folder: Path, n: int = 6, step: float = 2.0, seed: int = 0, prefix: str = "img",
             series_uid: str | None = None, **overrides) -> list[Path]:
    """``n`` parallel slices cut from MR_small (64x64, real header and pixels), ``step`` mm apart
    along the normal; each slice's pixels = MR_small + 7 * slice index (so slices differ)."""
    base = pydicom.dcmread(shared_path(*MR_SMALL))
    uid = series_uid or generate_uid()
    out = []
    iop = np.array([float(x) for x in base.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    ipp0 = np.array([float(x) for x in base.ImagePositionPatient])
    px = base.pixel_array.astype(np.int16)
    for k in range(n):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in ipp0 + k * step * normal]
        ds.SliceLocation = f"{float(np.dot(ipp0 + k * step * normal, normal)):.4f}"
        ds.PixelData = (px + 7 * k).astype(px.dtype).tobytes()
        for kw, v in overrides.items():
            setattr(ds, kw, v)
        out.append(save(ds, folder / f"{prefix}{k:03d}.dcm"))
    return out


def make_dangling_symlink(folder: Path) -> Path:
    p = folder / "dangling_link.dcm"
    os.symlink(folder / "no_such_target.dcm", p)
    return p


def make_symlink_loop(folder: Path) -> Path:
    """A file name that cannot be opened (a symlink to itself: ELOOP), even by root."""
    p = folder / "loop.dcm"
    os.symlink(p.name, p)
    return p
