"""Meshing core: accuracy on analytic phantoms, orientation, joint mode, keep-volume, QA, errors.

Phantom shapes (exact signed distance, volume) come from :mod:`medrecon.phantoms`; the binary
label maps are rasterised here by the voxel-centre inside test (what a threshold or a
segmentation network hands to the mesher). Accuracy is measured with the shapes' own exact
distance functions, never with figures produced by the mesher.
"""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from medrecon import phantoms as P

from medrecon.surface.qa import surface_error
from medrecon.errors import MedreconError, MeshError
from medrecon.surface import build_surfaces, mesh_mask
from medrecon.surface.mesher import smoothing_parameters
from medrecon.surface.qa import compute_qa, vertex_manifold
from medrecon.volume import Volume

SHAPES = {
    "sphere": P.Sphere((1.5, -2.25, 3.1), 20.0),
    "shell": P.EllipsoidShell((-1.2, 0.7, 2.3), (32.0, 26.0, 20.0), (24.0, 18.0, 12.0), (10.0, 20.0, 30.0)),
    "torus": P.Torus((0.6, -1.1, 0.9), 25.0, 8.0, (30.0, 15.0, 0.0)),
}
#: expected (connected pieces, Euler characteristic) from topology: sphere, shell = two spheres, torus
TOPOLOGY = {"sphere": (1, 2), "shell": (2, 4), "torus": (1, 0)}
GRIDS = {
    "anisotropic": ((0.7, 0.8, 1.5), None),
    "oblique": ((0.9, 0.9, 1.2), (20.0, 10.0, 30.0)),
}


def _extent(shape) -> float:
    if isinstance(shape, P.Sphere):
        return 2 * shape.radius
    if isinstance(shape, P.EllipsoidShell):
        return 2 * max(shape.outer)
    return 2 * (shape.major + shape.minor)


def rasterise(shape, spacing, rotation=None, margin=5.0, label=1) -> Volume:
    """Binary label map of ``shape``: voxel value ``label`` where the voxel centre is inside."""
    n = [int(np.ceil((_extent(shape) + 2 * margin) / s)) + 1 for s in spacing]
    aff = P.grid_affine(n, spacing, shape.center, rotation)
    ijk = np.indices(n, dtype=np.float64).reshape(3, -1).T
    inside = shape.contains(ijk @ aff[:3, :3].T + aff[:3, 3]).reshape(n)
    return Volume(inside.astype(np.uint8) * label, aff, {"kind": "labelmap"})


def face_normals(v, f):
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def maps():
    return {(s, g): rasterise(SHAPES[s], *GRIDS[g]) for s in SHAPES for g in GRIDS}


def test_slicer_smoothing_mapping():
    # the table in Slicer's vtkBinaryLabelmapToClosedSurfaceConversionRule comment
    for f, pb, it in [(0.0, 1.0, 20), (0.25, 0.1, 30), (0.5, 0.01, 40), (0.75, 0.001, 50), (1.0, 1e-4, 60)]:
        p, i = smoothing_parameters(f)
        assert p == pytest.approx(pb) and i == it


@pytest.mark.parametrize("grid", list(GRIDS))
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_accuracy_on_analytic_phantoms(maps, shape_name, grid):
    shape = SHAPES[shape_name]
    spacing, _ = GRIDS[grid]
    (m,) = build_surfaces(maps[shape_name, grid], None)  # defaults: smoothing 0.5, no decimation
    err = surface_error(m.vertices, shape)
    assert err["mean"] <= 0.1 * min(spacing), err
    tm = m.to_trimesh()
    assert tm.is_watertight and tm.is_winding_consistent
    assert tm.volume == pytest.approx(shape.volume_mm3, rel=0.01)
    assert tm.volume > 0  # positive enclosed volume: normals point out
    assert (m.qa["components"], m.qa["euler_characteristic"]) == TOPOLOGY[shape_name]
    assert m.qa["watertight"] and m.qa["manifold"] and m.qa["consistently_oriented"]


