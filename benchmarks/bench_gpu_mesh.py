"""Benchmark: the GPU surface path (:mod:`medrecon.surface.gpu`) against the CPU mesher.

Input: a whole-body-sized synthetic label map (default 512 x 512 x 300 at 0.8 x 0.8 x 1.5 mm,
104 structures: smooth-perturbed ellipsoids of 6-70 mm semi-axes, touching and nested, some at
the volume border; deterministic), or a label map file (``--labels``: NIfTI/NRRD/.npz).

Methods, each meshing every structure with Slicer's default smoothing (0.5) and no decimation:

* ``gpu``: :func:`medrecon.surface.gpu.build_surfaces_gpu` on ``--device`` (after one warm-up
  call in the same process), with per-stage seconds; once with QA and once without;
* ``cpu``: :func:`medrecon.surface.mesher.build_surfaces` (VTK discrete flying edges +
  windowed sinc per structure, structures in parallel threads on every core): the
  TotalSegmentator / Slicer-style CPU meshing of the same label map.

Both results are compared structure by structure (topology, volume, vertex distance).

Run (GPU machine, repository root)::

    python benchmarks/bench_gpu_mesh.py --repeats 3 --out bench_gpu_mesh.json

Small CPU-only smoke run::

    python benchmarks/bench_gpu_mesh.py --quick --device cpu
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def wholebody_labels(shape=(512, 512, 300), spacing=(0.8, 0.8, 1.5), n_labels=104, seed=0, device=None):
    """(uint8 label map, affine) of ``n_labels`` smooth blobs; later labels overwrite earlier ones
    only where those are background, so structures touch without overlapping.

    Computed with PyTorch (float64; on the GPU when there is one: about a second for the
    whole-body size, where numpy took 10 s of CPU): a rotated ellipsoid per label, its radius
    perturbed by trilinearly interpolated 6 x 6 x 6 noise (``scipy.ndimage.zoom(order=1)``'s
    sampling, ``align_corners``); the random draws are numpy's, in the same order as before."""
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rng = np.random.default_rng(seed)
    lab = torch.zeros(shape, dtype=torch.uint8, device=dev)
    sp = np.asarray(spacing, float)
    ext = np.asarray(shape) * sp
    for v in range(1, n_labels + 1):
        semi = rng.uniform(6, 70, 3) if v > 8 else rng.uniform(40, 110, 3)
        c = rng.uniform(0.1, 0.9, 3) * ext
        if v % 17 == 0:  # some structures reach the volume border
            c[0] = ext[0] - semi[0] * 0.5
        lo = np.maximum(((c - semi * 1.3) / sp).astype(int), 0)
        hi = np.minimum(((c + semi * 1.3) / sp).astype(int) + 1, shape)
        if np.any(hi - lo < 2):
            continue
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        noise6 = rng.normal(size=(6, 6, 6))
        ax = [torch.arange(int(a), int(b), dtype=torch.float64, device=dev) * s - cc
              for a, b, s, cc in zip(lo, hi, sp, c)]
        qt = torch.as_tensor(q / semi[None, :], device=dev)  # rows: axis d's contribution, per local axis
        loc = (ax[0][:, None, None, None] * qt[0] + ax[1][None, :, None, None] * qt[1]
               + ax[2][None, None, :, None] * qt[2])
        r = torch.sqrt((loc * loc).sum(-1))
        del loc
        noise = torch.nn.functional.interpolate(torch.as_tensor(noise6, device=dev)[None, None], size=tuple(r.shape),
                                                mode="trilinear", align_corners=True)[0, 0]
        inside = r + 0.12 * noise < 1.0
        sub = lab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        sub[inside & (sub == 0)] = v
    aff = np.diag([*sp, 1.0])
    aff[:3, 3] = [-200.0, -180.0, -300.0]
    return lab.cpu().numpy(), aff


def load_labels(path: str):
    if path.endswith(".npz"):
        d = np.load(path)
        return d["labels"], d["affine"]
    from medrecon.io.loader import load

    v = load(path)
    return np.asarray(v.array), v.affine


def _summary(models) -> dict:
    return {"structures": len(models), "triangles": int(sum(m.n_triangles for m in models)),
            "vertices": int(sum(len(m.vertices) for m in models)),
            "all_watertight": bool(all(m.qa.get("watertight", True) for m in models)) if models else None}


