"""Mesh export: every format read back by an independent reader (trimesh, VTK, zip/XML, JSON)."""
from __future__ import annotations

import json
import struct
import zipfile
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import trimesh

from medrecon.errors import MeshError
from medrecon.io.meshes import LPS_TO_GLTF, safe_filename, write_models
from medrecon.mesh import SurfaceModel

PROV = {"medrecon_version": "0.1.0", "config": {"smoothing": 0.5, "preset": "ct-bone"},
        "input_sha256": "ab" * 32}


def octahedron(center, size, name, color, label):
    """A closed, outward-wound octahedron (trimesh's icosphere would do; this one is exact)."""
    c = np.asarray(center, float)
    v = c + size * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return SurfaceModel(name, v, f, color, label)


@pytest.fixture
def models():
    return [octahedron((10.0, -20.0, 30.0), 5.0, "femur left", (1.0, 0.0, 0.0), 1),
            octahedron((-40.0, 15.0, -5.0), 3.0, "hip/left", (0.0, 0.5, 1.0), 2)]


def test_models_are_outward(models):
    for m in models:
        assert m.to_trimesh().volume > 0


@pytest.mark.parametrize("space", ["LPS", "RAS"])
def test_stl_roundtrip_header_and_space(tmp_path, models, space):
    paths = write_models(models, tmp_path, ["stl"], space=space)
    assert [p.name for p in paths] == ["femur_left.stl", "hip_left.stl"]
    for m, p in zip(models, paths):
        raw = p.read_bytes()
        assert f"SPACE={space}".encode() in raw[:80] and not raw[:5].lower() == b"solid"
        assert struct.unpack("<I", raw[80:84])[0] == m.n_triangles and len(raw) == 84 + 50 * m.n_triangles
        tm = trimesh.load(p, process=False)
        expect = m.vertices * ([-1, -1, 1] if space == "RAS" else [1, 1, 1])
        # STL stores triangle corners: compare per face
        np.testing.assert_allclose(tm.vertices[tm.faces], expect[m.faces], atol=1e-4)
        # negating two axes is a rotation: the winding stays outward, no flip needed
        assert tm.volume == pytest.approx(m.to_trimesh().volume, rel=1e-5)
        stored_normals = np.frombuffer(raw[84:], dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])["n"]
        np.testing.assert_allclose(stored_normals, tm.face_normals, atol=1e-5)


