"""``report.json``: the one record every command writes beside its outputs.

:func:`write_report` writes any report atomically as JSON (numpy values, paths... made JSON-able
by :func:`medrecon.provenance.jsonable`). :func:`mesh_report` builds the report of the ``mesh``
pipeline (and of any command that writes surface models): input facts, segmentation, per-structure
QA with its files, outputs and timings. Reports never hold patient identifiers.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from medrecon.io.atomic import atomic_write_text
from medrecon.mesh import SurfaceModel
from medrecon.provenance import jsonable
from medrecon.volume import Volume

__all__ = ["write_report", "read_report", "mesh_report", "input_section", "structures_section", "report_settings"]


def write_report(path: str | os.PathLike, report: Mapping[str, Any]) -> Path:
    """Write ``report`` as indented JSON to ``path`` atomically; return the path."""
    return atomic_write_text(path, json.dumps(jsonable(dict(report)), indent=2) + "\n")


def report_settings(settings: Mapping[str, Any], path_fields: Sequence[str] = (),
                    keep: Sequence[str] = ()) -> dict[str, Any]:
    """A command's settings as recorded in its report: paths by a hash (a folder name may be a
    patient's name; values in ``keep`` stay as they are), a MONAI bundle by its folder name, a
    label table or preset file by its file name (a built-in by its name)."""
    from medrecon.provenance import path_token, spec_name

    d = dict(settings)
    for k in path_fields:
        d[k] = d[k] if d.get(k) in keep else path_token(d.get(k))
    if d.get("bundle"):
        d["bundle"] = Path(d["bundle"]).name
    for k in ("label_table", "preset"):
        if d.get(k):
            d[k] = spec_name(d[k])
    return d


def read_report(path: str | os.PathLike) -> dict[str, Any]:
    """Read a report back (plain ``json.load``; raises OSError / JSONDecodeError)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def input_section(volume: Volume, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Facts about the input image: fingerprint, modality, spacing, voxel volume, warnings."""
    return {
        "fingerprint": fingerprint,
        "modality": volume.meta.get("modality"),
        "spacing_mm": [round(float(s), 6) for s in volume.spacing],
        "voxel_volume_mm3": float(abs(np.linalg.det(volume.affine[:3, :3]))),
        "oblique": bool(volume.is_oblique()),
        "warnings": list(volume.meta.get("warnings", [])),
    }


def structures_section(models: Sequence[SurfaceModel], files: Sequence[Path]) -> list[dict[str, Any]]:
    """One entry per model: name, label, colour, the files named after it, and its QA."""
    from medrecon.io.meshes import safe_filename

    per_file: dict[str, list[str]] = {}
    for p in files:
        per_file.setdefault(Path(p).stem, []).append(Path(p).name)
    return [{"name": m.name, "label": int(m.label), "color": [round(c, 4) for c in m.color],
             "files": sorted(per_file.get(safe_filename(m.name), [])), "qa": m.qa} for m in models]


def mesh_report(*, config: dict[str, Any], volume: Volume, fingerprint: dict[str, Any], labelmap: Volume,
                segmentation: dict[str, Any], n_structures: int, models: Sequence[SurfaceModel],
                files: Sequence[Path], space: str, outputs: Mapping[str, Sequence[Path]],
                timings: Mapping[str, float], created_utc: str, version: str) -> dict[str, Any]:
    """The ``report.json`` of a command that wrote surface models (see docs/user-guide.md)."""
    return {
        "medrecon_version": version,
        "created_utc": created_utc,
        "config": config,
        "input": input_section(volume, fingerprint),
        "segmentation": {**segmentation, "structures": int(n_structures),
                         "warnings": list(labelmap.meta.get("warnings", []))},
        "space": space,
        "structures": structures_section(models, files),
        "files": sorted({Path(p).name for p in files} | {"report.json"}),
        "outputs": {k: [Path(p).name for p in v] for k, v in outputs.items()},
        "timings_s": dict(timings),
    }
