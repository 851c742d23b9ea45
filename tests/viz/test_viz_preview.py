"""PNG previews (VTK offscreen) and the QC montage: real pixels, anatomical orientation, scale."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import trimesh

from medrecon.errors import MeshError, SegmentationError
from medrecon.mesh import SurfaceModel
from medrecon.viz.montage import qc_montage, slice_panels
from medrecon.viz.preview import render_previews, render_views
from medrecon.volume import Volume
from tests.conftest import shared_path

RAS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def read_png(path: Path) -> np.ndarray:
    """Decode a PNG with VTK's reader (independent of our zlib writer); rows top-down."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOImage import vtkPNGReader

    r = vtkPNGReader()
    assert r.CanReadFile(str(path))
    r.SetFileName(str(path))
    r.Update()
    im = r.GetOutput()
    nx, ny, _ = im.GetDimensions()
    a = vtk_to_numpy(im.GetPointData().GetScalars()).reshape(ny, nx, -1)[..., :3]
    return a[::-1]


def hue_mask(img: np.ndarray, channel: int) -> np.ndarray:
    """Pixels clearly dominated by one channel (shaded colours keep their hue)."""
    a = img.astype(int)
    others = [c for c in range(3) if c != channel]
    return (a[..., channel] > 60) & (a[..., channel] > 2 * a[..., others[0]]) & (a[..., channel] > 2 * a[..., others[1]])


def ball(name, centre, color, label, r=20.0):
    s = trimesh.creation.icosphere(3, radius=r)
    return SurfaceModel(name, s.vertices + np.asarray(centre, float), s.faces, color, label)


# red ball at the patient's left (+x), green at posterior (+y), blue superior (+z)
MODELS = [ball("left red", (60, 0, 0), (0.9, 0.1, 0.1), 1),
          ball("posterior green", (0, 60, 0), (0.1, 0.85, 0.1), 2),
          ball("superior blue", (0, 0, 60), (0.1, 0.15, 0.95), 3)]


def centroid(mask: np.ndarray) -> np.ndarray:
    yx = np.argwhere(mask)
    assert len(yx) > 50, "colour not found"
    return yx.mean(0)  # (row, col)


@pytest.mark.parametrize("backend", ["vtk", "software"])
def test_views_are_anatomical_and_scaled(backend):
    panels, px_per_mm = render_views(MODELS, panel_px=300, backend=backend)
    views = {name: (img, right, up) for name, img, right, up in panels}
    assert set(views) == {"front", "side", "top"}
    front, side, top = views["front"][0], views["side"][0], views["top"][0]
    # front (anterior) view: patient's left on the right of the picture, superior up
    r, b = centroid(hue_mask(front, 0)), centroid(hue_mask(front, 2))
    assert r[1] > front.shape[1] * 0.6 and b[0] < front.shape[0] * 0.4
    # left lateral view: posterior on the right, superior up
    g, b = centroid(hue_mask(side, 1)), centroid(hue_mask(side, 2))
    assert g[1] > side.shape[1] * 0.6 and b[0] < side.shape[0] * 0.4
    # superior view: anterior up, so posterior green is in the lower half
    g = centroid(hue_mask(top, 1))
    assert g[0] > top.shape[0] * 0.6
    # scale: the red ball is 40 mm wide; measure its pixel width in the front view
    cols = np.where(hue_mask(front, 0).any(0))[0]
    width_mm = (cols.max() - cols.min() + 1) / px_per_mm
    assert abs(width_mm - 40.0) < 2.5, width_mm


def test_render_previews_png(tmp_path):
    out = render_previews(MODELS, tmp_path / "preview.png", panel_px=240)
    assert out == tmp_path / "preview.png" and out.stat().st_size > 5000
    img = read_png(out)
    assert img.shape[1] > 3 * 240
    for ch in range(3):
        assert hue_mask(img, ch).sum() > 500  # every model colour is drawn (not only the legend swatch)
    # differs from a render of nothing but one model: the other colours are gone there
    single = read_png(render_previews(MODELS[:1], tmp_path / "single.png", panel_px=240))
    assert hue_mask(single, 1).sum() < 20 and hue_mask(single, 0).sum() > 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview.png", "single.png"]  # no temp files


def test_render_previews_errors(tmp_path):
    with pytest.raises(MeshError, match="no surface models") as e:
        render_previews([], tmp_path / "p.png")
    assert "p.png" in str(e.value)
    empty = SurfaceModel("empty", np.zeros((0, 3)), np.zeros((0, 3), int))
    with pytest.raises(MeshError, match="empty"):
        render_previews([empty], tmp_path / "q.png")
    assert not list(tmp_path.iterdir())


