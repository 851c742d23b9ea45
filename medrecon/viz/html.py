"""One self-contained, offline HTML viewer for surface models.

The page inlines three.js (vendored in ``medrecon/viz/static/``, MIT licence) and the meshes
(base64 float32 vertex and uint32 index buffers, LPS millimetres), and forbids every network
request with a Content-Security-Policy, so it works from a USB stick or an e-mail attachment.
It offers: rotate / zoom / pan (three's OrbitControls), front/side/top views, a show/hide
checkbox with name and colour per structure, the size in mm of each structure and of everything
visible (L-R x A-P x S-I), and a two-point distance measurement in mm.

For scripted checks the page sets ``window.medreconViewer`` (``ready``, ``names``,
``setVisible(name, on)``, ``isVisible(name)``, ``visibleBounds()``, ``setView(name)``,
``pickAt(x, y)``, ``measure``) and ``<body data-ready="1">`` once drawn.
"""
from __future__ import annotations

import base64
import html
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from medrecon.errors import InputError, MeshError
from medrecon.io.atomic import atomic_write_text
from medrecon.io.meshes import READ_EXTENSIONS as MESH_EXTENSIONS
from medrecon.io.meshes import load_mesh_file
from medrecon.labelmap import color_for
from medrecon.mesh import SurfaceModel

__all__ = ["write_viewer", "write_viewer_from_files", "load_mesh_file", "MESH_EXTENSIONS"]


def _static(name: str) -> str:
    return resources.files("medrecon.viz").joinpath("static", name).read_text(encoding="utf-8")


