"""Recipes: validated YAML files that hold the settings of ``medrecon mesh``, loaded in one place.

A recipe is what ``medrecon mesh --config FILE`` applies to one input and what
``medrecon cohort --config FILE`` applies to every study (:mod:`medrecon.cohort.config` adds the
per-study parts). The ready recipes live in the top-level ``configs/`` folder of the repository;
presets (one segmentation window each) stay packaged with the library in
``medrecon/configs/presets`` and are loaded by :func:`medrecon.segment.presets.load_preset`.

File format::

    recipe: ct-bone-print            # a name (letters, digits, - and _)
    description: CT bone to STL + 3MF
    mesh:                            # any setting of MeshConfig except input/outdir
      preset: ct-bone
      formats: [stl, 3mf]
      reduction: 0.5

Relative file settings (``labels``, ``label_table``, ``bundle``, a preset given as a ``.yaml``
file) are taken relative to the recipe file. String settings may use the placeholders
``{study_path}`` (the study's input), ``{study_dir}`` (the study's folder: the input itself
when it is a folder, else the folder holding it) and ``{study_id}``; they are filled in per
study (for example ``labels: "{study_dir}/segmentations"`` for TotalSegmentator outputs).

The settings are validated by the command's own model (:class:`medrecon.mesh_config.MeshConfig`),
so a recipe that loads here is a recipe ``medrecon mesh`` accepts.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medrecon.errors import ConfigError, validation_message

__all__ = ["Recipe", "load_recipe", "list_recipes", "validate_settings", "fill_placeholders", "config_from_recipe",
           "RECIPE_DIR", "PLACEHOLDERS", "MESH_FIELDS"]

#: The repository's ready recipes (not packaged: a source checkout has them, see docs/cohort.md).
RECIPE_DIR = Path(__file__).resolve().parents[1] / "configs"
PLACEHOLDERS = ("study_path", "study_dir", "study_id")
_PLACEHOLDER_RE = re.compile(r"\{(study_path|study_dir|study_id)\}")
#: File-valued settings resolved against the recipe's folder.
_FILE_FIELDS = ("labels", "label_table", "bundle", "preset")


def _mesh_fields() -> tuple[str, ...]:
    from medrecon.mesh_config import MeshConfig

    return tuple(n for n in MeshConfig.model_fields if n not in ("input", "outdir"))


class _MeshFieldsProxy:
    def __iter__(self):
        return iter(_mesh_fields())

    def __contains__(self, item):
        return item in _mesh_fields()


#: Names of the settings a recipe's ``mesh:`` block (or a manifest column) may hold.
MESH_FIELDS = _MeshFieldsProxy()


class Recipe(BaseModel):
    """One recipe file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    recipe: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    description: str = ""
    mesh: dict[str, Any] = Field(default_factory=dict)
    svr: Optional[dict[str, Any]] = Field(None, description="slice-to-volume stage before meshing (medrecon.svr.stage)")
    source: Optional[str] = Field(None, description="file the recipe was read from (set by load_recipe)")


def _looks_like_file(field: str, value: str) -> bool:
    if field in ("labels", "bundle"):
        return True
    if field == "preset":
        return value.lower().endswith((".yaml", ".yml")) or "/" in value or os.sep in value
    if field == "label_table":
        return "/" in value or os.sep in value or Path(value).suffix.lower() in (".ctbl", ".txt", ".csv", ".json")
    return False


def _resolve(settings: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(settings)
    for f in _FILE_FIELDS:
        v = out.get(f)
        if isinstance(v, str) and v and _looks_like_file(f, v) and not v.startswith("{"):
            p = Path(os.path.expanduser(v))
            if not p.is_absolute():
                out[f] = str((base / p).resolve()) if not _PLACEHOLDER_RE.search(v) else str(base / p)
    return out


def fill_placeholders(settings: Mapping[str, Any], study_path: str, study_id: str) -> dict[str, Any]:
    """Return ``settings`` with ``{study_path}``, ``{study_dir}`` and ``{study_id}`` filled in."""
    p = Path(study_path)
    values = {"study_path": str(p), "study_dir": str(p if p.is_dir() else p.parent), "study_id": study_id}

    def sub(v):
        if isinstance(v, str):
            return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], v)
        if isinstance(v, list):
            return [sub(x) for x in v]
        return v

    return {k: sub(v) for k, v in settings.items()}