def compare(cpu, gpu, spacing_min: float, max_structures: int = 30) -> dict:
    """Per structure: same topology figures, |volume difference| %, mean vertex distance (voxels)."""
    from scipy.spatial import cKDTree

    keys = ("triangles", "vertices", "watertight", "manifold", "components", "euler_characteristic")
    topo_same = 0
    vol_diff, dist = [], []
    idx = np.argsort([-m.n_triangles for m in cpu])[:max_structures]
    for a, b in zip(cpu, gpu):
        topo_same += all(a.qa.get(k) == b.qa.get(k) for k in keys)
        va, vb = abs(a.qa["mesh_volume_mm3"]), b.qa["mesh_volume_mm3"]
        vol_diff.append(abs(vb - va) / max(va, 1e-9) * 100)
    for i in idx:
        a, b = cpu[i], gpu[i]
        d = cKDTree(a.vertices).query(b.vertices)[0]
        dist.append(float(d.mean()) / spacing_min)
    return {"structures": len(cpu), "topology_identical": int(topo_same),
            "volume_diff_pct_max": float(max(vol_diff)), "mean_vertex_distance_vox_max": float(max(dist)),
            "cpu_inside_out": int(sum(m.qa["mesh_volume_mm3"] < 0 for m in cpu))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", help="label map file (.nii.gz/.nrrd/.npz) instead of the synthetic one")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="160 x 160 x 100, 20 structures")
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--write", help="also time writing every GPU model as binary STL into this folder")
    ap.add_argument("--out", help="JSON file for every figure")
    args = ap.parse_args()

    import torch

    from medrecon.surface.gpu import build_surfaces_gpu, resolve_device
    from medrecon.volume import Volume

    dev = resolve_device(args.device)
    t0 = time.perf_counter()
    if args.labels:
        lab, aff = load_labels(args.labels)
        src = args.labels
    elif args.quick:
        lab, aff = wholebody_labels((160, 160, 100), (1.6, 1.6, 3.0), 20)
        src = "synthetic 160x160x100, 20 structures"
    else:
        lab, aff = wholebody_labels()
        src = "synthetic 512x512x300 at 0.8x0.8x1.5 mm, 104 structures"
    print(f"input: {src}: shape {lab.shape}, {len(np.unique(lab)) - 1} labels "
          f"({time.perf_counter() - t0:.1f} s to make/read)", flush=True)
    vol = Volume(lab, aff, {"kind": "labelmap"})
    res: dict = {"input": src, "shape": list(lab.shape), "device": str(dev), "torch": torch.__version__,
                 "python": platform.python_version(), "cpu_count": os.cpu_count()}
    if dev.type == "cuda":
        res["gpu_name"] = torch.cuda.get_device_name(dev)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

    def save() -> None:  # after every step: a run cut short by a time limit keeps what it measured
        if args.out:
            Path(args.out).write_text(json.dumps(res, indent=2, default=float))

    # warm-up: CUDA context, kernels, sparse handles
    t0 = time.perf_counter()
    build_surfaces_gpu(vol, device=dev, qa=False)
    sync()
    res["gpu_first_call_s"] = time.perf_counter() - t0
    for qa in (True, False):
        runs, stages = [], []
        for _ in range(max(1, args.repeats)):
            tm: dict = {}
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            t0 = time.perf_counter()
            gpu_models = build_surfaces_gpu(vol, device=dev, qa=qa, timings=tm)
            sync()
            runs.append(time.perf_counter() - t0)
            stages.append(tm)
        key = "gpu_qa" if qa else "gpu_no_qa"
        res[key] = {"median_s": statistics.median(runs), "runs_s": runs,
                    "stages_s": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
                    **_summary(gpu_models)}
        if dev.type == "cuda":
            res[key]["peak_gpu_gb"] = torch.cuda.max_memory_allocated(dev) / 1e9
        print(f"{key}: median {res[key]['median_s']:.3f} s over {len(runs)} "
              f"(stages {', '.join(f'{k} {v:.3f}' for k, v in res[key]['stages_s'].items())}); "
              f"{res[key]['triangles']:,} triangles", flush=True)
        save()
        if qa:
            gpu_qa_models = gpu_models
    if args.write:
        from medrecon.io.meshes import write_models

        t0 = time.perf_counter()
        files = write_models(gpu_qa_models, args.write, ["stl"])
        res["write_stl_s"] = time.perf_counter() - t0
        res["write_stl_mb"] = sum(Path(f).stat().st_size for f in files) / 1e6
        print(f"write STL: {res['write_stl_s']:.2f} s, {res['write_stl_mb']:.0f} MB", flush=True)
    if not args.skip_cpu:
        from medrecon.surface.mesher import build_surfaces

        for qa in (True, False):
            t0 = time.perf_counter()
            cpu_models = build_surfaces(vol, qa=qa, workers=os.cpu_count())
            dt = time.perf_counter() - t0
            key = "cpu_qa" if qa else "cpu_no_qa"
            res[key] = {"s": dt, "workers": os.cpu_count(), **_summary(cpu_models)}
            print(f"{key}: {dt:.2f} s ({os.cpu_count()} threads); {res[key]['triangles']:,} triangles", flush=True)
            save()
            if qa:
                res["agreement"] = compare(cpu_models, gpu_qa_models, float(min(np.linalg.norm(aff[:3, :3], axis=0))))
                print(f"agreement: {res['agreement']}", flush=True)
        res["ratio_gpu_over_cpu_qa"] = res["gpu_qa"]["median_s"] / res["cpu_qa"]["s"]
        res["ratio_gpu_over_cpu_no_qa"] = res["gpu_no_qa"]["median_s"] / res["cpu_no_qa"]["s"]
        print(f"GPU / CPU time: {res['ratio_gpu_over_cpu_qa']:.3f} with QA, "
              f"{res['ratio_gpu_over_cpu_no_qa']:.3f} without", flush=True)
    save()


if __name__ == "__main__":
    main()
