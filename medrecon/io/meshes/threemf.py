"""3MF (3D Manufacturing Format): one zip holding every structure as a named, coloured object,
unit millimetre, provenance in ``<metadata>``; read back by :mod:`.threemf_read`.

References
----------
3MF Consortium, "3D Manufacturing Format, Core Specification" v1.3 (github.com/3MFConsortium/spec_core):
``<basematerials>``, ``<components>``, build item transforms. Checked in the tests with lib3mf
(strict mode) and PrusaSlicer.
"""
from __future__ import annotations

import io
import json
import zipfile
from typing import Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from pathlib import Path

from medrecon.io.atomic import atomic_write_bytes
from medrecon.io.meshes.common import display_color, fmt_rows, rgb255
from medrecon.io.meshes.registry import WriteOptions, register_format
from medrecon.mesh import SurfaceModel
from medrecon.orientation import to_space
from medrecon.version import __version__

__all__ = ["threemf_bytes", "write_3mf_file", "print_placement", "BED_CENTER_MM", "COMMON_BUILD_VOLUME_MM"]

#: Where the assembly goes: the centre of the default printer bed of PrusaSlicer (200 x 200 mm),
#: the usual 3MF consumer; slicers with other beds re-centre a single object themselves.
BED_CENTER_MM = (100.0, 100.0)
#: A common desktop printer's build volume (x, y, z mm); larger models get a report warning.
COMMON_BUILD_VOLUME_MM = (200.0, 200.0, 200.0)

_3MF_CORE = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
_3MF_META_NS = "https://github.com/medrecon/medrecon/3mf/provenance"


def print_placement(models: Sequence[SurfaceModel], space: str = "LPS") -> np.ndarray:
    """4x4 translation putting the models, as one assembly, on the print bed.

    The assembly's lowest point goes to z = 0 and the centre of its x-y extent to
    :data:`BED_CENTER_MM`; the axes stay those of ``space`` (z = superior is up). Its inverse
    takes printer coordinates back to patient ``space`` millimetres.
    """
    lo = np.min([to_space(m.vertices, space).min(0) for m in models], axis=0)
    hi = np.max([to_space(m.vertices, space).max(0) for m in models], axis=0)
    t = np.eye(4)
    t[:3, 3] = [BED_CENTER_MM[0] - (lo[0] + hi[0]) / 2, BED_CENTER_MM[1] - (lo[1] + hi[1]) / 2, -lo[2]]
    return t


def _transform_attr(t: np.ndarray) -> str:
    """3MF's 3x4 row-major form ``m00 m01 m02 m10 m11 m12 m20 m21 m22 m30 m31 m32``."""
    m = t[:3, :3].T.reshape(-1).tolist() + t[:3, 3].tolist()
    return " ".join(f"{x:.6f}" for x in m)


def threemf_bytes(models: Sequence[SurfaceModel], provenance: dict | None, space: str) -> bytes:
    """One 3MF holding every structure, placed on the print bed as one assembly.

    Each structure is a named, coloured mesh object in patient ``space`` millimetres; one
    assembly object references them all (``<components>``), and the single build item places
    the assembly with :func:`print_placement` (on the plate, centred). PrusaSlicer and other
    slicers therefore load one object made of the structures, keep their relative positions and
    can print it without arranging. ``medrecon:print_to_patient`` (metadata) is the 4x4 matrix
    taking printer coordinates back to patient ``space`` mm (``medrecon:patient_to_print`` the
    other way).
    """
    place = print_placement(models, space)
    back = np.linalg.inv(place)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<model unit="millimeter" xml:lang="en-US" xmlns="{_3MF_CORE}" xmlns:medrecon="{_3MF_META_NS}">\n',
        '<metadata name="Application">medrecon ' + escape(__version__) + "</metadata>\n",
        f'<metadata name="Description">{escape(f"Surface models in {space} millimetres (SPACE={space})")}</metadata>\n',
        f'<metadata name="medrecon:space">{space}</metadata>\n',
        f'<metadata name="medrecon:patient_to_print">{escape(json.dumps(np.round(place, 6).tolist()))}</metadata>\n',
        f'<metadata name="medrecon:print_to_patient">{escape(json.dumps(np.round(back, 6).tolist()))}</metadata>\n',
    ]
    if provenance:
        parts.append('<metadata name="medrecon:provenance">'
                     + escape(json.dumps(provenance, sort_keys=True, default=str)) + "</metadata>\n")
    parts.append('<resources>\n<basematerials id="1">\n')
    for m in models:
        r, g, b = rgb255(display_color(m))
        parts.append(f'<base name={quoteattr(m.name)} displaycolor="#{r:02X}{g:02X}{b:02X}FF"/>\n')
    parts.append("</basematerials>\n")
    for i, m in enumerate(models):
        v = to_space(m.vertices, space)
        f = m.faces
        f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]  # 3MF forbids degenerate
        parts.append(f'<object id="{i + 2}" type="model" name={quoteattr(m.name)} pid="1" pindex="{i}">\n'
                     "<mesh>\n<vertices>\n")
        parts.append(fmt_rows('<vertex x="%.5f" y="%.5f" z="%.5f"/>', v))
        parts.append("</vertices>\n<triangles>\n")
        parts.append(fmt_rows('<triangle v1="%d" v2="%d" v3="%d"/>', f))
        parts.append("</triangles>\n</mesh>\n</object>\n")
    asm = len(models) + 2
    parts.append(f'<object id="{asm}" type="model" name="medrecon assembly">\n<components>\n')
    parts.extend(f'<component objectid="{i + 2}"/>\n' for i in range(len(models)))
    parts.append("</components>\n</object>\n")
    parts.append("</resources>\n<build>\n")
    parts.append(f'<item objectid="{asm}" transform="{_transform_attr(place)}"/>\n')
    parts.append("</build>\n</model>\n")
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
        "</Types>\n")
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
        'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>\n')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        z.writestr("[Content_Types].xml", content_types)
        z.writestr("_rels/.rels", rels)
        z.writestr("3D/3dmodel.model", "".join(parts))
    return buf.getvalue()


def write_3mf_file(models, path: Path, options: WriteOptions) -> list[Path]:
    return [atomic_write_bytes(path, threemf_bytes(list(models), options.provenance, options.space))]


def _read(path):
    from medrecon.io.meshes.threemf_read import read_3mf

    return read_3mf(path)


register_format("3mf", (".3mf",), write=write_3mf_file, read=_read, per_structure=False,
                description="3D Manufacturing Format: one file, named coloured objects on the print bed")
