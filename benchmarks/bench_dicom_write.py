"""Benchmark: write a synthetic CT as a DICOM series with medrecon and with SimpleITK, in one run.

    .venv/bin/python benchmarks/bench_dicom_write.py                  # 512x512x200
    .venv/bin/python benchmarks/bench_dicom_write.py --slices 50      # quicker

Peer: SimpleITK's documented way to write a series (one ``ImageFileWriter`` call per slice with
the geometry and identity tags set by hand; GDCM underneath), uncompressed and JPEG 2000
lossless. Both outputs are read back with SimpleITK's ImageSeriesReader and must give the same
voxels and geometry as the source (checked; an oblique, anisotropic grid is used so that a
wrong orientation or spacing would show). Also times the medrecon ``demo`` pipeline stages on
its head phantom. Data go to a temporary folder that is deleted at the end.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from medrecon.io.dicom.write import write_dicom_series  # noqa: E402
from medrecon.phantoms import grid_affine  # noqa: E402
from medrecon.volume import Volume  # noqa: E402

console = Console()


def ct_volume(n_slices: int, size: int, seed: int = 0) -> Volume:
    """CT-like int16 HU volume on an oblique 0.7 x 0.7 x 1.25 mm grid."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1
    ring = body & ((x / 0.70) ** 2 + (y / 0.50) ** 2 > 1)
    arr = np.full((size, size, n_slices), -1000, np.int16)
    for k in range(n_slices):
        sl = np.where(body, 40, -1000).astype(np.int16)
        sl[ring] = 800 + (k % 40) * 10
        arr[:, :, k] = np.where(body, sl + rng.normal(0, 12, (size, size)).astype(np.int16), sl)
    aff = grid_affine(arr.shape, (0.7, 0.7, 1.25), center=(0, -20, 50), rotation=(8, -5, 12))
    return Volume(arr, aff, {"modality": "CT"})


def sitk_image(vol: Volume):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(vol.array.transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in vol.spacing])
    img.SetOrigin([float(v) for v in vol.origin])
    img.SetDirection([float(v) for v in vol.direction.ravel()])
    return img


def sitk_write_series(vol: Volume, folder: Path, compressor: str | None) -> None:
    """SimpleITK's 'write a DICOM series from an image' recipe (per-slice tags, GDCM writer)."""
    import SimpleITK as sitk
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    img = sitk_image(vol)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    if compressor:
        writer.SetUseCompression(True)
        writer.SetCompressor(compressor)
    d = img.GetDirection()
    series_uid, study_uid, for_uid = generate_uid(), generate_uid(), generate_uid()
    common = [("0008|0060", "CT"), ("0010|0010", "ANON"), ("0010|0020", "ANON"),
              ("0020|000d", study_uid), ("0020|000e", series_uid), ("0020|0052", for_uid),
              ("0008|0016", "1.2.840.10008.5.1.4.1.1.2"),
              ("0020|0037", "\\".join(map(str, (d[0], d[3], d[6], d[1], d[4], d[7])))),
              ("0028|1052", "0"), ("0028|1053", "1"), ("0028|1054", "HU")]
    for k in range(img.GetDepth()):
        sl = img[:, :, k]
        for tag, value in common:
            sl.SetMetaData(tag, value)
        sl.SetMetaData("0020|0032", "\\".join(map(str, img.TransformIndexToPhysicalPoint((0, 0, k)))))
        sl.SetMetaData("0020|0013", str(k + 1))
        sl.SetMetaData("0008|0018", generate_uid())
        writer.SetFileName(str(folder / f"s{k:05d}.dcm"))
        writer.Execute(sl)


def check(folder: Path, vol: Volume) -> float:
    """Read back with SimpleITK; return the largest voxel difference (geometry must match)."""
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
    img = r.Execute()
    aff = np.eye(4)
    aff[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) * np.array(img.GetSpacing())
    aff[:3, 3] = img.GetOrigin()
    if not np.allclose(aff, vol.affine, atol=1e-3):
        raise SystemExit(f"geometry mismatch in {folder}:\n{aff}\n{vol.affine}")
    return float(np.abs(sitk.GetArrayFromImage(img).transpose(2, 1, 0).astype(float) - vol.array).max())


def timed(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-demo", action="store_true", help="skip timing the demo pipeline")
    args = ap.parse_args()
    vol = ct_volume(args.slices, args.size)
    tmp = Path(tempfile.mkdtemp(prefix="bench_dicom_write_"))
    rows = []
    try:
        for label, ours_ts, peer_comp, rep in (("uncompressed", "explicit", None, args.repeat),
                                               ("JPEG 2000 lossless", "jpeg2000", "JPEG2000", 1)):
            ours_dir, peer_dir = tmp / f"ours_{ours_ts}", tmp / f"sitk_{ours_ts}"
            t_ours = timed(lambda: write_dicom_series(vol, ours_dir, transfer_syntax=ours_ts), rep)
            t_peer = timed(lambda: sitk_write_series(vol, peer_dir, peer_comp), rep)
            d_ours, d_peer = check(ours_dir, vol), check(peer_dir, vol)
            size_ours = sum(p.stat().st_size for p in ours_dir.iterdir()) / 1e6
            size_peer = sum(p.stat().st_size for p in peer_dir.iterdir()) / 1e6
            rows.append((label, t_ours, t_peer, size_ours, size_peer, d_ours, d_peer))
        demo = None
        if not args.no_demo:
            from medrecon.demo import run_demo

            t = time.perf_counter()
            res = run_demo(tmp / "demo")
            demo = (time.perf_counter() - t, res["bone"].report["timings_s"], res["bone"].models[0].n_triangles)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    table = Table(title=f"DICOM series write, {args.size}x{args.size}x{args.slices} int16, oblique grid")
    for c in ("data", "medrecon s", "SimpleITK s", "ratio", "MB ours / sitk", "max |diff| ours / sitk"):
        table.add_column(c)
    for label, t_o, t_p, s_o, s_p, d_o, d_p in rows:
        table.add_row(label, f"{t_o:.2f}", f"{t_p:.2f}", f"{t_o / t_p:.2f}", f"{s_o:.1f} / {s_p:.1f}",
                      f"{d_o:g} / {d_p:g}")
    console.print(table)
    if demo:
        console.print(f"demo (head phantom -> DICOM -> bone + teeth): {demo[0]:.1f} s total; bone run stages "
                      f"{demo[1]}; bone mesh {demo[2]} triangles")
    console.print(f"machine: {platform.platform()}, python {platform.python_version()}")


if __name__ == "__main__":
    main()
