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


# --------------------------------------------------------------------------------------------
# vendor classes built from the real GE EPI series (64x64, 15 positions x 10 time points)
# --------------------------------------------------------------------------------------------
def ge_epi_by_volume() -> list[list[Dataset]]:
    """The GE EPI datasets grouped by time point (1-based order of InstanceNumber), each
    volume's slices sorted ascending along the slice normal."""
    dss = ge_epi_datasets(pixels=True)
    iop = np.array([float(x) for x in dss[0].ImageOrientationPatient])
    n = np.cross(iop[:3], iop[3:])
    by_pos: dict[float, list[Dataset]] = {}
    for d in dss:
        key = round(float(np.dot([float(x) for x in d.ImagePositionPatient], n)), 2)
        by_pos.setdefault(key, []).append(d)
    positions = sorted(by_pos)
    for k in positions:
        by_pos[k].sort(key=lambda d: int(d.InstanceNumber))
    n_vol = len(by_pos[positions[0]])
    return [[by_pos[k][v] for k in positions] for v in range(n_vol)]


def _private_creator(ds: Dataset, group: int, creator: str) -> None:
    ds.add_new((group, 0x0010), "LO", creator)


def uih_grid_series(folder: Path, n_volumes: int = 3, spacing: bool = True) -> list[Path]:
    """UIH grid ("mosaic") files: each volume's 15 slices tiled 4x4 into one 256x256 image, the
    slice count in (0065,1050), the position (IPP) that of the first tile (UIH convention)."""
    vols = ge_epi_by_volume()[:n_volumes]
    out = []
    uid = generate_uid()
    for v, slices in enumerate(vols):
        n = len(slices)
        tiles = int(np.ceil(np.sqrt(n)))
        r, c = int(slices[0].Rows), int(slices[0].Columns)
        img = np.zeros((r * tiles, c * tiles), dtype=slices[0].pixel_array.dtype)
        for s, d in enumerate(slices):
            img[(s // tiles) * r:(s // tiles + 1) * r, (s % tiles) * c:(s % tiles + 1) * c] = d.pixel_array
        ds = copy.deepcopy(slices[0])
        ds.Manufacturer = "UIH"
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = v + 1
        ds.Rows, ds.Columns = img.shape
        ds.PixelData = img.tobytes()
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
        _private_creator(ds, 0x0065, "Image Private Header")
        ds.add_new((0x0065, 0x1050), "DS", str(n))
        if not spacing:
            for kw in ("SpacingBetweenSlices", "SliceThickness"):
                if kw in ds:
                    delattr(ds, kw)
        out.append(save(ds, folder / f"uih_grid_{v:03d}.dcm"))
    return out


def vframe_object(folder: Path, positions: bool = True, volume: int = 0) -> Path:
    """A UIH-style classic multi-frame object (ImageType ...\\VFRAME, no functional groups): one
    GE EPI volume's 15 slices as frames, the top-level IPP that of the first frame and, when
    ``positions``, every frame's position in a private sequence."""
    from pydicom.sequence import Sequence

    slices = ge_epi_by_volume()[volume]
    ds = copy.deepcopy(slices[0])
    ds.Manufacturer = "UIH"
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "VFRAME"]
    ds.NumberOfFrames = len(slices)
    ds.PixelData = np.stack([d.pixel_array for d in slices]).tobytes()
    for kw in ("SpacingBetweenSlices",):
        if kw in ds:
            delattr(ds, kw)
    if positions:
        _private_creator(ds, 0x0065, "Image Private Header")
        items = []
        for d in slices:
            it = Dataset()
            it.ImagePositionPatient = d.ImagePositionPatient
            items.append(it)
        ds.add_new((0x0065, 0x1051), "SQ", Sequence(items))
    return save(ds, folder / f"vframe_{'pos' if positions else 'nopos'}.dcm")


def pepolar_series(folder: Path, user_data_12: int = 3) -> list[Path]:
    """The GE EPI series as an ``epi_pepolar`` acquisition: pulse sequence name (0019,109C) and
    user data 12 (0019,10B3) set; every reversed-polarity volume stored mirrored along the
    phase-encoding axis (rows), as GE stores them."""
    from medrecon.io.dicom.vendor import pepolar_reversed

    out = []
    for v, slices in enumerate(ge_epi_by_volume(), start=1):
        for d in slices:
            ds = copy.deepcopy(d)
            ds[(0x0019, 0x109C)].value = "research/ABCD/epi_pepolar"
            ds.add_new((0x0019, 0x10B3), "DS", str(user_data_12))
            ds.TemporalPositionIdentifier = v  # the volume number dcm2niix reads
            if pepolar_reversed(user_data_12, v):
                ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1, :]).tobytes()
            out.append(save(ds, folder / f"pepolar_{int(ds.InstanceNumber):04d}.dcm"))
    return out
