"""``medrecon photo`` outputs: every file, read back by independent readers; every GLB through
the Khronos glTF validator (zero errors); sizes in mm; provenance; CLI errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from PIL import Image

from helpers_gltf import assert_valid_gltf
from medrecon.cli import main
from medrecon.photo import PhotoOptions, run_photo
from medrecon.io.meshes import read_glb_json


def _cli(args) -> int:
    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def _viewer(mesh, path):
    from medrecon.mesh import vertex_rgb
    from medrecon.texture import to_surface_model
    from medrecon.viz.html import write_viewer

    return write_viewer([to_surface_model(mesh)], path, title="photo", vertex_colors=[vertex_rgb(mesh)])


@pytest.fixture(scope="module")
def torus_run(tmp_path_factory):
    from medrecon.photo.synthetic import scene, shape_height

    d = tmp_path_factory.mktemp("photo_out")
    sh = shape_height("torus", 200)
    rgb = scene(sh, "gradient", color=(60, 90, 170))
    rgb = np.ascontiguousarray(rgb[:, 20:180])  # 200 x 160: the longest side is the height
    Image.fromarray(rgb).save(d / "torus.png")
    res = run_photo(d / "torus.png", d / "out", PhotoOptions(size_mm=80.0, faces=20_000), viewer=_viewer)
    return d / "out", res, rgb


def test_photo_all_outputs_written(torus_run):
    out, res, rgb = torus_run
    for name in ["depth.npy", "depth16.png", "mask.png", "model.glb", "model.obj", "model.mtl", "model.png",
                 "model.stl", "model.ply", "viewer.html", "preview.png", "depth_preview.png", "meta.json", "report.json"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    depth = np.load(out / "depth.npy")
    assert depth.shape == rgb.shape[:2] and depth.dtype == np.float32
    meta = json.loads((out / "meta.json").read_text())
    d16 = np.asarray(Image.open(out / "depth16.png"))
    assert d16.dtype == np.uint16 and d16.shape == depth.shape
    back = d16.astype(np.float64) * meta["depth"]["mm_per_unit"]
    assert np.abs(back - depth).max() <= meta["depth"]["mm_per_unit"]  # the scale in meta.json restores mm
    mask = np.asarray(Image.open(out / "mask.png")) > 0
    assert np.array_equal(mask, depth > 0) or (mask != (depth > 0)).mean() < 0.01


def test_photo_glb_valid_textured_nonmetallic(torus_run):
    out, res, rgb = torus_run
    assert_valid_gltf(out / "model.glb")
    doc = read_glb_json(out / "model.glb")
    assert doc["asset"]["generator"].startswith("medrecon")
    prov = doc["asset"]["extras"]["provenance"]
    assert prov["command"] == "photo" and prov["parameters"]["method"] == "inflate"
    assert prov["inputs"][0]["name"] == "torus.png" and len(prov["inputs"][0]["sha256"]) == 64
    pbr = doc["materials"][0]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0.0 and "baseColorTexture" in pbr
    assert doc["images"][0]["mimeType"] == "image/png"
    scene = trimesh.load(out / "model.glb")
    g = list(scene.geometry.values())[0]
    assert g.is_watertight and g.is_volume
    ext = g.bounds[1] - g.bounds[0]  # glTF metres, +Y up: the picture's height is the longest side
    assert ext[1] == pytest.approx(0.080 * sh_fraction(res), rel=0.05)


def sh_fraction(res):
    """Fraction of the picture's longest side that the object covers (from its mask)."""
    rows = np.nonzero(res.mask.any(axis=1))[0]
    return (rows.max() - rows.min() + 1) / max(res.mask.shape)


def test_photo_obj_stl_ply_read_back(torus_run):
    out, res, rgb = torus_run
    obj = trimesh.load(out / "model.obj", process=False)
    assert obj.visual.kind == "texture" and obj.visual.uv.shape == (len(obj.vertices), 2)
    mtl = (out / "model.mtl").read_text()
    assert "Kd 1.000000 1.000000 1.000000" in mtl and "map_Kd model.png" in mtl and "Pm 0.0000" in mtl
    stl = trimesh.load(out / "model.stl")
    assert stl.is_watertight and stl.is_volume
    assert stl.volume == pytest.approx(res.qa["volume_mm3"], rel=1e-3)
    ply = trimesh.load(out / "model.ply", process=False)
    assert ply.visual.kind == "vertex"
    blue = np.asarray(ply.visual.vertex_colors)[:, :3].astype(float).mean(0)
    assert blue[2] > blue[0] + 30  # the blue torus' colour reached the vertices


