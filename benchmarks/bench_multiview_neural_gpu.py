"""GPU benchmark of ``--method neural`` (NeuS-style SDF on the medrecon.inr hash grid) on the support-plane scenes.

One command for a fresh GPU machine (torch + CUDA + numpy only; nothing else is needed):

    python benchmarks/bench_multiview_neural_gpu.py --out "$OUT/neural_gpu.json" --seconds 100

For each scene of :func:`medrecon.multiview.scenes.standard_scenes` (objects on a textured support,
20 views, rendered here at 480x360 with the numpy ray caster), it trains the SDF with the true
cameras for at most ``--seconds`` (wall clock, learning-rate schedule scaled to it), samples the
zero level (grid points within a voxel projected along the gradient, :func:`surface_points`), drops
the support (points within 1.5 voxels of z = 0, as the pipeline's support cut does) and computes
accuracy / completeness / Chamfer / F-score at 0.5 % of the object's diagonal against the analytic
surface (torch, on the GPU). The box is the object's box from the scene (the pipeline gets it from
the triangulated sparse points), padded by 10 %.

Time budget: 3 scenes x (about 10 s rendering + ``--seconds`` training + about 10 s evaluation);
with the default 100 s about 6 minutes. Writes one JSON file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medrecon.multiview import neural as NN  # noqa: E402
from medrecon.multiview import scenes as S  # noqa: E402
from medrecon.multiview.cameras import CameraSet  # noqa: E402


def _nn_dist(a: torch.Tensor, b: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    out = []
    for k in range(0, len(a), chunk):
        out.append(torch.cdist(a[k:k + chunk], b).min(1).values)
    return torch.cat(out)


def metrics(P: np.ndarray, gt_all: np.ndarray, gt_vis: np.ndarray, tau: float, dev) -> dict:
    p = torch.as_tensor(P, dtype=torch.float32, device=dev)
    if len(p) > 200000:
        p = p[torch.randperm(len(p), device=dev)[:200000]]
    da = _nn_dist(p, torch.as_tensor(gt_all, dtype=torch.float32, device=dev))
    dc = _nn_dist(torch.as_tensor(gt_vis, dtype=torch.float32, device=dev), p)
    pr, rc = float((da < tau).float().mean()), float((dc < tau).float().mean())
    return {"accuracy": float(da.mean()), "completeness": float(dc.mean()), "chamfer": float(0.5 * (da.mean() + dc.mean())),
            "precision": pr, "recall": rc, "fscore": 2 * pr * rc / max(pr + rc, 1e-12)}


def run_scene(name: str, scene, seconds: float, dev, width: int, height: int, eval_res: int = 384) -> dict:
    t0 = time.perf_counter()
    cams = S.scene_cameras(scene, 20, width, height)
    renders = [scene.render(c, supersample=1) for c in cams]
    truth = CameraSet([f"v{i}" for i in range(20)], np.array([c.K for c in cams]), np.array([c.R for c in cams]),
                      np.array([c.t for c in cams]), np.array([(width, height)] * 20), np.zeros(20), total=20)
    t_render = time.perf_counter() - t0
    box = scene.bbox()
    ext = box[1] - box[0]
    box = np.stack([box[0] - 0.1 * ext, box[1] + 0.1 * ext])
    torch.cuda.synchronize() if dev.type == "cuda" else None
    res = NN.train_sdf([r[0] for r in renders], truth, box, iters=100000, batch=4096, n_samples=96,
                       finest=1024, log2_t=19, device=dev, max_seconds=seconds)
    t1 = time.perf_counter()
    P = NN.surface_points(res.model, box, resolution=eval_res, device=dev)
    voxel = float(ext.max() * 1.2 / eval_res)
    P = P[P[:, 2] > 1.5 * voxel]
    diag = scene.diagonal()
    m = metrics(P, scene.sample_surface(100000), S.visible_points(scene, truth, [(None, None, r[2]) for r in renders]),
                0.005 * diag, dev)
    out = {"scene": name, "render_s": round(t_render, 1), "train_s": round(res.seconds, 1), "iterations": res.iters,
           "eval_s": round(time.perf_counter() - t1, 1), "surface_points": int(len(P)), "diagonal": diag,
           "final_loss": float(np.mean(res.losses[-50:])) if res.losses else None}
    for k, v in m.items():
        out[k + ("_pct_diag" if k in ("accuracy", "completeness", "chamfer") else "")] = \
            round(v / diag * 100, 4) if k in ("accuracy", "completeness", "chamfer") else round(v, 4)
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "neural_gpu.json"))
    ap.add_argument("--seconds", type=float, default=100.0, help="training wall-clock budget per scene")
    ap.add_argument("--scenes", default="sphere_box,fine_lowcontrast,coarse_saturated")
    ap.add_argument("--size", default="480x360")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--eval-res", type=int, default=384, help="SDF grid for the surface samples")
    a = ap.parse_args()
    dev = torch.device(a.device)
    w, h = (int(x) for x in a.size.split("x"))
    scenes = S.standard_scenes()
    t0 = time.perf_counter()
    rows = [run_scene(n, scenes[n], a.seconds, dev, w, h, a.eval_res) for n in a.scenes.split(",")]
    result = {"benchmark": "multiview neural (NeuS-style SDF, hash grid) on support-plane scenes, true cameras",
              "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
              "torch": torch.__version__, "image_size": [w, h], "views": 20, "train_seconds_budget": a.seconds,
              "goal": "Chamfer <= 0.25 % of the diagonal in <= 10 min on one GPU", "scenes": rows,
              "total_s": round(time.perf_counter() - t0, 1)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    print("wrote", a.out)


if __name__ == "__main__":
    main()