def _phantom(affine_perm: bool):
    """A CT-like box with a label blob at the patient's left-anterior-superior corner.

    The same physical object is stored either in LPS index order or flipped and permuted."""
    n = 40
    ct = np.full((n, n, n), -1000.0, np.float32)
    ct[5:35, 5:35, 5:35] = 40.0
    lab = np.zeros((n, n, n), np.uint8)
    lab[24:32, 8:16, 24:32] = 4  # +x (left), low y (anterior), +z (superior)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = [-40, -40, -40]
    if not affine_perm:
        return Volume(ct, aff, {"modality": "CT"}), Volume(lab, aff)
    # store as array[k', i', j'] with i flipped: new index (a, b, c) = (k, n-1-i, j)
    perm_ct = np.transpose(ct[::-1], (2, 0, 1)).copy()
    perm_lab = np.transpose(lab[::-1], (2, 0, 1)).copy()
    new = np.zeros((4, 4))
    new[:3, 0] = aff[:3, 2]            # a -> k
    new[:3, 1] = -aff[:3, 0]           # b -> i reversed
    new[:3, 2] = aff[:3, 1]            # c -> j
    new[:3, 3] = aff[:3, 3] + aff[:3, 0] * (n - 1)
    new[3, 3] = 1
    return Volume(perm_ct, new, {"modality": "CT"}), Volume(perm_lab, new)


def test_montage_orientation_independent_of_storage_order():
    labels = {4: ("blob", (1.0, 0.0, 0.0))}
    a = slice_panels(*_phantom(False), labels, panel_px=120)
    b = slice_panels(*_phantom(True), labels, panel_px=120)
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)  # same centre
    for (na, ia, _, _), (nb, ib, _, _) in zip(a[0], b[0]):
        assert na == nb and ia.shape == ib.shape
        assert np.mean(np.abs(ia.astype(int) - ib.astype(int)) > 2) < 0.01
    panels = {name: img for name, img, _, _ in a[0]}
    red = lambda im: (im[..., 0] > 200) & (im[..., 1] < 80)
    # axial: patient's left on the picture's right, anterior at the top
    r = centroid(red(panels["axial"]))
    assert r[1] > panels["axial"].shape[1] / 2 and r[0] < panels["axial"].shape[0] / 2
    # coronal: left on the right, superior at the top
    r = centroid(red(panels["coronal"]))
    assert r[1] > panels["coronal"].shape[1] / 2 and r[0] < panels["coronal"].shape[0] / 2
    # sagittal: anterior on the left, superior at the top
    r = centroid(red(panels["sagittal"]))
    assert r[1] < panels["sagittal"].shape[1] / 2 and r[0] < panels["sagittal"].shape[0] / 2
    # true aspect: the 80 mm cube is square on screen in every plane
    for img in panels.values():
        assert abs(img.shape[0] - img.shape[1]) <= 1


@pytest.mark.realdata
def test_montage_real_ct_and_labels(tmp_path):
    d = "ct_abdomen_totalsegmentator_refseg"
    ct_img = nib.load(str(shared_path(d, "example_ct.nii.gz")))
    seg_img = nib.load(str(shared_path(d, "example_seg_fast_force_split.nii.gz")))
    ct = Volume(np.asanyarray(ct_img.dataobj), RAS_FLIP @ ct_img.affine, {"modality": "CT"})
    seg = Volume(np.asanyarray(seg_img.dataobj), RAS_FLIP @ seg_img.affine)
    values = [int(v) for v in np.unique(seg.array) if v]
    labels = {v: (f"s{v}", (0.2, 0.3, 0.4)) for v in values}
    liver = 5  # TotalSegmentator 'total' id of the liver, the biggest organ here
    labels[liver] = ("liver", (0.0, 1.0, 0.0))
    out = qc_montage(ct, seg, labels, tmp_path / "qc.png")
    img = read_png(out)
    assert img.shape[0] > 200 and img.shape[1] > 600
    pure_green = (img[..., 1] == 255) & (img[..., 0] == 0) & (img[..., 2] == 0)
    assert pure_green.sum() > 100  # liver outline drawn in its colour
    # the liver lies on the patient's right: in the axial panel it is on the left half of the picture
    panels, *_ = slice_panels(ct, seg, labels, centre_lps=seg.index_to_lps(np.argwhere(seg.array == liver).mean(0, keepdims=True))[0])
    ax = panels[0][1]
    g = centroid((ax[..., 1] == 255) & (ax[..., 0] == 0))
    assert g[1] < ax.shape[1] / 2


