"""Self-intersection QA (grid broad phase + segment/triangle narrow phase) against pymeshlab,
and the trabecular-bone phantom's known voxel volume."""
from __future__ import annotations

import numpy as np
import trimesh

from helpers_print import meshlab_self_intersections
from medrecon.phantoms.trabecular import trabecular_ct_phantom
from medrecon.surface.intersections import candidate_pairs, self_intersecting_faces, self_intersection_qa


def test_print_closed_sphere_has_no_self_intersections():
    s = trimesh.creation.icosphere(4, 12.0)
    assert self_intersection_qa(s.vertices, s.faces) == {"self_intersecting_faces": 0,
                                                         "self_intersection_free": True}
    assert meshlab_self_intersections(s.vertices, s.faces) == 0


def test_print_two_overlapping_spheres_match_meshlab():
    a = trimesh.creation.icosphere(3, 10.0)
    b = a.copy()
    b.apply_translation([6.0, 1.0, 2.0])
    m = trimesh.util.concatenate([a, b])
    mask = self_intersecting_faces(m.vertices, m.faces)
    ours = int(mask.sum())
    assert ours > 0
    assert ours == meshlab_self_intersections(m.vertices, m.faces)
    # the flagged faces are exactly those crossing the other sphere's surface
    ca = m.triangles_center[mask]
    da = np.linalg.norm(ca - [0, 0, 0], axis=1)
    db = np.linalg.norm(ca - [6, 1, 2], axis=1)
    assert np.all(np.minimum(np.abs(da - 10), np.abs(db - 10)) < 1.0)


def test_print_dented_surface_is_found():
    """A vertex pushed through the opposite side of a thin box: the kind of fold smoothing makes."""
    box = trimesh.creation.box([20, 20, 2])
    box = box.subdivide().subdivide().subdivide()
    v = box.vertices.copy()
    top = np.flatnonzero((v[:, 2] > 0.99) & (np.abs(v[:, 0]) < 2) & (np.abs(v[:, 1]) < 2))
    assert top.size
    v[top, 2] = -3.0  # through the bottom face
    n = int(self_intersecting_faces(v, box.faces).sum())
    assert n > 0
    assert abs(n - meshlab_self_intersections(v, box.faces)) <= max(2, n // 5)


def test_print_candidate_pairs_skip_neighbours_and_cover_large_triangles():
    # one big triangle crossing many small ones: the grid must still pair it with them
    s = trimesh.creation.icosphere(3, 5.0)
    big_v = np.array([[-20.0, -20.0, 0.3], [20.0, -20.0, 0.3], [0.0, 30.0, 0.3]])
    v = np.vstack([s.vertices, big_v])
    f = np.vstack([s.faces, [[len(s.vertices), len(s.vertices) + 1, len(s.vertices) + 2]]])
    p = candidate_pairs(v, f)
    big = len(f) - 1
    assert np.any(p == big)
    fa, fb = f[p[:, 0]], f[p[:, 1]]
    assert not np.any((fa[:, :, None] == fb[:, None, :]).any(axis=(1, 2)))
    hit = self_intersecting_faces(v, f)
    assert hit[big] and hit[:-1].sum() > 0


def test_print_trabecular_phantom_known_volume():
    ph = trabecular_ct_phantom((96, 96, 60), seed=3)
    arr = ph.volume.array
    assert arr.dtype == np.int16
    lo, hi = ph.threshold
    mask = (arr >= lo) & (arr <= hi)
    assert np.array_equal(mask, ph.mask)
    vox = float(np.prod(np.diag(ph.volume.affine)[:3]))
    assert abs(ph.voxel_volume_mm3 - ph.voxel_count * vox) < 1e-9 * ph.voxel_volume_mm3
    # spongy: bone fills a minority of the column, in many struts one or two voxels thick
    frac = ph.voxel_count / mask.size
    assert 0.03 < frac < 0.5
    from scipy import ndimage

    eroded = ndimage.binary_erosion(mask)
    assert eroded.sum() < 0.5 * mask.sum()  # mostly thin
    # bone touches the first and the last slice (structures cut by the volume border)
    assert mask[:, :, 0].any() and mask[:, :, -1].any()
