"""Presentation for the command line (rich): progress of the library's
:class:`~medrecon.progress.ProgressEvent`\\ s, tables of series and models, warnings, the
cohort bar. Only the CLI (and example scripts) import this module; library code never imports
rich and reports progress through one callback ``progress(ProgressEvent)``."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from medrecon.progress import ProgressEvent

if TYPE_CHECKING:  # rich's parts are imported where they are used: the CLI starts fast
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["StageProgress", "CohortProgress", "demo_summary", "print_warnings", "series_table", "common_warnings",
           "structure_summary", "plural", "format_elapsed", "terminal_safe", "missing_extra", "safe_warnings",
           "quiet_third_party", "NARROW"]

#: Terminals narrower than this get the compact layouts (fewer columns, no wrapping of names).
NARROW = 100
#: Redirected output: at most one line per stage this often (seconds), besides its first and last.
PLAIN_EVERY_S = 10.0


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 structure"``, ``"2 structures"`` (``words`` for an irregular plural)."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def format_elapsed(s: float) -> str:
    """``"4.2 s"``, ``"3m05s"``, ``"1h02m"``: to the precision a reader needs."""
    if s < 60:
        return f"{s:.1f} s"
    s = int(round(s))
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class StageProgress:
    """Draws :class:`~medrecon.progress.ProgressEvent`\\ s; the object itself is the callback.

    On a terminal each stage gets a bar, keyed by the first word of its stage (``"meshing"``
    events update one bar whose text names the structure); when the work ends every bar is
    drawn finished. When the console is not a terminal (output redirected to a log) it prints
    plain lines instead, ``stage done/total unit (elapsed)``: the first and last event of each
    stage and at most one line every :data:`PLAIN_EVERY_S` seconds in between.
    """

    def __init__(self, console: Console | None, transient: bool = False):
        self.console = console
        self._progress: Progress | None = None
        self._tasks: dict[str, Any] = {}
        self.transient = transient
        self.plain = console is not None and not console.is_terminal
        self._t0 = time.monotonic()
        #: per stage key: (time of the last line, the event it showed, the last event)
        self._plain_state: dict[str, tuple[float, ProgressEvent, ProgressEvent]] = {}

    def __enter__(self) -> "StageProgress":
        self._t0 = time.monotonic()
        if self.console is not None and not self.plain:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn)

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=self.console,
                                      transient=self.transient)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        failed = bool(exc) and exc[0] is not None
        if self.plain and not failed:
            for _, _, ev in list(self._plain_state.values()):
                if ev.total and ev.done < ev.total:  # the work ended: say the stage ended
                    self._line(ProgressEvent(ev.stage, ev.total, ev.total, ev.unit, ev.message))
        if self._progress is not None:
            if failed or not self._tasks:
                # failing (or nothing shown): clear the bars, and drop what rich writes when it
                # stops, so an error message that follows is not preceded by a half-drawn line
                import io

                self._progress.live.transient = True
                # keep the console's own setting: None means "sys.stderr at print time" (pinning
                # the resolved stream would outlive a redirected or closed stderr)
                pinned = getattr(self.console, "_file", None)
                self.console.file = io.StringIO()
                try:
                    self._progress.__exit__(*exc)
                finally:
                    self.console.file = pinned
                return
            for task in self._progress.tasks:  # the work is done: no half-drawn bar stays
                if task.total is not None and task.completed < task.total:
                    self._progress.update(task.id, completed=task.total)
            self._progress.__exit__(*exc)

    @staticmethod
    def _key(ev: ProgressEvent) -> str:
        return ev.stage.split(" ", 1)[0]

    def _line(self, ev: ProgressEvent) -> None:
        count = f"{ev.done}/{ev.total}" if ev.total else str(ev.done)
        unit = f" {ev.unit if ev.total == 1 or (not ev.total and ev.done == 1) else ev.unit + 's'}" if ev.unit else ""
        self.console.print(f"{ev.text}: {count}{unit} ({format_elapsed(time.monotonic() - self._t0)})",
                           markup=False, highlight=False, soft_wrap=True)

    def _plain_event(self, ev: ProgressEvent) -> None:
        key, now = self._key(ev), time.monotonic()
        finished = bool(ev.total) and ev.done >= ev.total
        state = self._plain_state.get(key)
        if state is None:
            due = True
        else:
            t_last, printed, _ = state
            same_end = (printed.total and printed.done >= printed.total and printed.stage == ev.stage
                        and (printed.done, printed.total) == (ev.done, ev.total)
                        and ev.message in (None, printed.message))
            due = (finished and not same_end) or now - t_last >= PLAIN_EVERY_S
        if due:
            self._line(ev)
            self._plain_state[key] = (now, ev, ev)
        else:
            self._plain_state[key] = (state[0], state[1], ev)

    def __call__(self, ev: ProgressEvent) -> None:
        if self.plain:
            self._plain_event(ev)
            return
        if self._progress is None:
            return
        key = self._key(ev)
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(ev.text, total=ev.total or None)
        self._progress.update(self._tasks[key], completed=ev.done, total=ev.total or None, description=ev.text)

    def log(self, message: str) -> None:
        """Print a line above the bars."""
        if self._progress is not None:
            self._progress.console.log(message)
        elif self.console is not None:
            self.console.log(message)


class CohortProgress:
    """The ``medrecon cohort --progress rich`` bar, drawn from the cohort's run events
    (:class:`medrecon.cohort.progress.ProgressEvent`: studies done, failed, running, ETA)."""

    def __init__(self, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self._bar = Progress(TextColumn("cohort"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[counts]}"),
                             TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"), console=console)
        self._task = None

    def __enter__(self) -> "CohortProgress":
        self._bar.__enter__()
        self._task = self._bar.add_task("cohort", total=None, counts="", eta="?")
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def __call__(self, ev) -> None:
        from medrecon.cohort.progress import format_seconds

        if ev.kind == "info":
            self._bar.console.print(ev.message, soft_wrap=True, highlight=False, markup=False)
            return
        if ev.kind == "study" and ev.status == "failed":
            self._bar.console.print(f"[red]failed[/] {_plain(ev.study_id)}: {_plain(ev.message)}", soft_wrap=True,
                                    highlight=False)
        self._bar.update(self._task, total=ev.to_run, completed=ev.done + ev.failed, eta=format_seconds(ev.eta_s),
                         counts=f"done {ev.done}  failed {ev.failed}  running {ev.running}  skipped {ev.skipped}")


def print_warnings(console: Console, warnings) -> None:
    """One yellow ``warning:`` line per message."""
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True, highlight=False)


def structure_summary(console: Console, models) -> None:
    """One line per structure: triangles, closed or not, volume and its change against the voxels.

    Narrow terminals (under :data:`NARROW` columns) get a short form that fits 80 columns.
    """
    narrow = console.width < NARROW
    for m in models:
        qa = m.qa or {}
        closed = qa.get("watertight", "?")
        vol = qa.get("mesh_volume_mm3", float("nan"))
        diff = qa.get("volume_diff_pct", float("nan"))
        if narrow:
            line = (f"  {m.name[:28]}: {m.n_triangles} tri, {'closed' if closed is True else 'NOT closed'}, "
                    f"{vol / 1000:.1f} cm3 ({diff:+.1f}%)")
        else:
            line = (f"  {m.name}: {m.n_triangles} triangles, watertight={closed}, volume {vol:.0f} mm3 "
                    f"({diff:+.2f}% vs voxels)")
        console.print(line, highlight=False, soft_wrap=True, markup=False)


def demo_summary(console: Console, results: Mapping[str, Any], outdir: Path, elapsed_s: float) -> None:
    """The table of models the demo made, where its reports are, and how long it took."""
    from rich.table import Table

    table = Table(title="demo models")
    for col in ("structure", "triangles", "watertight", "volume mm3", "files"):
        table.add_column(col)
    for name, res in results.items():
        for m in res.models:
            qa = m.qa or {}
            table.add_row(m.name, str(m.n_triangles), str(qa.get("watertight", "?")),
                          f"{qa.get('mesh_volume_mm3', float('nan')):.0f}", str(Path(outdir) / name))
    console.print(table)
    for name, res in results.items():
        console.print(f"{name}: report {res.report_path}")
        for p in res.files:
            if p.suffix in (".png", ".html", ".mrml"):
                console.print(f"  {p}")
    console.print(f"[green]demo finished in {elapsed_s:.1f} s[/]")


def common_warnings(rows: list[dict]) -> list[str]:
    """Warnings every series carries (folder-level facts such as ignored non-DICOM files)."""
    if len(rows) < 2:
        return []
    first = list(rows[0].get("warnings", []))
    return [w for w in first if all(w in r.get("warnings", []) for r in rows[1:])]


def terminal_safe(text: object, strip: bool = True) -> str:
    """A value from a file (a file name, a SeriesDescription, an error message) as one line of
    terminal text: control characters (newlines, ESC, ...) shown as escapes, never raw; rich
    markup in it (a path like ``a[/]b``) printed literally; no leading blank (``strip``)."""
    from rich.markup import escape

    out = []
    for ch in str(text):
        o = ord(ch)
        out.append((repr(ch)[1:-1] if o < 256 else f"\\u{o:04x}") if (o < 32 or 127 <= o < 160 or ch in "\u2028\u2029")
                   else ch)
    text = "".join(out)
    return escape(text.strip() if strip else text)


def _plain(text: str) -> str:
    return terminal_safe(text, strip=False)


#: Top-level packages of the optional extras: a missing one names the extra to install.
EXTRAS = {"torch": "ai", "monai": "ai", "slicerio": "slicer", "dask": "cohort", "distributed": "cohort",
          "bokeh": "cohort", "cv2": "photo", "skimage": "photo", "pyamg": "photo", "onnxruntime": "photo",
          "onnx": "photo", "onnxscript": "photo", "transformers": "photo",
          "pycolmap": "multiview", "av": "multiview", "xatlas": "multiview", "pxr": "multiview", "c2pa": "multiview",
          "dicomanonymizer": "reliability"}


def missing_extra(exc: Optional[BaseException]) -> Optional[tuple[str, str]]:
    """(extra, package) when a package of an optional extra is missing, anywhere in the chain."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ImportError):
            name = (getattr(exc, "name", None) or "").split(".")[0]
            if name in EXTRAS:
                return EXTRAS[name], name
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def safe_warnings(console: "Console") -> None:
    """Library warnings and log records (which may quote file names) reach the terminal as one
    escaped line each, never raw control characters."""
    import logging
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        console.print(f"[yellow]warning:[/] {terminal_safe(message)}", soft_wrap=True, highlight=False)

    warnings.showwarning = show

    class _Safe(logging.Handler):
        def emit(self, record):
            try:
                console.print(f"[yellow]{record.levelname.lower()}:[/] {terminal_safe(record.getMessage())}",
                              soft_wrap=True, highlight=False)
            except Exception:  # noqa: BLE001 - logging must never fail the command
                pass

    logging.lastResort = _Safe(logging.WARNING)


