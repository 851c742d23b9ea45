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


def test_print_viewer_orientation_letters_scale_bar_and_default_view(tmp_path):
    """Offline viewer in headless Chromium: R/L/A/P/S/I at the edges, a scale bar, 3/4 default view."""
    import sys
    import time
    from pathlib import Path

    import trimesh

    sys.path.insert(0, str(Path(__file__).parent))
    from test_viz_viewer import Chromium, _need_chromium  # the viewer tests' CDP driver

    from medrecon.mesh import SurfaceModel
    from medrecon.viz.html import write_viewer

    _need_chromium()
    ball = trimesh.creation.icosphere(3, 20.0)
    html = write_viewer([SurfaceModel("ball", ball.vertices, ball.faces, (0.9, 0.2, 0.2))], tmp_path / "v.html")
    browser = Chromium(tmp_path / "profile")
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=html.as_uri())
        browser.wait_for("window.medreconViewer && (window.medreconViewer.ready || window.medreconViewer.error)")
        time.sleep(0.3)
        letters = browser.eval("['o-left','o-right','o-top','o-bottom'].map(i => document.getElementById(i).textContent)")
        # default 3/4 view from the front: superior up, the patient's left on the right
        assert letters[2:] == ["S", "I"] and letters[1] in ("L", "A") and letters[0] in ("R", "P"), letters
        ov = browser.eval("window.medreconViewer.overlay")
        assert ov["scaleMm"] in (1, 2, 5, 10, 20, 50, 100) and 20 <= ov["scalePx"] <= 140
        browser.eval("window.medreconViewer.setView('front')")
        time.sleep(0.2)
        letters = browser.eval("['o-left','o-right','o-top','o-bottom'].map(i => document.getElementById(i).textContent)")
        assert letters == ["R", "L", "S", "I"], letters
        browser.eval("window.medreconViewer.setView('top')")
        time.sleep(0.2)
        letters = browser.eval("['o-left','o-right','o-top','o-bottom'].map(i => document.getElementById(i).textContent)")
        assert letters[0] in ("R", "L") and letters[2] in ("A", "P"), letters
    finally:
        browser.close()
