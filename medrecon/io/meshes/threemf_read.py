"""Reading 3MF files (for ``medrecon view`` and tests): every mesh object as a SurfaceModel.

medrecon's own 3MF keeps each structure's vertices in patient millimetres (the print placement
lives in the build item only), tagged ``medrecon:space``; those come back in LPS mm with their
names and colours. Other producers' objects are read as stored (millimetres, their own frame).
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from medrecon.errors import InputError
from medrecon.io.limits import read_zip_member
from medrecon.mesh import SurfaceModel
from medrecon.orientation import from_space

__all__ = ["read_3mf"]

_NS = "{http://schemas.microsoft.com/3dmanufacturing/core/2015/02}"
_UNITS_MM = {"micron": 0.001, "millimeter": 1.0, "centimeter": 10.0, "inch": 25.4, "foot": 304.8, "meter": 1000.0}


def _color(hexcolor: str | None):
    if not hexcolor or not hexcolor.startswith("#") or len(hexcolor) < 7:
        return None
    try:
        return tuple(int(hexcolor[i:i + 2], 16) / 255.0 for i in (1, 3, 5))
    except ValueError:
        return None


def read_3mf(path: str | Path) -> list[SurfaceModel]:
    """Every ``<object>`` with a ``<mesh>`` of a 3MF file, vertices in millimetres.

    Raises
    ------
    InputError : not a zip, no ``3D/3dmodel.model``, malformed XML or indices.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.lower().endswith(".model")]
            if not names:
                raise InputError("3MF holds no 3D/3dmodel.model part", path=path)
            main = next((n for n in names if n.lower() == "3d/3dmodel.model"), names[0])
            root = ET.fromstring(read_zip_member(zf, main, path))
    except zipfile.BadZipFile:
        raise InputError("not a 3MF file (not a zip)", path=path) from None
    except ET.ParseError as exc:
        raise InputError(f"3MF model XML is malformed ({exc})", path=path) from None
    scale = _UNITS_MM.get(root.get("unit", "millimeter"), 1.0)
    meta = {m.get("name"): (m.text or "") for m in root.iter(f"{_NS}metadata")}
    space = meta.get("medrecon:space", "LPS").strip().upper()
    colors: dict[str, list] = {}
    for bm in root.iter(f"{_NS}basematerials"):
        colors[bm.get("id")] = [_color(b.get("displaycolor")) for b in bm.iter(f"{_NS}base")]
    models = []
    for obj in root.iter(f"{_NS}object"):
        mesh = obj.find(f"{_NS}mesh")
        if mesh is None:
            continue
        v = np.array([[float(x.get("x")), float(x.get("y")), float(x.get("z"))]
                      for x in mesh.iter(f"{_NS}vertex")], dtype=np.float64).reshape(-1, 3) * scale
        f = np.array([[int(t.get("v1")), int(t.get("v2")), int(t.get("v3"))]
                      for t in mesh.iter(f"{_NS}triangle")], dtype=np.int64).reshape(-1, 3)
        if len(f) == 0:
            continue
        if f.min() < 0 or f.max() >= len(v):
            raise InputError(f"3MF object {obj.get('name') or obj.get('id')!r} has triangle indices out of range",
                             path=path)
        if space in ("LPS", "RAS"):
            v = from_space(v, space)
        pal = colors.get(obj.get("pid") or "", [])
        try:
            color = pal[int(obj.get("pindex", "0"))]
        except (ValueError, IndexError):
            color = None
        name = obj.get("name") or f"object {obj.get('id')}"
        kw = {"color": color} if color is not None else {}
        models.append(SurfaceModel(name, v, f, **kw))
    if not models:
        raise InputError("3MF holds no mesh objects", path=path)
    return models
