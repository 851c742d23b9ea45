"""`medrecon photo` reports the model's own size (the STL's extent), not the picture's (issue 22:
a 100 x 75 mm picture printed as the model's size when the STL measured 69.8 x 42.5 mm)."""
from __future__ import annotations

import re

import numpy as np
import trimesh
from PIL import Image

from medrecon.cli import main


def test_photo_prints_the_stl_extent(tmp_path, capsys):
    from medrecon.photo.synthetic import scene, shape_height

    rgb = scene(shape_height("torus", 96), "plain", color=(60, 90, 170))
    rgb = np.pad(rgb, ((16, 16), (48, 48), (0, 0)), mode="edge")  # the object smaller than the picture
    Image.fromarray(np.ascontiguousarray(rgb)).save(tmp_path / "p.png")
    try:
        main(["photo", str(tmp_path / "p.png"), "-o", str(tmp_path / "out"), "--size-mm", "100", "--faces", "5000"])
    except SystemExit as e:
        assert not e.code
    text = capsys.readouterr().out
    m = re.search(r"model ([\d.]+) x ([\d.]+) x ([\d.]+) mm", text)
    assert m, text
    printed = sorted(float(x) for x in m.groups())
    stl = trimesh.load(tmp_path / "out" / "model.stl")
    extent = sorted(np.ptp(stl.vertices, axis=0))
    assert np.allclose(printed, extent, atol=0.06), (printed, extent)
    assert max(printed) < 90.0  # the torus, not the 100 mm picture
    assert "picture 100.0 x" in text
