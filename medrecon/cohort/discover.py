"""Find the studies of a cohort: a folder of studies or a CSV manifest.

Folder layouts (``layout=``):

``"auto"`` / ``"subfolders"``
    Every immediate sub-folder is one study (study id = folder name). A sub-folder holding
    exactly one volume file (NIfTI/NRRD/MetaImage) and no other image files uses that file as
    the input; otherwise the folder itself is the input (DICOM searched recursively). Volume
    files lying directly in INPUT are studies too (id = file name without extension).
``"series"``
    Every loadable series found anywhere under INPUT is one study (DICOM headers are read;
    id = ``<folder>_s<index>`` with the index ``medrecon info <folder>`` shows, and the series is
    selected by that index), for dumps that mix studies in one tree.

Folders holding medrecon's ``.medrecon-output`` marker (output folders, a cohort's OUTDIR
included) are never studies.

CSV manifest: a header row with ``study_id`` (or ``id``) and ``path`` columns; any further
column named like a mesh setting (``preset``, ``threshold``, ``labels``, ``series``,
``structures`` (``;``-separated), ``formats``, ``smoothing``, ...) overrides the recipe for that
study. Relative paths are relative to the CSV file.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from medrecon.cohort.fingerprint import stat_fingerprint  # noqa: F401  (re-exported)
from medrecon.errors import ConfigError, InputError

__all__ = ["Study", "discover", "read_manifest_csv", "stat_fingerprint", "study_fingerprint", "safe_study_id"]

_VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
_SKIP_NAMES = {"__MACOSX", ".git", ".DS_Store"}
_LIST_FIELDS = ("structures", "formats")
_FLOAT_FIELDS = ("smoothing", "reduction", "min_component_mm3")
_BOOL_FIELDS = ("largest", "remove_table", "joint", "keep_volume", "slicer", "preview")


@dataclass
class Study:
    """One study of the cohort.

    Attributes
    ----------
    study_id : str
        Unique id; names the study's output folder (letters, digits, ``.``, ``-``, ``_``).
    path : str
        The input handed to the pipeline (DICOM folder, volume file...).
    overrides : dict
        Per-study settings (manifest columns, or ``series`` in series layout).
    """

    study_id: str
    path: str
    overrides: dict[str, Any] = field(default_factory=dict)


def safe_study_id(name: str) -> str:
    """A file-system-safe study id: other characters become ``_``."""
    s = re.sub(r"[^A-Za-z0-9._\-]+", "_", str(name)).strip("._")
    return s or "study"


def _is_volume(p: Path) -> bool:
    return p.name.lower().endswith(_VOLUME_SUFFIXES)


def _strip_suffix(name: str) -> str:
    low = name.lower()
    for ext in sorted(_VOLUME_SUFFIXES, key=len, reverse=True):
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def _visible(entries: Iterable[os.DirEntry]) -> list[os.DirEntry]:
    return sorted((e for e in entries if not e.name.startswith(".") and e.name not in _SKIP_NAMES),
                  key=lambda e: e.name)


def _is_output(folder: Path) -> bool:
    """A folder medrecon wrote outputs into (it holds the ``.medrecon-output`` marker)."""
    return (folder / ".medrecon-output").exists()


def _study_input(folder: Path) -> str:
    """A sub-folder's input: its only volume file, else the folder itself."""
    with os.scandir(folder) as it:
        entries = _visible(it)
    files = [e for e in entries if not e.is_dir()]
    vols = [e for e in files if _is_volume(Path(e.name))]
    others = [e for e in files if not _is_volume(Path(e.name)) and not e.name.lower().endswith(
        (".txt", ".json", ".csv", ".md", ".ctbl", ".yaml", ".yml"))]
    if len(vols) == 1 and not others:
        return str(folder / vols[0].name)
    return str(folder)


def discover(input: str | os.PathLike, layout: str = "auto", exclude: Iterable[str | os.PathLike] = ()) -> list[Study]:
    """The studies of a cohort folder or CSV manifest (sorted by id for a folder).

    Parameters
    ----------
    input : folder of studies, or a ``.csv`` manifest.
    layout : ``"auto"``, ``"subfolders"`` or ``"series"`` (folders only; see the module docstring).
    exclude : folders to leave out (e.g. the output folder when it lies inside INPUT).

    Raises
    ------
    InputError
        INPUT missing, or no study found.
    ConfigError
        Bad manifest (missing columns, unknown setting, duplicate id) or unknown layout.
    """
    src = Path(input)
    if not src.exists():
        raise InputError("cohort input not found", src)
    if src.is_file():
        if src.suffix.lower() in (".csv", ".tsv"):
            return read_manifest_csv(src)
        raise InputError("cohort input must be a folder of studies or a .csv manifest", src)
    if layout not in ("auto", "subfolders", "series"):
        raise ConfigError(f"unknown layout {layout!r} (auto, subfolders or series)")
    skip = {Path(e).resolve() for e in exclude}
    studies: list[Study] = []
    if layout == "series":
        studies = _discover_series(src, skip)
    else:
        with os.scandir(src) as it:
            entries = _visible(it)
        for e in entries:
            p = src / e.name
            if e.is_dir():
                if p.resolve() in skip or _is_output(p):
                    continue
                studies.append(Study(safe_study_id(e.name), _study_input(p)))
            elif not e.is_dir() and _is_volume(p):
                studies.append(Study(safe_study_id(_strip_suffix(e.name)), str(p)))
    if not studies:
        raise InputError("no studies found (expected one sub-folder or volume file per study)", src)
    _check_unique(studies, src)
    return sorted(studies, key=lambda s: s.study_id)


