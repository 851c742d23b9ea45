"""Printable surfaces (issue 10): closed and manifold after STL welding for any reduction,
volume on trabecular bone, no self-intersections (checked with pymeshlab too), and the
intensity iso-surface's accuracy on analytic phantoms written as DICOM."""
from __future__ import annotations

import numpy as np
import pytest

from helpers_print import meshlab_self_intersections
from medrecon.phantoms import grid_affine, occupancy
from medrecon.phantoms.shapes import Ellipsoid, EllipsoidShell, Sphere, Torus
from medrecon.phantoms.trabecular import trabecular_ct_phantom
from medrecon.surface import build_surfaces
from medrecon.surface.qa import surface_error, welded_qa
from medrecon.volume import Volume


def _welded_ok(m):
    w = welded_qa(m.vertices, m.faces)
    return w["watertight_welded"] in (None, True) and w["manifold_welded"] in (None, True)


@pytest.fixture(scope="module")
def trab():
    return trabecular_ct_phantom((56, 56, 32), seed=1)


@pytest.mark.parametrize("reduction", [0.0, pytest.param(0.9, marks=pytest.mark.slow)])  # 0.9: 5 s CPU
def test_print_trabecular_threshold_is_closed_and_keeps_voxel_volume(trab, reduction):
    (m,) = build_surfaces(trab.labelmap, None, reduction=reduction, intensity=trab.volume,
                          windows={1: trab.threshold})
    q = m.qa
    assert q["watertight"] and q["manifold"] and q["consistently_oriented"], q
    assert q["watertight_welded"] and q["manifold_welded"], q
    assert _welded_ok(m)
    assert abs(q["volume_diff_pct"]) <= 2.0, q["volume_diff_pct"]
    assert q["self_intersecting_faces"] == 0
    assert q["surface"] == "intensity iso-surface"
    if reduction:
        assert q["reduction_reached"] > 0.3, q  # topology guard keeps thin struts: not all of 0.9
        assert m.n_triangles < 0.7 * build_surfaces(trab.labelmap, None, qa=False, intensity=trab.volume,
                                                   windows={1: trab.threshold})[0].n_triangles


@pytest.mark.slow  # measured: 9 s CPU alone (issue 22: the fast tier stays under 3 min)
def test_print_label_map_path_closed_at_high_reduction(trab):
    """Label maps keep the binary path; decimation must still leave it closed and manifold."""
    (m,) = build_surfaces(trab.labelmap, None, reduction=0.9)
    q = m.qa
    assert "surface" not in q  # binary path
    assert q["watertight"] and q["manifold"] and q["watertight_welded"] and q["manifold_welded"], q
    assert q["self_intersecting_faces"] == 0
    # MeshLab also counts exactly coplanar overlapping neighbours, which our QA does not test:
    # a handful on this worst case (one-voxel struts, 90 % reduction asked)
    assert meshlab_self_intersections(m.vertices, m.faces) <= max(10, 1e-4 * m.n_triangles)


def test_print_caps_at_first_and_last_slice_do_not_self_intersect():
    """A thin-walled tube cut by the first and last slice: flat caps, smoothing, no folds."""
    shape, sp = (48, 48, 20), (0.8, 0.8, 2.5)
    aff = grid_affine(shape, sp)
    ijk = np.indices(shape).reshape(3, -1).T
    p = ijk @ aff[:3, :3].T + aff[:3, 3]
    r = np.hypot(p[:, 0] - 0.3 * p[:, 2], p[:, 1])
    lab = ((r > 9) & (r < 10.6)).reshape(shape).astype(np.uint8)
    assert lab[:, :, 0].any() and lab[:, :, -1].any()
    (m,) = build_surfaces(Volume(lab, aff), None, smoothing=1.0)
    assert m.qa["self_intersecting_faces"] == 0
    assert meshlab_self_intersections(m.vertices, m.faces) == 0
    assert m.qa["watertight"] and m.qa["manifold"]


