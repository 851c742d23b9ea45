"""Mesh files, read and written in one place: STL, OBJ, PLY, VTP (one file per structure) and
GLB, 3MF (one scene file). :data:`MESH_FORMATS` is the one list of formats: what each can do.

Models arrive in **LPS millimetres** (:class:`~medrecon.mesh.SurfaceModel`). Each
format carries the coordinate system the way 3D Slicer reads it:

=======  ===================================================  ==================================
format   where the tag goes                                   notes
=======  ===================================================  ==================================
STL      80-byte binary header ``medrecon ... SPACE=LPS``     binary, float32, unit normals
OBJ      comment line ``# medrecon ... SPACE=LPS``            + ``.mtl`` with the colour
PLY      header ``comment SPACE=LPS``                         binary (or ASCII); vertex colours
VTP      FieldData string array ``SPACE`` = ``LPS``           + FieldData ``Name``, ``Color``
GLB      ``asset.extras`` (``source_space``, provenance)      metres, Y-up (see below)
3MF      ``<metadata>`` (provenance)                          unit millimeter, named + coloured
=======  ===================================================  ==================================

``space="RAS"`` writes x and y negated with ``SPACE=RAS`` (:mod:`medrecon.orientation`: a
rotation, so triangle winding and outward normals are kept).

GLB uses the glTF frame (metres, +Y superior, +Z anterior; :func:`medrecon.orientation.lps_to_gltf_points`)
whatever ``space`` says. Reading (:func:`load_mesh_file`) takes the ``SPACE=`` tag into account
(files without one are LPS, as 3D Slicer assumes) and returns LPS mm.

One module per format: :mod:`.stl`, :mod:`.objply` (OBJ + MTL, PLY), :mod:`.vtp`, :mod:`.gltf`,
:mod:`.threemf`; shared helpers in :mod:`.common`.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from medrecon.errors import InputError, MeshError
from medrecon.io.atomic import atomic_write_bytes
from medrecon.io.meshes.common import header_text, safe_filename, space_tag, stl_color, trimesh_color
from medrecon.io.meshes.gltf import glb_bytes, read_gltf
from medrecon.io.meshes.objply import mtl_text, obj_text, ply_bytes
from medrecon.io.meshes.stl import stl_bytes
from medrecon.io.meshes.threemf import threemf_bytes
from medrecon.io.meshes.vtp import read_vtp, write_vtp
from medrecon.labelmap import color_for
from medrecon.mesh import SurfaceModel
from medrecon.orientation import LPS_TO_GLTF, SPACES, from_space, to_space

__all__ = ["write_models", "load_mesh_file", "parse_formats", "safe_filename", "MESH_FORMATS", "FORMATS",
           "READ_EXTENSIONS", "LPS_TO_GLTF", "to_space"]


@dataclass(frozen=True)
class MeshFormat:
    """What medrecon does with one mesh format."""

    name: str
    extensions: tuple[str, ...]
    write: bool
    read: bool
    per_structure: bool  # one file per structure (else one scene file for all)


#: The one list of mesh formats.
MESH_FORMATS: dict[str, MeshFormat] = {f.name: f for f in (
    MeshFormat("stl", (".stl",), write=True, read=True, per_structure=True),
    MeshFormat("obj", (".obj",), write=True, read=True, per_structure=True),
    MeshFormat("ply", (".ply",), write=True, read=True, per_structure=True),
    MeshFormat("vtp", (".vtp",), write=True, read=True, per_structure=True),
    MeshFormat("glb", (".glb", ".gltf"), write=True, read=True, per_structure=False),
    MeshFormat("3mf", (".3mf",), write=True, read=True, per_structure=False),
)}
#: Formats :func:`write_models` writes, in table order.
FORMATS = tuple(n for n, f in MESH_FORMATS.items() if f.write)
#: File extensions :func:`load_mesh_file` reads.
READ_EXTENSIONS = tuple(e for f in MESH_FORMATS.values() if f.read for e in f.extensions)


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """Normalise a format list ("stl,OBJ", [".ply"]) to known lower-case names, in order, once each."""
    if isinstance(formats, str):
        formats = formats.split(",")
    out: list[str] = []
    for f in formats:
        f = str(f).strip().lower().lstrip(".")
        if not f:
            continue
        if f not in FORMATS:
            raise MeshError(f"unknown mesh format {f!r}; choose from {', '.join(FORMATS)}")
        if f not in out:
            out.append(f)
    if not out:
        raise MeshError("no mesh format given; choose from " + ", ".join(FORMATS))
    return out


def _guarded(path: Path, fn: Callable, *args: Any) -> Any:
    """Run a write; an OS error becomes a one-line MeshError naming the file."""
    try:
        return fn(*args)
    except OSError as exc:
        raise MeshError(f"cannot write ({exc.strerror or exc})", path) from exc


def _stems(models: Sequence[SurfaceModel], basename_fn: Callable[[SurfaceModel], str] | None) -> list[str]:
    stems, seen = [], set()
    for m in models:
        raw = basename_fn(m) if basename_fn else m.name
        s = safe_filename(raw, fallback=f"label_{m.label}")
        if s.lower() in seen:
            s = f"{s}_{m.label}"
            k = 2
            while s.lower() in seen:
                s = f"{safe_filename(raw)}_{m.label}_{k}"
                k += 1
        seen.add(s.lower())
        stems.append(s)
    return stems



def write_models(models: Sequence[SurfaceModel], outdir: str | Path, formats: str | Iterable[str] = ("stl",),
                 space: str = "LPS", provenance: dict | None = None,
                 basename_fn: Callable[[SurfaceModel], str] | None = None, *,
                 scene_name: str = "models", ply_binary: bool = True, obj_axes: str = "LPS") -> list[Path]:
    """Write every model in every requested format into ``outdir``; return the written paths.

    Parameters
    ----------
    models : sequence of SurfaceModel
        Vertices in LPS millimetres, faces counter-clockwise seen from outside.
    outdir : path
        Output folder (created if needed). Every file is written atomically.
    formats : str or iterable of str
        Any of ``stl, obj, ply, vtp, glb, 3mf`` (comma string accepted). STL/OBJ/PLY/VTP give one
        file per structure (``<name>.<ext>``, OBJ with a ``.mtl``); GLB and 3MF give one file
        ``<scene_name>.glb/.3mf`` holding one named, coloured object per structure.
    space : "LPS" or "RAS"
        Coordinate system of the written vertices and of the ``SPACE=`` tag (GLB always uses
        the glTF frame, documented in the module docstring).
    provenance : dict, optional
        JSON-serialisable facts (medrecon version, configuration, input fingerprint; never
        patient identifiers) stored in GLB ``asset.extras``, 3MF ``<metadata>`` and VTP field data.
    basename_fn : callable(SurfaceModel) -> str, optional
        File stem for a model (made safe and unique); default: the model's name.
    obj_axes : "LPS" or "YUP"
        OBJ only. ``"LPS"`` (default): vertices in ``space`` with the ``SPACE=`` tag, for 3D
        Slicer. ``"YUP"``: for tools that take OBJ as Y-up (Blender, Maya, game engines, web
        viewers): ``(x, y, z) = (x_LPS, z_LPS, -y_LPS)`` mm - superior up, anterior towards +Z -
        tagged ``AXES=YUP`` instead of ``SPACE=`` (medrecon reads it back to LPS).

    Returns
    -------
    list[Path]

    Raises
    ------
    MeshError
        Unknown format or space, no models, or a model without triangles.
    """
    fmts = parse_formats(formats)
    space = str(space).upper()
    if space not in SPACES:
        raise MeshError(f"space must be LPS or RAS, got {space!r}")
    models = list(models)
    if not models:
        raise MeshError("no surface models to write")
    for m in models:
        if m.n_triangles == 0:
            raise MeshError(f"model {m.name!r} has no triangles; nothing to write")
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise MeshError("output folder is an existing file", outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MeshError(f"cannot create the output folder ({exc.strerror or exc})", outdir) from exc
    stems = _stems(models, basename_fn)
    written: list[Path] = []
    for fmt in fmts:
        if not MESH_FORMATS[fmt].per_structure:
            path = outdir / f"{safe_filename(scene_name, 'models')}.{fmt}"
            data = glb_bytes(models, provenance, space) if fmt == "glb" else threemf_bytes(models, provenance, space)
            written.append(_guarded(path, atomic_write_bytes, path, data))
            continue
        def one(m: SurfaceModel, stem: str, fmt: str = fmt) -> list[Path]:
            out: list[Path] = []
            v = to_space(m.vertices, space)
            path = outdir / f"{stem}.{fmt}"
            if fmt == "stl":
                _guarded(path, atomic_write_bytes, path, stl_bytes(v, m.faces, space))
            elif fmt == "obj":
                mtl = outdir / f"{stem}.mtl"
                _guarded(mtl, atomic_write_bytes, mtl, mtl_text(m).encode("utf-8"))
                if str(obj_axes).upper().replace("-", "") == "YUP":
                    text = obj_text(m, lps_to_yup_mm(m.vertices), mtl.name, space)
                    text = text.replace(f"SPACE={space}", "AXES=YUP (x = L, y = S, z = A; mm)", 1)
                else:
                    text = obj_text(m, v, mtl.name, space)
                _guarded(path, atomic_write_bytes, path, text.encode("utf-8"))
                out.append(mtl)
            elif fmt == "ply":
                _guarded(path, atomic_write_bytes, path, ply_bytes(m, v, space, ply_binary))
            elif fmt == "vtp":
                _guarded(path, write_vtp, m, v, path, space, provenance)
            out.append(path)
            return out

        # one file per structure, in threads (numpy and file writes release the GIL); same order
        with ThreadPoolExecutor(max_workers=max(1, min(len(models), os.cpu_count() or 1, 16))) as pool:
            for paths in pool.map(one, models, stems):
                written += paths
    return written


def lps_to_yup_mm(v: np.ndarray) -> np.ndarray:
    """LPS mm -> Y-up mm: ``(x_LPS, z_LPS, -y_LPS)`` (a rotation: winding and normals kept)."""
    v = np.asarray(v, float)
    return np.c_[v[:, 0], v[:, 2], -v[:, 1]]


def yup_mm_to_lps(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`lps_to_yup_mm`."""
    v = np.asarray(v, float)
    return np.c_[v[:, 0], -v[:, 2], v[:, 1]]


