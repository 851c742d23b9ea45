"""Example: one picture to a depth map and a closed, textured 3D model (``medrecon photo``).

    python examples/photo_to_3d.py PICTURE -o OUTDIR [--method inflate|relief|slab]
                                    [--depth-model PATH] [--mask FILE] [--size-mm 100] [--faces 100000]
    python examples/photo_to_3d.py --demo -o OUTDIR     # draws a synthetic photo first

Writes GLB, OBJ+MTL+PNG, STL, PLY, depth maps, mask, previews, an offline viewer and a report
(see docs/photo.md). The back of the object and its depth are invented from the outline: the
model is a plausible shape, not a measurement.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def viewer(mesh, path):
    """Write medrecon's offline viewer for a textured mesh (colours sampled at the vertices)."""
    from medrecon.mesh import vertex_rgb
    from medrecon.texture import to_surface_model
    from medrecon.viz.html import write_viewer

    return write_viewer([to_surface_model(mesh)], path, title="medrecon photo model",
                        vertex_colors=[vertex_rgb(mesh)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="One picture to a closed, textured 3D model (medrecon photo).")
    ap.add_argument("picture", nargs="?", type=Path, help="input picture (PNG, JPEG...)")
    ap.add_argument("-o", "--outdir", type=Path, required=True, help="output folder")
    ap.add_argument("--method", default="inflate", choices=["inflate", "relief", "slab"])
    ap.add_argument("--depth-model", type=Path, help="local ONNX file or Hugging Face folder (never downloaded)")
    ap.add_argument("--mask", type=Path, help="mask picture (white = object)")
    ap.add_argument("--thickness", type=float, default=1.0)
    ap.add_argument("--size-mm", type=float, default=100.0, help="real size of the picture's longest side")
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--demo", action="store_true", help="draw a synthetic photo (two spheres) and use it")
    args = ap.parse_args(argv)

    from medrecon.errors import MedreconError
    from medrecon.photo import PhotoOptions, run_photo

    picture = args.picture
    if args.demo:
        from PIL import Image

        from medrecon.photo.synthetic import scene, shape_height

        args.outdir.mkdir(parents=True, exist_ok=True)
        picture = args.outdir / "demo_input.png"
        Image.fromarray(scene(shape_height("two_spheres", 512), "shadow", color=(60, 120, 190))).save(picture)
    if picture is None:
        ap.error("give a PICTURE or --demo")
    opts = PhotoOptions(method=args.method, depth_model=str(args.depth_model) if args.depth_model else None,
                        mask=str(args.mask) if args.mask else None, thickness=args.thickness,
                        size_mm=args.size_mm, faces=args.faces)
    try:
        res = run_photo(picture, args.outdir, opts, viewer=viewer,
                        progress=lambda ev: print(f"[{ev.done}/{ev.total}] {ev.text}", file=sys.stderr))
    except MedreconError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    qa = res.qa
    print(f"{qa['faces']} triangles, watertight={qa['watertight']}, volume {qa['volume_mm3']:.0f} mm3, "
          f"mask from {res.mask_source}, {res.timings['total_s']:.2f} s")
    for k, name in res.files.items():
        print(f"  {k:18s} {args.outdir / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