def quiet_third_party() -> None:
    """Third-party noise (MONAI's optional-reader notices, FutureWarning/DeprecationWarning of
    dependencies) stays off the terminal; medrecon's own warnings still show."""
    import logging
    import warnings

    for cat in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=cat)
    warnings.filterwarnings("ignore", message=r".*nvImageCodec.*")
    warnings.filterwarnings("ignore", message=r".*nvimgcodec.*")
    warnings.filterwarnings("ignore", module=r"(monai|torch|timm|transformers|dask|distributed)(\..*)?$",
                            category=UserWarning)
    for name in ("monai", "torch", "nibabel", "pydicom", "distributed", "PIL", "trimesh"):
        logging.getLogger(name).setLevel(logging.ERROR)


def series_table(rows: list[dict], width: int | None = None) -> Table:
    """A table of series descriptions as returned by :func:`medrecon.io.loader.describe_series`.

    Warnings shared by every series are left out of the rows; print :func:`common_warnings`
    once under the table instead. ``width`` (the terminal's columns) under :data:`NARROW` gives
    a compact table that fits 80 columns.
    """
    shared = set(common_warnings(rows))
    narrow = width is not None and width < NARROW
    from rich.table import Table

    t = Table(title="Series found", show_lines=False, padding=(0, 1) if not narrow else (0, 0),
              collapse_padding=narrow)
    cols = ("#", "series", "mod", "description", "size", "spacing (mm)", "orientation", "files", "notes")
    if narrow:  # 80 columns: short headers, no orientation/files columns; notes stay (they matter)
        heads = ("#", "no", "mod", "description", "size", "mm", "notes")
    else:
        heads = cols
    for col in heads:
        t.add_column(col, overflow="fold", no_wrap=col in ("#", "mod", "files", "no"),
                     max_width=18 if (narrow and col == "description") else None)
    numbers = [r.get("series_number") for r in rows]
    for r in rows:
        size = "x".join(str(s) for s in r.get("size", []))
        sp = " x ".join(f"{s:.3g}" for s in r.get("spacing", []))
        desc = _plain(r.get("description", ""))
        itype = str(r.get("image_type", ""))
        if itype and numbers.count(r.get("series_number")) > 1:  # say what tells them apart
            parts = itype.split("\\")[2:]
            te = r.get("echo_time")
            desc = f"{desc} [dim]({'/'.join(parts)}{f', TE {te:g}' if te is not None else ''})[/]"
        notes = [_plain(w) for w in r.get("warnings", []) if w not in shared]
        if not r.get("is_volume", True):
            notes.insert(0, f"[red]NOT A VOLUME[/]: {_plain(r.get('reason', ''))}")
        sn = r.get("series_number")
        if narrow:
            sp = "x".join(f"{s:.3g}" for s in r.get("spacing", []))
            t.add_row(str(r.get("index", "")), "" if sn is None else str(sn), str(r.get("modality", "")), desc,
                      size, sp, "\n".join(notes))
            continue
        t.add_row(str(r.get("index", "")), "" if sn is None else str(sn), str(r.get("modality", "")), desc,
                  size, sp, str(r.get("orientation", "")), str(r.get("n_files", "")),
                  "\n".join(notes))
    return t
