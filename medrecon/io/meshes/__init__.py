"""Mesh files, read and written in one place: STL, OBJ, PLY, VTP (one file per structure) and
GLB, 3MF, USDZ (one scene file). :data:`MESH_FORMATS` is the one registry of formats (filled by
the format modules through :func:`register_format`, see :mod:`.registry`): every command (mesh,
photo, multiview) writes through these writers, file names (:func:`safe_filename`) and
provenance.

Models are :class:`~medrecon.mesh.SurfaceModel`; the writers use what each format can carry of
a model's appearance (colour, vertex colours, UV texture, PBR material; see :mod:`medrecon.mesh`).

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
USDZ     Y-up, ``metersPerUnit`` 0.001                        UsdPreviewSurface, texture
=======  ===================================================  ==================================

``space="RAS"`` writes x and y negated with ``SPACE=RAS`` (:mod:`medrecon.orientation`: a
rotation, so triangle winding and outward normals are kept).

GLB uses the glTF frame (metres, +Y superior, +Z anterior; :func:`medrecon.orientation.lps_to_gltf_points`)
whatever ``space`` says. Reading (:func:`load_mesh_file`) takes the ``SPACE=`` tag into account
(files without one are LPS, as 3D Slicer assumes) and returns LPS mm.

One module per format: :mod:`.stl`, :mod:`.objply` (OBJ + MTL + PNG, PLY), :mod:`.vtp`,
:mod:`.gltf`, :mod:`.threemf` (+ :mod:`.threemf_read`), :mod:`.usdz`; shared helpers in
:mod:`.common`; the registry in :mod:`.registry`.

Examples
--------
>>> import tempfile
>>> from medrecon.mesh import SurfaceModel
>>> tet = SurfaceModel("tet", [[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]],
...                    [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], color=(1, 0, 0))
>>> out = tempfile.mkdtemp()
>>> [p.name for p in write_models([tet], out, "stl,obj,glb")]
['tet.stl', 'tet.obj', 'tet.mtl', 'models.glb']
>>> [m.n_triangles for m in load_mesh_file(f"{out}/tet.stl")]
[4]
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from medrecon.errors import InputError, MeshError
from medrecon.io.meshes import stl, objply, vtp, gltf, threemf, usdz  # noqa: F401,I001  (each registers its format; table order)
from medrecon.io.meshes.common import guarded, safe_filename
from medrecon.io.meshes.gltf import read_glb_json
from medrecon.io.meshes.registry import (MESH_FORMATS, MeshFormat, WriteOptions, format_for_path, read_extensions,
                                         register_format, unregister_format, write_formats)
from medrecon.mesh import SurfaceModel
from medrecon.orientation import LPS_TO_GLTF, SPACES, lps_to_yup_mm, to_space, yup_mm_to_lps

__all__ = ["write_models", "write_mesh", "load_mesh_file", "parse_formats", "safe_filename", "MESH_FORMATS",
           "FORMATS", "READ_EXTENSIONS", "MeshFormat", "WriteOptions", "register_format", "unregister_format",
           "write_glb", "write_obj", "write_ply", "write_stl", "write_usdz", "read_glb_json", "LPS_TO_GLTF",
           "to_space", "lps_to_yup_mm", "yup_mm_to_lps"]


def __getattr__(name: str):
    # live views of the registry (a format registered later shows up)
    if name == "FORMATS":  # formats write_models writes, in registration order
        return write_formats()
    if name == "READ_EXTENSIONS":  # file extensions load_mesh_file reads
        return read_extensions()
    raise AttributeError(name)


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """Normalise a format list ("stl,OBJ", [".ply"]) to known lower-case names, in order, once each."""
    known = write_formats()
    if isinstance(formats, str):
        formats = formats.split(",")
    out: list[str] = []
    for f in formats:
        f = str(f).strip().lower().lstrip(".")
        if not f:
            continue
        if f not in known:
            raise MeshError(f"unknown mesh format {f!r}; choose from {', '.join(known)}")
        if f not in out:
            out.append(f)
    if not out:
        raise MeshError("no mesh format given; choose from " + ", ".join(known))
    return out


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


def _check_models(models) -> list[SurfaceModel]:
    models = [models] if isinstance(models, SurfaceModel) else list(models)
    if not models:
        raise MeshError("no surface models to write")
    for m in models:
        if m.n_triangles == 0:
            raise MeshError(f"model {m.name!r} has no triangles; nothing to write")
        if not np.all(np.isfinite(m.vertices)):
            raise MeshError(f"model {m.name!r} has non-finite vertices")
    return models


def _options(space: str, provenance: dict | None, options: dict) -> WriteOptions:
    space = str(space).upper()
    if space not in SPACES:
        raise MeshError(f"space must be LPS or RAS, got {space!r}")
    known = set(WriteOptions.__dataclass_fields__) - {"space", "provenance", "extra"}
    extra = {k: v for k, v in options.items() if k not in known}
    return WriteOptions(space=space, provenance=provenance, extra=extra,
                        **{k: v for k, v in options.items() if k in known})


def _run(fmt: MeshFormat, models: list[SurfaceModel], path: Path, opts: WriteOptions) -> list[Path]:
    try:
        return [Path(p) for p in guarded(path, fmt.writer, models, path, opts)]
    except ImportError as exc:
        raise MeshError(f"writing {fmt.name.upper()} needs {exc.name or exc} (pip install medrecon[multiview] "
                        "for usd-core)", path) from None


def write_models(models: Sequence[SurfaceModel] | SurfaceModel, outdir: str | Path,
                 formats: str | Iterable[str] = ("stl",), space: str = "LPS", provenance: dict | None = None,
                 basename_fn: Callable[[SurfaceModel], str] | None = None, *, scene_name: str = "models",
                 **options) -> list[Path]:
    """Write every model in every requested format into ``outdir``; return the written paths.

    Parameters
    ----------
    models : SurfaceModel or sequence of them
        Vertices in LPS millimetres, faces counter-clockwise seen from outside; colours, UV
        textures and PBR materials are written where the format can carry them.
    outdir : path
        Output folder (created if needed). Every file is written atomically.
    formats : str or iterable of str
        Names in :data:`MESH_FORMATS` (``stl, obj, ply, vtp, glb, 3mf, usdz``; comma string
        accepted). Per-structure formats give ``<name>.<ext>`` per model (OBJ with a ``.mtl``
        and, when textured, a ``.png``); scene formats (GLB, 3MF, USDZ) give one file
        ``<scene_name>.<ext>`` holding one named object per model.
    space : "LPS" or "RAS"
        Coordinate system of the written vertices and of the ``SPACE=`` tag (GLB and USDZ use
        their own Y-up frame, documented in the module docstring).
    provenance : dict, optional
        JSON-serialisable facts (medrecon version, configuration, input fingerprint; never
        patient identifiers) stored in GLB ``asset.extras``, 3MF ``<metadata>`` and VTP field data.
    basename_fn : callable(SurfaceModel) -> str, optional
        File stem for a model (made safe and unique); default: the model's name.
    **options
        :class:`WriteOptions` fields: ``ply_binary`` (True), ``obj_axes`` (``"LPS"``, or
        ``"YUP"``: ``(x, y, z) = (x_LPS, z_LPS, -y_LPS)`` mm for Blender, Maya, web viewers,
        tagged ``AXES=YUP``), ``image_format`` (GLB textures, ``"png"``/``"jpeg"``), ``header``
        (comment lines for OBJ/PLY); other keys go to ``WriteOptions.extra`` for plug-in formats.

    Returns
    -------
    list[Path]

    Raises
    ------
    MeshError
        Unknown format or space, no models, a model without triangles, or a failed write.

    Examples
    --------
    >>> import tempfile
    >>> from medrecon.mesh import SurfaceModel
    >>> tri = SurfaceModel("skull cap", [[0, 0, 0], [10, 0, 0], [0, 10, 0]], [[0, 1, 2]])
    >>> [p.name for p in write_models([tri], tempfile.mkdtemp(), ["ply", "3mf"])]
    ['skull_cap.ply', 'models.3mf']
    """
    fmts = parse_formats(formats)
    opts = _options(space, provenance, options)
    models = _check_models(models)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise MeshError("output folder is an existing file", outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MeshError(f"cannot create the output folder ({exc.strerror or exc})", outdir) from exc
    stems = _stems(models, basename_fn)
    written: list[Path] = []
    for name in fmts:
        fmt = MESH_FORMATS[name]
        if not fmt.per_structure:
            written += _run(fmt, models, outdir / f"{safe_filename(scene_name, 'models')}{fmt.extensions[0]}", opts)
            continue
        # one file per structure, in threads (numpy and file writes release the GIL); same order
        with ThreadPoolExecutor(max_workers=max(1, min(len(models), os.cpu_count() or 1, 16))) as pool:
            for paths in pool.map(lambda m, stem: _run(fmt, [m], outdir / f"{stem}{fmt.extensions[0]}", opts),
                                  models, stems):
                written += paths
    return written


def write_mesh(models: Sequence[SurfaceModel] | SurfaceModel, path: str | Path, fmt: str | None = None, *,
               space: str = "LPS", provenance: dict | None = None, **options) -> list[Path]:
    """Write one file (plus its companions: MTL, PNG) at ``path``, in ``fmt`` or the format of
    its extension; returns the written paths (the file first). Options as :func:`write_models`.

    Examples
    --------
    >>> import tempfile
    >>> from medrecon.mesh import SurfaceModel
    >>> tri = SurfaceModel("t", [[0, 0, 0], [10, 0, 0], [0, 10, 0]], [[0, 1, 2]])
    >>> [p.name for p in write_mesh(tri, tempfile.mkdtemp() + "/model.obj")]
    ['model.obj', 'model.mtl']
    """
    path = Path(path)
    f = MESH_FORMATS.get(parse_formats([fmt])[0]) if fmt else format_for_path(path)
    if f is None:
        raise MeshError(f"no mesh format writes {path.suffix or '(no extension)'}; choose from "
                        f"{', '.join(write_formats())}", path)
    models = _check_models(models)
    if f.per_structure and len(models) != 1:
        raise MeshError(f"{f.name.upper()} holds one structure per file; got {len(models)} models", path)
    return _run(f, models, path, _options(space, provenance, options))


def write_glb(models, path: str | Path, provenance: dict | None = None, image_format: str = "png") -> Path:
    """:func:`write_mesh` as GLB; returns the path."""
    return write_mesh(models, path, "glb", provenance=provenance, image_format=image_format)[0]


def write_obj(model: SurfaceModel, path: str | Path, header: str | None = None, **options) -> list[Path]:
    """:func:`write_mesh` as OBJ; returns [obj, mtl(, png)]."""
    return write_mesh(model, path, "obj", header=header, **options)


def write_ply(model: SurfaceModel, path: str | Path, **options) -> Path:
    """:func:`write_mesh` as PLY (vertex colours); returns the path."""
    return write_mesh(model, path, "ply", **options)[0]


def write_stl(model: SurfaceModel, path: str | Path, **options) -> Path:
    """:func:`write_mesh` as STL; returns the path."""
    return write_mesh(model, path, "stl", **options)[0]


def write_usdz(models, path: str | Path, **options) -> Path:
    """:func:`write_mesh` as USDZ; returns the path."""
    return write_mesh(models, path, "usdz", **options)[0]


def load_mesh_file(path: str | os.PathLike) -> list[SurfaceModel]:
    """Read a mesh file into SurfaceModels in LPS mm (one per object; several for GLB / 3MF).

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
    fmt = format_for_path(path, reading=True)
    if fmt is None:
        raise InputError(f"unsupported mesh format {path.suffix.lower() or '(none)'}; use one of "
                         f"{', '.join(read_extensions())}", path=path)
    try:
        models = fmt.reader(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read mesh ({type(exc).__name__}: {exc})", path=path) from None
    if not models:
        raise InputError("mesh file holds no triangles", path=path)
    return models
