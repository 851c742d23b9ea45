"""CLI entry point: exit codes and --debug handling, through a real subprocess."""
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "medrecon", *args], capture_output=True, text=True, timeout=120)


def test_usage_error_exits_2_without_traceback():
    r = run("info", "--no-such-option")
    assert r.returncode == 2
    assert "No such option" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_input_is_one_line_exit_2(tmp_path):
    missing = tmp_path / "nothing-here"
    r = run("info", str(missing))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(missing) in lines[0]
    assert "Traceback" not in r.stderr


def test_debug_anywhere_shows_traceback(tmp_path):
    missing = tmp_path / "nothing-here"
    r = run("info", str(missing), "--debug")
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "InputError" in r.stderr


def test_folder_level_warning_printed_once():
    from medrecon.cli_display import common_warnings, series_table

    rows = [{"index": 1, "warnings": ["3 non-DICOM file(s) ignored", "gantry tilt 12 deg"]},
            {"index": 2, "warnings": ["3 non-DICOM file(s) ignored"]}]
    assert common_warnings(rows) == ["3 non-DICOM file(s) ignored"]
    from rich.console import Console

    con = Console(width=200, record=True)
    con.print(series_table(rows))
    text = con.export_text()
    assert "non-DICOM" not in text and "gantry tilt 12 deg" in text
    assert common_warnings(rows[:1]) == []  # a lone series keeps its warnings in its row
