"""3D Slicer hand-off: .seg.nrrd round trips (checked with slicerio and SimpleITK) and .mrml scenes."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import slicerio
import SimpleITK as sitk

from medrecon.errors import InputError, MedreconError, SegmentationError
from medrecon.io.slicer import (LabelInfo, SlicerFormatError, parse_scene, read_seg_nrrd, write_scene,
                                write_seg_nrrd, write_slicer_bundle, write_volume_nrrd)
from medrecon.mesh import SurfaceModel
from medrecon.volume import Volume
from tests.conftest import shared_path

RAS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])

# an oblique, anisotropic, axis-permuted grid: index -> LPS mm
OBLIQUE = np.array([
    [0.0, 0.0, 2.5, 10.0],
    [-0.7 * np.cos(0.3), 0.0, 0.7 * np.sin(0.3) * 0, 20.0],
    [0.7 * np.sin(0.3), 1.2, 0.0, -30.0],
    [0.0, 0.0, 0.0, 1.0],
])


def _toy_labelmap() -> Volume:
    a = np.zeros((20, 30, 12), np.uint8)
    a[2:5, 3:9, 1:4] = 3
    a[10:15, 10:20, 5:9] = 7
    a[16, 25, 11] = 200
    return Volume(a, OBLIQUE)


def test_seg_nrrd_roundtrip_with_slicerio(tmp_path):
    lm = _toy_labelmap()
    labels = {3: LabelInfo(3, "femur left", (1.0, 0.0, 0.0)), 7: LabelInfo(7, "liver", (0.2, 0.4, 0.6)),
              9: LabelInfo(9, "absent", (0.0, 1.0, 0.0))}
    out = write_seg_nrrd(lm, labels, tmp_path / "seg.seg.nrrd")
    assert out.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["seg.seg.nrrd"]  # no temp left

    seg = slicerio.read_segmentation(str(out))
    np.testing.assert_array_equal(seg["voxels"], lm.array)
    np.testing.assert_allclose(seg["ijkToLPS"], OBLIQUE, atol=1e-9)
    assert seg["masterRepresentation"] == "Binary labelmap"
    assert seg["containedRepresentationNames"] == ["Binary labelmap", "Closed surface"]
    assert seg["referenceImageExtentOffset"] == [0, 0, 0]
    by_value = {s["labelValue"]: s for s in seg["segments"]}
    assert set(by_value) == {3, 7, 200}  # absent label 9 skipped, unnamed 200 kept
    assert by_value[3]["name"] == "femur left" and by_value[7]["name"] == "liver"
    np.testing.assert_allclose(by_value[3]["color"], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(by_value[7]["color"], [0.2, 0.4, 0.6], atol=1e-6)
    assert by_value[200]["name"] == "Segment_200"
    for value, s in by_value.items():
        idx = np.argwhere(lm.array == value)
        expected = [int(v) for a in range(3) for v in (idx[:, a].min(), idx[:, a].max())]
        assert s["extent"] == expected
        assert s["layer"] == 0
        assert s["id"] == f"Segment_{value}"
        assert s.get("status") == "inprogress"
    # Slicer's own header keys, literally
    header = out.read_bytes().split(b"\n\n", 1)[0].decode()
    assert header.startswith("NRRD0004")
    assert "space: left-posterior-superior" in header
    for key in ("Segment0_Tags:=", "Segment0_LabelValue:=", "Segment0_Layer:=", "Segment0_Extent:=",
                "Segment0_Color:=", "Segment0_Name:=", "Segment0_ID:="):
        assert key in header


def test_seg_nrrd_include_empty_and_read_back(tmp_path):
    lm = _toy_labelmap()
    labels = {0: ("background", (0, 0, 0)), 3: LabelInfo(3, "a", (1, 0, 0)), 9: LabelInfo(9, "empty one", (0, 1, 0))}
    out = write_seg_nrrd(lm, labels, tmp_path / "x.seg.nrrd", include_empty=True)
    seg = slicerio.read_segmentation(str(out))
    assert sorted(s["labelValue"] for s in seg["segments"]) == [3, 7, 9, 200]  # never a background segment
    empty = [s for s in seg["segments"] if s["name"] == "empty one"][0]
    assert empty["extent"] == [0, -1, 0, -1, 0, -1]
    vol, table = read_seg_nrrd(out)
    np.testing.assert_array_equal(vol.array, lm.array)
    np.testing.assert_allclose(vol.affine, OBLIQUE, atol=1e-9)
    assert table[3].name == "a" and table[9].name == "empty one"
    assert tuple(table[9].color) == (0.0, 1.0, 0.0)


@pytest.mark.realdata
def test_real_totalsegmentator_labels_geometry_matches_simpleitk(tmp_path):
    nii = shared_path("ct_abdomen_totalsegmentator_refseg", "example_seg_dicom.nii.gz")
    img = nib.load(str(nii))
    data = np.asanyarray(img.dataobj).astype(np.uint8)
    lm = Volume(data, RAS_FLIP @ img.affine)  # NIfTI RAS -> our LPS
    values = [int(v) for v in np.unique(data) if v]
    labels = {v: LabelInfo(v, f"structure {v}", ((v * 37 % 255) / 255, (v * 91 % 255) / 255, 0.5)) for v in values}
    out = write_seg_nrrd(lm, labels, tmp_path / "ts.seg.nrrd")

    seg = slicerio.read_segmentation(str(out))
    np.testing.assert_array_equal(seg["voxels"], data)
    assert len(seg["segments"]) == len(values) == 31
    for s in seg["segments"]:
        assert s["name"] == f"structure {s['labelValue']}"
        np.testing.assert_allclose(s["color"], labels[s["labelValue"]].color, atol=1e-6)
    # an independent reader (ITK, LPS inside) sees the same physical grid for both files
    a, b = sitk.ReadImage(str(nii)), sitk.ReadImage(str(out))
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))


def test_read_layered_slicer_segmentation(tmp_path):
    # a segmentation with overlapping segments, written by slicerio the way Slicer stores it (4D)
    ijk = np.diag([0.5, 0.5, 2.0, 1.0])
    ijk[:3, 3] = [-5, 3, 100]
    seg = slicerio.create_segmentation((10, 12, 6), ijk)
    m1 = np.zeros((10, 12, 6), bool)
    m1[1:6, 1:6, 1:4] = True
    m2 = np.zeros_like(m1)
    m2[4:9, 4:9, 2:5] = True  # overlaps m1
    slicerio.add_segment(seg, m1, {"id": "s1", "name": "bone", "color": [0.9, 0.9, 0.8]})
    slicerio.add_segment(seg, m2, {"id": "s2", "name": "tumour", "color": [0.8, 0.1, 0.1]})
    assert seg["voxels"].ndim == 4
    p = tmp_path / "layered.seg.nrrd"
    slicerio.write_segmentation(str(p), seg)

    vol, table = read_seg_nrrd(p)
    assert {k: v.name for k, v in table.items()} == {1: "bone", 2: "tumour"}
    np.testing.assert_allclose(table[2].color, [0.8, 0.1, 0.1])
    np.testing.assert_allclose(vol.affine, ijk)
    assert np.array_equal(vol.array == 2, m2)
    assert np.array_equal(vol.array == 1, m1 & ~m2)
    assert any("overlap" in w for w in vol.meta["warnings"])


def test_seg_errors_name_the_file(tmp_path):
    bad = Volume(np.full((4, 4, 4), 0.5), np.eye(4))
    with pytest.raises(SegmentationError, match="non-integer") as e:
        write_seg_nrrd(bad, {}, tmp_path / "bad.seg.nrrd")
    assert "bad.seg.nrrd" in str(e.value)
    assert not (tmp_path / "bad.seg.nrrd").exists()
    with pytest.raises(SlicerFormatError, match="not found"):
        read_seg_nrrd(tmp_path / "missing.seg.nrrd")
    plain = tmp_path / "plain.nrrd"
    write_volume_nrrd(Volume(np.zeros((3, 3, 3), np.int16), np.eye(4)), plain)
    with pytest.raises(SlicerFormatError, match="not a Slicer segmentation") as e:
        read_seg_nrrd(plain)
    assert "plain.nrrd" in str(e.value)
    junk = tmp_path / "junk.seg.nrrd"
    junk.write_bytes(b"this is not nrrd")
    with pytest.raises(MedreconError, match="junk.seg.nrrd"):
        read_seg_nrrd(junk)


def _sphere_model(name, centre, color, label, r=6.0):
    import trimesh

    s = trimesh.creation.icosphere(2, radius=r)
    return SurfaceModel(name, s.vertices + np.asarray(centre), s.faces, color, label)


def _write_stl(models, outdir):
    try:
        from medrecon.io.meshes import write_models
    except ImportError:  # pragma: no cover - surface owner's writer not there
        pytest.fail("medrecon.io.meshes.write_models is missing")
    return write_models(models, outdir, ["stl"])


def test_scene_references_files_names_colours(tmp_path):
    ct = np.full((24, 24, 16), -1000, np.int16)
    ct[4:20, 4:20, 2:14] = 400
    vol = Volume(ct, OBLIQUE, {"modality": "CT"})
    lm = vol.with_array((ct > 0).astype(np.uint8) * 5)
    models = [_sphere_model("left femur", (0, 0, 0), (0.9, 0.8, 0.6), 5),
              _sphere_model("kidney, right", (20, 0, 0), (0.7, 0.2, 0.3), 6)]
    stls = _write_stl(models, tmp_path / "meshes")
    vpath = write_volume_nrrd(vol, tmp_path / "volume.nrrd")
    spath = write_seg_nrrd(lm, {5: LabelInfo(5, "bone", (0.9, 0.8, 0.6))}, tmp_path / "seg.seg.nrrd")
    scene = write_scene(tmp_path, vpath, spath, [(p, m.name, m.color) for p, m in zip(stls, models)],
                        "case scene")
    assert scene == tmp_path / "case_scene.mrml"

    root = ET.parse(scene).getroot()
    assert root.tag == "MRML"
    ids = {el.get("id"): el for el in root}
    # every reference points at a node of the scene, every storage file exists
    for el in root:
        for part in filter(None, (el.get("references") or "").split(";")):
            role, nid = part.split(":")
            assert nid in ids, (el.get("id"), role, nid)
        if el.get("fileName"):
            assert (tmp_path / el.get("fileName")).is_file(), el.get("fileName")
            assert not Path(el.get("fileName")).is_absolute()
    tags = [el.tag for el in root]
    for tag in ("Volume", "VolumeArchetypeStorage", "VolumeDisplay", "Segmentation", "SegmentationStorage",
                "SegmentationDisplay", "Model", "ModelStorage", "ModelDisplay"):
        assert tag in tags
    model_nodes = [el for el in root if el.tag == "Model"]
    assert [m.get("name") for m in model_nodes] == ["left femur", "kidney, right"]
    for el, m, p in zip(model_nodes, models, stls):
        refs = dict(part.split(":") for part in filter(None, el.get("references").split(";")))
        disp, sto = ids[refs["display"]], ids[refs["storage"]]
        assert disp.tag == "ModelDisplay" and sto.tag == "ModelStorage"
        np.testing.assert_allclose([float(x) for x in disp.get("color").split()], m.color, atol=1e-6)
        assert sto.get("coordinateSystem") == "LPS"
        assert (tmp_path / sto.get("fileName")).resolve() == p.resolve()
    segnode = [el for el in root if el.tag == "Segmentation"][0]
    assert "referenceImageGeometryRef:vtkMRMLScalarVolumeNode1" in segnode.get("references")
    # the volume file really is our volume, in LPS (checked with ITK)
    itk = sitk.ReadImage(str(vpath))
    np.testing.assert_allclose(itk.GetOrigin(), OBLIQUE[:3, 3], atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(itk).transpose(2, 1, 0), ct)
    # and our own parser agrees
    parsed = parse_scene(scene)
    assert [m["name"] for m in parsed["models"]] == ["left femur", "kidney, right"]
    assert parsed["segmentations"][0]["file"] == str(spath.resolve())


def test_scene_missing_file_is_an_error(tmp_path):
    with pytest.raises(InputError, match="nope.stl"):
        write_scene(tmp_path, None, None, [(tmp_path / "nope.stl", "x", (1, 0, 0))], "s")
    assert not list(tmp_path.glob("*.mrml"))


def test_bundle_writes_three_files(tmp_path):
    ct = np.zeros((8, 8, 8), np.int16)
    lm = Volume((np.arange(512).reshape(8, 8, 8) % 3).astype(np.uint8), np.eye(4))
    scene = write_slicer_bundle(tmp_path, Volume(ct, np.eye(4)), lm, {1: ("one", (1, 0, 0))}, [], "b")
    parsed = parse_scene(scene)
    assert Path(parsed["volumes"][0]["file"]).name == "b_volume.nrrd"
    assert Path(parsed["segmentations"][0]["file"]).name == "b.seg.nrrd"
    seg = slicerio.read_segmentation(str(tmp_path / "b.seg.nrrd"))
    assert sorted(s["name"] for s in seg["segments"]) == ["Segment_2", "one"]


def test_volume_nrrd_int32_stored_losslessly_as_int16(tmp_path):
    a = np.arange(-1024, -1024 + 6 * 7 * 8, dtype=np.int32).reshape(6, 7, 8) * 3
    p = write_volume_nrrd(Volume(a, OBLIQUE), tmp_path / "ct.nrrd")
    img = sitk.ReadImage(str(p))
    assert img.GetPixelIDTypeAsString() == "16-bit signed integer"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img).transpose(2, 1, 0), a)
    big = write_volume_nrrd(Volume(a * 100, OBLIQUE), tmp_path / "big.nrrd")  # does not fit: kept int32
    assert sitk.ReadImage(str(big)).GetPixelIDTypeAsString() == "32-bit signed integer"
    with pytest.raises(MedreconError, match="only 3D"):
        write_volume_nrrd(Volume(np.zeros((2, 2, 2, 2)), np.eye(4)), tmp_path / "4d.nrrd")


@pytest.mark.realdata
def test_cli_mesh_slicer_end_to_end(tmp_path):
    """`medrecon mesh ... --slicer`: the scene's files, names and colours match report.json."""
    import json
    import subprocess
    import sys

    d = "ct_abdomen_totalsegmentator_refseg"
    ct, seg = shared_path(d, "example_ct.nii.gz"), shared_path(d, "example_seg_fast_force_split.nii.gz")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "medrecon", "mesh", str(ct), "-o", str(out), "--labels", str(seg),
                           "--label-table", "totalsegmentator", "--structures", "femur_left,sacrum,liver",
                           "--formats", "stl,ply", "--slicer"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    structures = {s["name"]: s for s in report["structures"]}
    assert set(structures) == {"femur_left", "sacrum", "liver"}
    scenes = list(out.glob("*.mrml"))
    assert len(scenes) == 1
    scene = parse_scene(scenes[0])
    # every node's file exists, inside the output folder
    for kind in ("volumes", "segmentations", "models"):
        for node in scene[kind]:
            assert node["file"] and Path(node["file"]).is_file() and Path(node["file"]).parent == out.resolve()
    assert len(scene["volumes"]) == 1 and len(scene["segmentations"]) == 1
    # models: one per structure, colour and file as in the report, coordinate system as written
    assert sorted(m["name"] for m in scene["models"]) == sorted(structures)
    for m in scene["models"]:
        s = structures[m["name"]]
        np.testing.assert_allclose(m["color"], s["color"], atol=1e-3)
        assert Path(m["file"]).name in s["files"]
        assert m["space"] == report["space"] == "LPS"
        assert b"SPACE=LPS" in Path(m["file"]).read_bytes()[:400]
    # segmentation: names, colours, label values as in the report (read with slicerio)
    segfile = slicerio.read_segmentation(scene["segmentations"][0]["file"])
    by_name = {s["name"]: s for s in segfile["segments"]}
    for name, s in structures.items():
        assert by_name[name]["labelValue"] == s["label"]
        np.testing.assert_allclose(by_name[name]["color"], s["color"], atol=1e-3)
    # the segmentation lies on the CT grid: same physical geometry as the input NIfTI (ITK)
    a, b = sitk.ReadImage(str(ct)), sitk.ReadImage(scene["segmentations"][0]["file"])
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)
    # previews and viewer were written too, and the viewer can be rebuilt from the report
    assert (out / "preview.png").stat().st_size > 1000 and (out / "viewer.html").is_file()
    from medrecon.viz.html import write_viewer_from_files

    html = write_viewer_from_files([out / "report.json"], tmp_path / "again.html")
    text = html.read_text()
    for name in structures:
        assert f'"name":"{name}"' in text


def test_scene_file_names_are_url_encoded_like_slicer(tmp_path):
    # Slicer URL-encodes %, space, quotes, < and > in fileName and decodes them on load
    m = _sphere_model("odd", (0, 0, 0), (0.1, 0.2, 0.3), 1)
    odd = tmp_path / "left femur 100% 'x'.stl"
    stl = _write_stl([m], tmp_path / "tmp")[0]
    odd.write_bytes(stl.read_bytes())
    scene = write_scene(tmp_path, None, None, [(odd, "left femur", m.color)], "odd")
    sto = [el for el in ET.parse(scene).getroot() if el.tag == "ModelStorage"][0]
    assert sto.get("fileName") == "left%20femur%20100%25%20%27x%27.stl"
    assert parse_scene(scene)["models"][0]["file"] == str(odd.resolve())
