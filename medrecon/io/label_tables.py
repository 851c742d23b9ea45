"""Label tables, read and written: which label value is which structure, with a display colour.

:func:`load_label_table` reads

* the built-in table of TotalSegmentator's ``total`` task (v2, 117 classes): ``"totalsegmentator"``
  or ``"total"``;
* 3D Slicer colour tables (``.ctbl`` / ``.txt``: ``value name r g b a`` per line, 0..255);
* CSV (``value,name[,r,g,b[,a]]``, with or without a header; colours 0..255, 0..1 or ``#rrggbb``);
* JSON: ``{"1": "liver"}``, ``{"1": {"name": ..., "color": [...]}}``, a list of
  ``{"value", "name", "color"}`` objects, or an nnU-Net ``dataset.json``
  (``"labels": {"background": 0, "liver": 1}``, v2; ``{"0": "background", ...}``, v1).

:func:`write_slicer_ctbl` writes a Slicer colour table.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Mapping

from medrecon.errors import ConfigError
from medrecon.io.atomic import atomic_write_text
from medrecon.labelmap import LabelInfo, default_color

__all__ = ["load_label_table", "write_slicer_ctbl", "TOTALSEGMENTATOR_TOTAL", "table_from_names"]


# --------------------------------------------------------------------------------------------
# TotalSegmentator v2, task "total" (ids as in its class map)
# --------------------------------------------------------------------------------------------
_TOTAL_NAMES = [
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
    "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left",
    "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus",
    "trachea", "thyroid_gland", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate",
    "kidney_cyst_left", "kidney_cyst_right", "sacrum", "vertebrae_S1",
    *[f"vertebrae_L{i}" for i in range(5, 0, -1)],
    *[f"vertebrae_T{i}" for i in range(12, 0, -1)],
    *[f"vertebrae_C{i}" for i in range(7, 0, -1)],
    "heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery_right",
    "subclavian_artery_left", "common_carotid_artery_right", "common_carotid_artery_left",
    "brachiocephalic_vein_left", "brachiocephalic_vein_right", "atrial_appendage_left",
    "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein", "iliac_artery_left",
    "iliac_artery_right", "iliac_vena_left", "iliac_vena_right", "humerus_left", "humerus_right",
    "scapula_left", "scapula_right", "clavicula_left", "clavicula_right", "femur_left", "femur_right",
    "hip_left", "hip_right", "spinal_cord", "gluteus_maximus_left", "gluteus_maximus_right",
    "gluteus_medius_left", "gluteus_medius_right", "gluteus_minimus_left", "gluteus_minimus_right",
    "autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right", "brain", "skull",
    *[f"rib_left_{i}" for i in range(1, 13)],
    *[f"rib_right_{i}" for i in range(1, 13)],
    "sternum", "costal_cartilages",
]
#: label value -> structure name of TotalSegmentator's ``total`` task (v2).
TOTALSEGMENTATOR_TOTAL: dict[int, str] = {i + 1: n for i, n in enumerate(_TOTAL_NAMES)}
assert len(TOTALSEGMENTATOR_TOTAL) == 117

def table_from_names(names: Mapping[int, str]) -> dict[int, LabelInfo]:
    return {int(v): LabelInfo(int(v), n, default_color(n, int(v))) for v, n in sorted(names.items())}


# --------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------
_BUILTIN = {"totalsegmentator": TOTALSEGMENTATOR_TOTAL, "total": TOTALSEGMENTATOR_TOTAL,
            "totalsegmentator_total": TOTALSEGMENTATOR_TOTAL, "totalsegmentator-total": TOTALSEGMENTATOR_TOTAL}


def _parse_color(parts: list[str], where: str) -> tuple[float, float, float] | None:
    parts = [p for p in parts if p.strip() != ""]
    if not parts:
        return None
    if len(parts) == 1 and parts[0].strip().startswith("#"):
        h = parts[0].strip().lstrip("#")
        if len(h) not in (6, 8) or not re.fullmatch(r"[0-9a-fA-F]+", h):
            raise ConfigError(f"bad colour {parts[0]!r}", path=where)
        return tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]
    try:
        vals = [float(p) for p in parts[:3]]
    except ValueError:
        raise ConfigError(f"bad colour {' '.join(parts)!r}", path=where) from None
    if len(vals) < 3:
        raise ConfigError(f"colour needs r g b, got {' '.join(parts)!r}", path=where)
    if any(v < 0 or v > 255 for v in vals):
        raise ConfigError(f"colour out of range {vals}", path=where)
    return tuple(v / 255.0 for v in vals) if max(vals) > 1.0 else tuple(vals)  # type: ignore[return-value]


def _add(table: dict[int, LabelInfo], value: Any, name: Any, color, where: str) -> None:
    try:
        v = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"label value {value!r} is not an integer", path=where) from None
    name = str(name).strip()
    if v < 0:
        raise ConfigError(f"negative label value {v}", path=where)
    if v == 0 or name.lower() in ("background", "bg", "_background_", "clear_label"):
        return
    if not name:
        raise ConfigError(f"label {v} has no name", path=where)
    if v in table:
        raise ConfigError(f"label value {v} appears twice ({table[v].name!r}, {name!r})", path=where)
    table[v] = LabelInfo(v, name, color if color is not None else default_color(name, v))


def _read_ctbl(text: str, where: str) -> dict[int, LabelInfo]:
    table: dict[int, LabelInfo] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ConfigError(f"line {lineno}: expected 'value name r g b a', got {line!r}", path=where)
        color = _parse_color(parts[2:5], f"{where}:{lineno}") if len(parts) >= 5 else None
        _add(table, parts[0], parts[1], color, f"{where}:{lineno}")
    return table


def _read_csv(text: str, where: str) -> dict[int, LabelInfo]:
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)
            and not r[0].strip().startswith("#")]
    if not rows:
        raise ConfigError("empty label table", path=where)
    header = [c.strip().lower() for c in rows[0]]
    table: dict[int, LabelInfo] = {}
    if not re.fullmatch(r"-?\d+", header[0]):  # a header row
        def col(*names):
            for n in names:
                if n in header:
                    return header.index(n)
            return None
        iv, iname = col("value", "label", "id", "index", "label_value"), col("name", "structure", "label_name")
        if iv is None or iname is None:
            raise ConfigError(f"CSV header needs a value/label/id and a name column, got {rows[0]}", path=where)
        ic, ir, ig, ib = col("color", "colour", "hex"), col("r", "red"), col("g", "green"), col("b", "blue")
        for n, r in enumerate(rows[1:], 2):
            color = None
            if ir is not None and ig is not None and ib is not None:
                color = _parse_color([r[ir], r[ig], r[ib]], f"{where}:{n}")
            elif ic is not None and ic < len(r):
                color = _parse_color(r[ic].replace(";", " ").split(), f"{where}:{n}")
            _add(table, r[iv], r[iname], color, f"{where}:{n}")
    else:
        for n, r in enumerate(rows, 1):
            if len(r) < 2:
                raise ConfigError(f"line {n}: expected value,name[,r,g,b]", path=where)
            color = _parse_color([c for c in r[2:5]], f"{where}:{n}") if len(r) >= 3 else None
            _add(table, r[0], r[1], color, f"{where}:{n}")
    return table


def _read_json(data: Any, where: str) -> dict[int, LabelInfo]:
    table: dict[int, LabelInfo] = {}
    if isinstance(data, dict) and "labels" in data and isinstance(data["labels"], (dict, list)):
        labels = data["labels"]
        if isinstance(labels, dict) and labels and all(isinstance(v, (int, list)) for v in labels.values()):
            # nnU-Net v2: {"background": 0, "liver": 1}; region-based entries (lists) are skipped
            for name, v in labels.items():
                if isinstance(v, int):
                    _add(table, v, name, None, where)
            return table
        data = labels  # nnU-Net v1 {"0": "background", "1": "liver"} or a list
    if isinstance(data, list):
        for n, item in enumerate(data):
            if not isinstance(item, dict) or "name" not in item:
                raise ConfigError(f"entry {n}: expected an object with value and name", path=where)
            v = item.get("value", item.get("label", item.get("id")))
            color = item.get("color", item.get("colour"))
            _add(table, v, item["name"], _json_color(color, where), where)
        return table
    if isinstance(data, dict):
        for k, item in data.items():
            if isinstance(item, str):
                _add(table, k, item, None, where)
            elif isinstance(item, dict) and "name" in item:
                _add(table, k, item["name"], _json_color(item.get("color", item.get("colour")), where), where)
            else:
                raise ConfigError(f"entry {k!r}: expected a name or an object with a name", path=where)
        return table
    raise ConfigError("JSON label table must be an object or a list", path=where)


def _json_color(c: Any, where: str):
    if c is None:
        return None
    if isinstance(c, str):
        return _parse_color([c], where)
    if isinstance(c, (list, tuple)):
        return _parse_color([str(x) for x in c], where)
    raise ConfigError(f"bad colour {c!r}", path=where)


def load_label_table(spec: Any) -> dict[int, LabelInfo]:
    """Read a label table.

    Parameters
    ----------
    spec : str, Path or mapping
        A built-in name (``"totalsegmentator"``, ``"total"``), a path to a Slicer colour table
        (``.ctbl``/``.txt``), CSV or JSON file (nnU-Net ``dataset.json`` included), or a mapping
        ``{value: name}`` / ``{value: LabelInfo}``.

    Returns
    -------
    dict[int, LabelInfo]
        Keyed by label value; background (0) is never included.

    Raises
    ------
    ConfigError
        Unknown built-in name, missing or unreadable file, malformed line/entry, duplicate value.
    """
    if isinstance(spec, Mapping):
        out: dict[int, LabelInfo] = {}
        for k, v in spec.items():
            if isinstance(v, LabelInfo):
                out[int(k)] = v
            else:
                _add(out, k, getattr(v, "name", v), getattr(v, "color", None), "label table")
        return out
    key = str(spec).strip()
    if key.lower() in _BUILTIN:
        return table_from_names(_BUILTIN[key.lower()])
    path = Path(key)
    if not path.exists():
        builtins = ", ".join(sorted({"totalsegmentator", "total"}))
        raise ConfigError(f"label table not found (not a file, nor a built-in table: {builtins})", path=key)
    if path.is_dir():
        raise ConfigError("label table is a folder, expected a file", path=path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read label table: {exc}", path=path) from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid JSON: {exc.msg} (line {exc.lineno})", path=path) from None
        table = _read_json(data, str(path))
    elif suffix == ".csv" or suffix == ".tsv":
        table = _read_csv(text if suffix == ".csv" else text.replace("\t", ","), str(path))
    elif suffix in (".ctbl", ".txt", ".lut"):
        table = _read_ctbl(text, str(path))
    else:
        raise ConfigError("unknown label table format (use .ctbl, .txt, .csv or .json)", path=path)
    if not table:
        raise ConfigError("label table holds no structures", path=path)
    return table


def write_slicer_ctbl(labels: Mapping[int, LabelInfo], path) -> Path:
    """Write a Slicer colour table (``value name r g b a``, 0..255) atomically."""
    lines = ["# medrecon label table", "0 background 0 0 0 0"]
    for v in sorted(labels):
        li = labels[v]
        r, g, b = (int(round(c * 255)) for c in li.color)
        lines.append(f"{v} {li.name.replace(' ', '_')} {r} {g} {b} 255")
    return atomic_write_text(path, "\n".join(lines) + "\n")
