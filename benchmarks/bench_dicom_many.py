"""Many small files: a 2,000-file 128x128 MR series (50 slices x 40 volumes, one file per image)
converted by medrecon and by dcm2niix on the same machine, side by side.

    .venv/bin/python benchmarks/bench_dicom_many.py [--files 2000] [--repeat 3] [--keep DIR]

Measured (wall clock, median of ``--repeat`` runs, each in a fresh process so nothing is warm
except the OS file cache, which is warmed once before timing, and medrecon's byte code, compiled
once before timing as an installed package has it, even where ``PYTHONDONTWRITEBYTECODE`` is set):

* ``dcm2niix``: ``dcm2niix -b y -z n -o OUT SERIES`` (NIfTI + JSON, uncompressed);
* ``medrecon convert``: ``python -m medrecon convert SERIES -o OUT/x.nii`` with the header cache off
  (the cost of a first conversion);
* ``medrecon loader``: the same conversion through the library in a fresh process
  (``python -c "from medrecon.io.loader import convert; ..."``): the loader's own cost, without
  the command-line layer;
* ``medrecon info`` on the first 40 files (one volume's worth of a small folder) against
  ``dcm2niix`` converting those 40 files (goal: at most 4x);
* ``medrecon info + convert``: ``info`` then ``convert`` with the header cache on (an empty cache
  before ``info``): the pair should cost one header scan, not two;
* the header scan alone, cold and from the cache, in-process.

Prints a table and the ratios medrecon / dcm2niix (below 1 = medrecon faster), for wall-clock
time and for CPU time (user + system of the child process: on a shared, loaded machine the wall
clock mostly measures waiting for a core, the CPU time what each tool costs).
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_series(folder: Path, n_files: int = 2000, size: int = 128, n_slices: int = 50, seed: int = 0) -> Path:
    """Write ``n_files`` single-frame MR images (``n_slices`` positions x volumes), 128x128 int16."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    n_vol = int(np.ceil(n_files / n_slices))
    yy, xx = np.mgrid[:size, :size]
    base = (1000 * np.exp(-((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / (2 * (size / 5) ** 2))).astype(np.int16)
    i = 0
    for v in range(n_vol):
        for s in range(n_slices):
            if i >= n_files:
                break
            ds = Dataset()
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = generate_uid()
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
            ds.PatientName, ds.PatientID = "Bench^Many", "BENCH0001"
            ds.Modality, ds.Manufacturer = "MR", "SIEMENS"
            ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = 5, i + 1, v + 1
            ds.SeriesDescription = "bench_many_dwi"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
            ds.ImagePositionPatient = [-64.0, -64.0, -50.0 + 2.0 * s]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing = [1.0, 1.0]
            ds.SliceThickness = 2.0
            ds.SpacingBetweenSlices = 2.0
            ds.EchoTime, ds.RepetitionTime, ds.FlipAngle = 80.0, 5000.0, 90.0
            ds.MagneticFieldStrength = 3.0
            ds.TemporalPositionIdentifier = v + 1
            ds.AcquisitionTime = f"{10 + v // 60:02d}{v % 60:02d}{s % 60:02d}.000"
            ds.Rows = ds.Columns = size
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
            img = base // (1 + v % 4) + rng.integers(0, 20, (size, size), dtype=np.int16)
            ds.PixelData = img.astype("<i2").tobytes()
            fm = FileMetaDataset()
            fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
            fm.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = fm
            ds.save_as(folder / f"IM{i:05d}.dcm", enforce_file_format=True)
            i += 1
    return folder


_CPU: dict[str, list[float]] = {}


def _run(cmd: list[str], env: dict | None = None, label: str | None = None) -> float:
    """Wall-clock seconds of ``cmd``; its CPU seconds (user + system of that child, from
    ``os.wait4``) go to ``_CPU[label]``."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}\n"
                             f"{err.read().decode(errors='replace')[-2000:]}")
    if label is not None:
        _CPU.setdefault(label, []).append(ru.ru_utime + ru.ru_stime)
    return dt


def _fresh_env(**extra) -> dict:
    """The environment of a timed medrecon process: this checkout first on the path, and byte code
    written and reused as in an installed package (``PYTHONDONTWRITEBYTECODE`` would make every
    process compile medrecon's sources again, which no installation does)."""
    env = dict(os.environ, **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--files", type=int, default=2000, help="number of files (default 2000)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per tool (median reported)")
    ap.add_argument("--keep", type=Path, default=None, help="build the series here and keep it")
    args = ap.parse_args(argv)

    dcm2niix = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    work = Path(tempfile.mkdtemp(prefix="bench_dicom_many_"))
    series = args.keep or (work / "series")
    if not (series.exists() and len(list(series.glob("*.dcm"))) == args.files):
        t = time.perf_counter()
        make_series(series, args.files)
        print(f"built {args.files} files in {time.perf_counter() - t:.1f} s: {series}")
    for p in series.iterdir():  # warm the OS file cache once for everybody
        p.read_bytes()
    load0 = os.getloadavg()
    py = sys.executable
    env_nocache = _fresh_env(MEDRECON_NO_CACHE="1")
    subprocess.run([py, "-m", "compileall", "-q", str(ROOT / "medrecon")], stdout=subprocess.DEVNULL, check=True)
    small = work / "small40"
    small.mkdir()
    for p in sorted(series.iterdir())[:40]:
        shutil.copy(p, small / p.name)
    res: dict[str, list[float]] = {"dcm2niix": [], "medrecon convert": [], "medrecon loader (library, fresh process)": [],
                                   "medrecon info + convert": []}
    loader = ("import sys; from medrecon.io.loader import convert; convert(sys.argv[1], sys.argv[2])")
    for r in range(args.repeat):
        out = work / f"d2n{r}"
        out.mkdir()
        res["dcm2niix"].append(_run([dcm2niix, "-b", "y", "-z", "n", "-o", str(out), str(series)], label="dcm2niix"))
        out = work / f"mr{r}"
        res["medrecon convert"].append(_run([py, "-m", "medrecon", "convert", str(series), "-o", str(out / "x.nii")],
                                            env=env_nocache, label="medrecon convert"))
        res["medrecon loader (library, fresh process)"].append(
            _run([py, "-c", loader, str(series), str(out / "y.nii")], env=env_nocache,
                 label="medrecon loader (library, fresh process)"))
        out = work / f"d2n_small{r}"
        out.mkdir()
        res.setdefault("40 files: dcm2niix convert", []).append(
            _run([dcm2niix, "-b", "y", "-z", "n", "-o", str(out), str(small)], label="40 files: dcm2niix convert"))
        res.setdefault("40 files: medrecon info", []).append(
            _run([py, "-m", "medrecon", "info", str(small)], env=env_nocache, label="40 files: medrecon info"))
        cache = work / f"cache{r}"
        env_cache = _fresh_env(MEDRECON_CACHE_DIR=str(cache))
        out = work / f"mri{r}"
        t_info = _run([py, "-m", "medrecon", "info", str(series)], env=env_cache)
        t_conv = _run([py, "-m", "medrecon", "convert", str(series), "-o", str(out / "x.nii")], env=env_cache)
        res["medrecon info + convert"].append(t_info + t_conv)
        res.setdefault("  of which info", []).append(t_info)
        res.setdefault("  of which convert (cached headers)", []).append(t_conv)
    # in-process header scan: cold vs cached
    sys.path.insert(0, str(ROOT))
    os.environ["MEDRECON_CACHE_DIR"] = str(work / "cache_inproc")
    from medrecon.io.dicom import cache as hcache
    from medrecon.io.loader import load_series

    os.environ["MEDRECON_NO_CACHE"] = "1"
    t = time.perf_counter(); load_series(str(series)); res["header scan, in-process, no cache"] = [time.perf_counter() - t]
    os.environ.pop("MEDRECON_NO_CACHE")
    hcache.clear_memory_cache()
    load_series(str(series))  # fills the disk cache
    hcache.clear_memory_cache()
    t = time.perf_counter(); load_series(str(series)); res["header scan, in-process, from disk cache"] = [time.perf_counter() - t]

    base = statistics.median(res["dcm2niix"])
    base_small = statistics.median(res["40 files: dcm2niix convert"])
    cpu_base = statistics.median(_CPU["dcm2niix"])
    cpu_small = statistics.median(_CPU["40 files: dcm2niix convert"])
    print(f"\n{args.files} files, 128x128 int16, {os.cpu_count()} CPUs, load average at start "
          f"{' '.join(f'{x:.2f}' for x in load0)}, at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'what':44s} {'median s':>9s} {'runs':>24s} {'vs dcm2niix':>12s} {'CPU s':>7s} {'CPU vs':>7s}")
    for k, v in res.items():
        m = statistics.median(v)
        ref, cref = (base_small, cpu_small) if k.startswith("40 files") else (base, cpu_base)
        cpu = statistics.median(_CPU[k]) if k in _CPU else None
        c = f"{cpu:7.2f} {cpu / cref:6.2f}x" if cpu is not None else ""
        print(f"{k:44s} {m:9.3f} {' '.join(f'{x:.2f}' for x in v):>24s} {m / ref:11.2f}x {c}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
