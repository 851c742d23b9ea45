"""Cohort summary: ``summary.csv``, ``report.html`` and ``cohort_volumes.png`` in OUTDIR.

Built from the manifest rows alone (each finished study's per-structure measures are stored
there), so re-writing the summary of a thousand finished studies reads no study folder.

``summary.csv``: one row per study and structure (a failed study: one row with its error):
``study_id, status, structure, label, volume_mm3, voxel_volume_mm3, area_mm2, triangles,
watertight, outlier, warnings, error``. ``outlier`` is ``yes`` when the structure's volume lies
outside Tukey's fences (1.5 x IQR beyond the quartiles) of the cohort (five studies or more).
"""
from __future__ import annotations

import csv
import html
import io
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from medrecon.io.atomic import atomic_write_text

__all__ = ["write_summary", "outliers", "volume_plot", "CSV_COLUMNS"]

CSV_COLUMNS = ["study_id", "status", "structure", "label", "volume_mm3", "voxel_volume_mm3", "area_mm2", "triangles",
               "watertight", "outlier", "warnings", "error"]


def outliers(values: Iterable[float], k: float = 1.5, min_n: int = 5) -> np.ndarray:
    """Boolean mask: values outside ``[Q1 - k IQR, Q3 + k IQR]`` (all False below ``min_n``)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size < min_n:
        return np.zeros(v.shape, bool)
    q1, q3 = np.percentile(v, [25, 75])
    iqr = q3 - q1
    return (v < q1 - k * iqr) | (v > q3 + k * iqr)


def _by_structure(rows: list[dict]) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for r in rows:
        if r.get("status") != "done":
            continue
        for s in r.get("summary") or []:
            v = s.get("volume_mm3")
            if v is None or not math.isfinite(float(v)):
                continue
            out.setdefault(str(s.get("structure")), []).append((r["study_id"], float(v)))
    return out


def _outlier_set(by_struct: dict[str, list[tuple[str, float]]]) -> set[tuple[str, str]]:
    flagged = set()
    for name, pts in by_struct.items():
        mask = outliers([v for _, v in pts])
        flagged |= {(sid, name) for (sid, _), m in zip(pts, mask) if m}
    return flagged


def _fmt(x: Any, nd: int = 1) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _csv(rows: list[dict], flagged: set) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        warn = "; ".join(r.get("warnings") or [])
        structs = r.get("summary") or []
        if r.get("status") != "done" or not structs:
            w.writerow([r["study_id"], r.get("status"), "", "", "", "", "", "", "", "", warn, r.get("error") or ""])
            continue
        for s in structs:
            w.writerow([r["study_id"], r["status"], s.get("structure"), s.get("label"), _fmt(s.get("volume_mm3"), 3),
                        _fmt(s.get("voxel_volume_mm3"), 3), _fmt(s.get("area_mm2"), 3), s.get("triangles"),
                        _fmt(s.get("watertight")), "yes" if (r["study_id"], s.get("structure")) in flagged else "no",
                        warn, ""])
    return buf.getvalue()


def volume_plot(by_struct: dict[str, list[tuple[str, float]]], path: str | Path, width: int = 960) -> Path:
    """A strip plot (PNG) of structure volumes (mL) across the cohort; outliers in red, named.

    One row per structure, each with its own linear axis from 0 to its largest volume; the grey
    band is the interquartile range, the tick the median.
    """
    from medrecon.viz import _raster as R

    names = sorted(by_struct)
    row_h, top, left, right = 58, 56, 190, 40
    height = top + max(1, len(names)) * row_h + 30
    img = R.canvas(height, width, (255, 255, 255))
    ink, grey, red, blue = (30, 30, 30), (215, 215, 220), (210, 30, 30), (40, 90, 170)
    R.draw_text(img, "Structure volumes across the cohort (mL); red: outliers (outside 1.5 x IQR)", 12, 12,
                ink, size=16, bold=True)
    if not names:
        R.draw_text(img, "no finished study yet", 12, top + 10, ink, size=14)
    rng = np.random.default_rng(0)
    plot_w = width - left - right
    for k, name in enumerate(names):
        pts = by_struct[name]
        vals = np.array([v for _, v in pts]) / 1000.0
        y0 = top + k * row_h
        yc = y0 + row_h // 2
        vmax = float(vals.max()) if vals.size and vals.max() > 0 else 1.0
        R.draw_text(img, name[:26], left - 10, yc, ink, size=13, anchor="mr")
        R.fill_rect(img, left, yc + 16, left + plot_w, yc + 17, (160, 160, 160))
        R.draw_text(img, "0", left, yc + 18, (90, 90, 90), size=10, anchor="tc")
        R.draw_text(img, f"{vmax:.4g}", left + plot_w, yc + 18, (90, 90, 90), size=10, anchor="tc")

        def px(v: float) -> int:
            return left + int(round(v / vmax * plot_w))

        if vals.size >= 2:
            q1, med, q3 = np.percentile(vals, [25, 50, 75])
            R.fill_rect(img, px(q1), yc - 12, max(px(q3), px(q1) + 1), yc + 13, grey)
            R.fill_rect(img, px(med) - 1, yc - 14, px(med) + 2, yc + 15, (90, 90, 90))
        mask = outliers(vals)
        for (sid, _), v, m, j in zip(pts, vals, mask, rng.uniform(-8, 8, vals.size)):
            x, y = px(v), int(yc + j)
            R.fill_rect(img, x - 3, y - 3, x + 4, y + 4, red if m else blue)
            if m:
                R.draw_text(img, sid[:20], x, y - 6, red, size=10, anchor="bc")
    return R.write_png(img, path)


def _html(rows: list[dict], flagged: set, plot_name: str | None) -> str:
    done = [r for r in rows if r.get("status") == "done"]
    failed = [r for r in rows if r.get("status") == "failed"]
    other = [r for r in rows if r.get("status") not in ("done", "failed")]
    e = html.escape
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>medrecon cohort summary</title><style>",
           "body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}",
           "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child,"
           "td.t{text-align:left}tr.out td{background:#fde2e2}.bad{color:#b00}</style></head><body>",
           "<h1>medrecon cohort summary</h1>",
           f"<p>{len(rows)} studies: <b>{len(done)}</b> done, "
           + (f"<b class='bad'>{len(failed)}</b> failed" if failed else "0 failed")  # red only when some failed
           + (f", {len(other)} not finished" if other else "") + f"; {len(flagged)} outlier volume(s).</p>"]
    if plot_name:
        out.append(f"<h2>Volumes per structure</h2><img src='{e(plot_name)}' alt='volumes per structure'>")
    out.append("<h2>Failures</h2>")
    if failed:
        out.append("<table><tr><th>study</th><th>reason</th><th>finished (UTC)</th></tr>")
        out += [f"<tr><td>{e(r['study_id'])}</td><td class='t'>{e(r.get('error') or '')}</td>"
                f"<td>{e(r.get('finished_utc') or '')}</td></tr>" for r in failed]
        out.append("</table>")
    else:
        out.append("<p>none</p>")
    out.append("<h2>Studies and structures</h2><table><tr><th>study</th><th>structure</th><th>volume (mL)</th>"
               "<th>area (cm&sup2;)</th><th>triangles</th><th>watertight</th><th>time (s)</th><th>warnings</th></tr>")
    for r in done:
        t = (r.get("timings") or {}).get("compute_s")
        warn = e("; ".join(r.get("warnings") or []))
        for s in r.get("summary") or [{}]:
            cls = " class='out'" if (r["study_id"], s.get("structure")) in flagged else ""
            vol = s.get("volume_mm3")
            area = s.get("area_mm2")
            out.append(f"<tr{cls}><td>{e(r['study_id'])}</td><td class='t'>{e(str(s.get('structure', '')))}</td>"
                       f"<td>{'' if vol is None else f'{vol / 1000:.2f}'}</td>"
                       f"<td>{'' if area is None else f'{area / 100:.1f}'}</td><td>{s.get('triangles', '')}</td>"
                       f"<td>{_fmt(s.get('watertight'))}</td><td>{'' if t is None else f'{t:.1f}'}</td>"
                       f"<td class='t'>{warn}</td></tr>")
    out.append("</table><p>Rows in red: volume outside the cohort's 1.5 x IQR fences for that structure. "
               "Per-study files: <code>studies/&lt;id&gt;/</code> (meshes, report.json, cohort.json).</p>"
               "</body></html>\n")
    return "\n".join(out)


def write_summary(outdir: str | Path, rows: list[dict]) -> tuple[Path, Path, Path]:
    """Write ``summary.csv``, ``report.html`` and ``cohort_volumes.png`` (atomically) in ``outdir``.

    ``rows`` are manifest rows (:meth:`Manifest.all` values) in display order.
    """
    out = Path(outdir)
    by_struct = _by_structure(rows)
    flagged = _outlier_set(by_struct)
    csv_path = atomic_write_text(out / "summary.csv", _csv(rows, flagged))
    png = volume_plot(by_struct, out / "cohort_volumes.png")
    html_path = atomic_write_text(out / "report.html", _html(rows, flagged, png.name))
    return csv_path, html_path, png
