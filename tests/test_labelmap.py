"""Label-map basics: one coercion, one nearest-neighbour resampling, one palette."""
from __future__ import annotations

import numpy as np
import pytest

from medrecon.errors import InputError, MeshError
from medrecon.labelmap import (PALETTE, LabelInfo, as_labelmap, color_for, default_color, keep_labels,
                               labelmap_on_grid, present_labels, resample_labels_to)
from medrecon.volume import Volume


def test_as_labelmap_coerces_and_refuses():
    assert as_labelmap(np.ones((2, 2, 2), bool)).dtype == np.uint8
    f = np.zeros((2, 2, 2, 1), np.float32)
    f[0, 0, 0] = 300
    out = as_labelmap(f)
    assert out.shape == (2, 2, 2) and out.dtype == np.uint16 and out[0, 0, 0] == 300
    big = np.zeros((2, 2, 2), np.int64)
    big[1, 1, 1] = 70000
    assert as_labelmap(big).dtype == np.int32
    kept = np.zeros((2, 2, 2), np.int64)
    assert as_labelmap(kept, narrow=False) is kept
    with pytest.raises(InputError, match="must be 3D"):
        as_labelmap(np.zeros((2, 2)))
    with pytest.raises(InputError, match="non-integer"):
        as_labelmap(np.full((2, 2, 2), 0.5))
    with pytest.raises(InputError, match="non-integer"):
        as_labelmap(np.full((2, 2, 2), np.nan))
    with pytest.raises(MeshError, match=r"x\.nii: label map holds negative"):
        as_labelmap(-np.ones((2, 2, 2), np.int16), "x.nii", error=MeshError)


def test_keep_and_present():
    a = np.array([0, 1, 2, 3, 2, 7], np.uint8).reshape(1, 2, 3)
    assert present_labels(a) == [1, 2, 3, 7]
    k = keep_labels(a, [2, 7, 99])
    assert k.dtype == np.uint8 and k.ravel().tolist() == [0, 0, 2, 0, 2, 7]


def test_resample_exact_for_flips_and_nearest_for_scaling():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 5, size=(6, 7, 8)).astype(np.uint8)
    A = np.diag([1.0, 2.0, 3.0, 1.0])
    A[:3, 3] = [5, -4, 2]
    # the same grid with axis 0 reversed: an exact re-indexing
    F = A.copy()
    F[:3, 0] *= -1
    F[:3, 3] = A[:3, :3] @ [5, 0, 0] + A[:3, 3]
    np.testing.assert_array_equal(resample_labels_to(lab, A, (6, 7, 8), F), lab[::-1])
    # a twice finer grid: every fine voxel takes its coarse neighbour's label
    fine = A.copy()
    fine[:3, :3] /= 2
    out = resample_labels_to(lab, A, (12, 14, 16), fine)
    assert out[0, 0, 0] == lab[0, 0, 0] and out[4, 6, 8] == lab[2, 3, 4]
    # outside the label map: background
    far = A.copy()
    far[:3, 3] += 1000
    assert not resample_labels_to(lab, A, (6, 7, 8), far).any()


def test_labelmap_on_grid_warns_only_when_resampled():
    img = Volume(np.zeros((6, 7, 8), np.int16), np.diag([1.0, 2.0, 3.0, 1.0]))
    lab = np.zeros((6, 7, 8), np.uint8)
    lab[2:4, 2:5, 3:6] = 4
    same = labelmap_on_grid(Volume(lab, img.affine), img)
    assert same.meta["warnings"] == [] and np.array_equal(same.array, lab)
    half = np.diag([0.5, 1.0, 1.5, 1.0])
    fine = Volume(np.repeat(np.repeat(np.repeat(lab, 2, 0), 2, 1), 2, 2), half)
    res = labelmap_on_grid(fine, img)
    assert res.meta["warnings"] and "resampled" in res.meta["warnings"][0]
    with pytest.raises(InputError, match="does not overlap"):
        labelmap_on_grid(Volume(lab, np.diag([1.0, 2.0, 3.0, 1.0]) @ np.array(
            [[1, 0, 0, 500.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])), img)


def test_one_palette_and_label_colours():
    assert color_for(0) == PALETTE[0] and color_for(len(PALETTE)) == PALETTE[0]
    assert LabelInfo(1, " liver ", (255, 0, 0)).color == (1.0, 0.0, 0.0)
    assert default_color("liver") == pytest.approx((221 / 255, 130 / 255, 101 / 255))
    assert default_color("vertebrae_L1", 31) != default_color("vertebrae_L2", 30)  # bones vary a little
