"""The Examples sections of the public API run as written (issue 23, nibabel's habit): load,
load_series, Volume, run_mesh / mesh_volume, write_models / write_mesh, the writers' registry, the
mesh type, label semantics, PNG encoding, COLMAP text models, file-name safety, texture padding."""
from __future__ import annotations

import doctest
import os

import pytest

import medrecon.io.colmap
import medrecon.io.images
import medrecon.io.meshes
import medrecon.io.meshes.registry
import medrecon.labelmap
import medrecon.mesh
from medrecon.io.loader import load, load_series
from medrecon.io.meshes import write_mesh, write_models
from medrecon.io.meshes.common import safe_filename
from medrecon.mesh_pipeline import mesh_volume, run_mesh
from medrecon.texture import pad_texture
from medrecon.volume import Volume

OBJECTS = [load, load_series, Volume, run_mesh, mesh_volume, write_models, write_mesh, safe_filename, pad_texture,
           medrecon.io.meshes, medrecon.io.meshes.registry, medrecon.mesh, medrecon.labelmap, medrecon.io.images,
           medrecon.io.colmap]


def _examples(obj):
    return [t for t in doctest.DocTestFinder(recurse=False).find(obj, getattr(obj, "__name__", None))
            if t.examples]


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: getattr(o, "__qualname__", getattr(o, "__name__", "?")))
def test_docstring_examples_run(obj, tmp_path):
    tests = _examples(obj)
    assert tests, f"{obj!r} has no Examples section"
    cwd = os.getcwd()
    os.chdir(tmp_path)  # examples that write relative paths write here
    try:
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        for t in tests:
            runner.run(t)
    finally:
        os.chdir(cwd)
    res = runner.summarize(verbose=False)
    assert res.failed == 0 and res.attempted > 0, res