def test_normals_point_outward_on_every_face(maps):
    sph = SHAPES["sphere"]
    for grid in GRIDS:
        (m,) = build_surfaces(maps["sphere", grid], None)
        centres = m.vertices[m.faces].mean(1)
        radial = centres - np.asarray(sph.center)
        assert np.all(np.einsum("ij,ij->i", face_normals(m.vertices, m.faces), radial) > 0)


def test_mirrored_affine_keeps_outward_normals():
    """det(affine) < 0 (e.g. a flipped row axis): winding is reversed so normals stay outward."""
    sph = SHAPES["sphere"]
    mirror = np.diag([-1.0, 1.0, 1.0]) @ P.rotation_matrix((0, 0, 25))
    vol = rasterise(sph, (0.8, 0.9, 1.1), mirror)
    assert np.linalg.det(vol.affine[:3, :3]) < 0
    (m,) = build_surfaces(vol, None)
    assert surface_error(m.vertices, sph)["mean"] <= 0.08
    radial = m.vertices[m.faces].mean(1) - np.asarray(sph.center)
    assert np.all(np.einsum("ij,ij->i", face_normals(m.vertices, m.faces), radial) > 0)
    assert m.to_trimesh().volume > 0


def test_index_to_lps_mapping_of_an_unsmoothed_box():
    """f = 0: discrete flying edges puts the surface half-way between voxel centres."""
    lab = np.zeros((12, 10, 8), np.uint8)
    lab[2:7, 3:9, 1:5] = 1  # voxels i 2..6, j 3..8, k 1..4
    aff = np.array([[0.0, 0.0, 2.5, 10.0], [0.7, 0.0, 0.0, -5.0], [0.0, -0.9, 0.0, 3.0], [0, 0, 0, 1]])
    (m,) = build_surfaces(Volume(lab, aff), None, smoothing=0.0)
    ijk = Volume(lab, aff).lps_to_index(m.vertices)
    np.testing.assert_allclose(ijk.min(0), [1.5, 2.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(ijk.max(0), [6.5, 8.5, 4.5], atol=1e-6)
    # the box's corners are cut by one voxel-corner tetrahedron each edge: volume is slightly
    # below the voxel volume, but all of the 6 faces are flat and in place
    assert m.qa["voxel_volume_mm3"] == pytest.approx(5 * 6 * 4 * abs(np.linalg.det(aff[:3, :3])))
    assert 0.85 < m.qa["mesh_volume_mm3"] / m.qa["voxel_volume_mm3"] < 1.0


def test_structure_touching_the_border_is_closed():
    lab = np.ones((6, 7, 5), np.uint8)  # fills the whole volume
    (m,) = build_surfaces(Volume(lab, np.eye(4)), None)
    assert m.qa["watertight"] and m.qa["manifold"]
    assert m.to_trimesh().is_watertight


def test_joint_mode_shares_boundaries_without_gaps_or_overlaps():
    sph = SHAPES["sphere"]
    vol = rasterise(sph, (0.9, 0.9, 1.2), (20.0, 10.0, 30.0))
    lab = vol.array.copy()
    ijk = np.indices(lab.shape).reshape(3, -1).T
    left = (vol.index_to_lps(ijk)[:, 0] > sph.center[0] + 3.0).reshape(lab.shape)  # a plane cut
    lab[(lab == 1) & left] = 2
    models = build_surfaces(vol.with_array(lab), None, joint=True)
    assert [m.label for m in models] == [1, 2]
    a, b = models
    for m in models:
        assert m.qa["watertight"] and m.qa["manifold"] and m.qa["consistently_oriented"]

    def tri_keys(m):
        t = np.round(m.vertices[m.faces], 9)
        return {tuple(sorted(map(tuple, tri))) for tri in t}

    shared = tri_keys(a) & tri_keys(b)
    assert len(shared) > 100  # the cut disc is one set of triangles used by both
    # no gap and no overlap: the two volumes add up exactly to the volume inside the outer
    # (non-shared) triangles of both, and to the whole sphere within 1 %
    outer_tris = []
    for m in models:
        keys = [tuple(sorted(map(tuple, tri))) for tri in np.round(m.vertices[m.faces], 9)]
        keep = np.array([k not in shared for k in keys])
        outer_tris.append(m.vertices[m.faces[keep]])
    tris = np.concatenate(outer_tris)
    outer = trimesh.Trimesh(tris.reshape(-1, 3), np.arange(len(tris) * 3).reshape(-1, 3), process=True)
    va, vb = a.to_trimesh().volume, b.to_trimesh().volume
    assert va > 0 and vb > 0
    assert va + vb == pytest.approx(outer.volume, rel=1e-6)
    assert va + vb == pytest.approx(sph.volume_mm3, rel=0.01)


def test_independent_mode_meshes_each_label_separately():
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[3:10, 3:15, 3:15] = 1
    lab[10:17, 3:15, 3:15] = 2
    models = build_surfaces(Volume(lab, np.diag([0.5, 0.5, 1.0, 1.0])), None, smoothing=0.0)
    assert [m.name for m in models] == ["label_1", "label_2"]
    # each closed on its own; the two meshes meet near the plane between i = 9 and i = 10
    for m in models:
        assert m.qa["watertight"]
    assert models[0].vertices[:, 0].max() == pytest.approx(9.5 * 0.5, abs=0.05)
    assert models[1].vertices[:, 0].min() == pytest.approx(9.5 * 0.5, abs=0.05)


def test_keep_volume_restores_the_pre_smoothing_volume():
    vol = rasterise(SHAPES["torus"], (0.8, 0.8, 1.0))
    (raw,) = build_surfaces(vol, None, smoothing=0.0)
    (shrunk,) = build_surfaces(vol, None, smoothing=1.0)
    (kept,) = build_surfaces(vol, None, smoothing=1.0, keep_volume=True)
    v0, v1, v2 = (m.to_trimesh().volume for m in (raw, shrunk, kept))
    assert v1 < 0.985 * v0  # strong smoothing shrinks a thin torus
    assert v2 == pytest.approx(v0, rel=1e-3)
    assert kept.qa["watertight"]
    # and the surface gets closer to the truth, not farther
    assert surface_error(kept.vertices, SHAPES["torus"])["bias"] > surface_error(shrunk.vertices, SHAPES["torus"])["bias"]


def test_decimation_reduces_triangles_and_stays_closed(maps):
    vol = maps["sphere", "oblique"]
    (full,) = build_surfaces(vol, None)
    (dec,) = build_surfaces(vol, None, reduction=0.8)
    ratio = dec.n_triangles / full.n_triangles
    assert 0.15 <= ratio <= 0.25
    assert dec.qa["watertight"] and dec.qa["manifold"]
    assert surface_error(dec.vertices, SHAPES["sphere"])["mean"] <= 0.1 * 0.9
    assert dec.to_trimesh().volume == pytest.approx(SHAPES["sphere"].volume_mm3, rel=0.01)


def test_mesh_mask_single_binary_mask():
    vol = rasterise(SHAPES["sphere"], (1.0, 1.0, 1.0))
    m = mesh_mask(vol.array.astype(bool), vol.affine, name="ball", color=(1, 0, 0), label=7)
    assert (m.name, m.label, m.color) == ("ball", 7, (1.0, 0.0, 0.0))
    assert surface_error(m.vertices, SHAPES["sphere"])["mean"] <= 0.1
    assert m.qa["watertight"]


class _Info:  # any object with .value .name .color is accepted (LabelInfo duck type)
    def __init__(self, value, name, color):
        self.value, self.name, self.color = value, name, color


def test_labels_names_colours_and_missing_labels():
    lab = np.zeros((16, 16, 16), np.uint8)
    lab[2:7, 2:7, 2:7] = 3
    lab[9:14, 9:14, 9:14] = 5
    lab[9:12, 2:5, 2:5] = 6  # present but not asked for
    table = {3: _Info(3, "femur_left", (255, 0, 0)), 5: _Info(5, "hip left", (0.0, 0.5, 1.0)),
             4: _Info(4, "absent", (0, 0, 0))}
    models = build_surfaces(Volume(lab, np.eye(4)), table)
    assert [(m.label, m.name) for m in models] == [(3, "femur_left"), (5, "hip left")]
    assert models[0].color == (1.0, 0.0, 0.0) and models[1].color == (0.0, 0.5, 1.0)
    assert models[0].qa["label"] == 3
    every = build_surfaces(Volume(lab, np.eye(4)), None)
    assert [m.name for m in every] == ["label_3", "label_5", "label_6"]


def test_progress_callback_reports_each_structure():
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[1:4, 1:4, 1:4] = 1
    lab[5:9, 5:9, 5:9] = 2
    calls = []
    build_surfaces(Volume(lab, np.eye(4)), None, progress=lambda ev: calls.append((ev.done, ev.total, ev.message)))
    assert calls == [(1, 2, "label_1"), (2, 2, "label_2")]


@pytest.mark.parametrize("bad, kwargs, words", [
    (np.zeros((5, 5, 5), np.uint8), {}, "empty"),
    (np.ones((5, 5, 5), np.uint8), {"smoothing": 1.5}, "smoothing"),
    (np.ones((5, 5, 5), np.uint8), {"reduction": 1.0}, "reduction"),
    (np.full((5, 5, 5), 0.5, np.float32), {}, "non-integer"),
    (np.ones((5, 5, 5, 2), np.uint8), {}, "3D"),
])
def test_bad_input_raises_mesh_error(bad, kwargs, words):
    with pytest.raises(MeshError) as ei:
        build_surfaces(Volume(bad, np.eye(4)), None, **kwargs)
    assert isinstance(ei.value, MedreconError)
    assert words in str(ei.value) and "\n" not in str(ei.value)


def test_qa_fields_match_independent_computation(maps):
    vol = maps["torus", "anisotropic"]
    (m,) = build_surfaces(vol, None)
    tm = m.to_trimesh()
    qa = m.qa
    assert qa["triangles"] == len(tm.faces) and qa["vertices"] == len(tm.vertices)
    assert qa["surface_area_mm2"] == pytest.approx(tm.area, rel=1e-6)
    assert qa["mesh_volume_mm3"] == pytest.approx(tm.volume, rel=1e-6)
    assert qa["voxel_volume_mm3"] == pytest.approx(int(vol.array.sum()) * 0.7 * 0.8 * 1.5, rel=1e-9)
    assert qa["volume_diff_pct"] == pytest.approx(100 * (tm.volume / qa["voxel_volume_mm3"] - 1), abs=1e-3)
    np.testing.assert_allclose(qa["bbox_mm"], tm.bounds, atol=1e-3)
    assert 0.05 < qa["smoothing_max_displacement_mm"] < 1.5  # smoothing moved the staircase, a little
    (raw,) = build_surfaces(vol, None, smoothing=0.0)
    assert raw.qa["smoothing_max_displacement_mm"] == 0.0


def test_qa_detects_defects():
    tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    tf = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    good = compute_qa(tet, tf)
    assert good["watertight"] and good["manifold"] and good["consistently_oriented"]
    assert good["mesh_volume_mm3"] == pytest.approx(1 / 6, abs=1e-3)
    # two tetrahedra touching at one vertex: edge-manifold, watertight, but not vertex-manifold
    two_v = np.vstack([tet, -tet[1:]])
    two_f = np.vstack([tf, np.array([[0, 5, 6], [0, 6, 4], [0, 4, 5], [4, 6, 5]])])
    q = compute_qa(two_v, two_f)
    assert q["watertight"] and q["edge_manifold"] and not q["vertex_manifold"] and not q["manifold"]
    assert not vertex_manifold(two_f)
    # an open mesh (one face removed)
    assert not compute_qa(tet, tf[:3])["watertight"]
    # one face flipped
    flipped = tf.copy()
    flipped[0] = flipped[0, ::-1]
    q = compute_qa(tet, flipped)
    assert q["watertight"] and not q["consistently_oriented"]
    # three triangles on one edge
    fan_v = np.array([[0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [-1, -1, 0]], float)
    q = compute_qa(fan_v, np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]]))
    assert not q["edge_manifold"] and not q["manifold"]


