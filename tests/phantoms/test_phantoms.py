"""Analytic phantoms: exact distances, volumes and areas; the head CT phantom's tissues."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from medrecon import phantoms as P

from medrecon.surface.qa import surface_error


def _ellipsoid_surface_points(axes, rot, center, n=1200):
    u, v = np.meshgrid(np.linspace(0, np.pi, n), np.linspace(0, 2 * np.pi, 2 * n), indexing="ij")
    loc = np.stack([axes[0] * np.sin(u) * np.cos(v), axes[1] * np.sin(u) * np.sin(v), axes[2] * np.cos(u)], -1)
    return loc.reshape(-1, 3) @ rot.T + np.asarray(center)


@pytest.mark.slow  # measured: 6 s CPU alone (issue 22: the fast tier stays under 3 min)
def test_ellipsoid_sdf_matches_brute_force():
    axes, center, ang = (30.0, 20.0, 12.0), (1.0, 2.0, 3.0), (10, 20, 30)
    e = P.Ellipsoid(center, axes, ang)
    surf = _ellipsoid_surface_points(axes, P.rotation_matrix(ang), center)
    pts = np.random.default_rng(1).uniform(-40, 40, (1500, 3))
    brute, _ = cKDTree(surf).query(pts)
    d = e.sdf(pts)
    assert np.abs(np.abs(d) - brute).max() < 0.02  # brute force is a dense sampling
    inside = np.sum(((pts - center) @ P.rotation_matrix(ang) / axes) ** 2, axis=1) < 1
    np.testing.assert_array_equal(d < 0, inside)


def test_ellipsoid_sdf_on_symmetry_planes():
    # points on the axes and symmetry planes (the degenerate cases of the root finding)
    q = np.array([[0, 0, 0], [5, 0, 0], [29, 0, 0], [0, 0, 11.9], [0, 0, 20], [40, 0, 0], [1, 2, 0]], float)
    d = P.Ellipsoid((0, 0, 0), (30, 20, 12)).sdf(q)
    assert d[0] == pytest.approx(-12)
    assert d[2] == pytest.approx(-1) and d[3] == pytest.approx(-0.1)
    assert d[4] == pytest.approx(8) and d[5] == pytest.approx(10)
    assert -12 < d[1] < -11 and -12 < d[6] < -11


def test_shapes_exact_volume_and_area():
    s = P.Sphere((0, 0, 0), 10)
    assert s.volume_mm3 == pytest.approx(4188.790, rel=1e-6) and s.area_mm2 == pytest.approx(1256.637, rel=1e-6)
    # ellipsoid area against a fine numerical surface integral
    a, b, c = 30.0, 20.0, 12.0
    u, v = np.meshgrid(np.linspace(0, np.pi, 2001), np.linspace(0, 2 * np.pi, 4001), indexing="ij")
    n = np.stack([b * c * np.sin(u) ** 2 * np.cos(v), a * c * np.sin(u) ** 2 * np.sin(v),
                  a * b * np.sin(u) * np.cos(u)], -1)
    area_num = np.trapezoid(np.trapezoid(np.linalg.norm(n, axis=-1), v[0], axis=1), u[:, 0])
    assert P.Ellipsoid(axes=(a, b, c)).area_mm2 == pytest.approx(area_num, rel=1e-5)
    t = P.Torus(major=25, minor=8)
    assert t.volume_mm3 == pytest.approx(2 * np.pi ** 2 * 25 * 64)
    with pytest.raises(ValueError):
        P.Torus(major=5, minor=8)
    with pytest.raises(ValueError):
        P.EllipsoidShell(outer=(10, 10, 10), inner=(12, 5, 5))


def test_torus_and_shell_sdf():
    t = P.Torus((0, 0, 0), 25, 8)
    np.testing.assert_allclose(t.sdf(np.array([[25, 0, 0], [0, 0, 0], [33, 0, 0], [0, 25, 10]])),
                               [-8, 17, 0, 2], atol=1e-12)
    sh = P.EllipsoidShell((0, 0, 0), (30, 20, 10), (25, 15, 5))
    # along x: outer surface at 30, inner at 25
    np.testing.assert_allclose(sh.sdf(np.array([[27.5, 0, 0], [0, 0, 0], [35, 0, 0]])), [-2.5, 5, 5], atol=1e-9)


@pytest.mark.parametrize("factory", [P.sphere_phantom, P.ellipsoid_shell_phantom, P.torus_phantom])
def test_partial_volume_fractions_integrate_to_the_true_volume(factory):
    ph = factory(spacing=(1.5, 1.2, 2.0), rotation=(12, -8, 25))
    vox = float(np.prod(ph.volume.spacing))
    assert ph.fraction.sum() * vox == pytest.approx(ph.shape.volume_mm3, rel=2e-3)
    # intensities follow the fractions; label map is the 50% iso-set
    np.testing.assert_allclose(ph.volume.array, ph.outside_value + ph.fraction * (ph.inside_value - ph.outside_value),
                               atol=1e-2)
    assert ph.labelmap.array.sum() * vox == pytest.approx(ph.shape.volume_mm3, rel=0.03)
    assert ph.volume.is_oblique()
    # grid centre on the shape centre
    mid = (np.array(ph.volume.shape) - 1) / 2
    np.testing.assert_allclose(ph.volume.index_to_lps(mid[None])[0], ph.shape.center, atol=1e-9)


def test_surface_error_measures_distance():
    s = P.Sphere((0, 0, 0), 10)
    pts = np.random.default_rng(0).normal(size=(500, 3))
    pts = pts / np.linalg.norm(pts, axis=1, keepdims=True) * 10.3
    err = surface_error(pts, s)
    assert err["mean"] == pytest.approx(0.3) and err["bias"] == pytest.approx(0.3) and err["max"] == pytest.approx(0.3)


def test_head_phantom_tissues():
    h = P.head_ct_phantom(spacing=(2.0, 2.0, 2.5), noise=0.0)
    hu, lab = h.volume.array, h.labelmap.array
    assert hu.shape == lab.shape and h.volume.meta["modality"] == "CT"
    assert hu.min() >= -1024 and hu.max() <= 3071
    assert set(np.unique(lab)) == {0, 1, 2, 3, 4, 5, 6}
    med = {n: float(np.median(hu[lab == v])) for v, n in h.labels.items()}
    assert 20 < med["brain"] < 50 and med["ventricles"] < 20
    assert med["teeth"] > 1500 and med["skull"] > 400 and med["vertebrae"] > 400
    assert np.mean(hu[lab == 3] > 1553) > 0.5   # enamel window of the teeth preset
    corner = hu[:3, :3, :3]
    assert np.all(corner == -1000)   # air around the head
    # LPS: the face (teeth) is anterior (smaller y) and inferior to the brain
    ijk_teeth = np.argwhere(lab == 3).mean(0)
    ijk_brain = np.argwhere(lab == 5).mean(0)
    xyz_t, xyz_b = h.volume.index_to_lps(np.stack([ijk_teeth, ijk_brain]))
    assert xyz_t[1] < xyz_b[1] and xyz_t[2] < xyz_b[2]
