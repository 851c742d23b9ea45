"""The one registry of mesh formats, filled by the format modules (as trimesh's ``exchange``).

Each format module of :mod:`medrecon.io.meshes` calls :func:`register_format` once, with its
writer and/or reader; :data:`MESH_FORMATS` (name -> :class:`MeshFormat`) is what
:func:`~medrecon.io.meshes.write_models`, :func:`~medrecon.io.meshes.load_mesh_file`,
``medrecon mesh --formats`` and the configuration checks read. A new format is one module
that registers itself (and one import line in ``io/meshes/__init__.py``, or an import in the
caller's own code for a plug-in).

Writer protocol: ``write(models, path, options) -> list[Path]``: ``models`` a list of
:class:`~medrecon.mesh.SurfaceModel` in LPS mm (one model for a per-structure format),
``path`` the file to write (atomically, :mod:`medrecon.io.atomic`), ``options`` a
:class:`WriteOptions`; it returns every file it wrote (an OBJ also writes its MTL and PNG).
Reader protocol: ``read(path) -> list[SurfaceModel]`` in LPS mm.

Examples
--------
>>> from pathlib import Path
>>> def write_xyz(models, path, options):
...     Path(path).write_text("".join(f"{x} {y} {z}\\n" for m in models for x, y, z in m.vertices))
...     return [Path(path)]
>>> fmt = register_format("xyz", (".xyz",), write=write_xyz, description="point list (example)")
>>> "xyz" in MESH_FORMATS and MESH_FORMATS["xyz"].can_write
True
>>> unregister_format("xyz")
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from medrecon.errors import MeshError

__all__ = ["MeshFormat", "WriteOptions", "MESH_FORMATS", "register_format", "unregister_format",
           "write_formats", "read_extensions", "format_for_path"]


@dataclass(frozen=True)
class WriteOptions:
    """What a writer may be told besides the models and the path.

    space : "LPS" or "RAS", coordinates of written vertices and of the ``SPACE=`` tag (GLB and
        USDZ always use their own Y-up frame)
    provenance : JSON-able record (never patient identifiers), stored where the format can
    ply_binary : PLY binary (True) or ASCII
    obj_axes : "LPS" (Slicer) or "YUP" (Blender, Maya, web viewers)
    image_format : "png" or "jpeg", textures embedded in GLB (textures with alpha stay PNG)
    header : extra comment lines (OBJ, PLY)
    extra : options of formats registered outside medrecon
    """

    space: str = "LPS"
    provenance: dict | None = None
    ply_binary: bool = True
    obj_axes: str = "LPS"
    image_format: str = "png"
    header: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MeshFormat:
    """One mesh format: its name, file extensions, writer and reader."""

    name: str
    extensions: tuple[str, ...]
    writer: Callable | None = None
    reader: Callable | None = None
    per_structure: bool = True  # one file per structure (else one scene file holding them all)
    textures: bool = False  # carries UV textures
    description: str = ""

    @property
    def can_write(self) -> bool:
        return self.writer is not None

    @property
    def can_read(self) -> bool:
        return self.reader is not None


#: The one registry: format name -> :class:`MeshFormat`, in registration order.
MESH_FORMATS: dict[str, MeshFormat] = {}


def register_format(name: str, extensions: tuple[str, ...] | list[str], *, write: Callable | None = None,
                    read: Callable | None = None, per_structure: bool = True, textures: bool = False,
                    description: str = "", replace: bool = False) -> MeshFormat:
    """Add a mesh format to :data:`MESH_FORMATS` (see the module docstring for the protocols)."""
    name = str(name).strip().lower().lstrip(".")
    if not name or (write is None and read is None):
        raise MeshError(f"mesh format {name!r}: give a name and a writer or a reader")
    if name in MESH_FORMATS and not replace:
        raise MeshError(f"mesh format {name!r} is already registered")
    exts = tuple("." + str(e).lower().lstrip(".") for e in extensions)
    fmt = MeshFormat(name, exts, write, read, per_structure, textures, description)
    MESH_FORMATS[name] = fmt
    return fmt


def unregister_format(name: str) -> None:
    """Remove a format (plug-ins and tests)."""
    MESH_FORMATS.pop(str(name).lower(), None)


def write_formats() -> tuple[str, ...]:
    """Names of the formats that can be written, in registration order."""
    return tuple(n for n, f in MESH_FORMATS.items() if f.can_write)


def read_extensions() -> tuple[str, ...]:
    """File extensions that can be read."""
    return tuple(e for f in MESH_FORMATS.values() if f.can_read for e in f.extensions)


def format_for_path(path: str | Path, *, reading: bool = False) -> MeshFormat | None:
    """The registered format of a file, by its extension (longest match), or None."""
    name = Path(path).name.lower()
    best = None
    for f in MESH_FORMATS.values():
        if (f.can_read if reading else f.can_write):
            for e in (f.extensions if reading else f.extensions[:1]):  # writers write their first extension
                if name.endswith(e) and (best is None or len(e) > len(best[0])):
                    best = (e, f)
    return best[1] if best else None
