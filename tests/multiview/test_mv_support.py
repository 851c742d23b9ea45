"""Objects standing on a textured support: separation from the support, hole filling, known cameras
without points, the cameras' frame, the neural surface at a tiny size (CPU), units without a scale."""
from __future__ import annotations

import json

import numpy as np
import pytest


def test_fill_holes_bridges_flat_patches_not_depth_jumps():
    from medrecon.multiview.dense import fill_holes

    d = np.tile(np.linspace(2.0, 2.2, 60, dtype=np.float32), (40, 1))  # a slanted surface
    hole = d.copy()
    hole[15:25, 20:30] = 0  # a saturated patch without depth
    out, filled = fill_holes(hole, max_gap=16)
    assert filled[15:25, 20:30].all()
    assert np.abs(out[15:25, 20:30] - d[15:25, 20:30]).max() < 1e-3
    # two surfaces 30 % apart with no depth between: not bridged
    jump = np.full((40, 60), 2.0, np.float32)
    jump[:, 30:] = 2.6
    jump[:, 25:35] = 0
    _, filled2 = fill_holes(jump, max_gap=16)
    assert not filled2.any()


def test_support_plane_and_object_region():
    from medrecon.multiview.cameras import CameraSet
    from medrecon.multiview.support import fit_support, object_region

    rng = np.random.default_rng(0)
    tilt = np.deg2rad(8)  # the support is tilted a little from the cameras' up
    n = np.array([np.sin(tilt), 0, np.cos(tilt)])
    a = np.cross(n, [0, 1, 0]); a /= np.linalg.norm(a)
    b = np.cross(n, a)
    uv = rng.uniform(-2, 2, size=(20000, 2))
    ground = uv[:, :1] * a + uv[:, 1:] * b + rng.normal(0, 0.003, (20000, 1)) * n
    s = rng.normal(size=(6000, 3))
    ball = 0.4 * s / np.linalg.norm(s, axis=1, keepdims=True) + 0.41 * n  # a ball resting on it
    junk = rng.uniform(-3, 3, size=(300, 3)) + [0, 0, 3]  # backdrop points far above
    P = np.concatenate([ground, ball, junk])
    up = np.array([0, 0, 1.0])
    plane = fit_support(P, up, tol=0.01)
    assert plane is not None and abs(plane.tilt_deg - 8) < 0.5
    cams = CameraSet(["a"], np.eye(3)[None], np.eye(3)[None], np.zeros((1, 3)), np.array([[10, 10]]), np.zeros(1))
    reg = object_region(P, cams, up, plane, 0.03, 0.05, look_at=0.41 * n)
    lo, hi = reg.bbox
    c = 0.41 * n
    # the box reaches down to the (tilted) support under the ball: a little wider in x
    assert np.all(np.abs(lo[:2] - (c[:2] - 0.4)) < 0.15) and np.all(np.abs(hi[:2] - (c[:2] + 0.4)) < 0.15)
    assert hi[2] < c[2] + 0.45  # the backdrop junk above is not part of the object
    assert reg.info["support_points_removed"] >= 19000


def test_viewer_without_scale_has_no_mm(tmp_path):
    from medrecon.mesh import SurfaceModel
    from medrecon.viz.html import write_viewer

    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.0]])
    f = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])
    p = write_viewer([SurfaceModel("m", v, f, (0.8, 0.8, 0.8))], tmp_path / "v.html", units="arbitrary")
    text = p.read_text()
    assert '"units":"arbitrary"' in text
    assert 'data.units !== "mm"' in text  # the page hides the mm scale bar for such models


@pytest.fixture(scope="module")
def support_scene(tmp_path_factory):
    """The issue's scene (sphere and box on a textured disc), 20 views at 320x240, true cameras with an
    empty points3D.txt (as a calibrated rig gives)."""
    import torch

    from medrecon.multiview import scenes as S

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("mv_support")
    sc = S.standard_scenes()["sphere_box"]
    truth, renders = S.write_scene(sc, root, n=20, width=320, height=240, supersample=1)
    assert (root / "cameras" / "points3D.txt").read_text().count("\n") <= 1  # no points given
    return sc, root, truth, renders