@pytest.mark.slow  # measured: 5 s CPU alone (issue 22: the fast tier stays under 3 min)
@pytest.mark.realdata
def test_real_totalsegmentator_labels_one_named_mesh_per_label(shared_data):
    import nibabel as nib

    img = nib.load(str(shared_data("ct_abdomen_totalsegmentator_refseg", "example_seg_dicom.nii.gz")))
    arr = np.asarray(img.dataobj).astype(np.uint8)
    lps_affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine  # NIfTI RAS -> LPS (a tiny stand-in for io.nifti)
    vol = Volume(arr, lps_affine)
    present = [int(v) for v in np.unique(arr) if v]
    table = {v: _Info(v, f"structure_{v}", (0.5, 0.5, 0.5)) for v in present}
    models = build_surfaces(vol, table, reduction=0.5)
    assert [m.label for m in models] == present and len(models) == 31
    assert len({m.name for m in models}) == len(models)
    for m in models:
        assert m.qa["watertight"], m.name
        assert m.to_trimesh().volume > 0, m.name
        # vertices lie over their own label: mapped back to voxels, the nearest voxel or one of
        # its 26 neighbours carries the label (smoothing moves corners by up to about a voxel)
        near = np.rint(vol.lps_to_index(m.vertices)).astype(int)
        hit = np.zeros(len(near), bool)
        for d in np.ndindex(3, 3, 3):
            idx = np.clip(near + np.array(d) - 1, 0, np.array(arr.shape) - 1)
            hit |= arr[idx[:, 0], idx[:, 1], idx[:, 2]] == m.label
        assert hit.mean() >= 0.99, (m.name, hit.mean())