def _discover_series(src: Path, skip: set[Path]) -> list[Study]:
    """Every loadable series under ``src``: deepest folders first, each series claimed once, by
    the deepest folder whose (recursive) listing holds it, and selected there by the index that
    listing gives it (``#N``, what ``medrecon info FOLDER`` shows)."""
    from medrecon.io.loader import describe_series

    out: list[Study] = []
    claimed: set[str] = set()
    for root, dirs, files in os.walk(src, topdown=False):
        rp = Path(root)
        rel = rp.relative_to(src)
        if any(part.startswith(".") or part in _SKIP_NAMES for part in rel.parts):
            continue
        if any((src / Path(*rel.parts[:k])).resolve() in skip or _is_output(src / Path(*rel.parts[:k]))
               for k in range(1, len(rel.parts) + 1)):
            continue
        files = [f for f in files if not f.startswith(".")]
        if not files:
            continue
        base = safe_study_id("_".join(rel.parts) if rel.parts else src.name)
        vols = [f for f in files if _is_volume(Path(f))]
        for f in sorted(vols):
            out.append(Study(safe_study_id(f"{base}_{_strip_suffix(f)}"), str(rp / f)))
        if len(vols) == len(files):
            continue
        try:
            rows = describe_series(str(rp))
        except Exception:  # noqa: BLE001 - a folder with nothing readable holds no series
            continue
        for r in rows:
            # a series seen again by a parent folder's (recursive) listing looks the same: skip it;
            # echoes or image types sharing one SeriesInstanceUID differ in these fields
            sig = tuple(str(r.get(k)) for k in ("series_uid_hash", "description", "image_type", "echo_time",
                                                 "kind", "size", "n_files", "n_frames", "orientation"))
            if not r.get("is_volume", True) or sig in claimed:
                continue
            claimed.add(sig)
            out.append(Study(safe_study_id(f"{base}_s{r.get('index')}"), str(rp), {"series": f"#{r.get('index')}"}))
    return out


def _check_unique(studies: list[Study], where) -> None:
    seen: dict[str, str] = {}
    for s in studies:
        if s.study_id in seen:
            raise ConfigError(f"two studies share the id {s.study_id!r} ({seen[s.study_id]} and {s.path}); "
                              "give ids in a CSV manifest", where)
        seen[s.study_id] = s.path


def _convert(col: str, value: str) -> Any:
    v = value.strip()
    if v == "":
        return None
    if col in _LIST_FIELDS:
        return [x.strip() for x in re.split(r"[;|]", v) if x.strip()]
    if col in _FLOAT_FIELDS:
        try:
            return float(v)
        except ValueError:
            raise ConfigError(f"column {col}: not a number: {v!r}") from None
    if col in _BOOL_FIELDS:
        if v.lower() in ("1", "true", "yes", "y"):
            return True
        if v.lower() in ("0", "false", "no", "n"):
            return False
        raise ConfigError(f"column {col}: not a yes/no value: {v!r}")
    return v


def read_manifest_csv(path: str | os.PathLike) -> list[Study]:
    """Read a CSV manifest (see the module docstring); order as in the file.

    Raises
    ------
    ConfigError
        No ``study_id``/``path`` columns, an unknown column, a duplicate id, an empty path.
    """
    from medrecon.cohort.config import MESH_FIELDS

    p = Path(path)
    text = p.read_text(encoding="utf-8-sig")
    dialect = csv.excel_tab if p.suffix.lower() == ".tsv" else csv.excel
    rows = list(csv.DictReader(text.splitlines(), dialect=dialect))
    if not rows:
        raise ConfigError("manifest has no rows", p)
    cols = [c.strip() for c in rows[0].keys() if c is not None]
    id_col = "study_id" if "study_id" in cols else ("id" if "id" in cols else None)
    if id_col is None or "path" not in cols:
        raise ConfigError("manifest needs 'study_id' (or 'id') and 'path' columns", p)
    known = set(MESH_FIELDS)
    extra = [c for c in cols if c not in (id_col, "path")]
    unknown = [c for c in extra if c not in known and not c.startswith("#")]
    if unknown:
        raise ConfigError(f"unknown manifest column(s): {', '.join(unknown)} "
                          f"(allowed: {', '.join(sorted(known))})", p)
    base = p.resolve().parent
    studies = []
    for n, row in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "") for k, v in row.items()}
        sid, sp = row.get(id_col, "").strip(), row.get("path", "").strip()
        if not sid or not sp:
            raise ConfigError(f"line {n}: empty study id or path", p)
        q = Path(os.path.expanduser(sp))
        if not q.is_absolute():
            q = base / q
        ov = {}
        for c in extra:
            if c.startswith("#"):
                continue
            val = _convert(c, row.get(c, ""))
            if val is None:
                continue
            if c in ("labels", "label_table", "bundle") or (c == "preset" and str(val).endswith((".yaml", ".yml"))):
                vp = Path(os.path.expanduser(str(val)))
                if not vp.is_absolute() and "{" not in str(val) and (base / vp).exists():
                    val = str(base / vp)
            ov[c] = val
        studies.append(Study(safe_study_id(sid), str(q), ov))
    _check_unique(studies, p)
    return studies


# --------------------------------------------------------------------------------------------
# fingerprints
# --------------------------------------------------------------------------------------------
def study_fingerprint(study: Study, settings: dict[str, Any]) -> str:
    """Fingerprint of a study's inputs: its input path plus a per-study label map, if any."""
    paths = [study.path]
    lab = settings.get("labels")
    if lab:
        paths.append(lab)
    extra = f"series={settings.get('series')}" if settings.get("series") is not None else ""
    return hashlib.sha256((stat_fingerprint(paths) + extra).encode()).hexdigest()[:16]
