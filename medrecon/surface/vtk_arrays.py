"""numpy <-> VTK conversions used by the mesher: label crops to ``vtkImageData`` (index space),
``vtkPolyData`` to point/triangle arrays and back. No geometry convention here: points stay in
whatever frame the caller uses (the mesher works in voxel index space)."""
from __future__ import annotations

from typing import Iterable

import numpy as np
from vtkmodules.util import numpy_support as ns
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData

from medrecon.errors import MeshError


def _image_from_array(arr: np.ndarray, origin: Iterable[float] = (0, 0, 0)) -> vtkImageData:
    """Wrap a C-ordered (i, j, k) array as vtkImageData without copying it.

    VTK stores x fastest, numpy's C order has k fastest, so the image is presented with
    x = k, y = j, z = i (dimensions and origin reversed). Points that VTK produces from it are
    therefore (k, j, i): reverse their columns (:func:`_points_ijk`). Spacing is 1 (index space).
    """
    arr = np.ascontiguousarray(arr)
    img = vtkImageData()
    img.SetDimensions(*arr.shape[::-1])
    img.SetOrigin(*[float(o) for o in list(origin)[::-1]])
    img.SetSpacing(1.0, 1.0, 1.0)
    vtk_arr = ns.numpy_to_vtk(arr.reshape(-1), deep=False)  # a view; VTK keeps a reference
    vtk_arr.SetName("labels")
    img.GetPointData().SetScalars(vtk_arr)
    return img


def _points_ijk(pd: vtkPolyData) -> np.ndarray:
    """Points of polydata made from :func:`_image_from_array` input, as (i, j, k) float32 views."""
    return ns.vtk_to_numpy(pd.GetPoints().GetData())[:, ::-1]


def _arrays_from_polydata(pd: vtkPolyData) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 3) in (i, j, k) order, triangles int64 (M, 3)) from triangle-only polydata.

    Both are views on VTK's arrays where possible: keep ``pd`` alive while using them.
    """
    if pd.GetNumberOfPoints() == 0 or pd.GetPolys() is None or pd.GetPolys().GetNumberOfCells() == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    pts = _points_ijk(pd)
    polys = pd.GetPolys()
    if polys.GetNumberOfConnectivityIds() != 3 * polys.GetNumberOfCells():
        raise MeshError("internal: contouring produced non-triangle polygons")
    conn = ns.vtk_to_numpy(polys.GetConnectivityArray())
    return pts, conn.astype(np.int64, copy=False).reshape(-1, 3)


def _polydata_from_arrays(points: np.ndarray, faces: np.ndarray) -> vtkPolyData:
    """Triangle polydata from (i, j, k) points (stored as (k, j, i), like image-derived data)."""
    pd = vtkPolyData()
    vp = vtkPoints()
    vp.SetData(ns.numpy_to_vtk(np.ascontiguousarray(points[:, ::-1]), deep=True))  # VTK frame (k, j, i)
    pd.SetPoints(vp)
    cells = vtkCellArray()
    n = faces.shape[0]
    offsets = np.arange(0, 3 * n + 1, 3, dtype=np.int64)
    cells.SetData(ns.numpy_to_vtkIdTypeArray(offsets, deep=True),
                  ns.numpy_to_vtkIdTypeArray(np.ascontiguousarray(faces, dtype=np.int64).ravel(), deep=True))
    pd.SetPolys(cells)
    return pd


# --------------------------------------------------------------------------- stages
