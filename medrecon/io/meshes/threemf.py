"""3MF (3D Manufacturing Format): one zip holding every structure as a named, coloured object,
unit millimetre, provenance in ``<metadata>``. Write only."""
from __future__ import annotations

import io
import json
import zipfile
from typing import Sequence
from xml.sax.saxutils import escape, quoteattr

from medrecon.io.meshes.common import fmt_rows, rgb255
from medrecon.mesh import SurfaceModel
from medrecon.orientation import to_space
from medrecon.version import __version__

__all__ = ["threemf_bytes"]

_3MF_CORE = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
_3MF_META_NS = "https://github.com/medrecon/medrecon/3mf/provenance"


def threemf_bytes(models: Sequence[SurfaceModel], provenance: dict | None, space: str) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<model unit="millimeter" xml:lang="en-US" xmlns="{_3MF_CORE}" xmlns:medrecon="{_3MF_META_NS}">\n',
        '<metadata name="Application">medrecon ' + escape(__version__) + "</metadata>\n",
        f'<metadata name="Description">{escape(f"Surface models in {space} millimetres (SPACE={space})")}</metadata>\n',
        f'<metadata name="medrecon:space">{space}</metadata>\n',
    ]
    if provenance:
        parts.append('<metadata name="medrecon:provenance">'
                     + escape(json.dumps(provenance, sort_keys=True, default=str)) + "</metadata>\n")
    parts.append('<resources>\n<basematerials id="1">\n')
    for m in models:
        r, g, b = rgb255(m.color)
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
    parts.append("</resources>\n<build>\n")
    parts.extend(f'<item objectid="{i + 2}"/>\n' for i in range(len(models)))
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
