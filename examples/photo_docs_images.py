"""Make the pictures of docs/photo.md: inputs drawn by the project, and what ``medrecon photo`` makes of them.

    python examples/photo_docs_images.py [-o docs/img]

Three inputs, all drawn here (no downloaded pictures): a synthetic photo (two merged spheres on
a shadowed background), a flat-colour diagram (a kidney-bean shape with an outline and a
drawn vessel) and a logo (letters); the diagram is also made into a relief (lithophane). Each goes through :func:`medrecon.photo.run_photo`; the
figure ``photo_<name>.png`` shows the input, its mask, the height map and software renders from
three angles. ``photo_viewer.png`` is a screenshot of the offline viewer (headless Chromium,
skipped when it is not installed).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np


def _font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # old Pillow
        return ImageFont.load_default()


def draw_diagram(n=512) -> np.ndarray:
    """A flat-colour 'anatomy-style' diagram: bean-shaped organ, dark outline, a drawn vessel."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (n, n), (250, 250, 246))
    d = ImageDraw.Draw(im)
    t = np.linspace(0, 2 * np.pi, 400)
    r = 0.33 * n * (1 + 0.18 * np.cos(2 * t)) - 0.12 * n * np.exp(-((t - np.pi) ** 2) / 0.25)
    pts = [(n / 2 + r_ * np.cos(a) * 1.1, n / 2 + r_ * np.sin(a) * 0.8) for r_, a in zip(r, t)]
    d.polygon(pts, fill=(196, 92, 84), outline=(90, 30, 28), width=6)
    d.line([(0.28 * n, 0.5 * n), (0.45 * n, 0.47 * n), (0.6 * n, 0.55 * n), (0.72 * n, 0.5 * n)],
           fill=(70, 60, 160), width=9, joint="curve")
    d.ellipse([0.55 * n, 0.33 * n, 0.66 * n, 0.42 * n], fill=(230, 170, 90), outline=(90, 30, 28), width=3)
    return np.asarray(im)


def draw_logo(n=512) -> np.ndarray:
    """Bold letters on white (a logo for the slab method)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (n, n // 2), (255, 255, 255))
    d = ImageDraw.Draw(im)
    f = _font(int(n * 0.27))
    d.text((n * 0.08, n * 0.09), "MR3D", fill=(30, 110, 70), font=f, stroke_width=6, stroke_fill=(30, 110, 70))
    return np.asarray(im)


def figure(rgb, out, res_dir) -> np.ndarray:
    """Input | mask | height map | preview renders, one strip."""
    from PIL import Image

    h = 300

    def fit(img):
        im = Image.fromarray(img)
        return np.asarray(im.resize((max(1, int(im.width * h / im.height)), h), Image.LANCZOS).convert("RGB"))

    mask = np.asarray(Image.open(res_dir / "mask.png"))
    mask3 = np.repeat(mask[..., None], 3, axis=2)
    depth = np.asarray(Image.open(res_dir / "depth_preview.png").convert("RGB"))
    prev = np.asarray(Image.open(res_dir / "preview.png").convert("RGB"))
    tiles = [fit(rgb), fit(mask3), fit(depth), fit(prev)]
    gap = 8
    w = sum(t.shape[1] for t in tiles) + gap * (len(tiles) + 1)
    sheet = np.full((h + 2 * gap, w, 3), 20, np.uint8)
    x = gap
    for t in tiles:
        sheet[gap:gap + h, x:x + t.shape[1]] = t
        x += t.shape[1] + gap
    Image.fromarray(sheet).save(out)
    return sheet


def viewer_screenshot(html: Path, out: Path) -> bool:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return False
    with tempfile.TemporaryDirectory() as td:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
               "--use-angle=swiftshader", "--disable-background-networking", f"--user-data-dir={td}",
               "--window-size=900,560", "--virtual-time-budget=10000", f"--screenshot={out}", html.resolve().as_uri()]
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return out.is_file()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Make the pictures of docs/photo.md.")
    ap.add_argument("-o", "--outdir", type=Path, default=Path("docs/img"))
    args = ap.parse_args(argv)
    from PIL import Image

    from medrecon.photo import PhotoOptions, run_photo
    from medrecon.photo.synthetic import scene, shape_height

    import importlib.util

    spec = importlib.util.spec_from_file_location("photo_to_3d", Path(__file__).with_name("photo_to_3d.py"))
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)

    args.outdir.mkdir(parents=True, exist_ok=True)
    cases = [
        ("sphere_photo", scene(shape_height("two_spheres", 512), "shadow", color=(60, 120, 190)), "inflate"),
        ("diagram", draw_diagram(), "inflate"),
        ("logo", draw_logo(), "slab"),
        ("relief", draw_diagram(), "relief"),
    ]
    with tempfile.TemporaryDirectory() as td:
        for name, rgb, method in cases:
            src = Path(td) / f"{name}.png"
            Image.fromarray(rgb).save(src)
            out = Path(td) / name
            res = run_photo(src, out, PhotoOptions(method=method, faces=60_000), viewer=ex.viewer)
            figure(rgb, args.outdir / f"photo_{name}.png", out)
            print(f"{name}: {method}, {res.qa['faces']} faces, watertight={res.qa['watertight']}, "
                  f"mask {res.mask_source}, {res.timings['total_s']:.2f} s -> {args.outdir / f'photo_{name}.png'}")
            if name == "diagram" and viewer_screenshot(out / "viewer.html", args.outdir / "photo_viewer.png"):
                print(f"viewer screenshot -> {args.outdir / 'photo_viewer.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
