"""Class 7: segmentations from the hospital. RTSTRUCT contours rasterised onto the image grid
(checked against analytic areas and volumes) and DICOM SEG read/written with highdicom."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from breadth_builders import mr_stack, save
from conftest import shared_path
from medrecon.io.dicom.rtstruct import rasterise_contours, read_rtstruct
from medrecon.io.dicom.seg import cielab_to_rgb, read_dicom_seg, rgb_to_cielab, write_dicom_seg
from medrecon.labelmap import LabelInfo
from medrecon.volume import Volume


def _grid(rot_deg: float = 0.0):
    """100 x 100 x 20 grid, 0.5 x 0.5 mm pixels, 2 mm slices, rotated about z, offset origin."""
    t = np.deg2rad(rot_deg)
    R = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])
    A = np.eye(4)
    A[:3, :3] = R @ np.diag([0.5, 0.5, 2.0])
    A[:3, 3] = [-20.0, 13.0, 40.0]
    return Volume(np.zeros((100, 100, 20), np.int16), A, {}), A


def _circle(center, radius, n=720):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([center[0] + radius * np.cos(a), center[1] + radius * np.sin(a), np.full(n, center[2])], 1)


@pytest.mark.parametrize("rot", [0.0, 30.0])
def test_rtstruct_circle_area_and_volume_match_analytic(rot):
    ref, A = _grid(rot)
    contours = []
    for k in range(5, 15):  # 10 slices
        c = A @ np.array([50.3, 50.2, k, 1.0])  # off the pixel lattice (no Gauss-circle bias)
        contours.append(_circle(c[:3], 15.0))
    mask, warnings = rasterise_contours(contours, ref.shape, A)
    assert not warnings
    # pixel-centre rule: exactly the voxels whose centre lies inside the circle (+-1 at the edge)
    ii, jj = np.indices(ref.shape[:2])
    inside = ((ii - 50.3) ** 2 + (jj - 50.2) ** 2) * 0.25 < 15.0 ** 2
    assert abs(int(mask[:, :, 7].sum()) - int(inside.sum())) <= 2
    per_slice = mask.sum(axis=(0, 1)) * 0.25  # mm2
    area = np.pi * 15.0 ** 2
    assert np.all(per_slice[:5] == 0) and np.all(per_slice[15:] == 0)
    assert np.allclose(per_slice[5:15], area, rtol=0.01)
    volume = mask.sum() * 0.5 * 0.5 * 2.0
    assert volume == pytest.approx(10 * 2.0 * area, rel=0.01)


def test_rtstruct_square_exact_and_hole_by_even_odd():
    ref, A = _grid(0.0)
    def square(i0, i1, k):  # pixel-centre indices i0..i1 inclusive -> vertices on pixel edges
        pts = np.array([[i0 - 0.5, i0 - 0.5, k, 1], [i1 + 0.5, i0 - 0.5, k, 1],
                        [i1 + 0.5, i1 + 0.5, k, 1], [i0 - 0.5, i1 + 0.5, k, 1]], dtype=float)
        return (A @ pts.T).T[:, :3]
    mask, _ = rasterise_contours([square(10, 29, 3), square(15, 24, 3)], ref.shape, A)
    assert mask[:, :, 3].sum() == 20 * 20 - 10 * 10
    assert not mask[20, 20, 3] and mask[11, 11, 3]
    # a contour between two slice planes is skipped, with a warning
    off = square(10, 29, 3) + A[:3, 2] * 0.5
    mask2, w = rasterise_contours([off], ref.shape, A)
    assert mask2.sum() == 0 and "not in a slice plane" in w[0]


def _rtstruct_file(path, A):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    rois, conts = [], []
    for number, name, color, radius in ((3, "tumour", [255, 0, 0], 6.0), (7, "brainstem", [0, 128, 255], 12.0)):
        r = Dataset()
        r.ROINumber, r.ROIName = number, name
        rois.append(r)
        c = Dataset()
        c.ReferencedROINumber = number
        c.ROIDisplayColor = color
        items = []
        for k in (4, 5, 6):
            it = Dataset()
            it.ContourGeometricType = "CLOSED_PLANAR"
            ctr = (A @ np.array([78.3 if number == 3 else 30.3, 50.2, k, 1.0]))[:3]
            pts = _circle(ctr, radius, 360)
            it.NumberOfContourPoints = len(pts)
            it.ContourData = [f"{v:.4f}" for v in pts.reshape(-1)]
            items.append(it)
        c.ContourSequence = Sequence(items)
        conts.append(c)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(conts)
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = ds.SOPClassUID
    fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = fm
    return save(ds, path)


def test_read_rtstruct_names_colours_and_volumes(tmp_path):
    ref, A = _grid(15.0)
    p = _rtstruct_file(tmp_path / "rs.dcm", A)
    lab, table = read_rtstruct(p, ref)
    assert lab.shape == ref.shape and np.allclose(lab.affine, A)
    assert {v: li.name for v, li in table.items()} == {1: "tumour", 2: "brainstem"}
    assert np.allclose(table[1].color, (1.0, 0.0, 0.0)) and np.allclose(table[2].color, (0, 128 / 255, 1.0))
    for v, r in ((1, 6.0), (2, 12.0)):
        vol = float((lab.array == v).sum()) * 0.5 * 0.5 * 2.0
        assert vol == pytest.approx(3 * 2.0 * np.pi * r * r, rel=0.02)


def test_cielab_round_trip():
    for rgb in ((1.0, 0.0, 0.0), (0.2, 0.6, 0.3), (0.9, 0.85, 0.75)):
        assert np.allclose(cielab_to_rgb(rgb_to_cielab(rgb)), rgb, atol=0.01)


def test_read_real_dicom_seg_matches_pixels():
    p = shared_path("dicom_small_singles_pydicom", "from_pydicom_data", "liver.dcm")
    lab, table = read_dicom_seg(p)
    ds = pydicom.dcmread(p)
    assert lab.shape == (512, 512, 3)
    assert int((lab.array > 0).sum()) == int(ds.pixel_array.sum())
    assert [li.name for li in table.values()] == [str(s.SegmentLabel) for s in ds.SegmentSequence]
    # same grid as the frames: slice k's origin is one of the frames' positions
    pos = [np.array([float(x) for x in f.PlanePositionSequence[0].ImagePositionPatient])
           for f in ds.PerFrameFunctionalGroupsSequence]
    for k in range(lab.shape[2]):
        o = (lab.affine @ np.array([0, 0, k, 1.0]))[:3]
        assert min(np.linalg.norm(o - q) for q in pos) < 1e-3


def test_write_dicom_seg_round_trip_references_source(tmp_path):
    from medrecon.io.loader import load

    files = mr_stack(tmp_path / "src", n=6, step=2.5)
    vol = load(tmp_path / "src")
    assert vol.shape == (64, 64, 6)
    ii, jj, kk = np.indices(vol.shape)
    lab = np.zeros(vol.shape, np.uint8)
    lab[(ii - 30) ** 2 + (jj - 28) ** 2 < 100] = 1
    lab[(ii - 45) ** 2 + (jj - 40) ** 2 < 25] = 4
    lab[:, :, 0] = 0
    labels = {1: LabelInfo(1, "liver", (0.8, 0.4, 0.3)), 4: LabelInfo(4, "lesion", (0.1, 0.9, 0.2))}
    src = sorted((pydicom.dcmread(f) for f in files),
                 key=lambda d: float(np.dot([float(x) for x in d.ImagePositionPatient], [0, 0, 1])))
    out = write_dicom_seg(Volume(lab, vol.affine, {}), labels, src, tmp_path / "seg.dcm")
    seg_ds = pydicom.dcmread(out)
    assert seg_ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    refs = {r.ReferencedSOPInstanceUID for s in seg_ds.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence}
    assert refs == {d.SOPInstanceUID for d in src}
    assert seg_ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src[0].SeriesInstanceUID
    back, table = read_dicom_seg(out)
    names = {v: li.name for v, li in table.items()}
    assert names == {1: "liver", 2: "lesion"}  # segment numbers 1..N in label order
    expect = np.where(lab == 4, 2, lab)
    # the SEG volume may start at the first non-empty frame: compare in world space
    P = np.round(np.linalg.inv(vol.affine) @ back.affine, 4)
    assert np.allclose(P[:3, :3], np.eye(3))
    k0 = int(P[2, 3])
    assert np.array_equal(back.array, expect[:, :, k0:k0 + back.shape[2]])
    assert np.allclose(table[1].color, (0.8, 0.4, 0.3), atol=0.02)


def _mr_series_with_rtstruct(tmp_path):
    """An MR series (from MR_small) and an RTSTRUCT drawn on it: two discs on slices 1..4."""
    from medrecon.io.loader import load

    mr_stack(tmp_path / "mr", n=6, step=2.0)
    vol = load(tmp_path / "mr")
    A = vol.affine
    ps = float(np.linalg.norm(A[:3, 0]))
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.481.3", generate_uid()
    ds.Modality, ds.SeriesInstanceUID = "RTSTRUCT", generate_uid()
    rois, conts = [], []
    for number, name, color, (ci, cj, r_mm) in ((1, "tumour", [250, 20, 20], (20.3, 22.2, 3.0)),
                                                (2, "organ at risk", [20, 120, 250], (42.3, 40.2, 5.0))):
        roi = Dataset()
        roi.ROINumber, roi.ROIName = number, name
        rois.append(roi)
        c = Dataset()
        c.ReferencedROINumber, c.ROIDisplayColor = number, color
        items = []
        for k in range(1, 5):
            ctr = (A @ np.array([ci, cj, k, 1.0]))[:3]
            pts = _circle(ctr, r_mm, 180)
            it = Dataset()
            it.ContourGeometricType, it.NumberOfContourPoints = "CLOSED_PLANAR", len(pts)
            it.ContourData = [f"{v:.4f}" for v in pts.reshape(-1)]
            items.append(it)
        c.ContourSequence = Sequence(items)
        conts.append(c)
    ds.StructureSetROISequence, ds.ROIContourSequence = Sequence(rois), Sequence(conts)
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = fm
    rs = save(ds, tmp_path / "rt" / "rtstruct.dcm")
    return vol, rs, ps


def test_labels_option_reads_rtstruct_and_dicom_seg(tmp_path):
    """``--labels`` (segment.sources.from_labelmap) takes an RTSTRUCT (rasterised on the image
    grid) and a DICOM SEG, with their names and colours; the two agree voxel for voxel."""
    from medrecon.io.labelmaps import read_labelmap
    from medrecon.segment.sources import from_labelmap

    vol, rs, ps = _mr_series_with_rtstruct(tmp_path)
    seg_rt = from_labelmap(vol, str(rs))
    names = {v: li.name for v, li in seg_rt.labels.items()}
    assert names == {1: "tumour", 2: "organ at risk"}
    assert np.allclose(seg_rt.labels[1].color, (250 / 255, 20 / 255, 20 / 255))
    vox = ps * ps * 2.0
    for v, r in ((1, 3.0), (2, 5.0)):
        assert float((seg_rt.labelmap.array == v).sum()) * vox == pytest.approx(4 * 2.0 * np.pi * r * r, rel=0.05)
    # the same labels written as DICOM SEG of the source series, then read back through --labels
    from medrecon.io.dicom.seg import write_dicom_seg_for_source

    out = write_dicom_seg_for_source(seg_rt.labelmap, seg_rt.labels, str(tmp_path / "mr"), tmp_path / "seg" / "s.dcm")
    seg_dcm = from_labelmap(vol, str(out))
    assert {li.name for li in seg_dcm.labels.values()} == {"tumour", "organ at risk"}
    assert np.array_equal(seg_dcm.labelmap.array > 0, seg_rt.labelmap.array > 0)
    by_name = {li.name: v for v, li in seg_dcm.labels.items()}
    assert np.array_equal(seg_dcm.labelmap.array == by_name["tumour"], seg_rt.labelmap.array == 1)
    assert np.allclose(seg_dcm.labels[by_name["organ at risk"]].color, (20 / 255, 120 / 255, 250 / 255), atol=0.02)
    # a folder holding just the RTSTRUCT counts as it; without the image it is refused
    lab, _ = read_labelmap(tmp_path / "rt", reference=vol)
    assert np.array_equal(lab.array, seg_rt.labelmap.array)
    from medrecon.errors import InputError

    with pytest.raises(InputError):
        read_labelmap(rs)


def test_mesh_cli_with_rtstruct_labels(tmp_path):
    from medrecon.cli import main

    vol, rs, _ = _mr_series_with_rtstruct(tmp_path)
    try:
        main(["mesh", str(tmp_path / "mr"), "--labels", str(rs), "-o", str(tmp_path / "out"), "--no-preview"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    stls = sorted(p.name for p in (tmp_path / "out").rglob("*.stl"))
    assert any("tumour" in n for n in stls) and any("organ" in n for n in stls), stls


def test_segment_cli_writes_dicom_seg_referencing_the_source(tmp_path):
    """`medrecon segment --dicom-seg`: the bundle's label map (a HU threshold here) as a DICOM SEG
    whose frames reference the source images; read back, it equals the label map written."""
    from medrecon.cli import main
    from medrecon.io.loader import load
    from tests.segment.test_segment_ai_bundle import make_bundle

    files = mr_stack(tmp_path / "src", n=6, step=2.0, Modality="CT", RescaleIntercept="-1024", RescaleSlope="1")
    vol = load(tmp_path / "src")
    sp = vol.spacing
    order = [int(np.argmax(np.abs(vol.direction[r]))) for r in range(3)]
    bundle = make_bundle(tmp_path / "b", pixdim=tuple(float(sp[a]) for a in order), roi=(64, 64, 8), mode="constant")
    try:
        main(["segment", str(tmp_path / "src"), "-o", str(tmp_path / "lab.nii.gz"), "--bundle", str(bundle),
              "--device", "cpu", "--dicom-seg", str(tmp_path / "seg.dcm")])
    except SystemExit as exc:
        assert exc.code in (0, None)
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    refs = {r.ReferencedSOPInstanceUID for s in ds.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence}
    assert refs == {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    assert [str(s.SegmentLabel) for s in ds.SegmentSequence] == ["bone"]
    back, _ = read_dicom_seg(tmp_path / "seg.dcm")
    lab = load(tmp_path / "lab.nii.gz")
    expect = (vol.array > 200).astype(np.uint8)
    assert np.array_equal(lab.array, expect)
    P = np.round(np.linalg.inv(vol.affine) @ back.affine, 3)
    k0 = int(P[2, 3])
    assert np.allclose(P[:3, :3], np.eye(3)) and np.array_equal(back.array, expect[:, :, k0:k0 + back.shape[2]])


def test_fill_polygon_pixel_centre_rule_on_random_polygons():
    """The scanline fill sets exactly the pixels whose centre is inside (checked point by point
    with an independent even-odd ray test) for random star-shaped polygons."""
    from medrecon.io.dicom.rtstruct import fill_polygon

    rng = np.random.default_rng(3)
    ii, jj = np.indices((60, 60)).astype(float)
    for _ in range(40):
        n = int(rng.integers(3, 25))
        a = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(2, 25, n)
        x, y = 30.37 + r * np.cos(a), 29.61 + r * np.sin(a)
        m = fill_polygon(x, y, (60, 60))
        inside = np.zeros((60, 60), bool)
        for k in range(n):  # even-odd ray casting along +i
            xa, ya, xb, yb = x[k], y[k], x[(k + 1) % n], y[(k + 1) % n]
            c = (ya > jj) != (yb > jj)
            with np.errstate(divide="ignore", invalid="ignore"):
                xc = xa + (jj - ya) * (xb - xa) / (yb - ya)
            inside ^= c & (ii < xc)
        assert int((m ^ inside).sum()) <= 1
