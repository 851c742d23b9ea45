"""VTK XML PolyData (``.vtp``): one structure per file; FieldData ``SPACE``, ``Name``, ``Color``,
``Generator`` and (optionally) ``Provenance``; point data ``RGB`` when the model has vertex colours
or a texture (sampled per vertex). Written and read with VTK."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medrecon.errors import InputError, MeshError
from medrecon.io.atomic import atomic_path
from medrecon.io.meshes.registry import WriteOptions, register_format
from medrecon.labelmap import color_for
from medrecon.mesh import SurfaceModel, vertex_rgb
from medrecon.orientation import from_space, to_space
from medrecon.version import generator

__all__ = ["write_vtp", "read_vtp", "write_vtp_file"]


def write_vtp_file(models, path: Path, options: WriteOptions) -> list[Path]:
    (m,) = models
    write_vtp(m, to_space(m.vertices, options.space), Path(path), options.space, options.provenance)
    return [Path(path)]


def write_vtp(m: SurfaceModel, v: np.ndarray, path: Path, space: str, provenance: dict | None) -> None:
    from vtkmodules.util import numpy_support as ns
    from vtkmodules.vtkCommonCore import vtkFloatArray, vtkPoints, vtkStringArray
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
    from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

    pd = vtkPolyData()
    pts = vtkPoints()
    pts.SetData(ns.numpy_to_vtk(np.ascontiguousarray(v, dtype=np.float32), deep=True))
    pd.SetPoints(pts)
    cells = vtkCellArray()
    off = np.arange(0, 3 * len(m.faces) + 1, 3, dtype=np.int64)
    cells.SetData(ns.numpy_to_vtkIdTypeArray(off, deep=True),
                  ns.numpy_to_vtkIdTypeArray(np.ascontiguousarray(m.faces, dtype=np.int64).ravel(), deep=True))
    pd.SetPolys(cells)
    fd = pd.GetFieldData()
    for key, val in (("SPACE", space), ("Name", m.name), ("Generator", generator())):
        sa = vtkStringArray()
        sa.SetName(key)
        sa.InsertNextValue(str(val))
        fd.AddArray(sa)
    if provenance:
        sa = vtkStringArray()
        sa.SetName("Provenance")
        sa.InsertNextValue(json.dumps(provenance, sort_keys=True, default=str))
        fd.AddArray(sa)
    col = vtkFloatArray()
    col.SetName("Color")
    for c in m.color:
        col.InsertNextValue(float(c))
    fd.AddArray(col)
    if m.vertex_colors is not None or m.has_texture:
        rgb = ns.numpy_to_vtk(np.ascontiguousarray(vertex_rgb(m)), deep=True)
        rgb.SetName("RGB")
        pd.GetPointData().SetScalars(rgb)
    with atomic_path(path) as tmp:
        w = vtkXMLPolyDataWriter()
        w.SetFileName(str(tmp))
        w.SetInputData(pd)
        w.SetDataModeToAppended()
        w.SetCompressorTypeToZLib()
        if not w.Write():
            raise MeshError("VTK could not write the file", path)



def read_vtp(path: Path) -> list[SurfaceModel]:
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkFiltersCore import vtkTriangleFilter
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    r = vtkXMLPolyDataReader()
    r.SetFileName(str(path))
    r.Update()
    pd = r.GetOutput()
    if pd is None or pd.GetNumberOfPoints() == 0:
        raise InputError("VTP file holds no points", path=path)
    tf = vtkTriangleFilter()
    tf.SetInputData(pd)
    tf.Update()
    tri = tf.GetOutput()
    v = vtk_to_numpy(tri.GetPoints().GetData()).astype(np.float64)
    conn = vtk_to_numpy(tri.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    fd = pd.GetFieldData()

    def field(name):
        a = fd.GetAbstractArray(name)
        if a is None:
            return None
        if hasattr(a, "GetValue") and a.GetNumberOfValues():
            if a.IsA("vtkStringArray"):
                return a.GetValue(0)
            return vtk_to_numpy(a)
        return None

    space = field("SPACE") or "LPS"
    name = field("Name") or path.stem
    color = field("Color")
    color = tuple(np.asarray(color, float).ravel()[:3]) if color is not None and np.size(color) >= 3 else None
    v = from_space(v, str(space).upper())
    return [SurfaceModel(str(name), v, conn, color or color_for(0))]


register_format("vtp", (".vtp",), write=write_vtp_file, read=read_vtp,
                description="VTK XML PolyData, one file per structure (ParaView, 3D Slicer)")