def test_parallel_labels_give_the_same_meshes_as_serial():
    """Labels are meshed in threads; fast-simplification is serialised (it has global state)."""
    lab = np.zeros((30, 30, 30), np.uint8)
    ii = np.indices(lab.shape)
    for v, c in enumerate([(8, 8, 8), (21, 8, 8), (8, 21, 21), (21, 21, 21)], 1):
        lab[((ii[0] - c[0]) ** 2 + (ii[1] - c[1]) ** 2 + (ii[2] - c[2]) ** 2) < 36] = v
    vol = Volume(lab, np.diag([0.7, 0.8, 1.1, 1.0]))
    serial = build_surfaces(vol, None, reduction=0.6, workers=1)
    parallel = build_surfaces(vol, None, reduction=0.6, workers=4)
    for a, b in zip(serial, parallel):
        assert a.label == b.label
        np.testing.assert_array_equal(a.faces, b.faces)
        np.testing.assert_allclose(a.vertices, b.vertices)
        centre = vol.lps_to_index(b.vertices).mean(0)
        assert lab[tuple(np.rint(centre).astype(int))] == b.label  # each mesh sits on its own label


def test_slicer_order_decimate_first_still_closed(maps):
    (m,) = build_surfaces(maps["shell", "oblique"], None, reduction=0.5, decimate_first=True)
    assert m.qa["watertight"] and m.qa["manifold"]
    assert surface_error(m.vertices, SHAPES["shell"])["mean"] <= 0.15 * 0.9


