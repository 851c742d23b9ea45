"""Error paths of ``medrecon`` as a new user meets them: one line on stderr, exit code 2.

Run as real subprocesses (the installed entry point's ``main()``). The "plain install without
the [ai] extra" case runs with torch and monai made unimportable by a meta-path finder in a
``sitecustomize`` on ``PYTHONPATH`` - the same ``ModuleNotFoundError`` a venv without them raises.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, env_extra=None, cwd=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    env.pop("FORCE_COLOR", None)
    return subprocess.run([sys.executable, "-c", "from medrecon.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=180, env=env, cwd=cwd)


def _one_line_error(proc, prefix="error:"):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr
    assert err and not err.startswith("\n") and not err[0].isspace(), repr(err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 or all(len(ln) > 0 for ln in lines), err
    assert err.lstrip().startswith(prefix), err
    assert "\x1b" not in err
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def no_ai(tmp_path_factory):
    d = tmp_path_factory.mktemp("noai")
    (d / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class _NoAI:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "monai"):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None
        sys.meta_path.insert(0, _NoAI())
    """))
    return {"PYTHONPATH": str(d) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _bundle(root: Path) -> Path:
    """A bundle complete enough to get past the file checks (the weights are read with torch)."""
    import json

    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "configs" / "metadata.json").write_text(json.dumps(
        {"network_data_format": {"outputs": {"pred": {"channel_def": {"0": "background", "1": "spleen"}}}}}))
    (root / "configs" / "inference.json").write_text(json.dumps({"network_def": {"_target_": "UNet"}}))
    (root / "models" / "model.pt").write_bytes(b"not really weights")
    return root


@pytest.fixture(scope="module")
def small_ct(tmp_path_factory):
    from medrecon.io.volumes import save_volume
    from medrecon.volume import Volume

    d = tmp_path_factory.mktemp("ct")
    arr = np.full((24, 20, 16), -1000, np.int16)
    arr[6:18, 5:15, 4:12] = 400
    p = d / "ct.nii.gz"
    save_volume(Volume(arr, np.diag([0.8, 0.8, 1.5, 1.0]), {"modality": "CT"}), p)
    return p


def test_print_segment_without_ai_extra_names_the_extra(tmp_path, no_ai, small_ct):
    _bundle(tmp_path / "bundle")
    proc = _run(["segment", str(small_ct), "-o", str(tmp_path / "seg.nii.gz"), "--bundle", str(tmp_path / "bundle")],
                no_ai)
    err = _one_line_error(proc)
    assert "medrecon[ai]" in err, err


def test_print_mesh_bundle_without_ai_extra_names_the_extra(tmp_path, no_ai, small_ct):
    _bundle(tmp_path / "bundle")
    proc = _run(["mesh", str(small_ct), "-o", str(tmp_path / "out"), "--bundle", str(tmp_path / "bundle")], no_ai)
    err = _one_line_error(proc)
    assert "medrecon[ai]" in err, err


def test_print_internal_error_is_one_line_exit_2(tmp_path, small_ct):
    # a bug: a library function raising a plain exception (real code path, broken input object)
    env = {"PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""
        import medrecon.mesh_pipeline as p
        def boom(*a, **k):
            raise ZeroDivisionError("line one\\nline two")
        p.run_mesh = boom
    """))
    proc = _run(["mesh", str(small_ct), "-o", str(tmp_path / "out"), "--preset", "ct-bone"], env)
    err = _one_line_error(proc, "internal error:")
    assert "ZeroDivisionError" in err and "--debug" in err
    assert "line one\\nline two" in err  # escaped, not a raw newline
    assert "has no attribute" not in err


def test_print_paths_with_markup_and_control_characters(tmp_path):
    weird = tmp_path / "scan [/] \x1b[31mred\nx"
    proc = _run(["mesh", str(weird), "-o", str(tmp_path / "out"), "--preset", "ct-bone"])
    err = _one_line_error(proc)
    assert "[/]" in err  # printed literally, markup did not eat it
    assert "\\x1b" in err and "\\n" in err  # escapes shown, not sent raw
    assert err.count("\n") == 1  # exactly one line


def test_print_usage_error_is_one_line(tmp_path):
    proc = _run(["mesh", "--no-such-option"])
    err = _one_line_error(proc)
    assert "no-such-option" in err
