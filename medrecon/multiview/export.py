"""USDZ export (usd-core) of a textured mesh, for phone AR viewers (iOS Quick Look).

The stage is Y-up, metres per unit 0.001 (millimetres), one mesh with ``st`` texture
coordinates and a ``UsdPreviewSurface`` material (diffuseColor from the texture, metallic 0,
roughness from the material). Input vertices are LPS millimetres, converted like the GLB
(``(x, z, -y)``, superior up).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_path
from ..texture import TexturedMesh, png_bytes


def write_usdz(mesh: TexturedMesh, path: str | Path) -> Path:
    """Write ``mesh`` as a USDZ package at ``path`` (atomic)."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt

    path = Path(path)
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        usda = td / "model.usdc"
        stage = Usd.Stage.CreateNew(str(usda))
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
        UsdGeom.SetStageMetersPerUnit(stage, 0.001)
        root = UsdGeom.Xform.Define(stage, "/model")
        stage.SetDefaultPrim(root.GetPrim())
        m = UsdGeom.Mesh.Define(stage, "/model/mesh")
        v = np.asarray(mesh.vertices, float)
        pts = np.stack([v[:, 0], v[:, 2], -v[:, 1]], 1)
        m.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(pts.astype(np.float32)))
        m.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(mesh.faces), 3, np.int32)))
        m.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(mesh.faces.astype(np.int32).ravel()))
        m.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
        m.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
        lo, hi = pts.min(0), pts.max(0)
        m.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))]))
        mat = UsdShade.Material.Define(stage, "/model/material")
        sh = UsdShade.Shader.Define(stage, "/model/material/surface")
        sh.CreateIdAttr("UsdPreviewSurface")
        sh.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(float(mesh.material.metallic))
        sh.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(float(mesh.material.roughness))
        mat.CreateSurfaceOutput().ConnectToSource(sh.ConnectableAPI(), "surface")
        files = [usda]
        if mesh.has_texture:
            (td / "texture.png").write_bytes(png_bytes(mesh.texture[..., :3]))
            st = UsdGeom.PrimvarsAPI(m).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex)
            st.Set(Vt.Vec2fArray.FromNumpy(mesh.uv.astype(np.float32)))
            reader = UsdShade.Shader.Define(stage, "/model/material/stReader")
            reader.CreateIdAttr("UsdPrimvarReader_float2")
            reader.CreateInput("varname", Sdf.ValueTypeNames.Token).Set("st")
            tex = UsdShade.Shader.Define(stage, "/model/material/texture")
            tex.CreateIdAttr("UsdUVTexture")
            tex.CreateInput("file", Sdf.ValueTypeNames.Asset).Set("texture.png")
            tex.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
            tex.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
            tex.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
            sh.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(tex.ConnectableAPI(), "rgb")
        else:
            sh.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(*mesh.material.base_color[:3]))
        UsdShade.MaterialBindingAPI.Apply(m.GetPrim()).Bind(mat)
        stage.GetRootLayer().Save()
        out = td / "model.usdz"
        if not UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(usda)), str(out)):
            raise RuntimeError("usd-core could not package the USDZ")
        with atomic_path(path) as tmp:
            shutil.copyfile(out, tmp)
    return path
