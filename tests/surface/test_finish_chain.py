"""The one finishing chain (surface/finish.py), the one decimation (surface/decimate.py, qem.py)
and the compiled self-intersection search: winding that cannot flip, both meshers through the
same chain, topology-safe decimation, bounded memory."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medrecon.mesh import signed_volume
from medrecon.surface import build_surfaces
from medrecon.surface import finish as F
from medrecon.surface.decimate import decimate_closed, simplify
from medrecon.surface.intersections import _grid_entries, self_intersecting_faces
from medrecon.surface.qa import topology_qa
from medrecon.volume import Volume


def _noisy_network_map(seed: int = 0, n: int = 32, labels: int = 24, noisy: bool = True) -> np.ndarray:
    """What a network gives on a noisy scan: speckle, thin folded shells, fragments, labels
    touching each other and the border (``noisy=False``: the smooth bands only)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(n, n, n)), 1.2 if noisy else 3.0)
    lab = np.digitize(field, np.quantile(field, np.linspace(0, 1, labels + 1)[1:-1])).astype(np.int16)
    if not noisy:
        return lab
    lab[rng.random(lab.shape) < 0.05] = 0  # speckle
    spots = rng.random(lab.shape) < 0.01  # stray voxels of random labels
    lab[spots] = rng.integers(1, labels + 1, size=int(spots.sum()))
    return lab


@pytest.mark.parametrize("mirror", [False, True])
def test_noisy_network_label_map_has_no_structure_inside_out(mirror):
    lab = _noisy_network_map()
    aff = np.diag([0.8, 0.9, 1.1, 1.0])
    if mirror:
        aff[0, 0] = -0.8
    models = build_surfaces(Volume(lab, aff), None, smoothing=0.5, workers=1)
    assert len(models) >= 20  # the map really holds many structures
    for m in models:
        assert m.qa["mesh_volume_mm3"] > 0, (m.label, m.qa["mesh_volume_mm3"])
        assert signed_volume(m.vertices, m.faces) > 0
        assert m.qa["watertight"] and m.qa["consistently_oriented"]


def test_orient_outward_is_decided_by_the_closed_contour():
    lab = np.zeros((12, 12, 12), np.uint8)
    lab[3:9, 3:9, 3:9] = 1
    m = build_surfaces(Volume(lab, np.eye(4)), None, smoothing=0.0, qa=False)[0]
    inverted = m.faces[:, ::-1]
    assert np.array_equal(F.orient_outward(m.vertices, inverted), m.faces)
    assert np.array_equal(F.orient_outward(m.vertices, m.faces), m.faces)


@pytest.mark.slow
def test_both_meshers_give_the_same_meshes_through_the_one_chain(monkeypatch):
    pytest.importorskip("torch")
    from medrecon.surface.gpu import build_surfaces_gpu

    lab = _noisy_network_map(seed=1, n=28, labels=5, noisy=False)
    vol = Volume(lab, np.diag([0.7, 0.7, 1.2, 1.0]))
    calls = []
    real = F.finish_surface

    def spy(*a, **k):
        if k.get("group") is not None:  # the GPU mesher: every structure at once, on the device
            import torch

            groups = k["group"][a[1][:, 0]]
            calls.extend(torch.bincount(groups, minlength=k["n_groups"]).tolist())
        else:
            calls.append(len(a[1]))
        return real(*a, **k)

    import medrecon.surface.mesher as M
    monkeypatch.setattr(M, "finish_surface", spy)
    monkeypatch.setattr(F, "finish_surface", spy)
    for red in (0.0, 0.5):
        calls.clear()
        cpu = build_surfaces(vol, None, smoothing=0.5, reduction=red, workers=1)
        n_cpu = len(calls)
        gpu = build_surfaces_gpu(vol, None, smoothing=0.5, reduction=red, workers=1, device="cpu")
        assert n_cpu == len(cpu) and len(calls) == len(cpu) + len(gpu)  # every structure, both meshers
        assert sorted(calls[:n_cpu]) == sorted(calls[n_cpu:])  # the same contours went in
        for a, b in zip(cpu, gpu):
            assert a.label == b.label
            for k in ("watertight", "manifold", "components", "euler_characteristic", "self_intersecting_faces"):
                assert a.qa[k] == b.qa[k], (a.label, k)
            tol = 0.005 if red == 0 else 0.03  # decimation amplifies float32 smoothing differences
            assert abs(a.qa["mesh_volume_mm3"] - b.qa["mesh_volume_mm3"]) <= tol * a.qa["mesh_volume_mm3"] + 0.5
            if red == 0:
                assert a.n_triangles == b.n_triangles


