"""The CLI's presentation: stage callbacks drawn as rich bars, one bar per stage."""
from __future__ import annotations

import io

from rich.console import Console

from medrecon.cli_display import StageProgress, print_warnings


def test_stage_progress_one_bar_per_stage():
    con = Console(file=io.StringIO(), force_terminal=False, width=100)
    with StageProgress(con) as bar:
        bar("loading image", 0, 1)
        bar("loading image", 1, 1)
        bar("meshing", 0, 3)
        bar("meshing liver", 1, 3)
        bar("meshing spleen", 3, 3)
        tasks = {t.description: t for t in bar._progress.tasks}
    assert list(tasks) == ["loading image", "meshing spleen"]
    assert tasks["meshing spleen"].completed == 3 and tasks["meshing spleen"].total == 3


def test_stage_progress_quiet_without_console():
    with StageProgress(None) as bar:
        bar("meshing", 1, 2)  # nothing drawn, nothing raised
        bar.log("x")


def test_warnings_printed_one_per_line():
    out = io.StringIO()
    print_warnings(Console(file=out, width=200), ["first", "second"])
    assert out.getvalue().splitlines() == ["warning: first", "warning: second"]