def test_montage_errors(tmp_path):
    vol = Volume(np.zeros((10, 10, 10), np.float32), np.eye(4))
    with pytest.raises(SegmentationError, match="non-integer") as e:
        qc_montage(vol, vol.with_array(np.full((10, 10, 10), 0.5)), {}, tmp_path / "m.png")
    assert "m.png" in str(e.value)
    far = np.eye(4)
    far[:3, 3] = 1000
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[5, 5, 5] = 1
    with pytest.raises(SegmentationError, match="does not overlap"):
        qc_montage(vol, Volume(lab, far), {}, tmp_path / "m.png")
    assert not list(tmp_path.iterdir())


def test_software_fallback_matches_vtk_silhouettes():
    """The numpy rasteriser (used when no OpenGL works) draws the same shapes as VTK."""
    from medrecon.viz import _raster as R

    vtk_panels, s1 = render_views(MODELS, panel_px=200, backend="vtk")
    soft_panels, s2 = render_views(MODELS, panel_px=200, backend="software")
    assert s1 == s2
    bg = np.asarray(R.BACKGROUND)
    for (n1, a, _, _), (n2, b, _, _) in zip(vtk_panels, soft_panels):
        ma, mb = np.any(a != bg, axis=2), np.any(b != bg, axis=2)
        iou = (ma & mb).sum() / (ma | mb).sum()
        assert n1 == n2 and iou > 0.93, (n1, iou)
        for ch in range(3):  # same colour in the same place
            ha, hb = hue_mask(a, ch), hue_mask(b, ch)
            assert (ha & hb).sum() / max(1, (ha | hb).sum()) > 0.85, (n1, ch)


def test_panels_differ_from_a_blank_vtk_render():
    from vtkmodules.vtkRenderingCore import vtkRenderer

    from medrecon.viz import _raster as R
    from medrecon.viz.preview import _grab, offscreen_window

    rw = offscreen_window(200, 200)
    ren = vtkRenderer()
    ren.SetBackground(*[c / 255 for c in R.BACKGROUND])
    rw.AddRenderer(ren)
    rw.Render()
    blank = _grab(rw)
    rw.Finalize()
    assert blank.shape == (200, 200, 3) and len(np.unique(blank.reshape(-1, 3), axis=0)) == 1
    panels, _ = render_views(MODELS, panel_px=200, backend="vtk")
    for name, img, _, _ in panels:
        changed = np.mean(np.any(np.abs(img.astype(int) - blank.astype(int)) > 8, axis=2))
        assert changed > 0.05, (name, changed)


@pytest.mark.parametrize("shape", [(20, 20, 120), (120, 40, 30), (200, 200, 60)])
def test_montage_title_never_overlaps_the_orientation_note(tmp_path, shape):
    """Issue 22: on narrow montages (668 and 803 px wide) the title ran into the orientation note.
    The layout keeps the two boxes apart at every width, and the rendered PNG has ink only inside
    them in the header."""
    from medrecon.viz.montage import header_layout

    for width in (600, 668, 803, 1000, 1400):
        w, head, (t, n) = header_layout(width, "QC montage - slices through the labels' centre at LPS "
                                        "(-123.4, -56.7, 890.1) mm", "radiological view: patient's R on the "
                                        "left (letters at the edges)")
        apart = t[2] + 8 <= n[0] or t[3] <= n[1] or n[3] <= t[1]
        assert apart, (width, t, n)
        assert 0 <= t[0] and t[2] <= w and 0 <= n[0] and n[2] <= w and max(t[3], n[3]) <= head
    arr = np.zeros(shape, np.float32)
    lab = np.zeros(shape, np.uint8)
    lab[4:-4, 4:-4, 4:-4] = 1
    vol = Volume(arr, np.diag([1.0, 1.0, 1.0, 1.0]), {"modality": "CT"})
    out = qc_montage(vol, Volume(lab, vol.affine), {1: ("bone", (1.0, 0.0, 0.0))}, tmp_path / "qc.png")
    img = read_png(out)
    _, centre, *_ = slice_panels(vol, Volume(lab, vol.affine), {1: ("bone", (1.0, 0.0, 0.0))})
    pos = tuple(round(float(c), 1) for c in centre)
    w, head, boxes = header_layout(img.shape[1] if img.shape[1] > 600 else 600,
                                   f"QC montage - slices through the labels' centre at LPS {pos} mm",
                                   "radiological view: patient's R on the left (letters at the edges)")
    assert w == img.shape[1]
    ink = np.any(img[:head] != np.array([14, 15, 18], np.uint8), axis=-1)
    inside = np.zeros_like(ink)
    for x0, y0, x1, y1 in boxes:
        inside[y0:y1, x0:x1] = True
        assert ink[y0:y1, x0:x1].any()  # each text is drawn where the layout put it
    assert not (ink & ~inside).any()
