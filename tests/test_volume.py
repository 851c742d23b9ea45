"""The Volume type: affine conventions (index -> LPS mm, voxel centres at integers) and meta."""
from __future__ import annotations

import numpy as np
import pytest

from medrecon.volume import Volume


def oblique_affine():
    th = np.deg2rad(30)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    A = np.eye(4)
    A[:3, :3] = rot @ np.diag([0.5, 0.7, 2.0])
    A[:3, 3] = [10, -20, 30]
    return A


def test_geometry_properties():
    A = oblique_affine()
    v = Volume(np.zeros((4, 5, 6), np.int16), A)
    assert np.allclose(v.spacing, [0.5, 0.7, 2.0])
    assert np.allclose(v.direction.T @ v.direction, np.eye(3))
    assert np.allclose(v.origin, [10, -20, 30])
    assert v.is_oblique()
    assert not Volume(np.zeros((2, 2, 2)), np.diag([1, 2, 3, 1.0])).is_oblique()


def test_index_lps_round_trip_and_voxel_centres():
    v = Volume(np.zeros((4, 5, 6)), oblique_affine())
    ijk = np.array([[0, 0, 0], [1, 2, 3], [3.5, 0.25, 5]])
    xyz = v.index_to_lps(ijk)
    assert np.allclose(xyz[0], [10, -20, 30])  # centre of voxel (0,0,0) is the origin
    assert np.allclose(v.lps_to_index(xyz), ijk)
    # hand-computed: rotate (0.5, 1.4, 6) by 30 degrees about z, then translate
    c, s = np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30))
    assert np.allclose(xyz[1], [10 + c * 0.5 - s * 1.4, -20 + s * 0.5 + c * 1.4, 36])


def test_ras_affine_flips_x_and_y_only():
    A = oblique_affine()
    v = Volume(np.zeros((2, 2, 2)), A)
    ras = v.ras_affine
    assert np.allclose(ras[0], -A[0]) and np.allclose(ras[1], -A[1]) and np.allclose(ras[2], A[2])


def test_meta_drops_unknown_keys_and_identifiers():
    v = Volume(np.zeros((2, 2, 2)), np.eye(4), {"modality": "CT", "PatientName": "Doe^Jane",
                                                 "patient_id": "123", "warnings": ("a",)})
    assert v.meta == {"modality": "CT", "warnings": ["a"]}
    v.warn("b")
    assert v.meta["warnings"] == ["a", "b"]


def test_with_array_keeps_grid_and_rejects_bad_shapes():
    v = Volume(np.zeros((2, 3, 4)), oblique_affine(), {"modality": "MR"})
    w = v.with_array(np.ones((2, 3, 4), np.uint8), kind="label")
    assert np.array_equal(w.affine, v.affine) and w.meta["modality"] == "MR" and w.meta["kind"] == "label"
    w.affine[0, 0] = 99
    assert v.affine[0, 0] != 99  # a copy
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 3)), np.eye(4))


# --- the guarded contract ------------------------------------------------------------------
@pytest.mark.parametrize("bad, match", [
    (np.eye(3), "4x4"),
    (np.arange(16.0), "4x4"),
    (np.diag([1.0, np.nan, 1.0, 1.0]), "NaN or infinite"),
    (np.diag([1.0, 1.0, np.inf, 1.0]), "NaN or infinite"),
    (np.diag([1.0, 0.0, 1.0, 1.0]), "singular"),
    (np.array([[1.0, 1.0, 0, 0], [0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]), "singular"),
])
def test_affine_is_checked(bad, match):
    from medrecon.errors import GeometryError, MedreconError

    with pytest.raises(GeometryError, match=match) as e:
        Volume(np.zeros((2, 2, 2)), bad)
    assert isinstance(e.value, MedreconError) and isinstance(e.value, ValueError)


def test_affine_is_copied():
    A = oblique_affine()
    v = Volume(np.zeros((2, 2, 2)), A)
    A[0, 3] = 999.0
    assert v.affine[0, 3] == 10.0
    w = v.with_array(np.ones((2, 2, 2)))
    w.affine[1, 3] = -5.0
    assert v.affine[1, 3] == -20.0


def test_same_grid():
    A = oblique_affine()
    v = Volume(np.zeros((4, 5, 6)), A)
    assert v.same_grid(Volume(np.ones((4, 5, 6), np.uint8), A))
    assert v.same_grid(Volume(np.zeros((4, 5, 6, 2)), A))  # frames do not count
    assert not v.same_grid(Volume(np.zeros((4, 5, 7)), A))
    B = A.copy()
    B[:3, 3] += [0.0, 0.0, 0.01]
    assert not v.same_grid(Volume(np.zeros((4, 5, 6)), B))
    assert v.same_grid(Volume(np.zeros((4, 5, 6)), B), tol_mm=0.02)
    # a flipped axis with the origin moved to the other end covers the same box, not the same grid
    C = A.copy()
    C[:3, 0] *= -1
    C[:3, 3] = A[:3, :3] @ [3, 0, 0] + A[:3, 3]
    assert not v.same_grid(Volume(np.zeros((4, 5, 6)), C))