@pytest.mark.slow
def test_known_cameras_on_a_support_plane(support_scene, tmp_path):
    """Known cameras without points: triangulated, support removed, model in the cameras' frame."""
    import trimesh

    from medrecon.multiview import scenes as S
    from medrecon.multiview.pipeline import MultiviewOptions, reconstruct_multiview

    sc, root, truth, renders = support_scene
    out = tmp_path / "out"
    opts = MultiviewOptions(device="cpu", faces=30000, texture_px=512)
    events = []
    res = reconstruct_multiview(root / "photos", out, cameras_dir=root / "cameras", options=opts, progress=events.append)
    from medrecon.progress import ProgressEvent

    assert events and all(isinstance(e, ProgressEvent) for e in events)  # the one progress protocol
    writes = [e for e in events if e.stage == "write"]
    assert writes[-1].done == writes[-1].total == len(writes)  # one event per written file, the report last
    rep = json.loads((out / "report.json").read_text())
    assert rep["dense"]["sparse"].startswith("triangulated with the given poses")
    assert rep["dense"]["support"]["found"] is True and rep["dense"]["support"]["tilt_from_cameras_up_deg"] < 1
    assert rep["scale"]["units"] == "camera units" and rep["frame"].startswith("the given cameras' world frame")
    assert not (out / "work").exists()  # intermediate copies removed unless --keep-work
    assert rep["dense"]["textured_pixels_with_depth"] >= 0.6
    # no alignment: the model is in the true cameras' world frame
    pts = trimesh.Trimesh(res.vertices, res.faces, process=False).sample(40000)
    diag = sc.diagonal()
    m = S.chamfer_fscore(pts, sc.sample_surface(80000), S.visible_points(sc, truth, renders), 0.005 * diag)
    # issue goal: Chamfer <= 0.5 % and F@0.5 % >= 0.85. Measured here (docs/multiview.md): Chamfer 0.54 %,
    # F 0.74 (accuracy 0.36 %, recall 0.67): the goal is not met yet; these bounds guard what holds.
    assert m["chamfer"] <= 0.0075 * diag, m
    assert m["fscore"] >= 0.65, m
    assert m["precision"] >= 0.75, m
    # the support is gone: nothing of the model lies far out on the disc
    assert np.percentile(np.linalg.norm(res.vertices[:, :2], axis=1), 99) < 0.8


def test_neural_sdf_trains_on_cpu_tiny():  # 3.9 s on the quiet 2-core box
    """The NeuS-style field at a tiny size on the CPU: the photometric loss falls and the zero level
    sits on the scene (object or support) rather than on the initial sphere."""
    import torch

    from medrecon.multiview import neural as NN
    from medrecon.multiview import scenes as S
    from medrecon.multiview.cameras import CameraSet

    torch.manual_seed(0)
    torch.set_num_threads(2)
    sc = S.standard_scenes()["sphere_box"]
    cams = S.scene_cameras(sc, 8, 64, 48)
    ims = [sc.render(c, supersample=1)[0] for c in cams]
    cs = CameraSet([f"v{i}" for i in range(8)], np.array([c.K for c in cams]), np.array([c.R for c in cams]),
                   np.array([c.t for c in cams]), np.array([(64, 48)] * 8), np.zeros(8), total=8)
    box = sc.bbox()
    ext = box[1] - box[0]
    box = np.stack([box[0] - 0.1 * ext, box[1] + 0.1 * ext])
    r = NN.train_sdf(ims, cs, box, iters=40, batch=128, n_samples=16, finest=32, log2_t=12, n_levels=6, lr=2e-2)
    assert r.iters == 40
    assert np.mean(r.losses[-8:]) < 0.97 * np.mean(r.losses[:4]), (r.losses[:4], r.losses[-8:])
    P = NN.surface_points(r.model, box, resolution=40)
    assert len(P) > 100
    vals, lo, voxel = NN.sdf_grid(r.model, box, 24)
    assert vals.min() < 0 < vals.max()
