"""Benchmark: load a synthetic 512x512x500 CT series, uncompressed and JPEG 2000 lossless, with
medrecon, SimpleITK's ImageSeriesReader (GDCM) and the dcm2niix binary, in one run.

    .venv/bin/python benchmarks/bench_load.py                 # full size (needs ~2 GB of /tmp)
    .venv/bin/python benchmarks/bench_load.py --slices 100    # quicker

Goals (issue 2): uncompressed load no slower than SimpleITK; compressed decode parallel across
cores (close to 2x on 2 cores). Every reader must produce the same voxels (checked). Generated
data go to a temporary folder under /tmp that is deleted at the end.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from medrecon.io.dicom.pixels import default_workers  # noqa: E402
from medrecon.io.loader import load  # noqa: E402
from medrecon.volume import Volume  # noqa: E402

console = Console()


def phantom(n_slices: int, size: int, seed: int = 0) -> Volume:
    """A CT-like body: air, soft tissue with noise, a bony ring and spine; HU int16."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1
    ring = ((x / 0.75) ** 2 + (y / 0.55) ** 2 <= 1) & ((x / 0.70) ** 2 + (y / 0.50) ** 2 > 1)
    spine = (x ** 2 + (y - 0.35) ** 2) <= 0.01
    arr = np.full((size, size, n_slices), -1000, np.int16)
    for k in range(n_slices):
        sl = np.where(body, 40, -1000).astype(np.int16)
        sl[ring | spine] = 900 + (k % 50) * 4
        noise = rng.normal(0, 12, size=(size, size)).astype(np.int16)
        arr[:, :, k] = np.where(body, sl + noise, sl)
    A = np.diag([0.7, 0.7, 1.0, 1.0])
    A[:3, 3] = [-size * 0.35, -size * 0.35, -n_slices * 0.5]
    return Volume(arr, A, {"modality": "CT"})


def write_series(vol: Volume, folder: Path, syntax: str) -> None:
    try:
        from medrecon.io.dicom.write import write_dicom_series
    except ImportError:  # pragma: no cover - the surface owner's writer is missing
        write_dicom_series = None
    if write_dicom_series is not None:
        write_dicom_series(vol, folder, modality="CT", transfer_syntax=syntax, series_description="bench")
        return
    _write_with_pydicom(vol, folder, syntax)