def test_steps_can_be_replaced_by_a_device_implementation():
    lab = np.zeros((14, 14, 14), np.uint8)
    lab[3:11, 4:10, 3:11] = 1
    m = build_surfaces(Volume(lab, np.eye(4)), None, smoothing=0.0, qa=False)[0]
    seen = []

    def find(points, faces, *, active=None):
        seen.append("find")
        return self_intersecting_faces(points, faces, active=active)

    steps = F.Steps(find_intersections=find)
    rng = np.random.default_rng(0)
    moved = m.vertices + rng.normal(scale=0.05, size=m.vertices.shape)
    p, f, info = F.finish_surface(moved, m.faces, m.vertices, smoothed=True, voxel_volume_mm3=float(lab.sum()),
                                  steps=steps)
    assert seen and info["self_intersecting_faces"] == 0 and info["watertight"]


def _porous_surface():
    """A block with many one-voxel tunnels (what trabecular bone gives the decimation)."""
    rng = np.random.default_rng(3)
    lab = np.zeros((34, 34, 34), np.uint8)
    lab[2:-2, 2:-2, 2:-2] = 1
    lab[rng.random(lab.shape) < 0.18] = 0
    lab = ndimage.binary_opening(lab, iterations=1).astype(np.uint8)
    big = ndimage.label(lab)[0]
    lab = (big == np.argmax(np.bincount(big.ravel())[1:]) + 1).astype(np.uint8)
    return build_surfaces(Volume(lab, np.diag([0.5, 0.5, 0.5, 1.0])), None, smoothing=0.5, workers=1)[0]


def test_decimation_of_many_tunnels_stays_closed_same_topology_no_intersections():
    m = _porous_surface()
    t0 = topology_qa(m.faces, len(m.vertices))
    assert t0["euler_characteristic"] < -50  # the collapse path, not the plain quadric
    p, f, info = decimate_closed(m.vertices, m.faces, 0.8)
    t = topology_qa(f, len(p))
    assert info["method"] == "collapse" and info["reduction"] > 0.4
    assert t["watertight"] and t["manifold"] and t["consistently_oriented"]
    assert t["euler_characteristic"] == t0["euler_characteristic"]
    assert not self_intersecting_faces(p, f).any()
    assert abs(signed_volume(p, f) / signed_volume(m.vertices, m.faces) - 1) <= 0.02
    # the plain quadric decimation pinches this surface: the checks are needed
    ps, fs = simplify(m.vertices, m.faces, 0.8)
    ts = topology_qa(fs, len(ps))
    assert not (ts["manifold"] and ts["euler_characteristic"] == t0["euler_characteristic"]
                and not self_intersecting_faces(ps, fs).any())


def test_intersection_search_memory_is_bounded_by_the_triangle_count():
    # a speckled surface plus huge triangles: each would enter thousands of small cells
    rng = np.random.default_rng(0)
    v = rng.random((3000, 3)) * 100.0
    f = rng.integers(0, 3000, size=(2000, 3))
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    key, ids, *_ = _grid_entries(v, f, cell=0.01)
    assert len(key) <= 4 * len(f) + 64
    hit = self_intersecting_faces(v, f)
    assert hit.sum() > 100  # random triangles in a box cross each other


def test_intersection_search_matches_brute_force_and_active_subset():
    rng = np.random.default_rng(1)
    v = rng.random((90, 3)) * 10
    f = rng.integers(0, 90, size=(60, 3))
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    hit = self_intersecting_faces(v, f)
    # brute force: every pair through the same kernel, one pair at a time
    brute = np.zeros(len(f), bool)
    for a in range(len(f)):
        for b in range(a + 1, len(f)):
            if self_intersecting_faces(v, f[[a, b]]).any():
                brute[[a, b]] = True
    assert np.array_equal(hit, brute) and hit.any()
    act = np.zeros(len(f), bool)
    act[:10] = True
    sub = self_intersecting_faces(v, f, active=act)
    assert not (sub & ~hit).any() and np.array_equal(sub[:10], hit[:10])
