"""Cohort recipes: the per-study side of recipes (placeholders filled per study, manifest
overrides, the settings hash that decides whether a study is done).

Recipe files themselves are read and validated in one place, :mod:`medrecon.recipes` (also used
by ``medrecon mesh --config``); the names it defines are re-exported here.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from medrecon.errors import ConfigError
from medrecon.recipes import (MESH_FIELDS, PLACEHOLDERS, RECIPE_DIR, Recipe, _looks_like_file,  # noqa: F401
                              config_from_recipe, fill_placeholders, list_recipes, load_recipe,
                              validate_settings)

__all__ = ["Recipe", "load_recipe", "recipe_settings", "study_settings", "settings_hash", "RECIPE_DIR",
           "list_recipes", "PLACEHOLDERS", "MESH_FIELDS", "config_from_recipe", "fill_placeholders"]


def recipe_settings(config: str | os.PathLike | Recipe | Mapping[str, Any] | None) -> dict[str, Any]:
    """Mesh settings from a recipe file/name, a :class:`Recipe`, or a plain mapping.

    ``None`` gives the default recipe: ``preset: ct-bone`` with STL output and no previews.
    """
    if config is None:
        return {"preset": "ct-bone", "formats": ["stl"], "preview": False}
    if isinstance(config, Recipe):
        return _with_svr(config)
    if isinstance(config, Mapping):
        settings = dict(config.get("mesh", config)) if "recipe" in config else dict(config)
        if "recipe" in config and config.get("svr") is not None:
            settings["svr"] = config["svr"]
        validate_settings(settings, "settings")
        return settings
    return _with_svr(load_recipe(config))


def _with_svr(rec: Recipe) -> dict[str, Any]:
    """A recipe's settings: its mesh settings, plus ``svr`` (the stage's settings) when it has one."""
    out = dict(rec.mesh)
    if rec.svr is not None:
        out["svr"] = dict(rec.svr)
    return out


def study_settings(base: Mapping[str, Any], overrides: Mapping[str, Any] | None, study_path: str,
                   study_id: str, *, where: str | None = None) -> dict[str, Any]:
    """The full MeshConfig keyword arguments for one study (input included, outdir excluded).

    ``overrides`` (a manifest row's extra columns) replace recipe settings; giving a
    segmentation source (preset/threshold/labels/bundle) replaces the recipe's source.
    """
    settings = dict(base)
    if overrides:
        ov = {k: v for k, v in overrides.items() if v not in (None, "")}
        if any(k in ov for k in ("preset", "threshold", "labels", "bundle")):
            for k in ("preset", "threshold", "labels", "bundle"):
                settings.pop(k, None)
        settings.update(ov)
    settings = fill_placeholders(settings, study_path, study_id)
    settings["input"] = str(study_path)
    return settings


def _path_stamp(value: str) -> Any:
    """A cheap fingerprint of a file or folder setting (size + mtime of every file), or the value."""
    p = Path(value)
    if not p.exists():
        return value
    from medrecon.cohort.fingerprint import stat_fingerprint

    return {"name": p.name, "stat": stat_fingerprint([p])}


@functools.lru_cache(maxsize=64)
def _builtin_preset_hash(name: str) -> str | None:
    from medrecon.segment.presets import PRESET_DIR

    p = PRESET_DIR / f"{name}.yaml"
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.is_file() else None


def settings_hash(settings: Mapping[str, Any]) -> str:
    """SHA-256 (hex, 16 chars) of the settings that decide a study's outputs.

    ``input`` and ``labels`` are left out (they are part of the input fingerprint); files named
    by ``label_table``, ``bundle`` or a preset file enter by their size and mtime, a built-in
    preset by the content of its packaged YAML, so editing a preset or replacing model weights
    invalidates finished studies.
    """
    from medrecon.mesh_config import MeshConfig

    svr = settings.get("svr")
    settings = {k: v for k, v in settings.items() if k != "svr"}
    try:  # canonical form: explicit defaults and omitted ones hash alike
        full = MeshConfig(**{**dict(settings), "input": "<input>", "outdir": "<outdir>"}).model_dump()
    except ConfigError:
        full = dict(settings)
    if svr is not None:
        full["svr"] = svr
    d = {k: v for k, v in full.items() if k not in ("input", "outdir", "labels")}
    for f in ("label_table", "bundle", "preset"):
        if isinstance(d.get(f), str) and _looks_like_file(f, d[f]):
            d[f] = _path_stamp(d[f])
    if isinstance(d.get("preset"), str):  # a built-in preset by name: its file's content counts
        d["preset"] = {"name": d["preset"], "sha256": _builtin_preset_hash(d["preset"])}
    blob = json.dumps(d, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
