"""Benchmark: 20 photos at 640x480 -> textured mesh (medrecon multiview), cameras vs pycolmap's own pipeline.

    python benchmarks/bench_multiview.py [--views 20] [--width 640] [--threads 2] [--json out.json]

* medrecon: the whole ``reconstruct_multiview`` (SfM with pycolmap on the CPU, plane-sweep MVS +
  TSDF in PyTorch, xatlas, baking, every output file), stage timings from its report.
* peer (cameras only): pycolmap's pipeline with its defaults - ``extract_features``,
  ``match_exhaustive``, ``incremental_mapping`` - on the same photos. The peer for the dense stage
  would be COLMAP's PatchMatch stereo, which needs CUDA (not in the PyPI wheel), so there is no
  CPU peer for it; the dense figures stand alone.
Both are compared on time (ratio medrecon/peer for the camera stage) and on the camera errors
against the true cameras (rotation, centre after a similarity alignment).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def peer_pycolmap(photos: Path, work: Path, threads: int):
    import pycolmap

    from medrecon.multiview.cameras import _from_pycolmap

    work.mkdir(parents=True, exist_ok=True)
    db = work / "db.db"
    t0 = time.perf_counter()
    ext = pycolmap.FeatureExtractionOptions()
    ext.num_threads = threads
    pycolmap.extract_features(db, photos, extraction_options=ext, device=pycolmap.Device.cpu)
    pycolmap.match_exhaustive(db, device=pycolmap.Device.cpu)
    opts = pycolmap.IncrementalPipelineOptions()
    opts.num_threads = threads
    recs = pycolmap.incremental_mapping(db, photos, work, options=opts)
    dt = time.perf_counter() - t0
    best = max(recs.values(), key=lambda r: r.num_reg_images())
    return _from_pycolmap(best, len(list(photos.glob("*.png")))), dt


def scene_run(a) -> int:
    """One support-plane scene: medrecon end to end, Chamfer / F-score at 0.5 % of the object's diagonal
    (without cameras: after the similarity that takes the estimated cameras onto the true ones)."""
    from medrecon.multiview import scenes as SC
    from medrecon.multiview.pipeline import MultiviewOptions, reconstruct_multiview

    sc = SC.standard_scenes()[a.scene]
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        t0 = time.perf_counter()
        truth, renders = SC.write_scene(sc, td, a.views, a.width, a.width * 3 // 4)
        t_render = time.perf_counter() - t0
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        res = reconstruct_multiview(td / "photos", td / "out", cameras_dir=(td / "cameras") if a.known_cameras else None,
                                    options=MultiviewOptions(device="cpu"))
        t_ours = time.perf_counter() - t0
        load1 = os.getloadavg()
        diag = sc.diagonal()
        m = SC.score_reconstruction(sc, truth, renders, res.vertices, res.faces,
                                    cameras=None if a.known_cameras else res.cameras)
    out = {"scene": a.scene, "known_cameras": a.known_cameras, "views": a.views, "size": [a.width, a.width * 3 // 4],
           "threads": a.threads, "render_s": t_render, "medrecon_total_s": t_ours,
           "medrecon_stages_s": res.report["timings_s"], "dense": {k: res.report["dense"].get(k) for k in (
               "depth_size_px", "planes", "textured_pixels_with_depth", "pixels_with_depth", "sparse")},
           "accuracy_pct_diag": 100 * m["accuracy"] / diag, "completeness_pct_diag": 100 * m["completeness"] / diag,
           "chamfer_pct_diag": 100 * m["chamfer"] / diag, "precision": m["precision"], "recall": m["recall"],
           "fscore_0.5pct": m["fscore"], "loadavg_before": load0, "loadavg_after": load1}
    print(json.dumps(out, indent=2))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--views", type=int, default=20)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--scene", default=None, help="a support-plane scene of medrecon.multiview.scenes "
                    "(sphere_box, fine_lowcontrast, coarse_saturated) instead of the floating test object")
    ap.add_argument("--known-cameras", action="store_true", help="with --scene: pass the true cameras (no points)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    from medrecon.multiview import synthetic as S
    from medrecon.multiview.cameras import pose_errors
    from medrecon.multiview.pipeline import MultiviewOptions, reconstruct_multiview

    if a.scene:
        return scene_run(a)
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        t0 = time.perf_counter()
        truth, renders = S.write_photo_set(td / "photos", a.views, a.width, a.width * 3 // 4)
        t_render = time.perf_counter() - t0
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        res = reconstruct_multiview(td / "photos", td / "out", options=MultiviewOptions(device="cpu"))
        t_ours = time.perf_counter() - t0
        e = pose_errors(res.cameras, truth)
        peer, t_peer = peer_pycolmap(td / "photos", td / "peer", a.threads)
        ep = pose_errors(peer, truth)
        load1 = os.getloadavg()
        from scipy.spatial import cKDTree

        v = (e["scale"] * (e["R"] @ res.vertices.T)).T + e["t"]
        diag = S.bbox_diagonal()
        acc = cKDTree(S.sample_surface(100000)).query(v)[0].mean() / diag
        comp = cKDTree(v).query(S.visible_surface_points(truth, renders))[0].mean() / diag
    tm = res.report["timings_s"]
    cam_ours = tm.get("cameras_s", 0.0)
    out = {
        "views": a.views, "size": [a.width, a.width * 3 // 4], "threads": a.threads, "render_s": t_render,
        "medrecon_total_s": t_ours, "medrecon_stages_s": tm,
        "medrecon_registered": res.report["cameras_registered"],
        "medrecon_rot_err_deg_max": float(e["rotation_error_deg"].max()),
        "medrecon_centre_err_pct_max": float(100 * e["centre_error_rel"].max()),
        "peer_cameras_s": t_peer, "peer_registered": len(peer),
        "peer_rot_err_deg_max": float(ep["rotation_error_deg"].max()),
        "peer_centre_err_pct_max": float(100 * ep["centre_error_rel"].max()),
        "cameras_time_ratio_medrecon_over_peer": cam_ours / t_peer if t_peer else None,
        "accuracy_pct_diag": 100 * acc, "completeness_pct_diag": 100 * comp,
        "chamfer_pct_diag": 50 * (acc + comp), "loadavg_before": load0, "loadavg_after": load1,
    }
    print(json.dumps(out, indent=2))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
