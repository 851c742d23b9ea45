"""Provenance shared by every command that writes models or images: what made a file, from what.

A provenance record never holds patient identifiers: inputs are named by their base name and
fingerprinted by SHA-256; settings that are paths are recorded by a hash (a folder name may be
a patient's name, see :func:`path_token`); voxel data by the SHA-256 of the array
(:func:`input_fingerprint`).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from medrecon.version import __version__, generator
from medrecon.volume import Volume

__all__ = ["provenance_record", "gltf_asset", "jsonable", "input_fingerprint", "path_token",
           "file_sha256", "utc_now", "spec_name"]


def jsonable(x: Any) -> Any:
    """A JSON-able copy of ``x``: numpy scalars/arrays to Python, paths to strings, tuples to
    lists, non-finite floats to None, dataclass-like objects left as they are."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        x = float(x)
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def utc_now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def path_token(p: str | os.PathLike | None) -> str | None:
    """``"sha256:<16 hex>"`` of the resolved path: records *which* path without naming it."""
    if p is None:
        return None
    return "sha256:" + hashlib.sha256(str(Path(p).resolve()).encode()).hexdigest()[:16]


def spec_name(spec: str | os.PathLike | None) -> str | None:
    """How a setting that may be a file is recorded: a file's base name, else the text as given
    (a built-in name such as ``ct-bone``)."""
    if spec is None:
        return None
    p = Path(spec)
    return p.name if p.exists() else str(spec)


def input_fingerprint(volume: Volume) -> dict[str, Any]:
    """SHA-256 of the voxel data (C order, native dtype) with shape and dtype; no identifiers."""
    arr = np.ascontiguousarray(volume.array)
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(memoryview(arr).cast("B"))
    return {"sha256": h.hexdigest(), "shape": list(arr.shape), "dtype": str(arr.dtype)}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes; a folder hashes its files' names and bytes in sorted order."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            while True:
                block = fh.read(chunk)
                if not block:
                    break
                h.update(block)
    return h.hexdigest()


def _input_entry(item: Any, n: int) -> dict[str, Any]:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return {"name": f"input_{n}", "sha256": hashlib.sha256(bytes(item)).hexdigest()}
    if isinstance(item, Volume):
        return {"name": f"volume_{n}", **input_fingerprint(item)}
    p = Path(item)
    entry: dict[str, Any] = {"name": p.name}
    if p.exists():
        entry["sha256"] = file_sha256(p)
    return entry


def provenance_record(command: str, parameters: dict | None = None,
                      inputs: Iterable[str | os.PathLike | bytes | Volume] | None = None,
                      extra: dict | None = None) -> dict[str, Any]:
    """What made an output: medrecon version, command, parameters, input fingerprints, time.

    Parameters
    ----------
    command : str
        The command or library entry point (``"mesh"``, ``"svr"``...).
    parameters : dict, optional
        Settings; made JSON-able. Callers hash settings that are paths (:func:`path_token`).
    inputs : iterable of paths, bytes or Volumes, optional
        Recorded as ``{"name": basename, "sha256": ...}`` (a Volume: its voxel fingerprint).
    extra : dict, optional
        More JSON-able facts, merged in last.

    Returns
    -------
    dict with ``generator``, ``medrecon_version``, ``command``, ``parameters``, ``inputs``,
    ``created_utc``, ``python``, ``platform`` (+ ``extra``'s keys).
    """
    rec: dict[str, Any] = {
        "generator": generator(),
        "medrecon_version": __version__,
        "command": str(command),
        "parameters": jsonable(dict(parameters or {})),
        "inputs": [_input_entry(x, n) for n, x in enumerate(inputs or [])],
        "created_utc": utc_now(),
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
    }
    if extra:
        rec.update(jsonable(dict(extra)))
    return rec


def gltf_asset(record: dict | None = None) -> dict[str, Any]:
    """A glTF ``asset`` object carrying ``record`` under ``extras.medrecon``."""
    asset: dict[str, Any] = {"version": "2.0", "generator": generator()}
    if record:
        asset["extras"] = {"medrecon": jsonable(record)}
    return asset
