"""Choosing structures from a label table: :func:`select_structures` picks them by name or by
group (bones, organs, vessels, muscles, lungs, spine, ribs).

Reading and writing label tables is :mod:`medrecon.io.label_tables`; :class:`LabelInfo` and the
colours are :mod:`medrecon.labelmap` (both re-exported here for older callers).
"""
from __future__ import annotations

import difflib
import re
from typing import Iterable, Mapping

from medrecon.errors import ConfigError
from medrecon.io.label_tables import TOTALSEGMENTATOR_TOTAL, load_label_table, write_slicer_ctbl
from medrecon.labelmap import LabelInfo, default_color, structure_group

__all__ = ["LabelInfo", "load_label_table", "select_structures", "TOTALSEGMENTATOR_TOTAL", "GROUPS",
           "default_color", "structure_group", "write_slicer_ctbl"]

_LUNG = re.compile(r"(lung)")
GROUPS = ("bones", "organs", "vessels", "muscles", "lungs", "spine", "ribs")


def _in_group(name: str, group: str) -> bool:
    n = name.lower()
    if group == "spine":
        return bool(re.search(r"(vertebra|sacrum|spine|coccyx)", n))
    if group == "ribs":
        return n.startswith("rib") or "costal_cartilage" in n
    if group == "lungs":
        return bool(_LUNG.search(n))
    return structure_group(n) == group


def select_structures(labels: Mapping[int, LabelInfo], structures: Iterable[str] | None = None,
                      group: str | None = None) -> dict[int, LabelInfo]:
    """Subset of a label table by structure names and/or a group.

    Parameters
    ----------
    labels : dict[int, LabelInfo]
    structures : list of str, optional
        Structure names (case-insensitive) or label values; all when None.
    group : str, optional
        One of :data:`GROUPS` (bones, organs, vessels, muscles, lungs, spine, ribs).

    Raises
    ------
    ConfigError
        Unknown structure name (the message lists close names), unknown group, or a group with
        no structure in this table.
    """
    selected = dict(labels)
    if group:
        g = group.strip().lower()
        if g not in GROUPS:
            raise ConfigError(f"unknown structure group {group!r}; groups: {', '.join(GROUPS)}")
        selected = {v: li for v, li in selected.items() if _in_group(li.name, g)}
        if not selected:
            raise ConfigError(f"the label table has no structure in group {group!r}")
    if structures:
        by_name = {li.name.lower(): v for v, li in labels.items()}
        out: dict[int, LabelInfo] = {}
        for s in structures:
            s = str(s).strip()
            if not s:
                continue
            if s.lower() in by_name:
                v = by_name[s.lower()]
            elif re.fullmatch(r"\d+", s) and int(s) in labels:
                v = int(s)
            else:
                close = difflib.get_close_matches(s.lower(), list(by_name), n=5, cutoff=0.5)
                if not close:
                    close = [n for n in by_name if s.lower() in n][:5]
                hint = f"; did you mean: {', '.join(close)}" if close else ""
                valid = ", ".join(f"{v}={li.name}" for v, li in sorted(labels.items()))
                raise ConfigError(f"unknown structure {s!r}{hint}; valid (value=name): {valid}")
            if v not in selected:
                raise ConfigError(f"structure {s!r} is not in group {group!r}")
            out[v] = labels[v]
        selected = out
    return selected
