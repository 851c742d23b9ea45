"""QC montage on a thin volume (issue 10): panels stay usable and keep their true aspect."""
from __future__ import annotations

import numpy as np

from medrecon.viz.montage import slice_panels
from medrecon.volume import Volume


def test_print_montage_thin_volume_panels_are_not_strips():
    ct = np.full((400, 300, 20), -1000, np.int16)  # 400 x 300 mm, 40 mm thick
    ct[100:300, 80:220, 2:18] = 800
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    panels, centre, scales, values = slice_panels(Volume(ct, aff, {"modality": "CT"}),
                                                  Volume((ct > 0).astype(np.uint8), aff), {1: ("slab", (1, 0, 0))})
    by = {name: img for name, img, _, _ in panels}
    for name in ("coronal", "sagittal"):
        h, w = by[name].shape[:2]
        assert h >= 150, (name, h)  # was a 38-pixel strip
        assert w <= 2.5 * 400 + 1
        # true aspect: 38 mm (first to last slice centre) at this panel's scale
        assert abs(h * scales[name] - 38.0) <= 2 * scales[name]
    red = (by["coronal"][..., 0] > 200) & (by["coronal"][..., 1] < 80)
    assert red.any()  # the label's outline is inside the cropped window
