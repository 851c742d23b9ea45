"""Photos of a rendered object -> cameras -> textured model, and the figure of docs/multiview.md.

    python examples/multiview_synthetic.py -o mv-demo [--views 20] [--width 320] [--known-cameras]
                                           [--docs-image docs/img/multiview_synthetic.png]

The object (a sphere and a box with a colourful solid texture, on black) is ray cast by
:mod:`medrecon.multiview.synthetic` from ``--views`` cameras on a ring; the photos go through
:func:`medrecon.multiview.pipeline.reconstruct_multiview` (structure from motion with pycolmap,
or the true cameras with ``--known-cameras``). The script prints the camera errors and the
surface error against the analytic truth, and can draw a figure: input photos, the model with
its texture from three sides, and the error map.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("-o", "--outdir", type=Path, default=Path("mv-demo"), help="output folder")
    ap.add_argument("--views", type=int, default=20, help="number of photos (default 20)")
    ap.add_argument("--width", type=int, default=320, help="photo width in px (height = 3/4)")
    ap.add_argument("--known-cameras", action="store_true", help="use the true cameras (--cameras) instead of SfM")
    ap.add_argument("--docs-image", type=Path, default=None, help="write the figure for docs/multiview.md here")
    a = ap.parse_args(argv)

    import torch

    from medrecon.multiview import synthetic as S
    from medrecon.io.colmap import write_colmap_text
    from medrecon.multiview.cameras import pose_errors
    from medrecon.multiview.pipeline import MultiviewOptions, reconstruct_multiview

    torch.set_num_threads(2)
    w, h = a.width, a.width * 3 // 4
    photos = a.outdir / "photos"
    truth, renders = S.write_photo_set(photos, a.views, w, h)
    write_colmap_text(truth, a.outdir / "true_cameras")
    res = reconstruct_multiview(photos, a.outdir / "model", cameras_dir=a.outdir / "true_cameras" if a.known_cameras else None,
                                options=MultiviewOptions(faces=20000, texture_px=1024),
                                progress=lambda ev: print(f"\r{ev.text}: {ev.done}/{ev.total}   ", end="", file=sys.stderr))
    print(file=sys.stderr)
    e = pose_errors(res.cameras, truth)
    from scipy.spatial import cKDTree

    s, R, t = e["scale"], e["R"], e["t"]
    v = (s * (R @ res.vertices.T)).T + t
    diag = S.bbox_diagonal()
    d_acc = cKDTree(S.sample_surface(100000)).query(v)[0]
    gt_vis = S.visible_surface_points(truth, renders)
    d_comp = cKDTree(v).query(gt_vis)[0]
    summary = {
        "cameras_registered": res.report["cameras_registered"], "cameras_total": res.report["cameras_total"],
        "rotation_error_deg_max": float(e["rotation_error_deg"].max()),
        "centre_error_pct_max": float(100 * e["centre_error_rel"].max()),
        "accuracy_pct_diag": float(100 * d_acc.mean() / diag), "completeness_pct_diag": float(100 * d_comp.mean() / diag),
        "timings_s": res.report["timings_s"],
    }
    print(json.dumps(summary, indent=2))
    if a.docs_image:
        figure(a.docs_image, renders, res, v, d_acc / diag * 100)
        preview(res.mesh, a.docs_image.with_name(a.docs_image.stem + "_preview.png"))
    return 0


def preview(mesh, path: Path) -> None:
    """Shaded renders of the model from three sides (medrecon's preview renderer)."""
    from medrecon.texture import to_surface_model
    from medrecon.viz.preview import render_previews

    render_previews([to_surface_model(mesh)], path, size_mm_bar=False, title="multiview model (known cameras)")


def figure(path: Path, renders, res, v_truth, err_pct) -> None:
    """Photos (3 of them), the textured model (3 views, software render) and the error map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medrecon.mesh import vertex_rgb

    fig, ax = plt.subplots(2, 4, figsize=(14, 6.6))
    for k, i in enumerate(np.linspace(0, len(renders) - 1, 3).astype(int)):
        ax[0, k].imshow(renders[i][0]); ax[0, k].set_title(f"input photo {i}"); ax[0, k].axis("off")
    col = vertex_rgb(res.mesh) / 255.0
    vmap = res.mesh.vertices
    for k, (a, b, name) in enumerate([(0, 2, "front (x-z)"), (1, 2, "side (y-z)"), (0, 1, "top (x-y)")]):
        c = np.delete(np.arange(3), [a, b])[0]
        order = np.argsort(vmap[:, c])
        ax[1, k].scatter(vmap[order, a], vmap[order, b], c=col[order], s=1.5, lw=0)
        ax[1, k].set_aspect("equal"); ax[1, k].set_title(f"model, texture: {name}"); ax[1, k].axis("off")
    sc = ax[0, 3].scatter(v_truth[:, 0], v_truth[:, 2], c=np.clip(err_pct, 0, 1), s=1, cmap="viridis", lw=0)
    ax[0, 3].set_aspect("equal"); ax[0, 3].set_title("distance to truth, % of diagonal"); ax[0, 3].axis("off")
    fig.colorbar(sc, ax=ax[0, 3], shrink=0.7)
    tex = res.mesh.texture
    ax[1, 3].imshow(tex); ax[1, 3].set_title("albedo texture (xatlas UV)"); ax[1, 3].axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    raise SystemExit(main())