def validate_settings(settings: Mapping[str, Any], where: str | Path | None = None, *, check_files: bool = True):
    """Validate mesh settings (without input/outdir) with :class:`MeshConfig`; return the model.

    Placeholders are replaced by dummy values for the check. With ``check_files`` a preset is
    loaded and a label table read (when they hold no placeholder), so a typo is found before a
    cohort starts, not in every study.

    Raises
    ------
    ConfigError
        Unknown setting, invalid value, unknown preset/label table; the message names ``where``.
    """
    from medrecon.mesh_config import MeshConfig

    if "svr" in settings:  # the slice-to-volume stage (not a mesh setting)
        svr_stage_settings(settings["svr"], where)
        settings = {k: v for k, v in settings.items() if k != "svr"}
    bad = [k for k in settings if k in ("input", "outdir")]
    if bad:
        raise ConfigError(f"a recipe must not set {', '.join(bad)} (given per run / per study)", where)
    dummy = fill_placeholders(settings, "/study", "study")
    try:
        cfg = MeshConfig(input="<input>", outdir="<outdir>", **dummy)
    except ConfigError as exc:
        raise ConfigError(str(exc), where) from None
    except TypeError as exc:  # pragma: no cover - defensive
        raise ConfigError(f"invalid mesh settings: {exc}", where) from None
    if check_files:
        if cfg.preset and not _PLACEHOLDER_RE.search(str(settings.get("preset", ""))):
            from medrecon.segment.presets import load_preset

            try:
                load_preset(cfg.preset)
            except ConfigError as exc:
                raise ConfigError(str(exc), where) from None
        lt = settings.get("label_table")
        if lt and not _PLACEHOLDER_RE.search(str(lt)):
            from medrecon.io.label_tables import load_label_table

            try:
                load_label_table(lt)
            except ConfigError as exc:
                raise ConfigError(str(exc), where) from None
        b = settings.get("bundle")
        if b and not _PLACEHOLDER_RE.search(str(b)) and not Path(b).is_dir():
            raise ConfigError("bundle folder not found", b)
    return cfg


def load_recipe(path: str | os.PathLike, *, check_files: bool = True) -> Recipe:
    """Read and validate a recipe YAML file.

    ``path`` may also be the name of a recipe in the repository's ``configs/`` folder
    (``ct-bone-print`` for ``configs/ct-bone-print.yaml``).

    Returns
    -------
    Recipe
        With ``mesh`` settings resolved (relative files against the recipe's folder).

    Raises
    ------
    ConfigError
        Missing file, bad YAML, unknown keys, or settings MeshConfig rejects.
    """
    p = Path(path)
    if not p.exists() and not p.suffix and (RECIPE_DIR / f"{p.name}.yaml").is_file():
        p = RECIPE_DIR / f"{p.name}.yaml"
    if not p.is_file():
        raise ConfigError("recipe file not found", p)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid YAML: {' '.join(str(exc).split())[:200]}", p) from None
    if data is None:
        raise ConfigError("holds no recipe (only comments: a reserved slot)", p)
    if not isinstance(data, dict):
        raise ConfigError("a recipe is a YAML mapping with 'recipe' and 'mesh' keys", p)
    try:
        rec = Recipe(**data)
    except ValidationError as exc:
        raise ConfigError("invalid recipe: " + validation_message(exc), p) from None
    rec.mesh = _resolve(rec.mesh, p.resolve().parent)
    validate_settings(rec.mesh, p, check_files=check_files)
    if rec.svr is not None:
        rec.svr = svr_stage_settings(rec.svr, p)
    rec.source = str(p)
    return rec


def list_recipes(folder: str | os.PathLike | None = None) -> list[Path]:
    """The recipe files in ``folder`` (default: the repository's ``configs/``); comment-only slots are left out."""
    d = Path(folder) if folder else RECIPE_DIR
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.yaml")):
        try:
            if yaml.safe_load(p.read_text(encoding="utf-8")) is not None:
                out.append(p)
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            out.append(p)  # broken files are listed so that loading them reports the error
    return out


def config_from_recipe(recipe: str | os.PathLike, cli_values: Mapping[str, Any], given: set[str]):
    """The MeshConfig of ``medrecon mesh --config RECIPE``: recipe settings, then the options the
    user typed (``given``, CLI parameter names) on top; ``input``/``outdir`` from the CLI.

    Giving a segmentation source on the command line (``--preset``, ``--threshold``,
    ``--labels``, ``--bundle``) replaces the recipe's source.
    """
    from medrecon.mesh_config import MeshConfig

    settings = dict(load_recipe(recipe).mesh)
    typed = set(given)  # the command line's parameters are MeshConfig's field names
    if typed & {"preset", "threshold", "labels", "bundle"}:
        for k in ("preset", "threshold", "labels", "bundle"):
            settings.pop(k, None)
    for k, v in cli_values.items():
        if k in ("input", "outdir") or k in typed:
            settings[k] = v
    settings = fill_placeholders(settings, str(cli_values["input"]), Path(str(cli_values["input"])).name)
    return MeshConfig(**settings)


def svr_stage_settings(value: Any, where) -> dict[str, Any]:
    """Validate a recipe's ``svr:`` block with :class:`medrecon.svr.stage.SVRStage`."""
    from medrecon.svr.stage import SVRStage

    try:
        return SVRStage(**(value or {})).model_dump()
    except ValidationError as exc:
        raise ConfigError("invalid svr stage: " + validation_message(exc), where) from None
    except TypeError as exc:
        raise ConfigError(f"invalid svr stage: {exc}", where) from None
