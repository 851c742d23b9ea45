"""Converters at the edges: nibabel (RAS), SimpleITK (LPS), VTK image data (LPS).

Inside medrecon a :class:`~medrecon.volume.Volume` has an index -> LPS mm affine. Here:

* **nibabel**: ``Nifti1Image`` with the RAS affine (``diag(-1,-1,1) @ affine``), same array.
* **SimpleITK**: ITK is LPS too; ITK's index (i, j, k) is our (i, j, k), and
  ``sitk.GetArrayFromImage`` returns it reversed (k, j, i). Direction = unit columns,
  spacing = column norms, origin = affine translation. 4D volumes become vector images.
* **VTK**: ``vtkImageData`` with origin, spacing and direction matrix (VTK >= 9) in LPS;
  the point data are in x-fastest (Fortran) order, so the array goes over unchanged.
  Frames of a 4D volume become components.
"""
from __future__ import annotations

import os

import numpy as np

from medrecon.errors import InputError
from medrecon.orientation import lps_ras_affine
from medrecon.volume import Volume

__all__ = ["to_nibabel", "from_nibabel", "to_sitk", "from_sitk", "to_vtk_image", "from_vtk_image",
           "read_itk", "write_itk"]


# ---- nibabel ---------------------------------------------------------------------------------
def to_nibabel(volume: Volume):
    """A ``nibabel.Nifti1Image`` (RAS affine, sform/qform code 1) holding the same array."""
    import nibabel as nib

    data = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    img = nib.Nifti1Image(data, volume.ras_affine)
    img.set_sform(volume.ras_affine, code=1)
    img.set_qform(volume.ras_affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img


def from_nibabel(img, meta: dict | None = None) -> Volume:
    """A Volume from any nibabel spatial image (its affine is RAS)."""
    data = np.asanyarray(img.dataobj)
    return Volume(data, lps_ras_affine(img.affine), meta or {"source": "nibabel"})


# ---- SimpleITK -------------------------------------------------------------------------------
def to_sitk(volume: Volume):
    """A ``SimpleITK.Image`` with the same LPS geometry (4D -> vector image, frames as components)."""
    import SimpleITK as sitk

    arr = volume.array
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.ndim == 4:
        img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(arr, (2, 1, 0, 3))), isVector=True)
    else:
        img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(arr, (2, 1, 0))))
    img.SetSpacing([float(s) for s in volume.spacing])
    img.SetOrigin([float(x) for x in volume.origin])
    img.SetDirection([float(x) for x in volume.direction.reshape(-1)])
    return img


def from_sitk(img, meta: dict | None = None) -> Volume:
    """A Volume from a 3D ``SimpleITK.Image`` (vector images become 4D)."""
    import SimpleITK as sitk

    if img.GetDimension() != 3:
        raise InputError(f"only 3D SimpleITK images are supported (got {img.GetDimension()}D)")
    arr = sitk.GetArrayFromImage(img)
    arr = np.transpose(arr, (2, 1, 0, 3)) if img.GetNumberOfComponentsPerPixel() > 1 else np.transpose(arr, (2, 1, 0))
    D = np.array(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    A = np.eye(4)
    A[:3, :3] = D * np.array(img.GetSpacing(), dtype=np.float64)[None, :]
    A[:3, 3] = img.GetOrigin()
    return Volume(arr, A, meta or {"source": "itk"})


def read_itk(path: str | os.PathLike) -> Volume:
    """Read any image SimpleITK reads (MetaImage .mha/.mhd, ...) into a Volume."""
    import SimpleITK as sitk

    path = os.fspath(path)
    try:
        img = sitk.ReadImage(path)
    except RuntimeError as exc:
        raise InputError(f"cannot read image ({str(exc).strip().splitlines()[-1]})", path) from exc
    return from_sitk(img, {"source": "itk"})


def write_itk(volume: Volume, path: str | os.PathLike) -> str:
    """Write with SimpleITK (format by extension), atomically."""
    import SimpleITK as sitk

    from medrecon.io.atomic import atomic_path

    path = os.fspath(path)
    with atomic_path(path) as tmp:
        sitk.WriteImage(to_sitk(volume), str(tmp), True)
    return path


# ---- VTK -------------------------------------------------------------------------------------
def to_vtk_image(volume: Volume):
    """A ``vtkImageData`` in LPS mm (origin, spacing, direction matrix); 4D -> components."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData

    arr = volume.array
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    img = vtkImageData()
    img.SetDimensions(*[int(s) for s in arr.shape[:3]])
    img.SetSpacing(*[float(s) for s in volume.spacing])
    img.SetOrigin(*[float(x) for x in volume.origin])
    img.SetDirectionMatrix([float(x) for x in volume.direction.reshape(-1)])
    ncomp = arr.shape[3] if arr.ndim == 4 else 1
    flat = arr.reshape((-1, ncomp), order="F") if ncomp > 1 else arr.ravel(order="F")
    vtk_arr = numpy_to_vtk(np.ascontiguousarray(flat), deep=True)
    vtk_arr.SetName("scalars")
    img.GetPointData().SetScalars(vtk_arr)
    return img


def from_vtk_image(img, meta: dict | None = None) -> Volume:
    """A Volume from a ``vtkImageData`` (its origin/spacing/direction taken as LPS mm)."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    dims = img.GetDimensions()
    scal = img.GetPointData().GetScalars()
    if scal is None:
        raise InputError("vtkImageData has no point scalars")
    flat = vtk_to_numpy(scal)
    ncomp = scal.GetNumberOfComponents()
    if ncomp > 1:
        arr = flat.reshape(tuple(dims) + (ncomp,), order="F")
    else:
        arr = flat.reshape(tuple(dims), order="F")
    D = np.array([img.GetDirectionMatrix().GetElement(r, c) for r in range(3) for c in range(3)]).reshape(3, 3)
    A = np.eye(4)
    A[:3, :3] = D * np.array(img.GetSpacing())[None, :]
    A[:3, 3] = img.GetOrigin()
    return Volume(arr.copy(), A, meta or {"source": "vtk"})
