"""Slice-to-volume reconstruction example.

Reconstruct stacks you have:

    python examples/svr_reconstruct.py ax.nii.gz cor.nii.gz sag.nii.gz -o recon.nii.gz --method srr

or run the self-contained demo on the real 1 mm brain of ../shared/data (series 1301; a
procedural phantom when it is absent): simulate three orthogonal 3 mm stacks, reconstruct with
``srr`` and draw the figure of docs/svr.md (input slices, reconstruction, error map):

    python examples/svr_reconstruct.py --demo --figure docs/img/svr_brain.png [-o demo.nii.gz]

With ``-o`` the demo's reconstruction is written too (volume + JSON report beside it).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def demo(figure: Path, method: str = "srr", device: str = "cpu", output: Path | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import ndimage

    from medrecon.svr import evaluate, reconstruct, simulate_stacks
    from medrecon.volume import Volume

    try:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_svr import ground_truth

        gt, gm = ground_truth()
        # a 48 mm slab around the middle of the head keeps the demo quick on a laptop CPU
        c = gt.shape[2] // 2
        sl = slice(c - 24, c + 24)
        aff = gt.affine.copy()
        aff[:3, 3] = gt.index_to_lps(np.array([[0, 0, c - 24]]))[0]
        gt, gm = Volume(gt.array[:, :, sl].copy(), aff, {"modality": "MR"}), gm[:, :, sl]
        label = "1 mm MPRAGE (series 1301), 48 mm slab"
    except SystemExit:
        from medrecon.io.loader import load  # noqa: F401  (keeps the import surface honest)
        rng = np.random.default_rng(0)
        z = ndimage.gaussian_filter(rng.normal(size=(96, 96, 48)), 2)
        gm = np.ones(z.shape, bool)
        gt = Volume((np.tanh(z / z.std() * 2) * 0.4 + 0.5).astype(np.float32), np.eye(4), {"modality": "MR"})
        label = "procedural phantom"
    sim = simulate_stacks(gt, 3.0, noise_sigma=0.01, seed=0)
    res = reconstruct(sim.stacks, method, grid=(gt.affine, gt.shape), device=device)
    if output is not None:  # the demo's reconstruction, like any other (volume + JSON beside it)
        from medrecon.svr import write_result

        vol_path, json_path = write_result(res, output)
        print(f"wrote {vol_path} and {json_path}")
    cub = []
    for s in sim.stacks:
        M = np.linalg.inv(s.affine) @ gt.affine
        cub.append(ndimage.affine_transform(s.array, M[:3, :3], M[:3, 3], output_shape=gt.shape, order=3, mode="nearest"))
    cubic = np.mean(cub, 0)
    M = np.linalg.inv(sim.stacks[0].affine) @ gt.affine  # one stack shown as acquired (nearest)
    stack0 = ndimage.affine_transform(sim.stacks[0].array, M[:3, :3], M[:3, 3], output_shape=gt.shape, order=0)
    e_c, e_r = evaluate(cubic, gt.array, gm), evaluate(res.volume, gt, gm)
    k = gt.shape[2] // 2
    rec = res.volume.array
    panels = [(stack0[:, :, k], "input: sagittal stack, 3 mm slices"),
              (cubic[:, :, k], f"mean of 3 cubic-interpolated stacks\n{e_c['psnr']:.1f} dB"),
              (rec[:, :, k], f"{method}\n{e_r['psnr']:.1f} dB"),
              (gt.array[:, :, k], "ground truth (1 mm)"),
              (np.abs(rec - gt.array)[:, :, k], f"|{method} - truth| (x4)")]
    fig, ax = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for a, (img, title) in zip(ax, panels):
        vmax = 0.25 if title.startswith("|") else 1.0
        a.imshow(np.rot90(img), cmap="magma" if title.startswith("|") else "gray", vmin=0, vmax=vmax)
        a.set_title(title, fontsize=9)
        a.axis("off")
    fig.suptitle(f"medrecon svr: three orthogonal 3 mm stacks -> 1 mm ({label})", fontsize=10)
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=90)
    print(f"wrote {figure}: cubic {e_c['psnr']:.2f} dB, {method} {e_r['psnr']:.2f} dB")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stacks", nargs="*", help="thick-slice stacks (NIfTI/NRRD files or DICOM folders)")
    ap.add_argument("-o", "--output", help="output volume (.nii.gz); a .json with poses/weights is written beside it")
    ap.add_argument("--method", default="srr", choices=["average", "srr", "svr", "inr"])
    ap.add_argument("--spacing", type=float, default=None, help="output voxel size in mm")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--demo", action="store_true", help="simulate stacks from the shared brain and reconstruct")
    ap.add_argument("--figure", type=Path, default=Path("docs/img/svr_brain.png"), help="figure path for --demo")
    args = ap.parse_args(argv)
    if args.demo:
        demo(args.figure, args.method, "cpu" if args.device == "auto" else args.device,
             Path(args.output) if args.output else None)
        return
    if not args.stacks or not args.output:
        ap.error("give STACK... and -o OUTPUT, or --demo")
    from medrecon.svr import reconstruct_files

    res = reconstruct_files(args.stacks, args.output, method=args.method, spacing=args.spacing, device=args.device,
                            progress=lambda ev: print(f"\r{ev.text}: {ev.done}/{ev.total}   ", end="", flush=True))
    print(f"\nwrote {args.output} {res.volume.shape} in {res.timings['total']:.1f} s")


if __name__ == "__main__":
    main()