def test_print_real_scan_meshes_have_no_self_intersections(shared_data):
    """TotalSegmentator's spleen and liver (cut by the scan's first/last slice), as pymeshlab counts."""
    from medrecon.io.loader import load

    seg = load(str(shared_data("ct_abdomen_totalsegmentator_refseg", "example_seg.nii.gz")))
    arr = np.asarray(seg.array)
    names = {1: "spleen", 5: "liver"}
    lab = np.where(np.isin(arr, list(names)), arr, 0).astype(np.uint8)
    models = build_surfaces(Volume(lab, seg.affine), None)
    assert {m.label for m in models} == set(names)
    for m in models:
        assert m.qa["self_intersecting_faces"] == 0, (m.label, m.qa)
        assert meshlab_self_intersections(m.vertices, m.faces) == 0, m.label
        assert m.qa["watertight_welded"] and m.qa["manifold_welded"]


# ------------------------------------------------------------------ accuracy via DICOM
def _dicom_phantom(tmp_path, shape_obj, spacing, rotation=None, tilt_deg=0.0):
    """Rasterise with partial volume (HU -1000 outside, 1000 inside), write DICOM, load back."""
    from medrecon.io.dicom.write import write_dicom_series
    from medrecon.io.loader import load

    if isinstance(shape_obj, Sphere):
        ext = 2 * (shape_obj.radius + 6)
    elif isinstance(shape_obj, Torus):
        ext = 2 * (shape_obj.major + shape_obj.minor + 6)
    elif isinstance(shape_obj, EllipsoidShell):
        ext = 2 * (max(shape_obj.outer) + 6)
    else:
        ext = 2 * (max(shape_obj.axes) + 6)
    gshape = tuple(int(np.ceil(ext / s)) + 1 for s in spacing)
    aff = grid_affine(gshape, spacing, shape_obj.center, rotation)
    if tilt_deg:  # gantry tilt: slices shifted along y in proportion to z (sheared grid)
        aff[1, 2] += np.tan(np.deg2rad(tilt_deg)) * spacing[2]
    frac = occupancy(shape_obj, gshape, aff, supersample=6)
    hu = np.rint(-1000.0 + 2000.0 * frac).astype(np.int16)
    d = tmp_path / "dicom"
    write_dicom_series(Volume(hu, aff, {"modality": "CT"}), d)
    return load(str(d))


CASES = {
    "oblique_sphere": (Sphere((1.5, -2.25, 3.1), 14.0), (0.9, 0.9, 1.2), (20, 10, 30), 0.0),
    "anisotropic_shell": (EllipsoidShell((-1.2, 0.7, 2.3), (32.0, 26.0, 20.0), (24.0, 18.0, 12.0), (10, 20, 30)),
                          (0.7, 0.8, 1.5), None, 0.0),
    "tilted_ellipsoid": (Ellipsoid((0.5, -1.0, 2.0), (16.0, 12.0, 10.0), (15, 0, 25)), (0.8, 0.8, 1.25), None, 15.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_print_iso_surface_accuracy_on_dicom_phantoms(tmp_path, case):
    shape_obj, spacing, rotation, tilt = CASES[case]
    vol = _dicom_phantom(tmp_path, shape_obj, spacing, rotation, tilt)
    arr = vol.array
    lab = Volume((arr >= 0).astype(np.uint8), vol.affine)
    (m,) = build_surfaces(lab, None, intensity=vol, windows={1: (0.0, 3071.0)})
    (b,) = build_surfaces(lab, None)  # binary path, for comparison
    vox = float(np.min(np.linalg.norm(vol.affine[:3, :3], axis=0)))
    err = surface_error(m.vertices, shape_obj)["mean"] / vox
    err_b = surface_error(b.vertices, shape_obj)["mean"] / vox
    assert err <= 0.04, (case, err, err_b)
    assert err < err_b
    assert abs(m.qa["mesh_volume_mm3"] / shape_obj.volume_mm3 - 1) <= 0.005, m.qa["mesh_volume_mm3"]
    assert m.qa["watertight"] and m.qa["manifold"] and m.qa["watertight_welded"]
