"""Device finishing steps (:mod:`medrecon.surface.device_finish`) against the numpy ones, on the
CPU fallback of the same PyTorch code (what runs on CUDA).

Truth: the numpy/scipy implementations the CPU mesher uses (:mod:`medrecon.surface.qa`,
:mod:`medrecon.surface.finish`, :mod:`medrecon.surface.intersections`,
:mod:`medrecon.surface.repair`), surface by surface; the device versions take several surfaces
at once. Surfaces are small smoothed contours of touching random blobs, with planted
coincident points, planted intersections, an open surface and a pinched one.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from medrecon.surface import device_finish as DF
from medrecon.surface import gpu as G
from medrecon.surface import intersections as I
from medrecon.surface import finish as FIN
from medrecon.surface import qa as Q
from medrecon.surface import repair as R


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors: one intra-op thread is faster than two on a busy 2-core runner."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _blobs(shape=(20, 20, 18), seed=0):
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    lab = np.digitize(a, (-0.04, 0.0, 0.04)).astype(np.uint8)
    lab[:2] = 0
    return lab


def _surfaces(seed=0, smooth=True):
    """(points LPS float64, unsmoothed points, faces, vgroup, vstart, fstart) of 3 touching blobs."""
    con = G.contour_labels(_blobs(seed=seed), device="cpu")
    pts = G.windowed_sinc(con.points, con.faces, 0.01, 40, group=con.group) if smooth else con.points
    aff = np.diag([0.8, 0.9, 1.5])
    lin = torch.as_tensor(aff, dtype=torch.float64)
    return (pts.double() @ lin.T, con.points.double() @ lin.T, con.faces, con.group, con.vstart, con.fstart)


def _split(x, start, n):
    return x[start[n]:start[n + 1]]


def _local(faces, vstart, fstart, n):
    return (_split(faces, fstart, n) - vstart[n]).numpy()


def _plant_intersections(p, faces, vstart, fstart, n, k=3, seed=1):
    """Push ``k`` vertices of surface ``n`` deep inward along their normals: their triangles
    then cut through the surface behind them."""
    rng = np.random.default_rng(seed)
    p = p.clone()
    sl = slice(vstart[n], vstart[n + 1])
    nrm = DF.vertex_normals(p, faces)
    idx = rng.choice(np.arange(vstart[n], vstart[n + 1]), size=k, replace=False)
    extent = float((p[sl].amax(0) - p[sl].amin(0)).min())
    p[idx] -= 0.8 * extent * nrm[idx]
    return p


def test_coincident_vertices_same_set_per_surface():
    p, _, faces, g, vs, fs = _surfaces()
    p = p.clone()
    # plant: two vertices of surface 0 on one point, one of surface 1 on a surface-0 point (not coincident:
    # different surfaces), and a -0.0 / 0.0 pair
    p[vs[0] + 5] = p[vs[0] + 40]
    p[vs[1] + 7] = p[vs[0] + 9]
    p[vs[2] + 3] = p[vs[2] + 11]
    p[vs[2] + 3, 0] = -0.0
    p[vs[2] + 11, 0] = 0.0
    got = DF.coincident_vertices(p, g)
    for n in range(3):
        want = Q.coincident_vertices(_split(p, vs, n).numpy())
        assert np.array_equal(_split(got, vs, n).numpy(), want)
    assert got[[vs[0] + 5, vs[0] + 40, vs[2] + 3, vs[2] + 11]].all()


def test_separate_coincident_moves_what_numpy_moves():
    p, _, faces, g, vs, fs = _surfaces()
    p = p.clone()
    p[vs[0] + 5] = p[vs[0] + 40]
    p[vs[2] + 8] = p[vs[2] + 30]
    got, moved = DF.separate_coincident(p, faces, g, 3)
    assert int(moved[0]) >= 2 and int(moved[2]) >= 2
    assert not DF.coincident_vertices(got, g).any()
    for n in range(3):
        pn = _split(p, vs, n).numpy()
        want, k = FIN.separate_coincident(pn, _local(faces, vs, fs, n))
        assert k == int(moved[n])
        # moved along the same normals; where both sheets' normals agree, a random direction
        # (drawn in another order here): the same vertices moved, by at most 2 eps_mm
        dup = Q.coincident_vertices(pn)
        gn = _split(got, vs, n).numpy()
        np.testing.assert_array_equal(gn[~dup], pn[~dup])
        assert np.abs(gn[dup] - pn[dup]).max() <= 2.1e-3
        same = np.all(np.abs(gn - want) < 1e-12, axis=1)
        assert same.mean() > 0.9


def test_self_intersecting_faces_same_triangles_with_planted_intersections():
    p, _, faces, g, vs, fs = _surfaces()
    p = _plant_intersections(p, faces, vs, fs, 1)
    got = DF.self_intersecting_faces(p, faces, g, 3, chunk_faces=1500, pair_batch=5000)  # several chunks
    total = 0
    for n in range(3):
        want = I.self_intersecting_faces(_split(p, vs, n).numpy(), _local(faces, vs, fs, n))
        assert np.array_equal(_split(got, fs, n).numpy(), want)
        total += int(want.sum())
    assert int(_split(got, fs, 1).sum()) > 0 and total == int(got.sum())
    # one surface only
    only = DF.self_intersecting_faces(p, faces, g, 3, groups=torch.tensor([False, True, False]))
    assert torch.equal(only, got & (DF.face_groups(faces, g) == 1))


def test_folded_pair_is_found():
    # two triangles over one edge, folded flat onto each other
    p = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.01, 0.9, 1e-4]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [1, 0, 3]])
    want = I.self_intersecting_faces(p.numpy(), f.numpy())
    assert want.all()
    assert torch.equal(DF.self_intersecting_faces(p, f), torch.as_tensor(want))


def test_relax_self_intersections_as_numpy():
    p, before, faces, g, vs, fs = _surfaces()
    p = _plant_intersections(p, faces, vs, fs, 0, k=2, seed=3)
    got, info = DF.relax_self_intersections(p, before, faces, g, 3)
    assert int(info["self_intersecting_faces_smoothed"][0]) > 0
    for n in range(3):
        want, winfo = R.relax_self_intersections(_split(p, vs, n).numpy(), _split(before, vs, n).numpy(),
                                                 _local(faces, vs, fs, n))
        np.testing.assert_allclose(_split(got, vs, n).numpy(), want, atol=1e-12)
        for k in ("self_intersecting_faces_smoothed", "vertices_relaxed", "self_intersecting_faces"):
            assert int(info[k][n]) == winfo[k], (n, k)


def test_restore_volume_as_numpy():
    p, before, faces, g, vs, fs = _surfaces()
    target = DF.signed_volumes(before, faces, g, 3).abs()
    got = DF.restore_volume(p, faces, g, 3, target)
    for n in range(3):
        want = FIN.restore_volume(_split(p, vs, n).numpy(), _local(faces, vs, fs, n), float(target[n]))
        np.testing.assert_allclose(_split(got, vs, n).numpy(), want, rtol=0, atol=1e-9)
    np.testing.assert_allclose(DF.signed_volumes(got, faces, g, 3).numpy(), target.numpy(), rtol=1e-4)


def _cube(origin):
    v = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], np.float64) + origin
    f = np.array([[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
                  [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]])
    return v, f


def _pinched():
    """Two cubes sharing one vertex (closed, edge-manifold, not vertex-manifold)."""
    v1, f1 = _cube(0.0)
    v2, f2 = _cube(1.0)
    v = np.vstack([v1, v2[1:]])
    remap = np.r_[7, np.arange(8, 15)]  # cube 2's corner (1,1,1) is cube 1's vertex 7
    return v, np.vstack([f1, remap[f2]])


@pytest.mark.parametrize("smooth", [True, False])
def test_compute_qa_same_figures(smooth):
    p, before, faces, g, vs, fs = _surfaces(smooth=smooth)
    meshes = [(_split(p, vs, n).numpy(), _local(faces, vs, fs, n)) for n in range(3)]
    pv, pf = meshes[0]
    meshes.append((pv.copy(), pf[:-5]))  # open
    meshes.append(_pinched())
    cv, cf = meshes[1]
    cv = cv.copy()
    cv[3] = cv[50]  # welded topology differs
    meshes.append((cv, cf))
    meshes.append(_cube(0.0))
    P, F, Gv, _, _ = DF.pack(meshes, "cpu")
    ng = len(meshes)
    vox = [100.0 + n for n in range(ng)]
    disp = [0.1 * n for n in range(ng)]
    got = DF.compute_qa(P, F, Gv, ng, voxel_volume_mm3=vox, smoothing_displacement_mm=disp)
    for n, (v, f) in enumerate(meshes):
        want = Q.compute_qa(v, f, voxel_volume_mm3=vox[n], smoothing_displacement_mm=disp[n])
        assert set(got[n]) == set(want)
        for k, w in want.items():
            if k in ("mesh_volume_mm3", "surface_area_mm2", "volume_diff_pct"):
                assert got[n][k] == pytest.approx(w, rel=1e-6, abs=2e-3), (n, k)
            elif k == "bbox_mm":
                np.testing.assert_allclose(got[n][k], w, atol=1e-3)
            else:
                assert got[n][k] == w, (n, k, got[n][k], w)
    assert not got[3]["watertight"] and not got[4]["vertex_manifold"] and got[5]["coincident_vertices"] >= 1


def test_gpu_mesher_finishing_on_device_matches_cpu_chain():
    """The GPU mesher's QA (finishing and QA on the device) equals the numpy chain run on its
    own smoothed surfaces, keep-volume included."""
    from medrecon.volume import Volume

    lab = _blobs(seed=2)
    aff = np.diag([0.8, 0.9, 1.5, 1.0])
    models = G.build_surfaces_gpu(Volume(lab, aff, {"kind": "labelmap"}), device="cpu", keep_volume=True)
    assert len(models) == 3
    for m in models:
        want = Q.compute_qa(m.vertices, m.faces, voxel_volume_mm3=m.qa["voxel_volume_mm3"],
                            smoothing_displacement_mm=m.qa["smoothing_max_displacement_mm"])
        for k in ("triangles", "vertices", "watertight", "manifold", "components", "euler_characteristic",
                  "coincident_vertices"):
            assert m.qa[k] == want[k]
        assert m.qa["mesh_volume_mm3"] == pytest.approx(want["mesh_volume_mm3"], rel=1e-6)
        assert m.qa["mesh_volume_mm3"] == pytest.approx(m.qa["volume_kept_mm3"], rel=1e-2)  # relaxed after
        assert m.qa["self_intersecting_faces"] == int(I.self_intersecting_faces(m.vertices, m.faces).sum())
        assert m.qa["device"] == "cpu"