def test_photo_report_provenance(torus_run):
    out, res, rgb = torus_run
    rep = json.loads((out / "report.json").read_text())
    assert rep["provenance"]["medrecon_version"] and rep["provenance"]["command"] == "photo"
    assert rep["qa"]["watertight"] and rep["qa"]["winding_consistent"] and rep["qa"]["positive_volume"]
    assert rep["qa"]["faces"] <= 20_000
    assert rep["qa"]["size_mm"][1] == pytest.approx(80.0) and rep["qa"]["size_mm"][0] == pytest.approx(64.0)
    html = (out / "viewer.html").read_text()
    assert '"colors"' in html and "<script src" not in html


@pytest.mark.parametrize("method", ["relief", "slab"])
def test_photo_methods_glb_valid(tmp_path, method, photo_scene):
    rgb, sh = photo_scene("two_spheres", 128)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    res = run_photo(tmp_path / "in.png", tmp_path / "o", PhotoOptions(method=method, faces=8000, previews=False))
    assert res.qa["watertight"] and res.qa["positive_volume"]
    assert_valid_gltf(tmp_path / "o" / "model.glb")


def test_photo_cli(tmp_path, photo_scene, capsys):
    rgb, sh = photo_scene("capsule", 128, "shadow")
    Image.fromarray(rgb).save(tmp_path / "c.png")
    code = _cli(["photo", str(tmp_path / "c.png"), "-o", str(tmp_path / "o"), "--faces", "5000", "--size-mm", "50",
                 "--thickness", "0.8"])
    assert code == 0
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["provenance"]["parameters"]["thickness"] == 0.8 and rep["qa"]["faces"] <= 5000
    assert (tmp_path / "o" / "viewer.html").is_file()
    assert_valid_gltf(tmp_path / "o" / "model.glb")


@pytest.mark.parametrize("args,needle", [
    (["missing.png"], "not found"),
    (["IMG", "--method", "cubist"], "unknown method"),
    (["IMG", "--depth-model", "depth-anything/Depth-Anything-V2-Small-hf"], "nothing is downloaded"),
    (["IMG", "--size-mm", "-3"], "size-mm"),
    (["BLANK"], "no foreground"),
])
def test_photo_cli_errors_exit_2(tmp_path, photo_scene, capsys, args, needle):
    rgb, _ = photo_scene("sphere", 48)
    Image.fromarray(rgb).save(tmp_path / "img.png")
    Image.fromarray(np.full((40, 50, 3), 255, np.uint8)).save(tmp_path / "blank.png")
    names = {"IMG": str(tmp_path / "img.png"), "BLANK": str(tmp_path / "blank.png"),
             "missing.png": str(tmp_path / "missing.png")}
    args = [names.get(a, a) for a in args]
    assert _cli(["photo", *args, "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_photo_viewer_shows_picture_colours(tmp_path):
    """viewer.html in headless Chromium (offline, SwiftShader): a disc painted half red, half blue
    shows both colours (one flat model colour would show neither)."""
    import os
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        msg = "chromium missing: run scripts/install_system_deps.sh"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    n = 160
    yy, xx = np.mgrid[0:n, 0:n]
    disc = (xx - n / 2) ** 2 + (yy - n / 2) ** 2 < (0.4 * n) ** 2
    rgb = np.full((n, n, 3), 245, np.uint8)
    rgb[disc & (xx < n / 2)] = (210, 40, 40)
    rgb[disc & (xx >= n / 2)] = (40, 60, 210)
    Image.fromarray(rgb).save(tmp_path / "two.png")
    res = run_photo(tmp_path / "two.png", tmp_path / "o", PhotoOptions(faces=10_000, previews=False), viewer=_viewer)
    assert res.files["viewer_html"] == "viewer.html"
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                    "--use-angle=swiftshader", "--disable-background-networking", f"--user-data-dir={tmp_path / 'u'}",
                    "--window-size=800,500", "--virtual-time-budget=8000", f"--screenshot={shot}",
                    (tmp_path / "o" / "viewer.html").resolve().as_uri()],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    view = img[:, 330:]  # right of the side panel
    red = (view[..., 0] > view[..., 2] + 60) & (view[..., 0] > 80)
    blue = (view[..., 2] > view[..., 0] + 60) & (view[..., 2] > 80)
    assert red.sum() > 3000 and blue.sum() > 3000, (red.sum(), blue.sum())
    # the red half is on the picture's left, as in the picture
    assert np.nonzero(red)[1].mean() < np.nonzero(blue)[1].mean()


def test_photo_jpeg_input_gives_jpeg_texture_in_glb(tmp_path, photo_scene):
    rgb, _ = photo_scene("ellipsoid", 160, "gradient")
    Image.fromarray(rgb).save(tmp_path / "e.jpg", quality=95)
    res = run_photo(tmp_path / "e.jpg", tmp_path / "o", PhotoOptions(faces=5000, previews=False))
    assert res.qa["watertight"]
    assert_valid_gltf(tmp_path / "o" / "model.glb")
    assert read_glb_json(tmp_path / "o" / "model.glb")["images"][0]["mimeType"] == "image/jpeg"
