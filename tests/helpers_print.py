"""Run the programs people print and inspect meshes with on files from tests.

Installed by ``scripts/install_print_tools.sh`` (``./dev test`` runs it):

* PrusaSlicer's CLI (Debian ``prusa-slicer``): :func:`prusa_info` parses ``--info`` (size,
  ``manifold``, parts, volume); :func:`prusa_gcode` slices with the CLI's default printer
  (200 x 200 mm bed) and returns the G-code's extrusion extents;
* lib3mf (3MF Consortium) in strict mode: :func:`read_3mf_strict`;
* pymeshlab: :func:`meshlab_self_intersections`.

A missing program fails the test with the command that installs it (never a skip).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

INSTALL = "bash scripts/install_print_tools.sh"


def _prusa() -> str:
    exe = shutil.which("prusa-slicer")
    if exe is None:
        raise AssertionError(f"PrusaSlicer CLI not installed: run `{INSTALL}`")
    return exe


def prusa_info(path: str | Path, timeout: float = 120.0) -> list[dict[str, str]]:
    """``prusa-slicer --info``: one dict per object it loaded (``manifold``, ``size_x``, ``min_z``,
    ``number_of_parts``, ``volume`` ...)."""
    proc = subprocess.run([_prusa(), "--info", str(path)], capture_output=True, text=True, timeout=timeout)
    objs: list[dict[str, str]] = []
    for line in proc.stdout.splitlines():
        if line.startswith("[") and line.rstrip().endswith("]"):
            objs.append({})
            continue
        m = re.match(r"^\s*([a-z_]+)\s*=\s*(.*?)\s*$", line)
        if m and objs:
            objs[-1][m.group(1)] = m.group(2)
    out = objs
    if proc.returncode != 0 or not objs or any("manifold" not in o for o in objs):
        raise AssertionError(f"prusa-slicer --info failed on {path} (rc {proc.returncode}): "
                             f"{(proc.stderr or proc.stdout)[-800:]}")
    return out


def prusa_gcode(path: str | Path, outdir: str | Path, *extra: str, timeout: float = 300.0) -> dict:
    """Slice ``path`` with the default printer; returns ``{"gcode": Path, "xy_min", "xy_max", "z_max"}``.

    The extents are those of extruding moves (G1 with E > 0), in the printer's coordinates.
    Fails (AssertionError) when PrusaSlicer reports an error or writes no G-code.
    """
    out = Path(outdir) / (Path(path).stem + ".gcode")
    cmd = [_prusa(), "--export-gcode", *extra, "-o", str(out), str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.is_file():
        raise AssertionError(f"{' '.join(cmd[1:])} failed (rc {proc.returncode}): "
                             f"{(proc.stderr + proc.stdout)[-800:]}")
    xs, ys, zs = [], [], []
    x = y = z = 0.0
    for line in out.read_text(errors="replace").splitlines():
        if not line.startswith("G1"):
            continue
        f = dict((w[0], w[1:]) for w in line.split(";")[0].split()[1:] if w and w[0] in "XYZE")
        try:
            x = float(f.get("X", x)); y = float(f.get("Y", y)); z = float(f.get("Z", z))
            e = float(f["E"]) if "E" in f else 0.0
        except ValueError:
            continue
        if e > 0 and ("X" in f or "Y" in f):
            xs.append(x); ys.append(y); zs.append(z)
    if not xs:
        raise AssertionError(f"{out}: no extruding moves in the G-code")
    return {"gcode": out, "xy_min": (min(xs), min(ys)), "xy_max": (max(xs), max(ys)), "z_max": max(zs)}


def read_3mf_strict(path: str | Path) -> dict:
    """Read a 3MF with lib3mf in strict mode; returns objects, build items, metadata and warnings.

    ``objects``: ``{name: {"manifold_oriented": bool, "triangles": int, "vertices": (N,3) array}}``
    for mesh objects; ``items``: list of ``(object name, 4x4 transform)``; ``warnings``: reader
    warnings (strict mode turns problems into warnings or errors).
    """
    try:
        import lib3mf
    except ImportError as exc:  # pragma: no cover - the install script provides it
        raise AssertionError(f"lib3mf not installed: run `{INSTALL}`") from exc
    wrapper = lib3mf.get_wrapper()
    model = wrapper.CreateModel()
    reader = model.QueryReader("3mf")
    reader.SetStrictModeActive(True)
    reader.ReadFromFile(str(path))
    warnings = [reader.GetWarning(i)[1] for i in range(reader.GetWarningCount())]
    objects = {}
    meshes = model.GetMeshObjects()
    while meshes.MoveNext():
        mo = meshes.GetCurrentMeshObject()
        verts = np.array([[v.Coordinates[0], v.Coordinates[1], v.Coordinates[2]] for v in mo.GetVertices()])
        objects[mo.GetName()] = {"manifold_oriented": bool(mo.IsManifoldAndOriented()),
                                 "triangles": int(mo.GetTriangleCount()), "vertices": verts,
                                 "resource_id": mo.GetResourceID()}
    items = []
    it = model.GetBuildItems()
    while it.MoveNext():
        bi = it.GetCurrent()
        t = bi.GetObjectTransform()
        mat = np.eye(4)
        for r in range(4):
            for c in range(3):
                mat[c, r] = t.Fields[r][c]  # 3MF row-vector convention -> column-vector matrix
        items.append((bi.GetObjectResource().GetName(), mat))
    meta = {}
    group = model.GetMetaDataGroup()
    for i in range(group.GetMetaDataCount()):
        md = group.GetMetaData(i)
        meta[md.GetName()] = md.GetValue()
    return {"objects": objects, "items": items, "metadata": meta, "warnings": warnings,
            "unit": model.GetUnit()}


def meshlab_self_intersections(vertices: np.ndarray, faces: np.ndarray) -> int:
    """Number of faces pymeshlab selects as self-intersecting."""
    try:
        import pymeshlab
    except ImportError as exc:  # pragma: no cover
        raise AssertionError(f"pymeshlab not installed: run `{INSTALL}`") from exc
    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int32)))
    ms.compute_selection_by_self_intersections_per_face()
    return int(ms.current_mesh().selected_face_number())
