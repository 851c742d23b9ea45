"""The one geometry helper: LPS<->RAS, LPS<->glTF, axis codes, named spaces."""
from __future__ import annotations

import numpy as np
import pytest

from medrecon import orientation as O
from medrecon.volume import Volume


def test_ras_flip_is_an_involution_and_a_rotation():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(20, 3)) * 50
    r = O.lps_to_ras_points(p)
    assert np.allclose(r[:, :2], -p[:, :2]) and np.allclose(r[:, 2], p[:, 2])
    assert np.allclose(O.ras_to_lps_points(r), p)
    assert np.isclose(np.linalg.det(O.LPS_TO_RAS[:3, :3]), 1.0)  # winding kept


def test_affine_conversion_matches_points():
    A = np.array([[0.5, 0.1, 0, -10], [0, 0.7, 0.2, 20], [0.1, 0, 2.0, 30], [0, 0, 0, 1]])
    ijk = np.array([[0, 0, 0], [3, 4, 5], [1.5, 2, 7]])
    lps = ijk @ A[:3, :3].T + A[:3, 3]
    R = O.lps_ras_affine(A)
    assert np.allclose(ijk @ R[:3, :3].T + R[:3, 3], O.lps_to_ras_points(lps))
    assert np.allclose(O.lps_ras_affine(R), A)
    assert np.allclose(Volume(np.zeros((2, 2, 2)), A).ras_affine, R)


def test_space_names():
    p = np.array([[1.0, 2.0, 3.0]])
    assert np.allclose(O.to_space(p, "LPS"), p) and np.allclose(O.to_space(p, "ras"), [[-1, -2, 3]])
    assert np.allclose(O.from_space(O.to_space(p, "RAS"), "RAS"), p)
    assert np.allclose(O.from_space(p, None), p)
    with pytest.raises(ValueError, match="unknown space"):
        O.to_space(p, "XYZ")
    assert np.allclose(O.space_signs("right-anterior-superior"), [-1, -1, 1])
    assert np.allclose(O.space_signs("left-anterior-superior"), [1, -1, 1])
    assert np.allclose(O.space_signs(""), [1, 1, 1])
    assert O.space_signs("posterior-inferior-left") is None


def test_gltf_axes():
    # patient's left -> +X, superior -> +Y (up), anterior (-y LPS) -> +Z; mm -> m
    assert np.allclose(O.lps_to_gltf_points([[10.0, 0, 0], [0, 0, 10.0], [0, -10.0, 0]]),
                       [[0.01, 0, 0], [0, 0.01, 0], [0, 0, 0.01]])
    p = np.random.default_rng(2).normal(size=(5, 3))
    assert np.allclose(O.gltf_to_lps_points(O.lps_to_gltf_points(p)), p)
    assert np.isclose(np.linalg.det(O.LPS_TO_GLTF), 1.0)


def test_axis_codes():
    assert O.axis_codes(np.eye(4)) == "LPS"
    assert O.axis_codes(np.diag([-1.0, 1.0, -2.0, 1.0])) == "RPI"
    assert O.axis_codes(np.array([[0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]])) == "PIL"
