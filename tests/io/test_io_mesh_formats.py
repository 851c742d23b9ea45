"""The one list of mesh formats: every format that is both written and read comes back as it was
written (LPS mm), in either coordinate space."""
from __future__ import annotations

import numpy as np
import pytest

from medrecon.io.meshes import FORMATS, MESH_FORMATS, READ_EXTENSIONS, load_mesh_file, write_models
from medrecon.mesh import SurfaceModel


def _tetra() -> SurfaceModel:
    v = np.array([[10.0, -20.0, 30.0], [25.0, -20.0, 30.0], [10.0, -5.0, 30.0], [10.0, -20.0, 45.0]])
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return SurfaceModel("tetra", v, f, (0.2, 0.4, 0.6), 3)


def test_table_is_the_format_lists():
    assert FORMATS == ("stl", "obj", "ply", "vtp", "glb", "3mf", "usdz")
    assert set(READ_EXTENSIONS) == {".stl", ".obj", ".ply", ".vtp", ".glb", ".gltf", ".3mf"}
    assert [n for n, f in MESH_FORMATS.items() if not f.per_structure] == ["glb", "3mf", "usdz"]


@pytest.mark.parametrize("fmt", [n for n, f in MESH_FORMATS.items() if f.can_read and f.can_write])
@pytest.mark.parametrize("space", ["LPS", "RAS"])
def test_round_trip(tmp_path, fmt, space):
    m = _tetra()
    paths = [p for p in write_models([m], tmp_path, [fmt], space=space) if p.suffix == f".{fmt}"]
    (back,) = load_mesh_file(paths[0])
    # same points (as a set: readers may reorder or weld), in LPS mm whatever the file's space
    got = np.unique(np.round(back.vertices, 3), axis=0)
    np.testing.assert_allclose(got, np.unique(np.round(m.vertices, 3), axis=0), atol=1e-3)
    assert back.n_triangles == 4
