"""Rich tables for terminal output."""
from __future__ import annotations

from rich.table import Table


def common_warnings(rows: list[dict]) -> list[str]:
    """Warnings every series carries (folder-level facts such as ignored non-DICOM files)."""
    if len(rows) < 2:
        return []
    first = list(rows[0].get("warnings", []))
    return [w for w in first if all(w in r.get("warnings", []) for r in rows[1:])]


def series_table(rows: list[dict]) -> Table:
    """A table of series descriptions as returned by :func:`medrecon.io.loader.describe_series`.

    Warnings shared by every series are left out of the rows; print :func:`common_warnings`
    once under the table instead.
    """
    shared = set(common_warnings(rows))
    t = Table(title="Series found", show_lines=False)
    for col in ("#", "series", "mod", "description", "size", "spacing (mm)", "orientation", "files", "notes"):
        t.add_column(col, overflow="fold", no_wrap=col in ("#", "mod", "files"))
    numbers = [r.get("series_number") for r in rows]
    for r in rows:
        size = "x".join(str(s) for s in r.get("size", []))
        sp = " x ".join(f"{s:.3g}" for s in r.get("spacing", []))
        desc = str(r.get("description", ""))
        itype = str(r.get("image_type", ""))
        if itype and numbers.count(r.get("series_number")) > 1:  # say what tells them apart
            parts = itype.split("\\")[2:]
            te = r.get("echo_time")
            desc = f"{desc} [dim]({'/'.join(parts)}{f', TE {te:g}' if te is not None else ''})[/]"
        notes = [w for w in r.get("warnings", []) if w not in shared]
        if not r.get("is_volume", True):
            notes.insert(0, f"[red]NOT A VOLUME[/]: {r.get('reason', '')}")
        sn = r.get("series_number")
        t.add_row(str(r.get("index", "")), "" if sn is None else str(sn), str(r.get("modality", "")), desc,
                  size, sp, str(r.get("orientation", "")), str(r.get("n_files", "")),
                  "\n".join(notes))
    return t
