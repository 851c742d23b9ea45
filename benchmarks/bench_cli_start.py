#!/usr/bin/env python
"""Start-up of the command line: fresh processes of ``medrecon --help`` and ``medrecon info FOLDER``
side by side with a bare interpreter (``python -c pass``) and, when installed, ``dcm2niix``
converting the same folder. Median of ``--repeat`` runs each, interleaved: wall time and CPU
time (user + system; close to the wall time of a quiet machine, and far less sensitive to load
than the wall time). The load is printed with the figures.

usage: python benchmarks/bench_cli_start.py [--repeat 11] [--folder DICOM_FOLDER]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _time(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+system) of one fresh process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    _, status, ru = os.wait4(p.pid, 0)  # this child's own CPU time
    dt = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(cmd)}")
    return dt, ru.ru_utime + ru.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench_cli_start.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=11, help="fresh processes per command (median reported)")
    ap.add_argument("--folder", type=Path, default=ROOT.parent / "shared" / "data" / "ct_head_ge_gantry_tilt_variable_spacing",
                    help="DICOM folder for `info` (and dcm2niix)")
    args = ap.parse_args(argv)
    # this checkout first; a PYTHONPATH already set (e.g. another typer to compare) stays after it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    # byte code written and reused as in an installed package (with PYTHONDONTWRITEBYTECODE every
    # process would compile medrecon's sources again, which no installation does)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    py = sys.executable
    subprocess.run([py, "-m", "compileall", "-q", str(ROOT / "medrecon")], stdout=subprocess.DEVNULL, check=True)
    cmds = {"python -c pass": [py, "-c", "pass"],
            "medrecon --help": [py, "-m", "medrecon", "--help"]}
    out = Path(tempfile.mkdtemp(prefix="bench_cli_"))
    if args.folder.is_dir():
        cmds["medrecon info FOLDER"] = [py, "-m", "medrecon", "info", str(args.folder)]
        dcm2niix = shutil.which("dcm2niix") or next((str(p) for p in [Path(sys.executable).parent / "dcm2niix"] if p.exists()), None)
        if dcm2niix:
            cmds["dcm2niix FOLDER"] = [dcm2niix, "-o", str(out), "-f", "x_%s", "-z", "n", "-b", "y", str(args.folder)]
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
    for _ in range(args.repeat):
        for k, c in cmds.items():
            times[k].append(_time(c, env))
    shutil.rmtree(out, ignore_errors=True)
    med = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"{os.cpu_count()} CPUs; median of {args.repeat}")
    for k, v in med.items():
        extra = ""
        if k == "medrecon info FOLDER" and "dcm2niix FOLDER" in med:
            extra = (f"  ({v / med['dcm2niix FOLDER']:.1f}x dcm2niix wall, "
                     f"{cpu[k] / max(cpu['dcm2niix FOLDER'], 1e-3):.1f}x CPU)")
        print(f"{k:24s} wall {v:6.3f} s   CPU {cpu[k]:6.3f} s{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
