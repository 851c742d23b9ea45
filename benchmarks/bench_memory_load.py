"""Peak memory of loading a large DICOM series, medrecon vs SimpleITK (ITK's GDCM series reader).

A 512 x 512 x N CT series (default N = 2000: a 1 GiB int16 volume) is written once with
medrecon's own DICOM writer into a temporary folder; each reader then loads it in a fresh
process, and the peak resident memory *added by the load* (peak RSS minus the RSS after imports)
is reported as a multiple of the final array's size. The promise: medrecon <= 1.5x.

    .venv/bin/python benchmarks/bench_memory_load.py                 # 512x512x2000
    .venv/bin/python benchmarks/bench_memory_load.py --slices 200    # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, resource, sys, time
import numpy as np
which, folder = sys.argv[1], sys.argv[2]
os.environ["MEDRECON_NO_CACHE"] = "1"
import medrecon.io.loader, SimpleITK as sitk
def rss():
    with open("/proc/self/status") as fh:
        for ln in fh:
            if ln.startswith("VmRSS"):
                return int(ln.split()[1]) * 1024
base = rss()
t = time.perf_counter()
if which == "medrecon":
    vol = medrecon.io.loader.load(folder, workers=1)
    arr = vol.array
else:
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(folder))
    img = r.Execute()
    arr = sitk.GetArrayViewFromImage(img)
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"reader": which, "seconds": round(dt, 2), "array_bytes": int(arr.nbytes),
                  "dtype": str(arr.dtype), "shape": list(arr.shape), "base_rss": base, "peak_rss": peak,
                  "added_peak_bytes": peak - base, "ratio": round((peak - base) / arr.nbytes, 3)}))
"""


def make_series(folder: Path, slices: int) -> None:
    import numpy as np

    from medrecon.io.dicom.write import write_dicom_series
    from medrecon.volume import Volume

    rng = np.random.default_rng(0)
    arr = np.empty((512, 512, slices), dtype=np.int16)
    yy, xx = np.mgrid[:512, :512]
    disk = ((xx - 256) ** 2 + (yy - 256) ** 2 < 200 ** 2).astype(np.int16)
    for k in range(slices):
        arr[:, :, k] = -1000 + disk * (1040 + (k % 50)) + rng.integers(0, 20, (512, 512), dtype=np.int16)
    aff = np.diag([0.7, 0.7, 0.625, 1.0])
    write_dicom_series(Volume(arr, aff, {"modality": "CT"}), folder, series_description="memory benchmark")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, default=2000)
    ap.add_argument("--folder", type=Path, help="reuse (or create) the series here instead of a temp folder")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    tmp = None
    folder = a.folder
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="medrecon-mem-")
        folder = Path(tmp.name) / "series"
    if not folder.exists() or not any(folder.iterdir()):
        t = time.perf_counter()
        make_series(folder, a.slices)
        print(f"wrote {a.slices} slices in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    out = []
    for which in ("medrecon", "simpleitk"):
        r = subprocess.run([sys.executable, "-c", CHILD, which, str(folder)], capture_output=True, text=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
        if r.returncode != 0:
            print(r.stderr[-2000:], file=sys.stderr)
            continue
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(json.dumps(out[-1]))
    if len(out) == 2:
        print(f"medrecon added peak {out[0]['ratio']:.2f}x the array, SimpleITK {out[1]['ratio']:.2f}x; "
              f"medrecon / SimpleITK = {out[0]['added_peak_bytes'] / out[1]['added_peak_bytes']:.2f}")
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
