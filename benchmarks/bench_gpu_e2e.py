"""End to end on one GPU: CT -> every structure of a whole-body network -> STL files on disk.

Set-up (written into ``--workdir``, timed: ``setup_s``, meant to stay under 10 s on the GPU
machine): a wholeBody_ct_segmentation-sized MONAI bundle (SegResNet, 105 output channels) and a
512 x 512 x 300 int16 CT at 0.8 x 0.8 x 1.5 mm, uncompressed NIfTI. Two networks of the same
graph and cost:

* ``confident`` (default): the bundle's weights set to a 16-level intensity quantiser
  (``bench_inference.make_confident``) on an anatomy-like CT (the 104 smooth structures of
  ``bench_gpu_mesh.wholebody_labels`` at 16 HU levels): a label map of realistic complexity;
* ``random``: random weights on a smooth random field (``bench_segment_e2e``); its label map is
  noise-like (of the order of 150 M triangles for the whole CT): ``--networks random``.

Every timed run is a **fresh Python process**; ``wall_s`` is from the spawn (interpreter start,
imports, CUDA start-up, model load, all file I/O) to its exit and ``last_stl_s`` from the spawn
to the modification time of the last STL written (the goal: at most 3 s with the kernels from
the on-disk cache):

``cli-compiled-first``  ``python -m medrecon mesh CT --bundle B --device cuda --compile
                        --no-preview`` with empty compile caches (TorchInductor's FX graph /
                        AOTAutograd caches and Triton's kernels under ``--workdir``): the
                        first-ever run on a machine;
``cli-compiled-cached`` the same in new processes that find the caches filled (x ``--cached-runs``);
``cli-eager``           the same with ``--no-compile``;
``lib-compiled-cached`` the library calls of the command (load, ``segment_volume``,
                        ``build_surfaces_gpu``, ``write_models``) with seconds per stage; it
                        saves the label map for:

Side by side on that label map, in this process: the CPU mesher
(:func:`medrecon.surface.mesher.build_surfaces`: VTK discrete flying edges + windowed sinc per
structure, threads on every core; the TotalSegmentator/Slicer-style CPU meshing) plus the same
STL writer, against the warm GPU mesher, with agreement.

Run on a GPU machine from the repository root (``benchmarks/prepare_gpu_machine.sh`` gives the
one command that installs what the machine lacks and runs this and ``bench_gpu_mesh.py``)::

    python benchmarks/bench_gpu_e2e.py --workdir /tmp/e2e --out bench_gpu_e2e.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _segment_volume():
    try:
        from medrecon.segment.ai import segment_volume
    except ImportError:
        from medrecon.segment.ai import segment_volume
    return segment_volume


def child(args) -> None:
    """One end-to-end run inside this (fresh) process; stage seconds go to ``args.child_json``."""
    t_imp = time.perf_counter()
    import torch

    from medrecon.io.loader import load
    from medrecon.io.meshes import write_models
    from medrecon.surface.gpu import build_surfaces_gpu

    segment_volume = _segment_volume()
    st = {"imports": time.perf_counter() - t_imp}
    t0 = time.perf_counter()
    vol = load(args.ct)
    st["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lab, labels = segment_volume(vol, args.bundle, device=args.device, compile=args.compile)
    st["segment"] = time.perf_counter() - t0
    st["segment_detail"] = lab.meta.get("description")
    t0 = time.perf_counter()
    tm: dict = {}
    models = build_surfaces_gpu(lab, labels, device=args.device, timings=tm, qa=not args.no_qa)
    st["mesh"] = time.perf_counter() - t0
    st["mesh_stages"] = tm
    t0 = time.perf_counter()
    files = write_models(models, args.outdir, ["stl"])
    report = {"structures": [{"name": m.name, "label": m.label, **{k: m.qa.get(k) for k in (
        "triangles", "watertight", "manifold", "mesh_volume_mm3", "volume_diff_pct")}} for m in models]}
    Path(args.outdir, "report.json").write_text(json.dumps(report, default=float))
    st["write"] = time.perf_counter() - t0
    st["structures"] = len(models)
    st["triangles"] = int(sum(m.n_triangles for m in models))
    st["stl_mb"] = sum(Path(f).stat().st_size for f in files) / 1e6
    st["all_watertight"] = bool(all(m.qa.get("watertight", True) for m in models))
    if torch.cuda.is_available():
        st["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1e9
    if args.save_labels:
        np.savez_compressed(args.save_labels, labels=np.asarray(lab.array), affine=lab.affine,
                            names=json.dumps({int(k): v.name for k, v in labels.items()}))
    Path(args.child_json).write_text(json.dumps(st, default=float))


def spawn(name: str, cmd: list[str], env: dict, res: dict, child_json: Path | None = None,
          outdir: Path | None = None) -> None:
    t_wall = time.time()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    entry: dict = {"wall_s": wall, "rc": p.returncode}
    if outdir is not None:
        stl = list(Path(outdir).glob("*.stl"))
        if stl:
            entry["last_stl_s"] = max(f.stat().st_mtime for f in stl) - t_wall
            entry["stl_files"] = len(stl)
            entry["stl_mb"] = sum(f.stat().st_size for f in stl) / 1e6
        rep = Path(outdir) / "report.json"
        if rep.exists():
            try:
                entry["report_timings_s"] = json.loads(rep.read_text()).get("timings_s")
            except (ValueError, OSError):
                pass
    if child_json is not None and child_json.exists():
        entry["stages"] = json.loads(child_json.read_text())
        child_json.unlink()
    if p.returncode != 0:
        entry["stderr_tail"] = p.stderr[-3000:]
    res[name] = entry
    stages = entry.get("stages", {})
    print(f"{name}: {wall:.2f} s wall, last STL at {entry.get('last_stl_s', float('nan')):.2f} s (rc {p.returncode})"
          + (f"; imports {stages['imports']:.2f}, load {stages['load']:.2f}, segment {stages['segment']:.2f}, "
             f"mesh {stages['mesh']:.2f}, write {stages['write']:.2f}; {stages['structures']} structures, "
             f"{stages['triangles']:,} triangles, {stages['stl_mb']:.0f} MB STL" if stages else "")
          + (f"; report timings {entry['report_timings_s']}" if entry.get("report_timings_s") else ""), flush=True)
    if p.returncode != 0:
        print(p.stderr[-3000:], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/medrecon_gpu_e2e")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", help="JSON file for every figure")
    ap.add_argument("--skip", default="", help="comma list of runs to skip: first, cached, eager, lib, cpu")
    ap.add_argument("--cached-runs", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="smoke test: 128 x 128 x 60 CT")
    ap.add_argument("--networks", default="confident", help="confident and/or random (see above)")
    # child mode
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ct")
    ap.add_argument("--bundle")
    ap.add_argument("--outdir")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-qa", action="store_true")
    ap.add_argument("--save-labels")
    ap.add_argument("--child-json")
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    t_setup = time.perf_counter()
    from medrecon.io.volumes import save_volume

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    nets = [n for n in args.networks.split(",") if n]
    inputs = {}
    for net in nets:
        ct = work / f"ct_{net}{'_small' if args.small else ''}.nii"
        bundle = work / f"wholebody_{net}_bundle"
        if not ct.exists():
            save_volume(anatomy_ct(args.small) if net == "confident" else random_ct(args.small), ct)
        if not (bundle / "models" / "model.pt").exists():
            (confident_bundle if net == "confident" else _random_bundle)(bundle)
        inputs[net] = (ct, bundle)
    setup_s = time.perf_counter() - t_setup
    print(f"setup: {setup_s:.1f} s ({', '.join(str(c) for c, _ in inputs.values())})", flush=True)
    env = dict(os.environ)
    env.update(TORCHINDUCTOR_CACHE_DIR=str(work / "inductor_cache"), TORCHINDUCTOR_FX_GRAPH_CACHE="1",
               TORCHINDUCTOR_AUTOGRAD_CACHE="1", TRITON_CACHE_DIR=str(work / "triton_cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    res: dict = {"machine": {"python": sys.version.split()[0], "cpu_count": os.cpu_count()},
                 "setup_s": setup_s, "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    try:
        import torch

        res["machine"]["torch"] = torch.__version__
        if torch.cuda.is_available():
            res["machine"]["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass

    def save() -> None:
        if args.out:
            Path(args.out).write_text(json.dumps(res, indent=2, default=float))

    cj = work / "child.json"
    for net in nets:
        ct, bundle = inputs[net]
        cli = [sys.executable, "-m", "medrecon", "mesh", str(ct), "--bundle", str(bundle), "--device", args.device,
               "--no-preview", "-o"]
        runs = [("cli-compiled-first", "first", ["--compile"])]
        runs += [(f"cli-compiled-cached-{i + 1}", "cached", ["--compile"]) for i in range(args.cached_runs)]
        runs += [("cli-eager", "eager", ["--no-compile"])]
        for name, kind, extra in runs:
            if kind in skip or (name == "cli-compiled-first" and net != nets[0]):
                continue  # the caches serve every network of the same graph after the first
            out = work / f"out_{net}_{name}"
            spawn(f"{net}:{name}", cli + [str(out), *extra], env, res, outdir=out)
            save()
        labels_npz = work / f"labels_{net}.npz"
        if "lib" not in skip:
            comp = args.device.startswith("cuda")  # torch.compile: on the GPU only
            me = [sys.executable, str(Path(__file__).resolve()), "--child", "--ct", str(ct), "--bundle", str(bundle),
                  "--device", args.device, *(["--compile"] if comp else []), "--save-labels", str(labels_npz),
                  "--child-json", str(cj)]
            out = work / f"out_{net}_lib"
            spawn(f"{net}:lib-{'compiled-cached' if comp else 'eager'}", me + ["--outdir", str(out)], env, res, cj,
                  outdir=out)
            save()
        if "cpu" not in skip and labels_npz.exists():
            res[f"{net}:same_labelmap_mesh_only"] = mesh_side_by_side(labels_npz, work / f"out_cpu_mesher_{net}",
                                                                      args.device)
            save()
    save()


def random_ct(small: bool = False):
    from bench_segment_e2e import ct_volume

    v = ct_volume()
    return v.with_array(np.ascontiguousarray(v.array[192:320, 192:320, 120:180])) if small else v


def _random_bundle(root: Path) -> Path:
    from bench_segment_e2e import wholebody_bundle

    return wholebody_bundle(root)


def anatomy_ct(small: bool = False):
    """CT-like volume (HU) of the 104 smooth structures of ``bench_gpu_mesh.wholebody_labels``
    (16 intensity levels, background -1000 HU, no noise: the quantiser's per-window thresholds
    would turn noise into speckle) on the same 512 x 512 x 300 grid."""
    from bench_gpu_mesh import wholebody_labels

    from medrecon.volume import Volume

    shape, sp, n = ((128, 128, 60), (0.8, 0.8, 1.5), 20) if small else ((512, 512, 300), (0.8, 0.8, 1.5), 104)
    lab, aff = wholebody_labels(shape, sp, n)
    hu = np.where(lab > 0, -700 + 100 * (lab.astype(np.int16) % 16), -1000).astype(np.int16)
    return Volume(hu, aff, {"modality": "CT"})


def confident_bundle(root: Path) -> Path:
    """The wholeBody-style bundle with its SegResNet's weights set to a 16-level quantiser of the
    (group-normalised) input intensity (:func:`bench_inference.make_confident`, alpha 0): same
    graph and cost as the random bundle, label maps shaped like smooth anatomy."""
    import torch
    from bench_inference import make_confident
    from bench_segment_e2e import wholebody_bundle
    from monai.networks.nets import SegResNet

    wholebody_bundle(root)
    cfg = json.loads((root / "configs" / "inference.json").read_text())
    kw = {k: v for k, v in cfg["network_def"].items() if k != "_target_"}
    torch.manual_seed(0)
    net = make_confident(SegResNet(**kw).eval(), np.arange(16, dtype=np.float64), levels=16)
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root


def mesh_side_by_side(labels_npz: Path, cpu_out: Path, device: str) -> dict:
    """CPU mesher (all cores) + STL writer vs the warm GPU mesher on one saved label map."""
    from medrecon.io.meshes import write_models
    from medrecon.surface.gpu import build_surfaces_gpu
    from medrecon.surface.mesher import build_surfaces
    from medrecon.volume import Volume

    from bench_gpu_mesh import compare

    d = np.load(labels_npz)
    vol = Volume(d["labels"], d["affine"], {"kind": "labelmap"})
    cmp: dict = {}
    t0 = time.perf_counter()
    cpu_models = build_surfaces(vol, workers=os.cpu_count())
    cmp["cpu_mesh_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_models(cpu_models, cpu_out, ["stl"])
    cmp["cpu_write_s"] = time.perf_counter() - t0
    build_surfaces_gpu(vol, device=device, qa=False)  # warm
    tm: dict = {}
    t0 = time.perf_counter()
    gpu_models = build_surfaces_gpu(vol, device=device, timings=tm)
    cmp["gpu_mesh_warm_s"] = time.perf_counter() - t0
    cmp["gpu_mesh_stages"] = tm
    cmp["triangles"] = int(sum(m.n_triangles for m in cpu_models))
    cmp["structures"] = len(cpu_models)
    cmp["agreement"] = compare(cpu_models, gpu_models, float(min(np.linalg.norm(d["affine"][:3, :3], axis=0))))
    cmp["ratio_gpu_over_cpu_mesh"] = cmp["gpu_mesh_warm_s"] / cmp["cpu_mesh_s"]
    print(f"same label map: CPU mesher {cmp['cpu_mesh_s']:.2f} s (+ STL {cmp['cpu_write_s']:.2f} s, "
          f"{os.cpu_count()} threads) vs GPU mesher {cmp['gpu_mesh_warm_s']:.3f} s warm "
          f"(x{1 / cmp['ratio_gpu_over_cpu_mesh']:.1f}); {cmp['structures']} structures, "
          f"{cmp['triangles']:,} triangles; agreement {cmp['agreement']}", flush=True)
    return cmp


if __name__ == "__main__":
    main()