def _write_with_pydicom(vol: Volume, folder: Path, syntax: str) -> None:  # pragma: no cover
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import JPEG2000Lossless, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series = generate_uid()
    for k in range(vol.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = "CT", series, 1, k + 1
        ds.ImagePositionPatient = [str(x) for x in vol.index_to_lps(np.array([[0, 0, k]]))[0]]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = ["0.7", "0.7"]
        ds.Rows, ds.Columns = vol.shape[1], vol.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
        px = np.ascontiguousarray(vol.array[:, :, k].T)
        ds.PixelData = px.tobytes()
        if syntax == "jpeg2000":
            ds.compress(JPEG2000Lossless, px)
        ds.save_as(folder / f"IM{k:05d}.dcm", enforce_file_format=True)


CPU: dict[str, float] = {}


def best_of(fn, repeat: int, key: str | None = None):
    """Best wall time of ``repeat`` runs; CPU seconds (this process + children) of the best run
    are kept in ``CPU[key]`` to show how the work was spread over processes."""
    times, out = [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), os.times()
        out = fn()
        dt, c1 = time.perf_counter() - t0, os.times()
        if key and (not times or dt < min(times)):
            CPU[key] = (max(0.0, c1.user + c1.system - c0.user - c0.system),
                        max(0.0, c1.children_user + c1.children_system - c0.children_user - c0.children_system))
        times.append(dt)
    return min(times), out


def read_sitk(folder: Path):
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
    img = r.Execute()
    return np.transpose(sitk.GetArrayViewFromImage(img), (2, 1, 0)).copy()


def load_on_one_core(folder: Path, repeat: int) -> float:
    """Best wall time of medrecon.load in a fresh process pinned to one CPU (decoder threads
    included): the true single-core baseline for the parallel speed-up."""
    code = ("import sys, time; from medrecon.io.loader import load; ts = []\n"
            "for _ in range(int(sys.argv[2])):\n"
            "    t = time.perf_counter(); load(sys.argv[1], workers=1); ts.append(time.perf_counter() - t)\n"
            "print(min(ts))")
    out = subprocess.run([sys.executable, "-c", code, str(folder), str(repeat)], check=True,
                         capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    return float(out.stdout.strip().splitlines()[-1])


def run_dcm2niix(folder: Path, outdir: Path):
    exe = shutil.which("dcm2niix", path=str(Path(sys.executable).parent)) or shutil.which("dcm2niix")
    if exe is None:
        return None
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    subprocess.run([exe, "-z", "n", "-b", "n", "-f", "out", "-o", str(outdir), str(folder)],
                   check=True, capture_output=True)
    return outdir / "out.nii"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=500)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3, help="best of N for uncompressed")
    ap.add_argument("--repeat-compressed", type=int, default=2, help="best of N for JPEG 2000")
    ap.add_argument("--tmp", default="/tmp", help="parent of the temporary data folder")
    args = ap.parse_args()

    workers = default_workers()
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="medrecon_bench_load_", dir=args.tmp))
    results: list[tuple[str, str, float, str]] = []
    try:
        vol = phantom(args.slices, args.size)
        with Progress(console=console, transient=True) as bar:
            t = bar.add_task(f"writing {args.slices} slices x 2 syntaxes", total=2)
            for syntax in ("explicit", "jpeg2000"):
                write_series(vol, root / syntax, syntax)
                bar.advance(t)
        size_mb = {s: sum(f.stat().st_size for f in (root / s).iterdir()) / 1e6 for s in ("explicit", "jpeg2000")}
        for syntax, repeat in (("explicit", args.repeat), ("jpeg2000", args.repeat_compressed)):
            folder = root / syntax
            for f in folder.iterdir():  # warm the page cache: measure decoding, not the disk
                f.read_bytes()
            label = "uncompressed" if syntax == "explicit" else "JPEG 2000 lossless"
            t_sitk, a_sitk = best_of(lambda: read_sitk(folder), repeat)
            if syntax == "explicit":
                t_med, v = best_of(lambda: load(folder), repeat)
                results.append((label, f"medrecon.load ({workers} cores available)", t_med, ""))
            else:
                t_core = load_on_one_core(folder, repeat)
                t_1, v1 = best_of(lambda: load(folder, workers=1), repeat, "w1")
                t_med, v = best_of(lambda: load(folder, workers=workers), repeat, "wN")
                assert np.array_equal(v1.array, v.array)
                c1, cN = CPU["w1"], CPU["wN"]
                results.append((label, "medrecon.load pinned to 1 core", t_core, "single-core baseline"))
                results.append((label, "medrecon.load, 1 process", t_1,
                                f"cpu {c1[0]:.1f} s here + {c1[1]:.1f} s in workers = {sum(c1) / t_1:.2f} cores busy"))
                results.append((label, f"medrecon.load, {workers} processes", t_med,
                                f"speed-up x{t_core / t_med:.2f} over 1 core (x{t_1 / t_med:.2f} over 1 process); cpu {cN[0]:.1f} s here + {cN[1]:.1f} s "
                                f"in workers = {sum(cN) / t_med:.2f} cores busy"))
            assert np.array_equal(v.array, vol.array), "medrecon voxels differ from the phantom"
            assert np.array_equal(a_sitk.astype(np.int32), vol.array.astype(np.int32)), "SimpleITK differs"
            results.append((label, "SimpleITK ImageSeriesReader", t_sitk,
                            f"medrecon / SimpleITK = {t_med / t_sitk:.2f}"))
            t_d, nii = best_of(lambda: run_dcm2niix(folder, root / f"out_{syntax}"), repeat)
            if nii is not None:
                import nibabel as nib

                ref = np.asanyarray(nib.load(str(nii)).dataobj)
                assert ref.shape == vol.shape
                results.append((label, "dcm2niix -z n (whole process, writes .nii)", t_d,
                                f"medrecon / dcm2niix = {t_med / t_d:.2f}"))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    table = Table(title=f"Load {args.size}x{args.size}x{args.slices} CT (int16)")
    for c in ("data", "reader", "seconds", "ratio"):
        table.add_column(c)
    for r in results:
        table.add_row(r[0], r[1], f"{r[2]:.2f}", r[3])
    console.print(table)
    console.print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
                  f"(other processes compete for the {os.cpu_count()} CPUs when it exceeds 1)")
    console.print(f"data size: uncompressed {size_mb['explicit']:.0f} MB, JPEG 2000 {size_mb['jpeg2000']:.0f} MB; "
                  f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                  f"Python {platform.python_version()}")
    print("\nmarkdown:")
    print("| data | reader | seconds | ratio |\n|---|---|---|---|")
    for r in results:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]} |")


if __name__ == "__main__":
    main()
