"""Slice-to-volume reconstruction benchmark on the real 1 mm brain (series 1301).

Protocol (see docs/svr.md and ../shared/reference/svr.md section 4):
ground truth = the 1 mm sagittal MPRAGE (series 1301, Philips folder of ../shared/data), scaled
to [0, 1] by its 99.9th percentile, background (outside the largest Otsu/2 component, holes
filled) set to 0, cropped to the head box + 6 voxels; mask = that head mask. Three orthogonal
stacks, 3 mm thick (Gaussian profile, FWHM 3 mm), 1 mm in-plane, random slice offsets,
Gaussian noise sigma 0.01, simulated with a finer PSF quadrature (0.25 voxel) than the
reconstruction uses. Peer: mean of the three stacks interpolated with cubic B-splines
(scipy.ndimage, order 3) onto the ground-truth grid, computed in the same run. (NeSVoR itself
cannot be installed here: it needs its CUDA extensions / SVoRT weights; not compared.)

    python benchmarks/bench_svr.py --cache          # once, here: writes benchmarks/_svr_data/gt_1301.npz
    python benchmarks/bench_svr.py --part cpu --out bench_svr_cpu.json    # 2 threads: every CPU figure
    python benchmarks/bench_svr.py --part gpu --out $OUT/bench_svr_gpu.json  # GPU: every GPU figure
    python benchmarks/bench_svr.py --part device --out $OUT   # GPU machine: gpu part + cpu part
                                                              # pinned to 2 cores, side by side

Cases: (1) still stacks: cubic mean / average / srr / inr; (2) motion +/-3 deg / +/-3 mm per
slice: srr with nominal poses, srr with the true poses ("oracle"), svr (pose errors); (3) hard
motion +/-8 deg / +/-8 mm with 10 % of the slices corrupted by through-plane motion: oracle srr
(corrupted slices left in), svr, and the weights svr gave the corrupted slices; (4) one axial
4 mm stack: cubic B-spline along the slice axis vs ``single``.

The script never tunes anything on the ground truth: every method runs with its defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAME = "1301_WIP_ADNI_Sag3D_MPRAGE_cl_displayscaling.nii.gz"
CANDIDATES = [ROOT.parent / "shared/data/mr_philips_classic_vs_enhanced_mixed_folder/ref_dcm2niix" / NAME,
              Path("/work/shared/data/mr_philips_classic_vs_enhanced_mixed_folder/ref_dcm2niix") / NAME,
              ROOT / "benchmarks/_svr_data" / NAME]


def ground_truth():
    """(Volume, mask) following the protocol in the module docstring.

    A cached copy (``benchmarks/_svr_data/gt_1301.npz``, made by ``--cache``) is used when present,
    so that the GPU machine needs neither nibabel nor scikit-image.
    """
    from medrecon.volume import Volume

    cache = ROOT / "benchmarks/_svr_data/gt_1301.npz"
    if cache.exists():
        z = np.load(cache)
        return Volume(z["array"], z["affine"], {"modality": "MR"}), z["mask"].astype(bool)
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    from medrecon import load
    from medrecon.volume import Volume

    path = next((p for p in CANDIDATES if p.exists()), None)
    if path is None:
        raise SystemExit(f"ground truth not found; looked in {[str(p) for p in CANDIDATES]}")
    v = load(str(path))
    a = np.asarray(v.array, np.float32)
    a = np.clip(a / np.percentile(a, 99.9), 0, 1)
    m = a > 0.5 * threshold_otsu(a)
    lab, _ = ndimage.label(m)
    m = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
    m = ndimage.binary_fill_holes(ndimage.binary_closing(m, iterations=3))
    a = np.where(m, a, 0).astype(np.float32)
    idx = np.argwhere(m)
    lo = np.maximum(idx.min(0) - 6, 0)
    hi = np.minimum(idx.max(0) + 7, a.shape)
    sl = tuple(slice(l, h) for l, h in zip(lo, hi))
    aff = v.affine.copy()
    aff[:3, 3] = v.index_to_lps(lo[None].astype(float))[0]
    return Volume(a[sl], aff, {"modality": "MR"}), m[sl]


def cubic_baseline(stacks, gt):
    """Mean of the stacks each interpolated with cubic B-splines onto the ground-truth grid."""
    from scipy import ndimage

    outs = []
    for s in stacks:
        M = np.linalg.inv(s.affine) @ gt.affine
        outs.append(ndimage.affine_transform(np.asarray(s.array, np.float32), M[:3, :3], M[:3, 3],
                                             output_shape=gt.shape, order=3, mode="nearest"))
    return np.mean(outs, 0), outs


def pose_error(result, sim, subset=None):
    """Pose errors of ``result`` against the simulation's true poses (optionally a subset of slices)."""
    from medrecon.svr.poses_util import pose_errors

    pts = np.array([s.affine[:3, :3] @ np.array([(s.shape[0] - 1) / 2, (s.shape[1] - 1) / 2, k]) + s.affine[:3, 3]
                    for s in sim.stacks for k in range(s.shape[2])])
    sel = np.arange(len(pts)) if subset is None else np.asarray(subset)
    e = pose_errors(result.matrices()[sel], sim.matrices()[sel], pts[sel])
    e0 = pose_errors(np.tile(np.eye(4), (len(sel), 1, 1)), sim.matrices()[sel], pts[sel])
    return {"rot_deg_mean": e["rot_deg_mean"], "trans_mm_mean": e["trans_mm_mean"],
            "rot_deg_median": e["rot_deg_median"], "trans_mm_median": e["trans_mm_median"],
            "uncorrected_rot_deg_mean": e0["rot_deg_mean"], "uncorrected_trans_mm_mean": e0["trans_mm_mean"]}


