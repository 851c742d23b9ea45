"""A real Dask scheduler and worker started as separate processes on loopback; the cohort run
connects to them with --scheduler."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask(*args: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("dask")
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "dask", *args]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=15)


@pytest.mark.slow  # measured: 5 s CPU alone (issue 22: the fast tier stays under 3 min)
def test_cohort_on_external_scheduler(small_cohort, recipe, tmp_path, good_synthetic):
    from distributed import Client

    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    sched = _dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    worker = None
    try:
        worker = _dask("worker", addr, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                       "--memory-limit", "2GB", "--name", "external-worker")
        deadline = time.monotonic() + 90
        while True:  # wait until the worker has registered
            try:
                with Client(addr, timeout="5s") as c:
                    names = [w.get("name") for w in c.scheduler_info()["workers"].values()]
                if "external-worker" in names:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "external Dask worker did not start"
            time.sleep(0.5)
        out = tmp_path / "out"
        r = subprocess.run([sys.executable, "-m", "medrecon", "cohort", str(small_cohort), "-o", str(out),
                            "--config", str(recipe), "--scheduler", addr, "--progress", "json"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 3, r.stdout + r.stderr  # the corrupt study fails
        events = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
        infos = [e["message"] for e in events if e.get("kind") == "info"]
        assert any(f"scheduler {addr}" in m and "1 worker (" in m for m in infos), infos
        result = events[-1]
        assert result["kind"] == "result" and result["done"] == len(good_synthetic) and result["failed"] == 1
        db = sqlite3.connect(str(out / "cohort.sqlite"))
        status = dict(db.execute("SELECT study_id, status FROM studies"))
        db.close()
        assert status == {**{s: "done" for s in good_synthetic}, "corrupt": "failed"}
        # the external worker did the work: each study's stage timings came back from it
        for s in good_synthetic:
            marker = json.loads((out / "studies" / s / "cohort.json").read_text())
            assert marker["timings_s"]["compute_s"] > 0
        # the scheduler outlives the run (the run only disconnects)
        assert sched.poll() is None and worker.poll() is None
    finally:
        if worker is not None:
            _stop(worker)
        _stop(sched)


def test_worker_environ_divides_cores_and_keeps_glibc_mmap_threshold():
    """Worker processes get the cores divided among them (no oversubscription when there are as
    many workers as cores) and not Dask's MALLOC_TRIM_THRESHOLD_ (it doubled a study's CPU time)."""
    from medrecon.cohort.runner import worker_environ

    assert worker_environ(2, n_cores=2) == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                            "OPENBLAS_NUM_THREADS": "1", "VTK_SMP_MAX_THREADS": "1"}
    assert worker_environ(1, n_cores=8)["OMP_NUM_THREADS"] == "8"
    assert worker_environ(3, n_cores=8)["VTK_SMP_MAX_THREADS"] == "2"
    assert "MALLOC_TRIM_THRESHOLD_" not in worker_environ(4)
