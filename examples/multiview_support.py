"""Objects on a textured support -> photos -> model, and the figures of docs/multiview.md.

    python examples/multiview_support.py -o mv-support [--scene sphere_box] [--known-cameras]
                                         [--docs-image docs/img/multiview_support_sphere_box.png]
    python examples/multiview_support.py --preview-of OUTDIR --docs-image PNG   # shade an existing model

A scene of :mod:`medrecon.multiview.scenes` (objects standing on a textured disc, 20 views) is
rendered, reconstructed with :func:`medrecon.multiview.pipeline.reconstruct_multiview` (the true
cameras with an empty ``points3D.txt`` with ``--known-cameras``), and scored against the analytic
surface (Chamfer and F-score at 0.5 % of the object's diagonal). ``--docs-image`` writes the
shaded three-view preview (medrecon's preview renderer, no scale bar: scene units are arbitrary).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def preview(outdir: Path, png: Path, title: str) -> Path:
    import trimesh

    from medrecon.mesh import SurfaceModel
    from medrecon.viz.preview import render_previews

    m = trimesh.load(outdir / "model.ply", process=False)
    v = np.asarray(m.vertices)
    v = (v - v.mean(0)) * (100.0 / max(float(np.linalg.norm(np.ptp(v, axis=0))), 1e-12))  # the renderer's scale
    return render_previews([SurfaceModel("model", v, m.faces, (0.85, 0.8, 0.7))], png, size_mm_bar=False,
                           title=title)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("-o", "--outdir", type=Path, default=Path("mv-support"))
    ap.add_argument("--scene", default="sphere_box", help="sphere_box, fine_lowcontrast or coarse_saturated")
    ap.add_argument("--width", type=int, default=320, help="photo width in px (height = 3/4)")
    ap.add_argument("--known-cameras", action="store_true")
    ap.add_argument("--method", default="stereo")
    ap.add_argument("--docs-image", type=Path, default=None)
    ap.add_argument("--preview-of", type=Path, default=None, help="only shade the model of an output folder")
    a = ap.parse_args(argv)
    if a.preview_of:
        print(preview(a.preview_of, a.docs_image, f"medrecon multiview: {a.preview_of.name}"))
        return 0
    import torch

    from medrecon.multiview import scenes as S
    from medrecon.multiview.pipeline import MultiviewOptions, reconstruct_multiview

    torch.set_num_threads(2)
    sc = S.standard_scenes()[a.scene]
    truth, renders = S.write_scene(sc, a.outdir / "scene", 20, a.width, a.width * 3 // 4)
    res = reconstruct_multiview(a.outdir / "scene" / "photos", a.outdir / "model",
                                cameras_dir=(a.outdir / "scene" / "cameras") if a.known_cameras else None,
                                options=MultiviewOptions(method=a.method),
                                progress=lambda e: print(f"{e.stage} {e.done}/{e.total}", flush=True) if e.done == e.total else None)
    diag = sc.diagonal()
    m = S.score_reconstruction(sc, truth, renders, res.vertices, res.faces,
                               cameras=None if a.known_cameras else res.cameras)
    print(json.dumps({"chamfer_pct_diag": 100 * m["chamfer"] / diag, "fscore_0.5pct": m["fscore"],
                      "precision": m["precision"], "recall": m["recall"],
                      "textured_pixels_with_depth": res.report["dense"].get("textured_pixels_with_depth"),
                      "removed": res.report.get("removed")}, indent=1))
    if a.docs_image:
        print(preview(a.outdir / "model", a.docs_image, f"medrecon multiview: {a.scene}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
