"""Input/output at the edges, one module per format family, reading and writing together:

* :mod:`.loader` (load / load_series / describe_series: DICOM or a volume file), :mod:`.dicom`
  (DICOM read and write), :mod:`.volumes` (NIfTI / NRRD / MetaImage by extension), :mod:`.nifti`,
  :mod:`.nrrd` (the one NRRD writer), :mod:`.convert` (nibabel, SimpleITK, VTK images);
* :mod:`.meshes` (STL, OBJ, PLY, VTP, GLB, 3MF), :mod:`.labelmaps` (label-map files, Slicer,
  TotalSegmentator, nnU-Net), :mod:`.label_tables` (colour tables, CSV, JSON), :mod:`.slicer`
  (``.seg.nrrd``, ``.mrml`` scenes, the Slicer bundle);
* :mod:`.atomic` (every output is written atomically).

``io`` imports only the ground floor (volume, labelmap, mesh, orientation, errors, version).
Inside medrecon everything is LPS; conversions go through :mod:`medrecon.orientation`."""
from __future__ import annotations

__all__ = ["load", "load_series", "describe_series", "save_volume"]


def __getattr__(name):  # lazy: importing a sibling module does not pull the loader in
    if name in ("load", "load_series", "describe_series"):
        from medrecon.io import loader

        return getattr(loader, name)
    if name == "save_volume":
        from medrecon.io.volumes import save_volume

        return save_volume
    raise AttributeError(f"module 'medrecon.io' has no attribute {name!r}")
