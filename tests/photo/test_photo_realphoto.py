"""A real photo (Middlebury templeRing view, ../shared/data): a light plaster temple on a black
background with a grey cloth on the left. No ground-truth mask ships with it, so the checks use
what is certain in the picture: the bright temple pixels (right of the cloth) are in the mask,
the black background and the cloth are not, and the model is closed and valid."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers_gltf import assert_valid_gltf
from medrecon.photo import PhotoOptions, run_photo
from medrecon.photo.depth import luminance

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("view", ["templeR0001.png", "templeR0020.png"])
def test_photo_real_temple_photo(shared_data, tmp_path, view):
    src = shared_data("photos_templering_middlebury", view)
    res = run_photo(src, tmp_path / "o", PhotoOptions(size_mm=160.0, faces=30_000, previews=False))
    rgb = np.asarray(Image.open(src).convert("RGB"))
    lum = luminance(rgb)
    cols = np.arange(rgb.shape[1])[None, :]
    bright = (lum > 0.35) & (cols > 120)  # the plaster; the cloth lies in the left ~110 columns
    dark = lum < 0.06                     # the black backdrop
    m = res.mask
    assert m[bright].mean() > 0.97, m[bright].mean()
    assert m[dark].mean() < 0.03, m[dark].mean()
    assert m[:, :80].mean() < 0.02  # the grey cloth is background
    assert res.qa["watertight"] and res.qa["winding_consistent"] and res.qa["positive_volume"]
    assert res.qa["size_mm"] == pytest.approx([160.0, 120.0])
    assert_valid_gltf(tmp_path / "o" / "model.glb")