def machine():
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def hashgrid_throughput(device, compile_: bool, n_points: int = 1 << 20, steps: int = 20) -> dict:
    """fwd + bwd + Adam step of HashGrid(12 levels, 2 features, T=2^19) + MLP 24-64-16."""
    import torch

    from medrecon.inr import MLP, HashGrid

    enc = HashGrid(n_levels=12, n_features=2, log2_hashmap_size=19, base_resolution=10, finest_resolution=345).to(device)
    mlp = MLP(enc.out_dim, 16, width=64, depth=1).to(device)
    opt = torch.optim.Adam(list(enc.parameters()) + list(mlp.parameters()), lr=1e-3, eps=1e-15)

    def f(x):
        return mlp(enc(x))

    fn = torch.compile(f) if compile_ else f
    x = torch.rand(n_points, 3, device=device)
    t0 = time.perf_counter()
    for _ in range(3):  # warm-up (compilation)
        opt.zero_grad()
        fn(x).square().mean().backward()
        opt.step()
    torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        x = torch.rand(n_points, 3, device=device)
        opt.zero_grad()
        fn(x).square().mean().backward()
        opt.step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    return {"compiled": compile_, "points_per_step": n_points, "ms_per_step": dt * 1e3,
            "M_points_per_s": n_points / dt / 1e6, "warmup_s": warm}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["cpu", "gpu", "device"], default=None,
                    help="cpu: every CPU figure (2 threads); gpu: every GPU figure; device: both side by side "
                         "(cpu part pinned to cores 0-1 with taskset) on a GPU machine, JSON files in --out")
    ap.add_argument("--out", default=None, help="JSON output path (a folder for --part device)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (cpu part)")
    ap.add_argument("--cache", action="store_true", help="write benchmarks/_svr_data/gt_1301.npz and exit")
    ap.add_argument("--smoke", action="store_true", help="4 mm ground truth, short runs: checks the script runs")
    ap.add_argument("--only", default=None, help="comma-separated case names to run (default: all of the part)")
    args = ap.parse_args(argv)
    if args.part is None and not args.cache:
        ap.error("give --part or --cache")
    if args.part == "device":
        return device(args)
    import torch

    from medrecon.svr import evaluate, reconstruct, simulate_stacks

    out: dict = {"part": args.part, "machine": machine(), "results": {}}
    res = out["results"]
    path = Path(args.out or f"bench_svr_{args.part}.json")
    only = set(args.only.split(",")) if args.only else None

    def save():
        path.parent.mkdir(parents=True, exist_ok=True)
        clean = dict(out, results={k: {a: b for a, b in v.items() if a != "_result"} for k, v in res.items()})
        path.write_text(json.dumps(clean, indent=1, default=float))

    def part(name, fn):
        if only is not None and name not in only:
            return
        t0 = time.perf_counter()
        try:
            res[name] = fn()
        except Exception as exc:  # keep the other figures
            res[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}
        res[name]["wall_s"] = time.perf_counter() - t0
        try:
            res[name]["loadavg_after"] = list(os.getloadavg())
        except OSError:
            pass
        print(name, json.dumps({k: v for k, v in res[name].items() if k != "_result"}, default=float)[:400], flush=True)
        save()

    gt, gm = ground_truth()
    if args.cache:
        dst = ROOT / "benchmarks/_svr_data/gt_1301.npz"
        dst.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(dst, array=gt.array, affine=gt.affine, mask=gm)
        print("wrote", dst)
        return
    if args.smoke:
        from scipy import ndimage

        from medrecon.volume import Volume

        aff = gt.affine.copy()
        aff[:3, :3] *= 4
        gm = ndimage.zoom(gm.astype(np.float32), 0.25, order=1) > 0.5
        gt = Volume(np.where(gm, ndimage.zoom(gt.array, 0.25, order=1), 0).astype(np.float32), aff, {"modality": "MR"})
    out["ground_truth"] = {"shape": list(gt.shape), "spacing_mm": [float(s) for s in gt.spacing],
                           "mask_voxels": int(gm.sum())}
    gpu = args.part == "gpu" and not args.smoke
    dev = "cuda" if gpu else "cpu"
    if not gpu:
        torch.set_num_threads(args.threads)
    grid = (gt.affine, gt.shape)
    th = 12.0 if args.smoke else 3.0
    sims: dict = {}

    def sim_of(key):
        """Stacks simulated on first use (a CPU part that runs a few cases simulates only those)."""
        if key not in sims:
            t0 = time.perf_counter()
            kw = {"still": dict(seed=0), "motion": dict(rot_deg=3.0, trans_mm=3.0, mask=gm, seed=1),
                  "hard": dict(rot_deg=8.0, trans_mm=8.0, mask=gm, seed=2, corrupt_fraction=0.1),
                  "single": dict(seed=3, axes=[2])}[key]
            thick = (16.0 if args.smoke else 4.0) if key == "single" else th
            sims[key] = simulate_stacks(gt, thick, noise_sigma=0.01, device=dev, **kw)
            out.setdefault("simulate_s", {})[key] = time.perf_counter() - t0
        return sims[key]

    def want(*names):
        return only is None or any(n in only for n in names)

    def run(method, key="still", **kw):
        def f():
            sim = sim_of(key)
            extra = {"stack_masks": sim.masks} if sim.masks is not None else {}
            if kw.pop("oracle", False):
                extra["initial_poses"] = (sim.axis_angle, sim.translation)
            t0 = time.perf_counter()
            r = reconstruct(sim.stacks, method, device=dev, grid=kw.pop("grid", grid), **extra, **kw)
            d = {"seconds": time.perf_counter() - t0, "timings": r.timings, "device": dev,
                 "lambda": r.params.get("lambda"), "noise_sigma_est": r.params.get("noise_sigma_est")}
            if r.volume.shape == gt.shape and np.allclose(r.volume.affine, gt.affine):
                d.update(evaluate(r.volume, gt, gm))
            d["_result"] = r
            return d
        return f

    def strip(name):
        r = res.get(name, {}).pop("_result", None)
        save()
        return r

    def cubic():
        mean, singles = cubic_baseline(sim_of("still").stacks, gt)
        d = evaluate(mean, gt.array, gm)
        d["single_stack_psnr"] = [evaluate(s, gt.array, gm)["psnr"] for s in singles]
        return d

    # (1) still stacks
    part("cubic_mean3", cubic)
    part("srr", run("srr"))
    strip("srr")
    if gpu:
        part("inr", run("inr", motion_correction=False))
        strip("inr")
    # (2) motion +/-3 deg / +/-3 mm
    part("motion_uncorrected_srr", run("srr", "motion"))
    strip("motion_uncorrected_srr")
    part("motion_oracle_srr", run("srr", "motion", oracle=True))
    strip("motion_oracle_srr")
    variants = [("motion_svr", {})]
    if gpu:  # what moves the figure (one change at a time from the default)
        variants += [("motion_svr_outer3", {"n_outer": 3}), ("motion_svr_outer10", {"n_outer": 10}),
                     ("motion_svr_no_coarse", {"svr_options": {"coarse": 1}}),
                     ("motion_svr_no_loo", {"svr_options": {"loo": False}}),
                     ("motion_svr_no_robust", {"svr_options": {"robust": False}})]
    for name, kw in variants:
        part(name, run("svr", "motion", **kw))
        r = strip(name)
        if r is not None:
            res[name]["pose_errors"] = pose_error(r, sim_of("motion"))
            save()
    # (3) hard motion: +/-8 deg / +/-8 mm, 10 % of the slices corrupted
    part("hard_oracle_srr", run("srr", "hard", oracle=True))
    strip("hard_oracle_srr")
    part("hard_svr", run("svr", "hard"))
    r = strip("hard_svr")
    if r is not None:
        hsim = sim_of("hard")
        good = np.setdiff1d(np.arange(len(r.slice_weights)), hsim.corrupted)
        res["hard_svr"]["pose_errors_clean_slices"] = pose_error(r, hsim, good)
        w = np.asarray(r.slice_weights)
        res["hard_svr"]["corrupted_slices"] = int(len(hsim.corrupted))
        res["hard_svr"]["corrupted_weight_mean"] = float(w[hsim.corrupted].mean())
        res["hard_svr"]["corrupted_weight_max"] = float(w[hsim.corrupted].max())
        res["hard_svr"]["clean_weight_mean"] = float(w[good].mean())
        res["hard_svr"]["corrupted_weights"] = [round(float(v), 3) for v in w[hsim.corrupted]]
        save()
    # (4) one axial 4 mm stack

    def cubic_single():
        _, singles = cubic_baseline(sim_of("single").stacks, gt)
        return evaluate(singles[0], gt.array, gm)

    part("single_cubic", cubic_single)
    opts = {"iterations": 30} if args.smoke else None
    part("single", run("single", "single", single_options=opts))
    strip("single")
    # cost: svr on the automatic grid at 1 mm (the CLI's default), three stacks with motion
    part("svr_1mm_auto_grid", run("svr", "motion", grid=None, spacing=4.0 if args.smoke else 1.0))
    strip("svr_1mm_auto_grid")
    save()


