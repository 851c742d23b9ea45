"""Foreground masks without weights: IoU >= 0.95 on synthetic photos with plain, gradient and
shadowed backgrounds; alpha and user masks; cleaning."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medrecon.errors import InputError, SegmentationError
from medrecon.photo.image import load_image, load_mask_file
from medrecon.photo.mask import background_model_mask, clean_mask, foreground_mask
from medrecon.photo.synthetic import SHAPES


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("background", ["plain", "gradient", "shadow"])
def test_photo_mask_iou_backgrounds(photo_scene, background):
    ious = []
    for shape in SHAPES:
        for color in [(200, 70, 55), (60, 90, 170), (70, 70, 75)]:
            rgb, sh = photo_scene(shape, 192, background, color=color)
            m, src = foreground_mask(rgb)
            assert src == "border+grabcut"
            ious.append(_iou(m, sh.mask))
    assert min(ious) >= 0.95, ious


def test_photo_shadow_not_joined_to_object(photo_scene):
    """A soft cast shadow (darkened background, same hue) stays background."""
    rgb, sh = photo_scene("sphere", 192, "shadow")
    m, _ = background_model_mask(rgb)
    assert _iou(m, sh.mask) >= 0.95
    # the shadow is really there: the background right of/below the object is much darker
    from medrecon.photo.mask import _lab

    lab = _lab(rgb)
    shadow = ~sh.mask & (np.roll(sh.mask, (12, 15), axis=(0, 1)))
    assert lab[..., 0][shadow].mean() < lab[..., 0][~sh.mask].mean() - 8


def test_photo_alpha_and_user_mask(tmp_path, photo_scene):
    rgb, sh = photo_scene("torus", 128)
    rgba = np.dstack([rgb, np.where(sh.mask, 255, 0).astype(np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    rgb2, alpha = load_image(tmp_path / "a.png")
    assert alpha is not None
    m, src = foreground_mask(rgb2, alpha=alpha)
    assert src == "alpha" and _iou(m, sh.mask) > 0.99
    # a user mask of another size is resized; it wins over alpha
    Image.fromarray(np.where(sh.mask, 255, 0).astype(np.uint8)).resize((256, 256), Image.NEAREST).save(tmp_path / "m.png")
    um = load_mask_file(tmp_path / "m.png", (128, 128))
    m2, src2 = foreground_mask(rgb2, alpha=np.zeros_like(alpha), user_mask=um)
    assert src2 == "user" and _iou(m2, sh.mask) > 0.98


def test_photo_mask_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(InputError, match="bad.png"):
        load_image(tmp_path / "bad.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "blank.png")
    with pytest.raises(InputError, match="blank"):
        load_mask_file(tmp_path / "blank.png", (10, 10))
    with pytest.raises(SegmentationError):
        foreground_mask(np.zeros((20, 20, 3), np.uint8), user_mask=np.zeros((20, 20), bool))


def test_photo_clean_mask_specks_holes():
    m = np.zeros((100, 100), bool)
    m[20:80, 20:80] = True
    m[50, 50] = False           # pin hole: filled
    m[30:45, 30:45] = False     # real hole: kept
    m[5, 5] = True              # speck: removed
    c = clean_mask(m)
    assert c[50, 50] and not c[35, 35] and not c[5, 5]
