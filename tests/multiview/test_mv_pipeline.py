"""The whole multi-view pipeline with the true cameras (--cameras): geometry, texture, outputs, C2PA."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import chamfer_f, similarity_to_truth


# measured: the module's run takes 70 s CPU (issue 22: the fast tier stays under 3 min)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mv_known_run(mv_photo_set, mv_credentials, tmp_path_factory):
    from medrecon.multiview.pipeline import MultiviewOptions, reconstruct_multiview

    photos, cams_dir, truth, renders = mv_photo_set
    out = tmp_path_factory.mktemp("mv_known")
    key, cert = mv_credentials
    opts = MultiviewOptions(device="cpu", faces=12000, texture_px=512, resolution=160, planes=40, n_src=3)
    res = reconstruct_multiview(photos, out, cameras_dir=cams_dir, options=opts, sign_key=key, sign_cert=cert)
    return res, out, truth, renders


def _to_truth(res, truth, pts):
    s, R, t = similarity_to_truth(res.cameras, truth)
    return (s * (R @ pts.T)).T + t


def test_dense_geometry_against_truth(mv_known_run):
    import trimesh

    from medrecon.multiview import synthetic as S

    res, out, truth, renders = mv_known_run
    mesh = trimesh.Trimesh(_to_truth(res, truth, res.vertices), res.faces, process=False)
    pts = mesh.sample(40000, seed=0) if "seed" in trimesh.Trimesh.sample.__code__.co_varnames else mesh.sample(40000)
    diag = S.bbox_diagonal()
    gt_all, gt_vis = S.sample_surface(80000), S.visible_surface_points(truth, renders)
    acc, comp, ch, f = chamfer_f(pts, gt_all, gt_vis, 0.005 * diag)
    f1 = chamfer_f(pts, gt_all, gt_vis, 0.01 * diag)[3]
    # issue goal: Chamfer <= 0.5 % and F@0.5 % >= 0.85; measured at these test settings: see docs/multiview.md
    # measured (2026-12-06): accuracy 0.21 %, completeness 1.8 % (the lower half of the sphere,
    # seen only at grazing angles, is mostly missing), Chamfer 0.98 %, F@0.5 % 0.70, F@1 % 0.78
    assert acc <= 0.004 * diag, acc / diag
    assert ch <= 0.015 * diag, (acc / diag, comp / diag)
    assert f >= 0.6, f
    assert f1 >= 0.7, f1
    # the given cameras' units are kept
    assert res.report["scale"]["units"] == "camera units"
    assert res.report["cameras_registered"] == res.report["cameras_total"] == len(truth)


def test_texture_colour_matches_rendered_truth(mv_known_run):
    """CIEDE2000 between the baked (shaded) texture and the true radiance at visible points."""
    import PIL.Image
    import trimesh
    from skimage.color import deltaE_ciede2000, rgb2lab

    from medrecon.multiview import synthetic as S

    res, out, truth, renders = mv_known_run
    gt = S.visible_surface_points(truth, renders, n=6000, min_views=3)
    s, R, t = similarity_to_truth(res.cameras, truth)
    # truth points into the output frame, then the nearest surface point of the model
    q = ((gt - t) @ R) / s
    mesh = trimesh.Trimesh(res.vertices, res.faces, process=False)
    # nearest point of a dense sampling of the model (no rtree needed), then its barycentrics
    from scipy.spatial import cKDTree

    samp, tri_all = trimesh.sample.sample_surface(mesh, 400000)
    dist, j = cKDTree(samp).query(q)
    closest, tri = samp[j], tri_all[j]
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[tri], closest)
    uv = (res.mesh.uv[res.faces[tri]] * bary[:, :, None]).sum(1)
    tex = np.asarray(PIL.Image.open(out / "texture_shaded.png").convert("RGB")).astype(float) / 255
    H, W = tex.shape[:2]
    col = tex[np.clip(((1 - uv[:, 1]) * H).astype(int), 0, H - 1), np.clip((uv[:, 0] * W).astype(int), 0, W - 1)]
    want = S.radiance(gt, S.normals_at(gt))
    de = deltaE_ciede2000(rgb2lab(want[None]), rgb2lab(col[None]))[0]
    assert np.median(de) <= 5.0, np.median(de)
    assert np.mean(de) <= 7.0, np.mean(de)  # issue goal: mean <= 5 (see docs/multiview.md)


def test_outputs_and_report(mv_known_run):
    from helpers_gltf import assert_valid_gltf

    from medrecon.io.meshes import read_glb_json

    res, out, truth, _ = mv_known_run
    for name in ("model.glb", "model.usdz", "model.obj", "model.mtl", "model.ply", "model.stl", "report.json",
                 "cameras/cameras.txt", "cameras/images.txt", "texture_shaded.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert_valid_gltf(out / "model.glb")
    g = read_glb_json(out / "model.glb")
    assert g["asset"]["generator"].startswith("medrecon")
    assert g["asset"]["extras"]["provenance"]["command"] == "multiview"
    mat = g["materials"][0]["pbrMetallicRoughness"]
    assert mat["metallicFactor"] == 0 and "baseColorTexture" in mat
    rep = json.loads((out / "report.json").read_text())
    for k in ("cameras_registered", "cameras_total", "reprojection_error_px", "scale", "timings_s", "provenance"):
        assert k in rep
    assert rep["scale"]["source"] == "given cameras"
    # USDZ opens in usd-core with a textured mesh
    from pxr import Usd, UsdGeom

    stage = Usd.Stage.Open(str(out / "model.usdz"))
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/model/multiview"))
    assert len(mesh.GetFaceVertexCountsAttr().Get()) == len(res.faces)


def test_c2pa_manifests_read_back(mv_known_run):
    from medrecon.provenance import c2pa_read, file_sha256

    res, out, _, _ = mv_known_run
    side = out / "model.glb.c2pa"
    assert side.is_file()
    r = c2pa_read(out / "model.png", sidecar=side)
    assert r["validation_state"] == "Valid", r["validation_status"]
    assert "signingCredential.untrusted" in r["validation_status"]  # our throwaway root is not trusted
    files = [a["data"]["files"] for a in r["manifest"]["assertions"] if a["label"] == "org.medrecon.outputs"][0]
    assert files["model.glb"] == file_sha256(out / "model.glb")
