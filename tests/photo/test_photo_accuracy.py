"""Inflation accuracy on analytic shapes drawn as shaded pictures (known true height).

Full path from the picture: automatic mask, inflation on the picture's grid, closed mesh
(decimated to 100k faces). Height error is RMSE over the object / tallest true point, on the
height map; the volume comes from the closed mesh; normal error is the mean angle between
height-map normals and the true normals on pixels whose 4-neighbours are all inside.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from medrecon.photo import PhotoOptions, reconstruct
from medrecon.photo.synthetic import SHAPES


def _normals(h):
    gy, gx = np.gradient(h)
    n = np.stack([-gx, gy, np.ones_like(h)], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def _measure(photo_scene, shape):
    rgb, sh = photo_scene(shape, 256, "plain")
    res = reconstruct(rgb, options=PhotoOptions(geometry_px=256, size_mm=256.0, faces=100_000))
    assert res.grid_mask.shape == sh.mask.shape
    h = res.grid_front  # pixels of the grid (= picture pixels here)
    gt = sh.height
    m = sh.mask | res.grid_mask
    nrmse = float(np.sqrt(np.mean((h - gt)[m] ** 2)) / gt.max())
    inner = ndi.binary_erosion(sh.mask & res.grid_mask)
    ang = np.degrees(np.arccos(np.clip((_normals(h) * _normals(gt)).sum(-1), -1, 1)))[inner].mean()
    vol = res.qa["volume_mm3"] / sh.volume_px3  # 1 mm per pixel
    assert res.qa["watertight"] and res.qa["winding_consistent"]
    return nrmse, float(ang), float(vol)


def test_photo_sphere_height_and_volume(photo_scene):
    nrmse, ang, vol = _measure(photo_scene, "sphere")
    assert nrmse <= 0.02, nrmse
    assert abs(vol - 1.0) <= 0.02, vol
    assert ang <= 1.5, ang


def test_photo_five_shapes_mean_errors(photo_scene):
    rows = {s: _measure(photo_scene, s) for s in SHAPES}
    nrmse = np.mean([r[0] for r in rows.values()])
    ang = np.mean([r[1] for r in rows.values()])
    assert nrmse <= 0.06, rows
    assert ang <= 5.0, rows
    for s, (e, a, v) in rows.items():
        assert e <= 0.10, (s, rows[s])
        assert abs(v - 1.0) <= 0.05, (s, rows[s])


def test_photo_inflate_beats_flat_and_edt_baselines(photo_scene):
    """The method must beat trivial silhouette baselines (flat slab of the right max height, EDT cone)."""
    from medrecon.photo.depth import edt_inside, inflate

    rgb, sh = photo_scene("ellipsoid", 192, "plain")
    gt = sh.height
    m = sh.mask
    ours = inflate(m)
    flat = np.where(m, gt.max(), 0.0)
    cone = edt_inside(m)
    err = lambda h: np.sqrt(np.mean((h - gt)[m] ** 2)) / gt.max()
    assert err(ours) < 0.5 * min(err(flat), err(cone))


def test_photo_thickness_scales_height(photo_scene):
    rgb, sh = photo_scene("sphere", 128, "plain")
    a = reconstruct(rgb, options=PhotoOptions(geometry_px=128, thickness=1.0, previews=False))
    b = reconstruct(rgb, options=PhotoOptions(geometry_px=128, thickness=0.5, previews=False))
    assert b.height_mm.max() == pytest.approx(0.5 * a.height_mm.max(), rel=1e-6)
    assert b.qa["volume_mm3"] == pytest.approx(0.5 * a.qa["volume_mm3"], rel=0.01)