def load_mesh_file(path: str | os.PathLike) -> list[SurfaceModel]:
    """Read a mesh file into SurfaceModels in LPS mm (one per object; several for GLB).

    The coordinate system comes from the ``SPACE=`` tag (STL/OBJ/PLY header, VTP field data);
    files without one are taken as LPS, as 3D Slicer does. GLB/glTF are converted from glTF
    axes (metres, +Y superior, +Z anterior). Name: the file stem (or node name); colour: from
    the file when it has one.

    Raises
    ------
    InputError
        Missing file, unknown extension, or no triangles.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("mesh file not found", path=path)
    ext = path.suffix.lower()
    if ext not in READ_EXTENSIONS:
        raise InputError(f"unsupported mesh format {ext or '(none)'}; use one of {', '.join(READ_EXTENSIONS)}", path=path)
    try:
        if ext == ".vtp":
            return read_vtp(path)
        if ext in (".glb", ".gltf"):
            models = read_gltf(path)
        elif ext == ".3mf":
            from medrecon.io.meshes.threemf_read import read_3mf

            models = read_3mf(path)
        else:
            models = [_read_with_trimesh(path, ext)]
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read mesh ({type(exc).__name__}: {exc})", path=path) from None
    if not models:
        raise InputError("mesh file holds no triangles", path=path)
    return models


def _read_with_trimesh(path: Path, ext: str) -> SurfaceModel:
    """STL / OBJ / PLY through trimesh, with the ``SPACE=`` tag and colour from the header."""
    import trimesh

    header = header_text(path)
    mesh = trimesh.load(str(path), force="mesh", process=False)
    if not hasattr(mesh, "faces") or len(mesh.faces) == 0:
        raise InputError("mesh file holds no triangles", path=path)
    if "AXES=YUP" in header:  # medrecon's Y-up OBJ
        v = yup_mm_to_lps(np.asarray(mesh.vertices, float))
    else:
        v = from_space(np.asarray(mesh.vertices, float), space_tag(header))
    color = (stl_color(header) if ext == ".stl" else None) or trimesh_color(mesh)
    return SurfaceModel(path.stem, v, np.asarray(mesh.faces), color or color_for(0))