def device(args) -> None:
    """GPU machine: the gpu part, and two 2-core CPU parts (taskset) at the same time.

    Cores 0-1: the single-stack method; cores 2-3: svr on the motion stacks (the 2-core cost
    figures); the gpu part runs on the other cores. CPU parts still running after
    BENCH_SVR_CPU_WAIT seconds (default 540) are stopped; their JSON keeps what finished.
    """
    import shutil
    import subprocess

    def pin(cores: str) -> list[str]:  # without taskset the parts still run with 2 torch threads
        return ["taskset", "-c", cores] if shutil.which("taskset") else []

    outdir = Path(args.out or os.environ.get("OUT", "."))
    outdir.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    me = str(Path(__file__).resolve())
    extra = ["--smoke"] if args.smoke else []
    ncpu = os.cpu_count() or 8
    t0 = time.perf_counter()
    cpus = []
    for cores, only, name in (("0,1", "single_cubic,single", "cpu2_single"), ("2,3", "motion_svr", "cpu2_svr")):
        cpus.append(subprocess.Popen(pin(cores) + [py, me, "--part", "cpu", "--threads", "2",
                                      "--only", only, "--out", str(outdir / f"bench_svr_{name}.json")] + extra,
                                     stdout=open(outdir / f"bench_svr_{name}.log", "w"), stderr=subprocess.STDOUT))
    gpu = subprocess.run(pin(f"4-{ncpu - 1}") + [py, me, "--part", "gpu",
                          "--out", str(outdir / "bench_svr_gpu.json")] + extra)
    limit = float(os.environ.get("BENCH_SVR_CPU_WAIT", "540"))
    for c in cpus:
        try:
            c.wait(timeout=max(1.0, limit - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            c.kill()
            print("a cpu part was stopped at the time limit; its JSON holds the figures finished by then")
    print("gpu rc", gpu.returncode, "cpu rc", [c.returncode for c in cpus], f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