@pytest.mark.parametrize("space", ["LPS", "RAS"])
def test_obj_with_space_comment_and_material(tmp_path, models, space):
    paths = write_models(models, tmp_path, "obj", space=space)
    objs = [p for p in paths if p.suffix == ".obj"]
    assert {p.name for p in paths} == {"femur_left.obj", "femur_left.mtl", "hip_left.obj", "hip_left.mtl"}
    for m, p in zip(models, objs):
        text = p.read_text()
        assert text.splitlines()[0].startswith("#") and f"SPACE={space}" in text.splitlines()[0]
        tm = trimesh.load(p, process=False)
        np.testing.assert_allclose(tm.vertices, m.vertices * ([-1, -1, 1] if space == "RAS" else 1), atol=1e-4)
        assert tm.volume > 0
        np.testing.assert_array_equal(tm.faces, m.faces)
        kd = [ln for ln in p.with_suffix(".mtl").read_text().splitlines() if ln.startswith("Kd")][0]
        np.testing.assert_allclose([float(x) for x in kd.split()[1:]], m.color, atol=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_comment_colours_and_ras(tmp_path, models, binary):
    paths = write_models(models, tmp_path, ["ply"], space="RAS", ply_binary=binary)
    for m, p in zip(models, paths):
        head = p.read_bytes().split(b"end_header")[0].decode("ascii")
        assert "comment SPACE=RAS" in head
        assert ("binary_little_endian" in head) == binary
        tm = trimesh.load(p, process=False)
        np.testing.assert_allclose(tm.vertices, m.vertices * [-1, -1, 1], atol=1e-4)
        np.testing.assert_array_equal(tm.faces, m.faces)
        assert tuple(tm.visual.vertex_colors[0, :3]) == tuple(round(c * 255) for c in m.color)
        assert tm.volume > 0


def test_vtp_ras(tmp_path, models):
    from vtkmodules.util import numpy_support as ns
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    (path, _) = write_models(models, tmp_path, ["vtp"], space="RAS")
    r = vtkXMLPolyDataReader()
    r.SetFileName(str(path))
    r.Update()
    assert r.GetOutput().GetFieldData().GetAbstractArray("SPACE").GetValue(0) == "RAS"
    np.testing.assert_allclose(ns.vtk_to_numpy(r.GetOutput().GetPoints().GetData()),
                               models[0].vertices * [-1, -1, 1], atol=1e-4)


def test_vtp_field_data(tmp_path, models):
    from vtkmodules.util import numpy_support as ns
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    paths = write_models(models, tmp_path, ["vtp"], provenance=PROV)
    r = vtkXMLPolyDataReader()
    r.SetFileName(str(paths[0]))
    r.Update()
    pd = r.GetOutput()
    fd = pd.GetFieldData()
    assert fd.GetAbstractArray("SPACE").GetValue(0) == "LPS"
    assert fd.GetAbstractArray("Name").GetValue(0) == "femur left"
    assert [fd.GetArray("Color").GetValue(i) for i in range(3)] == [1.0, 0.0, 0.0]
    assert json.loads(fd.GetAbstractArray("Provenance").GetValue(0)) == PROV
    np.testing.assert_allclose(ns.vtk_to_numpy(pd.GetPoints().GetData()), models[0].vertices, atol=1e-4)
    assert pd.GetNumberOfCells() == models[0].n_triangles


def _glb_json(path):
    raw = path.read_bytes()
    magic, version, total = struct.unpack("<4sII", raw[:12])
    assert (magic, version, total) == (b"glTF", 2, len(raw))
    n, kind = struct.unpack("<I4s", raw[12:20])
    assert kind == b"JSON"
    return json.loads(raw[20:20 + n])


def test_glb_names_colours_units_axes_and_provenance(tmp_path, models):
    (path,) = write_models(models, tmp_path, ["glb"], provenance=PROV, scene_name="bones")
    assert path.name == "bones.glb"
    scene = trimesh.load(path)
    assert set(scene.geometry) == {"femur left", "hip/left"}
    for m in models:
        g = scene.geometry[m.name]
        col = g.visual.material.baseColorFactor
        # baseColorFactor is linear light: the sRGB colour converted (issue 10)
        from medrecon.io.meshes.gltf import srgb_to_linear

        np.testing.assert_allclose(np.asarray(col[:3], float) / (255 if col.dtype == np.uint8 else 1),
                                   srgb_to_linear(m.color), atol=0.01)
        # glTF: metres, +Y = superior (LPS z), +Z = anterior (-LPS y), +X = patient's left (LPS x)
        expect = np.c_[m.vertices[:, 0], m.vertices[:, 2], -m.vertices[:, 1]] / 1000.0
        np.testing.assert_allclose(g.vertices, expect, atol=1e-6)
        np.testing.assert_allclose(expect, m.vertices @ LPS_TO_GLTF.T / 1000.0)
        assert g.volume > 0  # a proper rotation keeps the outward winding
    doc = _glb_json(path)
    assert [n["name"] for n in doc["nodes"]] == ["femur left", "hip/left"]
    assert doc["asset"]["extras"]["provenance"] == PROV
    assert "x_LPS" in doc["asset"]["extras"]["conversion"]


def test_3mf_objects_named_coloured_in_mm_with_provenance(tmp_path, models):
    (path,) = write_models(models, tmp_path, ["3mf"], provenance=PROV)
    scene = trimesh.load(path)
    assert set(scene.geometry) == {"femur left", "hip/left"}
    assert scene.metadata.get("units") == "millimeter"
    for m in models:
        g = scene.geometry[m.name]
        assert g.is_watertight and g.volume == pytest.approx(m.to_trimesh().volume, rel=1e-5)
        np.testing.assert_allclose(np.sort(g.vertices, axis=0), np.sort(m.vertices, axis=0), atol=1e-4)
    with zipfile.ZipFile(path) as z:
        assert {"[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model"} <= set(z.namelist())
        root = ET.fromstring(z.read("3D/3dmodel.model"))
    ns = {"c": "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"}
    assert root.get("unit") == "millimeter"
    bases = root.findall(".//c:basematerials/c:base", ns)
    assert [b.get("displaycolor") for b in bases] == ["#FF0000FF", "#0080FFFF"]
    objs = [o for o in root.findall(".//c:object", ns) if o.find("c:mesh", ns) is not None]
    assert [(o.get("name"), o.get("pid"), o.get("pindex")) for o in objs] == [("femur left", "1", "0"), ("hip/left", "1", "1")]
    # one assembly of both, placed on the print bed by the single build item (issue 10)
    (item,) = root.findall(".//c:build/c:item", ns)
    assert len(root.findall(".//c:components/c:component", ns)) == 2 and item.get("transform")
    meta = {e.get("name"): e.text for e in root.findall("c:metadata", ns)}
    assert json.loads(meta["medrecon:provenance"]) == PROV
    assert meta["medrecon:space"] == "LPS"


def test_3mf_ras_moves_vertices(tmp_path, models):
    (path,) = write_models(models, tmp_path, ["3mf"], space="RAS")
    g = trimesh.load(path).geometry["femur left"]
    np.testing.assert_allclose(g.vertices.mean(0), [-10.0, 20.0, 30.0], atol=1e-6)


def test_every_format_at_once_atomic_and_replacing(tmp_path, models):
    (tmp_path / "femur_left.stl").write_bytes(b"old")
    paths = write_models(models, tmp_path, "stl,obj,ply,vtp,glb,3mf", provenance=PROV)
    assert len(paths) == 2 + 4 + 2 + 2 + 1 + 1
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert (tmp_path / "femur_left.stl").read_bytes()[:8] != b"old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_safe_and_unique_file_names(tmp_path):
    assert safe_filename("Wirbel/L1 (Körper)") == "Wirbel_L1_Korper"
    assert safe_filename("../../etc/passwd") == "etc_passwd"
    assert safe_filename("CON") == "structure_CON"
    assert safe_filename("") == "structure"
    twins = [octahedron((0, 0, 0), 1, "rib", (1, 1, 1), 5), octahedron((5, 0, 0), 1, "rib", (1, 1, 1), 6)]
    names = [p.name for p in write_models(twins, tmp_path, ["stl"])]
    assert names == ["rib.stl", "rib_6.stl"]
    names = [p.name for p in write_models(twins, tmp_path / "b", ["stl"], basename_fn=lambda m: f"seg_{m.label}")]
    assert names == ["seg_5.stl", "seg_6.stl"]


@pytest.mark.parametrize("kwargs, words", [
    ({"formats": ["stl", "fbx"]}, "fbx"),
    ({"formats": []}, "no mesh format"),
    ({"formats": ["stl"], "space": "XYZ"}, "LPS or RAS"),
])
def test_bad_arguments(tmp_path, models, kwargs, words):
    with pytest.raises(MeshError, match=words):
        write_models(models, tmp_path, **kwargs)


def test_empty_inputs(tmp_path):
    with pytest.raises(MeshError, match="no surface models"):
        write_models([], tmp_path, ["stl"])
    empty = SurfaceModel("nothing", np.zeros((0, 3)), np.zeros((0, 3), int))
    with pytest.raises(MeshError, match="nothing"):
        write_models([empty], tmp_path, ["stl"])
    assert not list(tmp_path.iterdir())


def test_meshed_phantom_exports_stay_watertight(tmp_path):
    from medrecon.surface import build_surfaces
    from medrecon.volume import Volume

    lab = np.zeros((30, 30, 20), np.uint8)
    ii = np.indices(lab.shape)
    lab[((ii[0] - 14.5) ** 2 + (ii[1] - 15) ** 2) / 100 + ((ii[2] - 10) ** 2) / 49 < 1] = 1
    models = build_surfaces(Volume(lab, np.diag([0.8, 0.8, 1.5, 1.0])), None, reduction=0.5)
    for p in write_models(models, tmp_path, ["stl", "ply", "obj", "3mf", "glb"]):
        if p.suffix == ".mtl":
            continue
        loaded = trimesh.load(p, force="mesh") if p.suffix in (".glb", ".3mf") else trimesh.load(p)
        assert loaded.is_watertight, p.name


def test_unwritable_destinations_raise_mesh_error_naming_the_path(tmp_path, models):
    blocker = tmp_path / "out.stl"
    blocker.write_bytes(b"x")
    with pytest.raises(MeshError, match="existing file") as ei:
        write_models(models, blocker, ["stl"])
    assert str(blocker) in str(ei.value)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "femur_left.stl").mkdir()  # a folder where the file should go
    with pytest.raises(MeshError) as ei:
        write_models(models, tmp_path / "ro", ["stl"])
    assert "femur_left.stl" in str(ei.value) and "\n" not in str(ei.value)