def _b64(arr: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode("ascii")


def _decimate(m: SurfaceModel, target: int) -> SurfaceModel:
    """Fewer triangles for display only (fast-simplification); the files on disk are untouched."""
    if m.n_triangles <= target:
        return m
    from medrecon.surface.decimate import simplify

    v, f = simplify(m.vertices, m.faces, target_faces=target)
    return SurfaceModel(m.name, v, f, m.color, m.label, dict(m.qa))


def _json_for_script(obj: Any) -> str:
    """JSON that cannot end its <script> element early: <, > and & become \\u escapes."""
    text = json.dumps(obj, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _js_for_script(code: str) -> str:
    """Vendored JavaScript must not contain a closing script tag (checked, not rewritten)."""
    if "</script" in code.lower():
        raise MeshError("vendored viewer JavaScript contains '</script'; rebuild medrecon/viz/static")
    return code


def write_viewer(models: Sequence[SurfaceModel], out_html: str | os.PathLike, title: str = "medrecon viewer",
                 max_triangles: int = 1_500_000, vertex_colors: Sequence[np.ndarray | None] | None = None,
                 units: str = "mm") -> Path:
    """Write one self-contained offline HTML page showing ``models``.

    Parameters
    ----------
    models : sequence of SurfaceModel
        Meshes in LPS mm with names and colours (0..1).
    out_html : path
        Output file (written atomically).
    title : str
        Page title and heading. Never a patient identifier.
    max_triangles : int
        Budget for the whole page; larger models are decimated for display only, in proportion.
    vertex_colors : sequence of (N, 3) uint8 sRGB arrays or None, optional
        Per-vertex colours, one entry per model (e.g. a texture sampled at the vertices, see
        :func:`medrecon.texture.sample_texture`); dropped for a model decimated for display.
    units : str
        ``"mm"`` (sizes, distances and the scale bar in mm) or any other word (e.g.
        ``"arbitrary"``: sizes and distances labelled "units: arbitrary", no scale bar).

    Returns
    -------
    Path of the HTML file.

    Raises
    ------
    MeshError
        No models, or every model empty.
    """
    out_html = Path(out_html)
    colors_of = {id(m): c for m, c in zip(models, vertex_colors or []) if c is not None and len(c) == len(m.vertices)}
    models = [m for m in models if m.n_triangles > 0 and len(m.vertices)]
    if not models:
        raise MeshError("no non-empty surface models for the viewer", path=out_html)
    total = sum(m.n_triangles for m in models)
    if total > max_triangles:
        models = [_decimate(m, max(200, int(m.n_triangles * max_triangles / total))) for m in models]
    entries = []
    seen: dict[str, int] = {}
    for m in models:
        b = m.bounds()
        name = m.name  # display names must be unique (one checkbox each); the models are not changed
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        seen.setdefault(name, 1)
        entries.append({
            "name": name, "label": int(m.label), "color": [float(c) for c in m.color],
            "bounds": b.round(3).tolist(), "n_vertices": int(len(m.vertices)), "n_triangles": m.n_triangles,
            "positions": _b64(m.vertices, "f4"), "indices": _b64(m.faces, "u4"),
        })
        if id(m) in colors_of:  # sRGB bytes per vertex
            entries[-1]["colors"] = _b64(np.asarray(colors_of[id(m)])[:, :3], "u1")
    lo = np.min([e["bounds"][0] for e in entries], axis=0)
    hi = np.max([e["bounds"][1] for e in entries], axis=0)
    payload = {"title": title, "units": units, "space": "LPS", "bounds": [lo.tolist(), hi.tolist()], "models": entries}
    page = _PAGE.format(
        title=html.escape(title),
        data=_json_for_script(payload),
        three=_js_for_script(_static("three-bundle.min.js")),
        viewer=_js_for_script(_static("viewer.js")),
    )
    return atomic_write_text(out_html, page)


def _models_from_report(report: Path) -> list[tuple[Path, str | None, Any, int]]:
    """(file, name, colour, label) per structure listed in a ``medrecon mesh`` report.json."""
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read report ({exc})", path=report) from None
    found: list[tuple[Path, str | None, Any, int]] = []
    seen: set[Path] = set()

    def pick_file(entry: dict) -> Path | None:
        cands: list[str] = []
        for key in ("files", "paths", "outputs", "file", "path", "mesh"):
            val = entry.get(key)
            if isinstance(val, str):
                cands.append(val)
            elif isinstance(val, dict):
                cands += [x for x in val.values() if isinstance(x, str)]
            elif isinstance(val, list):
                cands += [x for x in val if isinstance(x, str)]
        order = {e: i for i, e in enumerate((".vtp", ".ply", ".stl", ".obj", ".glb"))}
        cands = [c for c in cands if Path(c).suffix.lower() in order]
        cands.sort(key=lambda c: order[Path(c).suffix.lower()])
        for c in cands:
            p = Path(c) if Path(c).is_absolute() else report.parent / c
            if p.is_file():
                return p
        return None

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "name" in node and any(k in node for k in ("files", "paths", "outputs", "file", "path", "mesh")):
                p = pick_file(node)
                if p is not None and p.suffix.lower() not in (".glb",) and p not in seen:
                    seen.add(p)
                    found.append((p, node.get("name"), node.get("color"), int(node.get("label", 0) or 0)))
                    return
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    if not found:  # fall back: every mesh file the report lists
        def strings(node: Any):
            if isinstance(node, str):
                yield node
            elif isinstance(node, dict):
                for v in node.values():
                    yield from strings(v)
            elif isinstance(node, list):
                for v in node:
                    yield from strings(v)
        for s in strings(doc):
            p = Path(s) if Path(s).is_absolute() else report.parent / s
            if p.suffix.lower() in MESH_EXTENSIONS and p.is_file() and p not in seen:
                seen.add(p)
                found.append((p, None, None, 0))
    if not found:
        raise InputError("report lists no mesh file that exists", path=report)
    return found


def write_viewer_from_files(paths: Iterable[str | os.PathLike], out_html: str | os.PathLike,
                            title: str | None = None) -> Path:
    """Write the offline viewer for mesh files (STL/OBJ/PLY/VTP/GLB) or a ``report.json``.

    Parameters
    ----------
    paths : iterable of paths
        Mesh files, and/or the ``report.json`` of ``medrecon mesh`` (names, colours and labels
        are then taken from the report).
    out_html : path
        Output HTML file.
    title : str, optional
        Page title (default: "medrecon viewer").

    Raises
    ------
    InputError
        No paths, a missing or unreadable file.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no mesh files given for the viewer", path=out_html)
    models: list[SurfaceModel] = []
    for p in paths:
        if p.suffix.lower() == ".json":
            for f, name, color, label in _models_from_report(p):
                for m in load_mesh_file(f):
                    if name:
                        m.name = str(name)
                    if color is not None:
                        c = np.asarray(color, float).ravel()[:3]
                        m.color = tuple((c / 255.0 if c.max() > 1 else c).tolist())
                    m.label = label or m.label
                    models.append(m)
        else:
            models.extend(load_mesh_file(p))
    names: dict[str, int] = {}
    for i, m in enumerate(models):  # unique names for the checkboxes
        if m.name in names:
            names[m.name] += 1
            m.name = f"{m.name} ({names[m.name]})"
        else:
            names[m.name] = 1
        if len(models) > 1 and all(mm.color == models[0].color for mm in models):
            m.color = color_for(i)
    return write_viewer(models, out_html, title=title or "medrecon viewer")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:">
<meta name="generator" content="medrecon">
<title>{title}</title>
<style>
  html, body {{ margin: 0; height: 100%; background: #1a1c20; color: #e8e8e8;
    font: 13px/1.35 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; overflow: hidden; }}
  #view {{ position: absolute; top: 0; bottom: 0; right: 0; left: 320px; }}
  #panel {{ position: absolute; top: 0; bottom: 0; left: 0; width: 300px; overflow: auto;
    background: #14161a; border-right: 1px solid #3a3d44; padding: 8px 10px; }}
  @media (max-width: 700px) {{ #view {{ left: 0; }} #panel {{ bottom: auto; max-height: 45%; background: rgba(20, 22, 26, 0.88); }} }}
  h1 {{ font-size: 14px; margin: 0 0 6px 0; }}
  .row {{ display: flex; align-items: center; gap: 6px; padding: 2px 0; cursor: pointer; }}
  .swatch {{ width: 14px; height: 14px; border-radius: 3px; border: 1px solid #0008; flex: none; }}
  .name {{ flex: 1; }}
  .dims {{ color: #9aa; font-size: 11px; }}
  button {{ background: #2c3038; color: #e8e8e8; border: 1px solid #4a4e57; border-radius: 4px; padding: 2px 7px; cursor: pointer; }}
  button.on {{ background: #7a6a10; }}
  .bar {{ display: flex; flex-wrap: wrap; gap: 4px; margin: 6px 0; }}
  #size, #distance {{ margin-top: 4px; color: #cfe; }}
  #status {{ color: #f88; }}
  #help {{ color: #899; font-size: 11px; margin-top: 6px; }}
  .olet {{ position: absolute; color: #9cf; font: bold 15px system-ui, sans-serif; pointer-events: none;
    text-shadow: 0 0 3px #000; }}
  #o-left {{ left: 8px; top: 50%; }} #o-right {{ right: 8px; top: 50%; }}
  #o-top {{ top: 6px; left: 50%; }} #o-bottom {{ bottom: 6px; left: 50%; }}
  #scalebar {{ position: absolute; right: 14px; bottom: 14px; color: #ddd; font-size: 12px; text-align: center;
    pointer-events: none; text-shadow: 0 0 3px #000; }}
  #scalebar div {{ height: 4px; background: #ddd; margin-top: 2px; }}
</style>
</head>
<body>
<div id="view"><span class="olet" id="o-left"></span><span class="olet" id="o-right"></span><span class="olet" id="o-top"></span><span class="olet" id="o-bottom"></span><div id="scalebar"><span id="sb-label"></span><div id="sb-bar"></div></div></div>
<div id="panel">
  <h1>{title}</h1>
  <div class="bar"><button data-view="oblique">3/4</button><button data-view="front">Front</button><button data-view="left">Side</button><button data-view="top">Top</button><button data-view="back">Back</button></div>
  <div class="bar"><button id="all-on">Show all</button><button id="all-off">Hide all</button><button id="measure">Measure</button></div>
  <div id="structures"></div>
  <div id="size"></div>
  <div id="distance"></div>
  <div id="status"></div>
  <div id="help">Drag: rotate. Wheel: zoom. Right-drag: pan. Sizes in mm (L-R x A-P x S-I). Letters at the edges: patient R/L, A/P, S/I; the bar: mm at the centre of rotation.</div>
</div>
<script id="medrecon-data" type="application/json">{data}</script>
<script>{three}</script>
<script>{viewer}</script>
</body>
</html>
"""