@pytest.mark.parametrize("maker, spacing, rotation", [
    (P.sphere_phantom, (0.8, 0.9, 1.25), (12.0, -8.0, 25.0)),
    (P.torus_phantom, (0.9, 0.8, 1.1), None),
])
def test_phantom_through_dicom_roundtrip(tmp_path, maker, spacing, rotation):
    """Analytic CT phantom (partial volume) -> DICOM series -> loader -> threshold -> mesh."""
    from medrecon.io.dicom.write import write_dicom_series
    from medrecon.io.loader import load

    ph = maker(spacing=spacing, rotation=rotation)
    write_dicom_series(ph.volume, tmp_path / "dcm")
    ct = load(tmp_path / "dcm")
    mask = (ct.array >= ph.midpoint).astype(np.uint8)  # threshold half-way between the two HU levels
    (m,) = build_surfaces(ct.with_array(mask), None)
    err = surface_error(m.vertices, ph.shape)
    assert err["mean"] <= 0.1 * min(spacing), err
    assert m.to_trimesh().volume == pytest.approx(ph.shape.volume_mm3, rel=0.01)
    assert m.qa["watertight"] and m.qa["manifold"]


def test_fins_left_by_decimation_are_removed():
    """A triangle plus its reversed copy (a 'fin') is dropped with its now unused vertex."""
    from medrecon.surface.mesher import _drop_fins

    tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.3, 0.3, -0.5]], float)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3],  # closed tetrahedron
                      [0, 1, 4], [1, 0, 4],                        # fin hanging on edge 0-1
                      [2, 2, 3]])                                  # degenerate
    assert not compute_qa(tet, faces)["edge_manifold"]
    p, f = _drop_fins(tet, faces)
    assert len(p) == 4 and len(f) == 4
    q = compute_qa(p, f)
    assert q["watertight"] and q["manifold"] and q["mesh_volume_mm3"] == pytest.approx(1 / 6, abs=1e-3)


