"""The CLI's presentation: progress events drawn as rich bars on a terminal, plain lines when
redirected; one bar per stage; finished bars when the work ends."""
from __future__ import annotations

import io

from rich.console import Console

from medrecon.cli_display import StageProgress, format_elapsed, plural, print_warnings
from medrecon.progress import ProgressEvent as E


def test_stage_progress_one_bar_per_stage():
    con = Console(file=io.StringIO(), force_terminal=True, width=100)
    with StageProgress(con) as bar:
        bar(E("loading image", 0, 1))
        bar(E("loading image", 1, 1))
        bar(E("meshing", 0, 3))
        bar(E("meshing", 1, 3, message="liver"))
        bar(E("meshing", 3, 3, message="spleen"))
        tasks = {t.description: t for t in bar._progress.tasks}
    assert list(tasks) == ["loading image", "meshing spleen"]
    assert tasks["meshing spleen"].completed == 3 and tasks["meshing spleen"].total == 3


def test_bars_are_drawn_finished_when_the_work_ends():
    con = Console(file=io.StringIO(), force_terminal=True, width=100)
    with StageProgress(con) as bar:
        bar(E("load stacks", 1, 2))          # reported before the last stack was loaded
        bar(E("align stack", 341, 343, message="1"))  # reported every few iterations
    assert all(t.completed == t.total for t in bar._progress.tasks)


def test_redirected_output_gets_plain_lines_with_counts_and_elapsed_time():
    out = io.StringIO()
    con = Console(file=out, force_terminal=False, width=100)
    with StageProgress(con) as bar:
        bar(E("meshing", 0, 2, unit="structure"))
        bar(E("meshing", 1, 2, unit="structure", message="liver"))  # throttled: no line
        bar(E("meshing", 2, 2, unit="structure", message="spleen"))
        bar(E("meshing", 2, 2, unit="structure"))  # the same end again: no second line
        bar(E("load stacks", 1, 2, unit="stack"))
    lines = out.getvalue().splitlines()
    assert [ln.split(" (")[0] for ln in lines] == ["meshing: 0/2 structures", "meshing spleen: 2/2 structures",
                                                   "load stacks: 1/2 stacks", "load stacks: 2/2 stacks"]
    assert all(ln.endswith(" s)") for ln in lines)
    assert "\x1b" not in out.getvalue()  # no terminal control codes in a log


def test_a_failure_leaves_no_finished_line():
    out = io.StringIO()
    try:
        with StageProgress(Console(file=out, force_terminal=False)) as bar:
            bar(E("decoding", 3, 10))
            raise RuntimeError("x")
    except RuntimeError:
        pass
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]] and "3/10" in out.getvalue()


def test_stage_progress_quiet_without_console():
    with StageProgress(None) as bar:
        bar(E("meshing", 1, 2))  # nothing drawn, nothing raised
        bar.log("x")


def test_counts_read_as_english():
    assert plural(1, "structure") == "1 structure" and plural(2, "worker") == "2 workers"
    assert format_elapsed(2.449) == "2.4 s" and format_elapsed(185) == "3m05s" and format_elapsed(3720) == "1h02m"


def test_warnings_printed_one_per_line():
    out = io.StringIO()
    print_warnings(Console(file=out, width=200), ["first", "second"])
    assert out.getvalue().splitlines() == ["warning: first", "warning: second"]
