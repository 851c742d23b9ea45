"""Progress of a cohort run: one event type and two log-friendly printers.

The library never draws: :func:`medrecon.cohort.run` calls ``progress(event)`` with a
:class:`ProgressEvent`. ``medrecon cohort --progress rich`` draws a bar from it (cli.py);
:func:`plain_printer` and :func:`json_printer` write one line per event for logs.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional, TextIO

__all__ = ["ProgressEvent", "plain_printer", "json_printer", "format_seconds", "eta_seconds"]


@dataclass
class ProgressEvent:
    """State of a run when something happened.

    Attributes
    ----------
    kind : ``"start"`` (plan known), ``"info"`` (a message, e.g. the dashboard address),
        ``"study"`` (a study finished or failed), ``"tick"`` (periodic), ``"end"``.
    total : studies in the cohort; ``to_run`` : studies this run computes.
    done, failed : finished/failed **in this run**; ``skipped`` : already done (resume).
    running : studies being computed now; ``queued`` : submitted, not yet started.
    elapsed_s : seconds since the run started; ``eta_s`` : estimate of the time left (None
        until a study finished).
    study_id, status, message : the study (or message) this event is about.
    """

    kind: str
    total: int = 0
    to_run: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    running: int = 0
    queued: int = 0
    elapsed_s: float = 0.0
    eta_s: Optional[float] = None
    study_id: Optional[str] = None
    status: Optional[str] = None
    message: Optional[str] = None

    def as_dict(self) -> dict:
        return asdict(self)


def eta_seconds(finished: int, remaining: int, t_start: float, t_last_finish: float, now: float) -> float | None:
    """Time left: the studies still to run at the rate measured up to the last study that
    finished, minus the time already spent since then. Between two finished studies the estimate
    counts down (never up, as ``elapsed / finished * remaining`` did while one long study ran);
    it is never negative. None until a study finished."""
    if finished <= 0:
        return None
    if remaining <= 0:
        return 0.0
    per_study = max(t_last_finish - t_start, 0.0) / finished
    return max(per_study * remaining - max(now - t_last_finish, 0.0), 0.0)


def format_seconds(s: float | None) -> str:
    """``1h02m``, ``3m05s`` or ``12s``; ``?`` for None."""
    if s is None:
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def plain_printer(stream: TextIO | None = None, tick_every_s: float = 30.0) -> Callable[[ProgressEvent], None]:
    """A progress callback printing one plain line per study, message and ``tick_every_s``."""
    last = [0.0]

    def cb(ev: ProgressEvent) -> None:
        out = stream or sys.stdout
        now = time.monotonic()
        if ev.kind == "tick" and now - last[0] < tick_every_s:
            return
        last[0] = now
        counts = (f"{ev.done + ev.failed}/{ev.to_run} (done {ev.done}, failed {ev.failed}, running {ev.running}, "
                  f"skipped {ev.skipped}) elapsed {format_seconds(ev.elapsed_s)} eta {format_seconds(ev.eta_s)}")
        if ev.kind == "study":
            line = f"cohort: {ev.study_id} {ev.status}" + (f": {ev.message}" if ev.message else "") + f" | {counts}"
        elif ev.kind == "info":
            line = f"cohort: {ev.message}"
        elif ev.kind == "start":
            line = f"cohort: {ev.total} studies, {ev.to_run} to run, {ev.skipped} already done"
        elif ev.kind == "end":
            line = f"cohort: finished | {counts}"
        else:
            line = f"cohort: {counts}"
        print(line, file=out, flush=True)

    return cb


def json_printer(stream: TextIO | None = None, tick_every_s: float = 10.0) -> Callable[[ProgressEvent], None]:
    """A progress callback printing each event as one JSON object per line."""
    last = [0.0]

    def cb(ev: ProgressEvent) -> None:
        now = time.monotonic()
        if ev.kind == "tick" and now - last[0] < tick_every_s:
            return
        last[0] = now
        d = ev.as_dict()
        d["elapsed_s"] = round(d["elapsed_s"], 3)
        if d["eta_s"] is not None:
            d["eta_s"] = round(d["eta_s"], 1)
        print(json.dumps(d), file=stream or sys.stdout, flush=True)

    return cb