def test_names_and_colours_from_volume_meta_when_no_table():
    lab = np.zeros((12, 12, 12), np.uint8)
    lab[2:6, 2:6, 2:6] = 1
    lab[7:11, 7:11, 7:11] = 2
    vol = Volume(lab, np.eye(4), {"kind": "labelmap", "label_names": {1: "skull", "2": "mandible"},
                                  "label_colors": {1: [1.0, 0.0, 0.0]}})
    a, b = build_surfaces(vol, None)
    assert (a.name, a.color) == ("skull", (1.0, 0.0, 0.0))
    assert b.name == "mandible" and all(0 <= c <= 1 for c in b.color)


def test_qa_welds_coincident_points_like_an_stl_reader():
    """Two closed tetrahedra touching at one point: by index each is closed and manifold,
    but an STL reader welds the shared position, giving a non-manifold pinch vertex."""
    import trimesh

    from medrecon.surface.qa import compute_qa

    tet_v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    tet_f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    v = np.vstack([tet_v, -tet_v])          # second copy mirrored through the origin
    f = np.vstack([tet_f, tet_f[:, ::-1] + 4])  # mirrored: reverse winding to keep normals out
    qa = compute_qa(v, f)
    assert qa["watertight"] and qa["manifold"]
    assert qa["coincident_vertices"] == 1
    assert qa["manifold_welded"] is False
    welded = trimesh.Trimesh(v, f, process=True)  # independent: trimesh's own welding
    assert len(welded.vertices) == 7


def test_qa_welded_equals_indexed_when_nothing_coincides():
    import trimesh

    from medrecon.surface.qa import compute_qa

    s = trimesh.creation.icosphere(subdivisions=2)
    qa = compute_qa(s.vertices, s.faces)
    assert qa["coincident_vertices"] == 0
    assert qa["watertight_welded"] is True and qa["manifold_welded"] is True
