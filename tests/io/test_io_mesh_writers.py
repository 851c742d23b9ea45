"""The one mesh writer family (issue 23): plain and textured models through the same registered
writers, each format checked by its own ecosystem's reader or validator (Khronos glTF validator,
usd-core's UsdValidation registry, lib3mf strict mode, trimesh for OBJ/PLY, VTK for VTP), and a
new format registered in a few lines."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from helpers_gltf import assert_valid_gltf
from helpers_print import read_3mf_strict
from medrecon.errors import MeshError
from medrecon.io import meshes as M
from medrecon.io.meshes import MESH_FORMATS, read_glb_json, register_format, write_mesh, write_models
from medrecon.mesh import PBRMaterial, SurfaceModel

V = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], float)
F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
UV = np.array([[0, 0], [1, 0], [0, 1], [0.5, 0.5]])


def _models() -> list[SurfaceModel]:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4, :, 1] = 180  # top half green, bottom half black
    return [SurfaceModel("unlit", V, F, uv=UV, texture=rgba, material=PBRMaterial("m1", unlit=True)),
            SurfaceModel("photo", V + 20, F, uv=UV, texture=rgb, material=PBRMaterial("m2", roughness=0.4)),
            SurfaceModel("painted", V - 20, F, vertex_colors=np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255],
                                                                      [128, 128, 128]], np.uint8)),
            SurfaceModel("bone", V + [40, 0, 0], F, color=(0.9, 0.8, 0.6), label=3)]


def test_register_a_new_format_in_a_few_lines(tmp_path):
    def write_xyz(models, path, options):
        path.write_text("".join(f"{x:.3f} {y:.3f} {z:.3f}\n" for m in models for x, y, z in m.vertices))
        return [path]

    register_format("xyz", (".xyz",), write=write_xyz, description="point list")
    try:
        assert "xyz" in M.FORMATS and MESH_FORMATS["xyz"].can_write
        (p,) = write_models(_models()[3:], tmp_path, "xyz")
        assert p.name == "bone.xyz" and len(p.read_text().splitlines()) == 4
        with pytest.raises(MeshError, match="already registered"):
            register_format("xyz", (".xyz",), write=write_xyz)
    finally:
        M.unregister_format("xyz")
    with pytest.raises(MeshError, match="unknown mesh format 'xyz'"):
        write_models(_models()[3:], tmp_path, "xyz")


def test_glb_textured_and_plain_valid(tmp_path):
    (glb,) = write_models(_models(), tmp_path, "glb", provenance={"command": "test"}, scene_name="scene")
    assert_valid_gltf(glb)
    doc = read_glb_json(glb)
    assert doc["asset"]["extras"]["provenance"] == {"command": "test"}
    assert len(doc["meshes"]) == 4 and len(doc["images"]) == 2 and doc["extensionsUsed"] == ["KHR_materials_unlit"]
    mats = {m["name"]: m for m in doc["materials"]}
    assert mats["m1"]["alphaMode"] == "MASK" and mats["m2"]["pbrMetallicRoughness"]["roughnessFactor"] == 0.4
    assert "baseColorTexture" in mats["m2"]["pbrMetallicRoughness"]
    col = doc["accessors"][doc["meshes"][2]["primitives"][0]["attributes"]["COLOR_0"]]
    assert col["normalized"] and col["componentType"] == 5121
    assert doc["nodes"][3]["extras"] == {"label": 3}
    # JPEG textures for photos (alpha stays PNG)
    (jpg,) = write_models(_models()[:2], tmp_path / "j", "glb", image_format="jpeg")
    assert_valid_gltf(jpg)
    assert [i["mimeType"] for i in read_glb_json(jpg)["images"]] == ["image/png", "image/jpeg"]


def test_obj_mtl_png_and_ply_colours_read_back(tmp_path):
    photo, painted = _models()[1:3]
    obj, mtl, png = write_mesh(photo, tmp_path / "photo.obj", header="frame: test")
    assert (mtl.name, png.name) == ("photo.mtl", "photo.png")
    text = mtl.read_text()
    assert "map_Kd photo.png" in text and "Pr 0.4000" in text and "Pm 0.0000" in text
    assert "# frame: test" in obj.read_text()
    back = trimesh.load(obj, process=False)
    assert back.visual.kind == "texture" and np.asarray(back.visual.material.image).shape[:2] == (8, 8)
    np.testing.assert_allclose(back.visual.uv, UV, atol=1e-6)
    (ply,) = write_mesh(painted, tmp_path / "painted.ply")
    got = trimesh.load(ply, process=False)
    assert np.array_equal(np.asarray(got.visual.vertex_colors)[:, :3], painted.vertex_colors)
    # a textured model's PLY carries the texture sampled at each vertex: v = 1 (top) green, v = 0 black
    (ply2,) = write_mesh(photo, tmp_path / "photo.ply", ply_binary=False)
    cols = np.asarray(trimesh.load(ply2, process=False).visual.vertex_colors)[:, :3]
    assert cols[2, 1] == 180 and cols[0, 1] == 0


def test_usdz_passes_usd_validation(tmp_path):
    from pxr import Usd, UsdGeom, UsdValidation  # usd-core (the multiview extra; in the test extra)

    (p,) = write_models(_models(), tmp_path, "usdz")
    stage = Usd.Stage.Open(str(p))
    ctx = UsdValidation.ValidationContext(UsdValidation.ValidationRegistry().GetOrLoadAllValidators())
    errors = [e for e in ctx.Validate(stage) if e.GetType() == UsdValidation.ValidationErrorType.Error]
    assert errors == [], [(e.GetName(), e.GetMessage()) for e in errors]
    assert UsdGeom.GetStageUpAxis(stage) == "Y" and UsdGeom.GetStageMetersPerUnit(stage) == 0.001
    names = [c.GetName() for c in stage.GetPrimAtPath("/model").GetChildren() if c.IsA(UsdGeom.Mesh)]
    assert names == ["unlit", "photo", "painted", "bone"]


def test_3mf_of_textured_models_reads_strictly(tmp_path):
    models = _models()
    (p,) = write_models(models, tmp_path, "3mf")
    r = read_3mf_strict(p)
    assert r["warnings"] == [] and set(r["objects"]) == {m.name for m in models}
    assert all(o["manifold_oriented"] and o["triangles"] == 4 for o in r["objects"].values())


def test_vtp_keeps_vertex_colours(tmp_path):
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    painted = _models()[2]
    (p,) = write_mesh(painted, tmp_path / "p.vtp")
    rd = vtkXMLPolyDataReader()
    rd.SetFileName(str(p))
    rd.Update()
    assert np.array_equal(vtk_to_numpy(rd.GetOutput().GetPointData().GetArray("RGB")), painted.vertex_colors)


def test_one_file_name_rule():
    from medrecon.io.meshes import safe_filename

    assert safe_filename("CON") == "structure_CON" and safe_filename("lpt1", "model") == "model_lpt1"
    with pytest.raises(MeshError, match="one structure per file"):
        write_mesh(_models(), "x.stl")
