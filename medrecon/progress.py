"""The one progress protocol: library functions report long work as :class:`ProgressEvent`\\ s
passed to one callback signature, ``progress(event) -> None`` (:data:`ProgressFn`).

The library never draws and never inspects the callback: it calls
``progress(ProgressEvent("meshing", done, total, message="liver"))`` when a stage starts,
moves on or ends. The command line draws the events (``medrecon.cli_display.StageProgress``:
bars on a terminal, plain ``stage done/total elapsed`` lines when redirected).

Examples
--------
>>> seen = []
>>> report(seen.append, "loading image", 1, 2, unit="file")
>>> seen[0].stage, seen[0].done, seen[0].total, seen[0].text
('loading image', 1, 2, 'loading image')
>>> report(None, "ignored", 0, 1)   # no callback: nothing happens
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["ProgressEvent", "ProgressFn", "report"]


@dataclass(frozen=True)
class ProgressEvent:
    """Where a long piece of work stands.

    Attributes
    ----------
    stage : what is being done (``"loading image"``, ``"meshing"``, ``"align stacks"``); events of
        one stage update one bar.
    done, total : units finished and units in the stage (``total`` 0 when unknown).
    unit : what is counted (``"file"``, ``"slice"``, ``"iteration"``), optional.
    message : what the current unit is (a structure's name), optional; shown after the stage.
    """

    stage: str
    done: int
    total: int = 0
    unit: Optional[str] = None
    message: Optional[str] = None

    @property
    def text(self) -> str:
        """The stage, followed by the message when there is one."""
        return f"{self.stage} {self.message}" if self.message else self.stage


#: The one callback signature of long-running library functions.
ProgressFn = Callable[[ProgressEvent], None]


def report(progress: Optional[ProgressFn], stage: str, done: int, total: int = 0, *,
           unit: Optional[str] = None, message: Optional[str] = None) -> None:
    """Send one :class:`ProgressEvent` to ``progress`` (nothing when it is None)."""
    if progress is not None:
        progress(ProgressEvent(stage, int(done), int(total or 0), unit, message))
