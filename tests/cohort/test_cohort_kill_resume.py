"""A cohort run killed with SIGKILL part way, then resumed: every good study done exactly once,
finished studies untouched, the corrupt one failed with its reason, nothing half-written."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medrecon.cohort.summary import CSV_COLUMNS




def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "medrecon", "cohort", *args]


def _rows(out: Path) -> dict[str, dict]:
    db = sqlite3.connect(str(out / "cohort.sqlite"))
    db.row_factory = sqlite3.Row
    try:
        return {r["study_id"]: dict(r) for r in db.execute("SELECT * FROM studies")}
    finally:
        db.close()


def _file_stamps(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _no_half_written(out: Path) -> None:
    assert not (out / ".staging").exists() or not any((out / ".staging").iterdir())
    assert not (out / ".trash").exists() or not any((out / ".trash").iterdir())
    for p in (out / "studies").rglob("*"):
        assert not p.name.startswith("."), f"temporary file left: {p}"


@pytest.mark.slow  # measured: 19 s CPU alone (issue 22: the fast tier stays under 3 min)
def test_cohort_sigkill_then_resume(cohort_dir, recipe, tmp_path, good_synthetic):
    GOOD = sorted(good_synthetic + ["a_real"])
    out = tmp_path / "out"
    args = _cli(str(cohort_dir), "-o", str(out), "--config", str(recipe), "--workers", "2",
                "--progress", "json", "--no-dashboard")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    done_first = []
    deadline = time.monotonic() + 240
    try:
        for line in proc.stdout:
            ev = json.loads(line)
            if ev.get("kind") == "study" and ev.get("status") == "done":
                done_first.append(ev["study_id"])
                break
            assert time.monotonic() < deadline, "no study finished in time"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, the scheduler and every worker
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert done_first
    time.sleep(0.5)

    # state after the kill: some studies published, not all
    published = {p.name: json.loads((p / "cohort.json").read_text())["compute_id"]
                 for p in (out / "studies").iterdir() if (p / "cohort.json").is_file()}
    assert published, "the first finished study must be published"
    assert set(published) < set(GOOD), "the kill came too late to test resuming"
    stamps = {sid: _file_stamps(out / "studies" / sid) for sid in published}

    # resume (default): finishes the rest
    r = subprocess.run(_cli(str(cohort_dir), "-o", str(out), "--config", str(recipe), "--workers", "2",
                            "--progress", "rich", "--no-dashboard"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stdout + r.stderr  # 3: some study failed (the corrupt one)
    assert "running" in r.stderr and "ETA" in r.stderr  # the rich bar (stderr)
    assert "done" in r.stdout and "summary:" in r.stdout  # the result line
    rows = _rows(out)
    assert set(rows) == set(GOOD) | {"corrupt"}
    for sid in GOOD:
        assert rows[sid]["status"] == "done", (sid, rows[sid])
        assert rows[sid]["computed"] == 1, f"{sid} computed {rows[sid]['computed']} times"
        folder = out / "studies" / sid
        marker = json.loads((folder / "cohort.json").read_text())
        assert marker["fingerprint"] == rows[sid]["fingerprint"]
        assert (folder / "report.json").is_file() and (folder / "bone.stl").stat().st_size > 84
    for sid, cid in published.items():  # finished before the kill: not recomputed, files untouched
        assert json.loads((out / "studies" / sid / "cohort.json").read_text())["compute_id"] == cid
        assert _file_stamps(out / "studies" / sid) == stamps[sid]
    bad = rows["corrupt"]
    assert bad["status"] == "failed"
    assert "IM0000" in bad["error"] and "truncated" in bad["error"]
    assert not (out / "studies" / "corrupt").exists()
    _no_half_written(out)

    # summary: one row per good study (one structure each) and the failure with its reason
    lines = (out / "summary.csv").read_text().splitlines()
    assert lines[0].split(",") == CSV_COLUMNS
    body = [ln.split(",")[0:2] for ln in lines[1:]]
    assert sorted(b[0] for b in body if b[1] == "done") == GOOD
    assert [b[0] for b in body if b[1] == "failed"] == ["corrupt"]
    html = (out / "report.html").read_text()
    assert "corrupt" in html and "truncated" in html
    assert (out / "cohort_volumes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a third run has nothing to compute and touches no study
    before = {sid: _file_stamps(out / "studies" / sid) for sid in GOOD}
    from medrecon.cohort import run

    res = run(cohort_dir, out, config=recipe, workers=1, dashboard=False)
    assert res.counts["run"] == 0 and res.counts["skipped"] == len(GOOD)
    assert res.failures == {"corrupt": bad["error"]}
    assert {sid: _file_stamps(out / "studies" / sid) for sid in GOOD} == before
    assert all(v["computed"] == 1 for k, v in _rows(out).items() if k != "corrupt")


@pytest.mark.slow  # measured: 7 s CPU alone (issue 22: the fast tier stays under 3 min)
def test_cohort_rerun_failed_only_and_changed_input(small_cohort, recipe, tmp_path, good_synthetic):
    from medrecon.cohort import run

    out = tmp_path / "out"
    first = run(small_cohort, out, config=recipe, workers=2, dashboard=True)
    assert first.counts["done"] == len(good_synthetic) and set(first.failures) == {"corrupt"}
    # the dashboard address is reported (bokeh is in the test extra)
    assert first.dashboard and first.dashboard.startswith("http://127.0.0.1:") and first.dashboard.endswith("/status")
    # repair the corrupt study: --rerun-failed computes it and nothing else
    import shutil

    shutil.rmtree(small_cohort / "corrupt")
    shutil.copytree(small_cohort / "dcm_r14", small_cohort / "corrupt")
    again = run(small_cohort, out, config=recipe, workers=1, rerun_failed=True, dashboard=False)
    assert [i.study.study_id for i in again.plan if i.action == "run"] == ["corrupt"]
    assert again.counts["done"] == 1 and again.failures == {}
    # a changed input (touched file) and a changed setting are recomputed on resume
    f = next((small_cohort / "nii_r12").glob("*.nii.gz"))
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    plan = run(small_cohort, out, config=recipe, dry_run=True).plan
    assert {i.study.study_id: i.action for i in plan}["nii_r12"] == "run"
    assert sum(i.action == "run" for i in plan) == 1
    recipe2 = tmp_path / "r2.yaml"
    recipe2.write_text(recipe.read_text().replace("preview: false", "preview: false\n  smoothing: 0.3"))
    plan2 = run(small_cohort, out, config=recipe2, dry_run=True).plan
    assert all(i.action == "run" for i in plan2)
    assert _rows(out)["nii_r12"]["computed"] == 1  # dry runs write nothing


@pytest.mark.slow  # measured: 10 s CPU alone (issue 22: the fast tier stays under 3 min)
@pytest.mark.parametrize("retries", [1])
def test_cohort_worker_killer_is_failed_not_retried_forever(small_cohort, recipe, tmp_path, retries, good_synthetic):
    """A study that needs far more memory than the worker limit kills its worker each time;
    after retries + 1 deaths it is failed with a reason, and the other studies finish."""
    import numpy as np

    from medrecon.io.volumes import save_volume
    from medrecon.volume import Volume

    big = small_cohort / "huge"
    big.mkdir()
    # 700^3 int16 zeros: a tiny .nii.gz that decodes to ~0.7 GB int16, ~1.4 GB float
    save_volume(Volume(np.zeros((700, 700, 700), np.int16), np.eye(4), {"modality": "CT"}), big / "ct.nii.gz")
    from medrecon.cohort import run

    res = run(small_cohort, tmp_path / "out", config=recipe, workers=1, memory_limit="600MB", retries=retries,
              dashboard=False)
    assert "huge" in res.failures
    assert "worker died" in res.failures["huge"]
    assert res.counts["done"] == len(good_synthetic)


@pytest.mark.slow  # measured: 11 s CPU alone (issue 22: the fast tier stays under 3 min)
def test_cohort_timeout_fails_the_slow_study_only(small_cohort, recipe, tmp_path, good_synthetic):
    """--timeout: a study whose stage is still running after the limit is failed (its worker
    restarted); the others finish and nothing half-written stays behind. The slow study is
    200^3 voxels of noise: meshing it at the bone threshold takes minutes."""
    import numpy as np

    from medrecon.io.volumes import save_volume
    from medrecon.volume import Volume

    slow = small_cohort / "zz_slow"
    slow.mkdir()
    noise = np.random.default_rng(0).integers(-1000, 1000, size=(200, 200, 200)).astype(np.int16)
    save_volume(Volume(noise, np.eye(4), {"modality": "CT"}), slow / "ct.nii.gz")
    from medrecon.cohort import run

    out = tmp_path / "out"
    res = run(small_cohort, out, config=recipe, workers=2, timeout="15s", dashboard=False)
    assert "timed out after 15 s" in res.failures["zz_slow"]
    assert res.counts["done"] == len(good_synthetic), res.failures
    assert set(res.failures) == {"zz_slow", "corrupt"}
    assert not (out / "studies" / "zz_slow").exists()
    _no_half_written(out)
