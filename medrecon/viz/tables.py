"""Rich tables for terminal output."""
from __future__ import annotations

from rich.table import Table


def series_table(rows: list[dict]) -> Table:
    """A table of series descriptions as returned by :func:`medrecon.io.loader.describe_series`."""
    t = Table(title="Series found", show_lines=False)
    for col in ("#", "modality", "description", "size", "spacing (mm)", "orientation", "files", "warnings"):
        t.add_column(col)
    for r in rows:
        size = "x".join(str(s) for s in r.get("size", []))
        sp = " x ".join(f"{s:.3g}" for s in r.get("spacing", []))
        t.add_row(str(r.get("index", "")), str(r.get("modality", "")), str(r.get("description", "")),
                  size, sp, str(r.get("orientation", "")), str(r.get("n_files", "")),
                  "\n".join(r.get("warnings", [])) or ("NOT A VOLUME" if not r.get("is_volume", True) else ""))
    return t
