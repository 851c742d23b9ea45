"""Benchmark: one 1024 x 1024 picture -> finished closed mesh (issue 12; goal <= 2 s on 2 cores).

Side by side, same input, same target of 100k triangles:

* **medrecon**: :func:`medrecon.photo.reconstruct` - border colour model + flood fill + GrabCut
  mask, Poisson inflation on a grid sized from the face budget, closed double-sided grid mesh
  with a smoothed outline, quadric decimation to 100k faces, padded texture. Also the full
  ``run_photo`` (every output file: GLB, OBJ+MTL+PNG, STL, PLY, depth maps, previews, report).
* **baseline (scikit-image + trimesh)**: the textbook chain from the reference notes - Otsu
  threshold on the distance to the median border colour (scikit-image), Baran inflation
  (``-Laplace u = 4``, ``h = sqrt(u)``, scipy ``spsolve``) at 512 px, the solid ``|z| <= h``
  voxelised at 256^3 and closed with ``skimage.measure.marching_cubes``, decimated to 100k with
  trimesh's ``simplify_quadric_decimation``. Untextured.

Both are timed warm (median of ``--repeat`` runs) in this process, threads limited to 2.
Accuracy of both is reported on the same analytic shape (normalised height RMSE and volume
ratio of the closed mesh against the true torus), and whether each mesh is watertight.

Run::

    .venv/bin/python benchmarks/bench_photo.py [--repeat 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "2")

import numpy as np  # noqa: E402


def _median_time(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), out


def baseline(rgb: np.ndarray, size_mm: float = 100.0, faces: int = 100_000):
    """scikit-image + scipy + trimesh chain (module docstring). Returns a trimesh.Trimesh in mm."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as sla
    import trimesh
    from skimage import color, filters, measure, transform

    lab = color.rgb2lab(rgb)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    d = np.linalg.norm(lab - np.median(border, axis=0), axis=-1)
    mask = d > filters.threshold_otsu(d)
    g = 512
    m = transform.resize(mask.astype(float), (g, g), order=1, anti_aliasing=True) > 0.5
    k = int(m.sum())
    idx = np.full((g + 2, g + 2), -1)
    r, c = np.nonzero(m)
    idx[r + 1, c + 1] = np.arange(k)
    rows, cols, vals = [np.arange(k)], [np.arange(k)], [np.full(k, 4.0)]
    for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        j = idx[r + 1 + dr, c + 1 + dc]
        ok = j >= 0
        rows.append(np.nonzero(ok)[0]); cols.append(j[ok]); vals.append(-np.ones(int(ok.sum())))
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(k, k))
    u = np.zeros((g, g))
    u[r, c] = sla.spsolve(A.tocsc(), np.full(k, 4.0))
    h = np.sqrt(np.maximum(u, 0))  # plain Baran (c = 4), pixels of the 512 grid
    v = 256
    hs = transform.resize(h, (v, v), order=1) * (v / g)
    zmax = hs.max() + 2
    nz = int(np.ceil(2 * zmax)) + 2
    z = (np.arange(nz) - nz / 2 + 0.5)[None, None, :]
    solid = np.abs(z) <= hs[:, :, None]
    solid = np.pad(solid, 1)
    verts, tris, _, _ = measure.marching_cubes(solid.astype(np.float32), 0.5)
    mesh = trimesh.Trimesh(verts * (size_mm / v), tris, process=True)
    if len(mesh.faces) > faces:
        mesh = mesh.simplify_quadric_decimation(face_count=faces)
    return mesh, h * (1024 / g)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import trimesh
    from PIL import Image

    from medrecon.photo import PhotoOptions, reconstruct, run_photo
    from medrecon.photo.synthetic import scene, shape_height

    n = args.size
    sh = shape_height("torus", n)
    rgb = scene(sh, "shadow")
    opts = PhotoOptions(faces=100_000, previews=False)
    reconstruct(rgb, options=opts)  # warm-up (imports, caches)
    t_ours, t_ours_min, res = _median_time(lambda: reconstruct(rgb, options=opts), args.repeat)
    with tempfile.TemporaryDirectory() as td:
        Image.fromarray(rgb).save(Path(td) / "in.png")
        t_full, _, full = _median_time(
            lambda: run_photo(Path(td) / "in.png", Path(td) / "out", PhotoOptions(faces=100_000)), max(1, args.repeat // 2))
    baseline(rgb)  # warm-up
    t_base, t_base_min, (bmesh, bh) = _median_time(lambda: baseline(rgb), args.repeat)

    # accuracy on the analytic torus (pixels of the picture)
    gt = sh.height
    m = sh.mask
    ours_h = res.height_mm / res.pixel_mm
    import cv2

    base_h = cv2.resize(bh.astype(np.float32), (n, n), interpolation=cv2.INTER_LINEAR)
    nrmse = lambda h: float(np.sqrt(np.mean((h - gt)[m] ** 2)) / gt.max())
    vol_true_mm3 = sh.volume_px3 * res.pixel_mm ** 3
    ours_tm = trimesh.Trimesh(res.mesh.vertices, res.mesh.faces, process=False)
    out = {
        "input": f"{n}x{n} synthetic photo (torus, shadowed background)", "target_faces": 100_000,
        "medrecon_s": round(t_ours, 3), "medrecon_min_s": round(t_ours_min, 3),
        "medrecon_stages_s": {k: round(v, 3) for k, v in res.timings.items()},
        "medrecon_all_outputs_s": round(t_full, 3),
        "baseline_s": round(t_base, 3), "baseline_min_s": round(t_base_min, 3),
        "speedup_vs_baseline": round(t_base / t_ours, 2),
        "medrecon_faces": int(len(res.mesh.faces)), "baseline_faces": int(len(bmesh.faces)),
        "medrecon_watertight": bool(ours_tm.is_watertight and ours_tm.is_volume),
        "baseline_watertight": bool(bmesh.is_watertight and bmesh.is_volume),
        "medrecon_height_nrmse": round(nrmse(ours_h), 4), "baseline_height_nrmse": round(nrmse(base_h), 4),
        "medrecon_volume_ratio": round(float(ours_tm.volume) / vol_true_mm3, 4),
        "baseline_volume_ratio": round(float(abs(bmesh.volume)) / vol_true_mm3, 4),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform(terse=True)}, python {sys.version.split()[0]}",
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "threads": os.environ.get("OMP_NUM_THREADS"),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
