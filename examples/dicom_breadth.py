"""What a PACS export holds besides a clean image series, and what medrecon does with it.

    .venv/bin/python examples/dicom_breadth.py [-o OUTDIR]

Builds a small study folder (needs ../shared/data for the real MR header and pixels it starts
from): an MR series, an MR spectroscopy object, a structured report, a dangling link and an RT
structure set with two contoured ROIs. Then:

1. lists what is there (``describe_series``): the series, and the non-image objects by kind;
2. converts the series to NIfTI with its BIDS JSON sidecar (like ``dcm2niix -b y``);
3. rasterises the RTSTRUCT onto the image grid (names, colours, volumes in mm3);
4. writes the label map as a DICOM SEG that references the source images, and reads it back.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "io" / "dicom_breadth"))


def build_study(folder: Path) -> Path:
    """The demo folder (uses the test builders, which start from real files in ../shared/data)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from breadth_builders import make_dangling_symlink, mr_stack, non_image_object, save

    files = mr_stack(folder / "mr", n=8, step=2.0)
    non_image_object(folder / "mrs.dcm", "1.2.840.10008.5.1.4.1.1.4.2", "MR", rows_cols=True)
    non_image_object(folder / "report.dcm", "1.2.840.10008.5.1.4.1.1.88.22", "SR")
    make_dangling_symlink(folder)
    # an RT structure set: two circular ROIs on slices 2..5
    ds0 = pydicom.dcmread(files[0], stop_before_pixels=True)
    ipp = np.array([float(x) for x in ds0.ImagePositionPatient])
    ps = float(ds0.PixelSpacing[0])
    rs = Dataset()
    rs.SOPClassUID, rs.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.481.3", generate_uid()
    rs.Modality, rs.SeriesInstanceUID = "RTSTRUCT", generate_uid()
    rois, conts = [], []
    for number, name, color, (ci, cj, r) in ((1, "target", [255, 60, 60], (20, 22, 3.0)),
                                             (2, "organ_at_risk", [60, 160, 255], (42, 40, 5.0))):
        roi = Dataset()
        roi.ROINumber, roi.ROIName = number, name
        rois.append(roi)
        c = Dataset()
        c.ReferencedROINumber, c.ROIDisplayColor = number, color
        items = []
        for k in range(2, 6):
            a = np.linspace(0, 2 * np.pi, 180, endpoint=False)
            pts = np.stack([ipp[0] + ci * ps + r * np.cos(a), ipp[1] + cj * ps + r * np.sin(a),
                            np.full_like(a, ipp[2] + 2.0 * k)], 1)
            it = Dataset()
            it.ContourGeometricType, it.NumberOfContourPoints = "CLOSED_PLANAR", len(pts)
            it.ContourData = [f"{v:.3f}" for v in pts.reshape(-1)]
            items.append(it)
        c.ContourSequence = Sequence(items)
        conts.append(c)
    rs.StructureSetROISequence, rs.ROIContourSequence = Sequence(rois), Sequence(conts)
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID = rs.SOPClassUID, rs.SOPInstanceUID
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    rs.file_meta = fm
    save(rs, folder / "rtstruct.dcm")
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("-o", "--outdir", type=Path, default=None, help="output folder (default: a temporary one)")
    args = ap.parse_args(argv)
    out = args.outdir or Path(tempfile.mkdtemp(prefix="medrecon_dicom_breadth_"))
    out.mkdir(parents=True, exist_ok=True)

    import pydicom

    from medrecon.io.dicom.rtstruct import read_rtstruct
    from medrecon.io.dicom.seg import read_dicom_seg, write_dicom_seg
    from medrecon.io.loader import convert, describe_series

    study = build_study(out / "study")
    print("1. what is in the folder")
    for row in describe_series(study):
        what = row.get("kind", "")
        print(f"   {str(row.get('index') or '-'):>3}  {what:9s} {row['description']:<28s} "
              f"{'x'.join(map(str, row.get('size', []))):>10s}  {row.get('reason') or ''}")
        for w in row.get("warnings", []):
            print(f"        warning: {w}")

    print("2. convert the series, with its sidecar")
    vol, nii, js = convert(study, out / "mr.nii.gz")
    sc = json.loads(js.read_text())
    print(f"   {nii.name} {vol.shape}; {js.name}: " + ", ".join(f"{k}={sc[k]}" for k in
                                                              ("Modality", "Manufacturer", "EchoTime", "RepetitionTime")
                                                              if k in sc))

    print("3. RTSTRUCT rasterised onto the image grid")
    lab, table = read_rtstruct(study / "rtstruct.dcm", vol)
    vox = float(np.prod(vol.spacing))
    for v, li in table.items():
        print(f"   {v}: {li.name:<14s} colour {tuple(round(c, 2) for c in li.color)}  "
              f"{(lab.array == v).sum() * vox:8.1f} mm3")

    print("4. the label map as DICOM SEG, referencing the source images")
    src = sorted((pydicom.dcmread(p) for p in (study / "mr").glob("*.dcm")),
                 key=lambda d: float(d.ImagePositionPatient[2]))
    seg_path = write_dicom_seg(lab, table, src, out / "labels_seg.dcm")
    back, t2 = read_dicom_seg(seg_path)
    print(f"   wrote {seg_path.name}: segments {[li.name for li in t2.values()]}, "
          f"{int((back.array > 0).sum())} voxels (label map: {int((lab.array > 0).sum())})")
    print(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
