"""USDZ (usd-core): one package for phone AR viewers (iOS Quick Look) and USD tools.

The stage is Y-up, metres per unit 0.001 (millimetres); each model is one ``Mesh`` prim under
``/model`` with a ``UsdPreviewSurface`` material: ``diffuseColor`` from its texture (``st``
coordinates read by a ``UsdPrimvarReader_float2`` whose ``varname`` is a string, as the schema
says) or its colour, ``metallic`` / ``roughness`` from its material. Vertices are LPS mm,
converted like the GLB (:func:`medrecon.orientation.lps_to_yup_mm`: superior up). Checked in the
tests with usd-core's ``UsdValidation`` registry (no errors).

References
----------
Pixar, "UsdPreviewSurface specification" (openusd.org/release/spec_usdpreviewsurface.html);
Pixar, "Usdz file format specification" (openusd.org/release/spec_usdz.html).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from medrecon.io.atomic import atomic_path
from medrecon.io.images import png_bytes
from medrecon.io.meshes.common import display_color, safe_filename
from medrecon.io.meshes.registry import WriteOptions, register_format
from medrecon.orientation import lps_to_yup_mm

__all__ = ["write_usdz_file"]


def write_usdz_file(models, path: Path, options: WriteOptions) -> list[Path]:
    """Write every model into one USDZ package at ``path`` (atomic)."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt

    from medrecon.errors import MeshError

    path = Path(path)
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        usdc = td / "model.usdc"
        stage = Usd.Stage.CreateNew(str(usdc))
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
        UsdGeom.SetStageMetersPerUnit(stage, 0.001)
        root = UsdGeom.Xform.Define(stage, "/model")
        stage.SetDefaultPrim(root.GetPrim())
        used: set[str] = set()
        for i, m in enumerate(models):
            name = safe_filename(m.name, f"mesh{i}").replace(".", "_").replace("-", "_")
            if not name[0].isalpha() and name[0] != "_":
                name = "m_" + name
            name = name if name not in used else f"{name}_{i}"
            used.add(name)
            mesh = UsdGeom.Mesh.Define(stage, f"/model/{name}")
            pts = lps_to_yup_mm(m.vertices)
            mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(pts.astype(np.float32)))
            mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(m.faces), 3, np.int32)))
            mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(m.faces.astype(np.int32).ravel()))
            mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
            mesh.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
            lo, hi = pts.min(0), pts.max(0)
            mesh.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))]))
            mpath = f"/model/{name}_material"
            mat = UsdShade.Material.Define(stage, mpath)
            sh = UsdShade.Shader.Define(stage, f"{mpath}/surface")
            sh.CreateIdAttr("UsdPreviewSurface")
            pbr = m.material
            sh.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(float(pbr.metallic) if pbr else 0.0)
            sh.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(float(pbr.roughness) if pbr else 0.6)
            mat.CreateSurfaceOutput().ConnectToSource(sh.ConnectableAPI(), "surface")
            if m.has_texture:
                tex_name = f"{name}.png"
                (td / tex_name).write_bytes(png_bytes(m.texture[..., :3]))
                st = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray,
                                                             UsdGeom.Tokens.vertex)
                st.Set(Vt.Vec2fArray.FromNumpy(m.uv.astype(np.float32)))
                reader = UsdShade.Shader.Define(stage, f"{mpath}/stReader")
                reader.CreateIdAttr("UsdPrimvarReader_float2")
                reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("st")
                reader.CreateOutput("result", Sdf.ValueTypeNames.Float2)
                tex = UsdShade.Shader.Define(stage, f"{mpath}/texture")
                tex.CreateIdAttr("UsdUVTexture")
                tex.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(tex_name)
                tex.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
                tex.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
                tex.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
                sh.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(tex.ConnectableAPI(), "rgb")
            else:
                sh.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(*display_color(m)))
            UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(mat)
        stage.GetRootLayer().Save()
        out = td / "model.usdz"
        if not UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(usdc)), str(out)):
            raise MeshError("usd-core could not package the USDZ", path)
        with atomic_path(path) as tmp:
            shutil.copyfile(out, tmp)
    return [path]


register_format("usdz", (".usdz",), write=write_usdz_file, per_structure=False, textures=True,
                description="USDZ package (iOS Quick Look AR, USD tools); needs usd-core")
