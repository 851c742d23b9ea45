"""Long mutation-fuzzing run over the real files of ../shared/data (plus NIfTI and NRRD seeds).

Each mutant is loaded in a forked child with a memory limit, a time limit and an audit of every
file opened (tests/reliability/rel_harness.py). Prints a JSON summary: mutants tried, outcome
counts, and each distinct failure (status + exception type + place) with one example.

    .venv/bin/python benchmarks/fuzz_long.py --n 2000 --seed 16 --json /tmp/fuzz_long.json
    .venv/bin/python benchmarks/fuzz_long.py --atheris --n 500   # coverage-guided, if atheris runs
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

import rel_harness as H  # noqa: E402


def _signature(status: str, detail: str) -> str:
    """A failure class: the status, the exception type and where it was raised (no numbers)."""
    head = detail.split(":", 1)[0] if status == "bad-exception" else ""
    where = re.search(r" at ([\w.]+:\d+)", detail)
    return f"{status} {head} {where.group(1) if where else ''}".strip()


def run_random(n: int, seed: int, timeout: int) -> dict:
    rnd = random.Random(seed)
    counts: collections.Counter = collections.Counter()
    kinds: collections.Counter = collections.Counter()
    failures: dict[str, dict] = {}
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="medrecon-fuzz-") as wd:
        for i in range(n):
            target, folder, desc = H.make_mutant(rnd, Path(wd))
            kinds[desc.split(":")[1].strip() if desc.count(":") >= 1 else desc] += 1
            out = H.run_one(target, folder, timeout=timeout)
            counts[out.status] += 1
            if out.status not in H.GOOD:
                sig = _signature(out.status, out.detail)
                f = failures.setdefault(sig, {"count": 0, "example": desc, "detail": out.detail[:300],
                                              "outside": out.opened_outside})
                f["count"] += 1
            H.cleanup(folder)
            if (i + 1) % 100 == 0:
                print(f"{i + 1}/{n} {dict(counts)} {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return {"mutants": n, "seed": seed, "seconds": round(time.time() - t0, 1), "outcomes": dict(counts),
            "operators": dict(kinds), "distinct_failures": len(failures), "failures": failures}


def run_atheris(n: int, timeout: int, out_json: Path | None = None) -> dict:
    """Coverage-guided: atheris mutates the bytes of real seeds; each input is loaded contained."""
    import atheris  # noqa: F401 - raises ImportError when it does not run here

    seeds = [(H.DATA / s).read_bytes() for s in H.DICOM_SEEDS]
    counts: collections.Counter = collections.Counter()
    failures: dict[str, dict] = {}
    wd = Path(tempfile.mkdtemp(prefix="medrecon-atheris-"))
    state = {"i": 0}

    def one(data: bytes) -> None:
        state["i"] += 1
        base = seeds[state["i"] % len(seeds)]
        fdp = atheris.FuzzedDataProvider(data)
        b = bytearray(base)
        for _ in range(fdp.ConsumeIntInRange(1, 16)):
            b[fdp.ConsumeIntInRange(0, len(b) - 1)] = fdp.ConsumeIntInRange(0, 255)
        folder = wd / f"a{state['i']}"
        folder.mkdir()
        (folder / "x.dcm").write_bytes(bytes(b))
        out = H.run_one(folder / "x.dcm", folder, timeout=timeout)
        counts[out.status] += 1
        if out.status not in H.GOOD:
            sig = _signature(out.status, out.detail)
            failures.setdefault(sig, {"count": 0, "detail": out.detail[:300]})["count"] += 1
        H.cleanup(folder)
        if out_json is not None:  # libFuzzer ends the process itself: keep the summary current
            out_json.write_text(json.dumps({"mutants": state["i"], "outcomes": dict(counts),
                                            "distinct_failures": len(failures), "failures": failures}, indent=2))

    atheris.Setup([sys.argv[0], f"-runs={n}"], one)
    try:
        atheris.Fuzz()
    except SystemExit:
        pass
    return {"mutants": state["i"], "outcomes": dict(counts), "distinct_failures": len(failures), "failures": failures}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="mutants to try")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--timeout", type=int, default=40, help="seconds per mutant before it counts as a hang")
    ap.add_argument("--atheris", action="store_true", help="coverage-guided run with atheris instead")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    a = ap.parse_args()
    os.environ.setdefault("MEDRECON_NO_CACHE", "1")
    import medrecon.io.loader  # noqa: F401 - imported once, before the forks

    res = run_atheris(a.n, a.timeout, a.json) if a.atheris else run_random(a.n, a.seed, a.timeout)
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if a.json:
        a.json.write_text(text)


if __name__ == "__main__":
    main()
