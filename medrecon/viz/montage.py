"""QC montage: axial, coronal and sagittal slices with each label's outline in its colour.

Each panel is resampled onto an **LPS-aligned display plane** through the centre of the
labelled voxels, whatever the orientation of the scan (oblique, flipped, sagittal
acquisition...). Display pixels are square in millimetres, so aspect ratios are true.
Conventions (radiological, as in 3D Slicer's slice views):

* axial: patient's right on the left of the picture, anterior at the top;
* coronal: patient's right on the left, superior at the top;
* sagittal: anterior on the left, superior at the top.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy import ndimage

from medrecon.errors import SegmentationError
from medrecon.labelmap import as_labelmap, label_name_color
from medrecon.viz import _raster as R
from medrecon.volume import Volume

#: plane name -> (screen-right LPS unit vector, screen-down LPS unit vector)
PLANES = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}


def _label_name_color(labels: Mapping[int, Any] | None, value: int) -> tuple[str, tuple[int, int, int]]:
    name, color = label_name_color((labels or {}).get(int(value)), value, "label {value}")
    return name, R.color_u8(color)


def _sample(vol: Volume, pts: np.ndarray, order: int, cval: float) -> np.ndarray:
    """Sample ``vol`` (first frame if 4D) at (..., 3) LPS points."""
    arr = vol.array if vol.array.ndim == 3 else vol.array[..., 0]
    ijk = vol.lps_to_index(pts.reshape(-1, 3)).T
    out = ndimage.map_coordinates(arr, ijk, order=order, mode="constant", cval=cval, prefilter=False)
    return out.reshape(pts.shape[:-1])


def _window(volume: Volume) -> tuple[float, float]:
    arr = volume.array
    step = max(1, int(round((arr.size / 2e6) ** (1 / 3))))
    sub = arr[::step, ::step, ::step].astype(np.float32)
    if str(volume.meta.get("modality", "")).upper() == "CT" or float(sub.min()) <= -500:
        return -450.0, 1050.0  # soft tissue to bone, in HU
    lo, hi = np.percentile(sub, [0.5, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1)


def _outline(lab: np.ndarray) -> np.ndarray:
    """Boolean mask of label pixels that touch a pixel of another value (4-neighbourhood)."""
    edge = np.zeros(lab.shape, bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[1:] |= lab[1:] != lab[:-1]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    return edge & (lab != 0)


def slice_panels(volume: Volume, labelmap: Volume, labels: Mapping[int, Any] | None = None,
                 panel_px: int = 400, fill_opacity: float = 0.18, centre_lps=None, min_panel_px: int = 160):
    """The three display planes, resampled in LPS, with label outlines drawn.

    Parameters
    ----------
    volume, labelmap, labels, panel_px, fill_opacity
        As in :func:`qc_montage`.
    centre_lps : (3,) array, optional
        Point (LPS mm) the planes pass through; default: centre of the labelled voxels.

    Returns
    -------
    panels : list of (plane name, (H, W, 3) uint8 image, screen-right LPS vector, screen-down LPS vector)
        A panel whose short side would get fewer than ``min_panel_px`` pixels (thin volumes) is
        magnified and its long side cropped around the labels' centre (at most 2.5 ``panel_px``).
    centre : (3,) LPS mm point the planes pass through
    mm_per_px : dict plane name -> display pixel size of that panel (square pixels), mm
    values : label values present
    """
    lab_arr = labelmap.array if labelmap.array.ndim == 3 else labelmap.array[..., 0]
    lab_arr = as_labelmap(lab_arr, error=SegmentationError, narrow=False)
    lab_arr = lab_arr.astype(np.int32, copy=False)
    lab_vol = Volume(lab_arr, labelmap.affine)

    corners = volume.corners_lps()
    lo, hi = corners.min(0), corners.max(0)
    nz = np.argwhere(lab_arr != 0)
    values = np.unique(lab_arr[lab_arr != 0]) if len(nz) else np.array([], int)
    if centre_lps is not None:
        centre = np.asarray(centre_lps, float)
    elif len(nz):
        centre = lab_vol.index_to_lps(nz.mean(0, keepdims=True))[0]
    else:
        centre = (lo + hi) / 2
    if np.any(centre < lo - 1e-3) or np.any(centre > hi + 1e-3):
        raise SegmentationError("the label map does not overlap the image volume")

    wmin, wmax = _window(volume)
    extent = hi - lo
    mm_per_px = max(float(extent.max()) / panel_px, float(min(volume.spacing.min(), lab_vol.spacing.min())) / 2)
    panels, scales = [], {}
    finest = float(min(volume.spacing.min(), lab_vol.spacing.min())) / 4
    for name, (right, down) in PLANES.items():
        r, d = np.asarray(right), np.asarray(down)
        ar, ad = int(np.argmax(np.abs(r))), int(np.argmax(np.abs(d)))
        # thin volumes (a 40 mm slab): magnify the panel so its short side has at least
        # min_panel_px pixels, and crop its long side around the labels' centre
        mm_px = mm_per_px
        short = min(extent[ar], extent[ad])
        if short / mm_px < min_panel_px:
            mm_px = max(short / min_panel_px, finest)
        nw = max(2, int(np.ceil(extent[ar] / mm_px)))
        nh = max(2, int(np.ceil(extent[ad] / mm_px)))
        start = centre.copy()
        start[ar] = lo[ar] if r[ar] > 0 else hi[ar]
        start[ad] = lo[ad] if d[ad] > 0 else hi[ad]
        cap = int(2.5 * panel_px)
        for ax, n_ax, vec in ((ar, nw, r), (ad, nh, d)):
            if n_ax > cap:  # keep a window of ``cap`` pixels centred on the labels
                half = cap * mm_px / 2
                a0 = np.clip(centre[ax] - half, lo[ax], hi[ax] - 2 * half)
                start[ax] = a0 if vec[ax] > 0 else a0 + 2 * half
        nw, nh = min(nw, cap), min(nh, cap)
        u = (np.arange(nw) + 0.5) * mm_px
        v = (np.arange(nh) + 0.5) * mm_px
        pts = start + u[None, :, None] * r + v[:, None, None] * d
        img = _sample(volume, pts, order=1, cval=wmin)
        lab = _sample(lab_vol, pts, order=0, cval=0).astype(np.int32)
        grey = np.clip((img - wmin) / (wmax - wmin), 0, 1) * 255
        rgb = np.repeat(grey[..., None], 3, axis=2)
        for val in values:
            _, col = _label_name_color(labels, val)
            m = lab == val
            if not m.any():
                continue
            col = np.asarray(col, float)
            if fill_opacity > 0:
                rgb[m] = rgb[m] * (1 - fill_opacity) + col * fill_opacity
            edge = _outline(np.where(m, 1, 0))
            rgb[edge] = col
        panels.append((name, np.round(rgb).astype(np.uint8), r, d))
        scales[name] = mm_px

    return panels, centre, scales, values


_TITLE = (15, True)   # font size, bold
_NOTE = (12, False)


def header_layout(width: int, title: str, note: str, gap: int = 8) -> tuple[int, int, list[tuple[int, int, int, int]]]:
    """Where the montage's title and its orientation note go: ``(width, header height, [title box,
    note box])`` with boxes ``(x0, y0, x1, y1)`` in pixels. The note sits right-aligned on the
    title's line when both fit with a gap between them, else on a line of its own below (narrow
    montages); the canvas widens when the title alone is wider."""
    tm, nm = R.text_mask(title, *_TITLE), R.text_mask(note, *_NOTE)
    (th, tw), (nh, nw) = tm.shape, nm.shape
    width = max(int(width), tw + 2 * gap, nw + 2 * gap)
    line = max(th, nh) + 2 * gap
    if tw + nw + 3 * gap <= width:  # one line
        head = max(34, line)
        title_box = (gap, (head - th) // 2, gap + tw, (head - th) // 2 + th)
        note_box = (width - gap - nw, (head - nh) // 2, width - gap, (head - nh) // 2 + nh)
    else:  # two lines
        title_box = (gap, gap, gap + tw, gap + th)
        y = title_box[3] + gap // 2
        note_box = (width - gap - nw, y, width - gap, y + nh)
        head = note_box[3] + gap
    return width, head, [title_box, note_box]


def qc_montage(volume: Volume, labelmap: Volume, labels: Mapping[int, Any] | None,
               out_png: str | os.PathLike, panel_px: int = 400, fill_opacity: float = 0.18) -> Path:
    """Write a PNG with axial, coronal and sagittal slices and each label outlined in its colour.

    Parameters
    ----------
    volume : Volume
        The image (affine: index -> LPS mm). CT is shown with a -450..1050 HU window, other
        modalities with the 0.5-99.5 percentile range.
    labelmap : Volume
        Integer label map; may lie on another grid than ``volume`` (both are resampled in LPS).
    labels : dict[int, LabelInfo]
        Names and colours (0..1) per label value; unknown values get a generated colour.
    out_png : path
        Output PNG (written atomically).
    panel_px : int
        Longest side of each panel in pixels.
    fill_opacity : float
        Opacity of the coloured fill inside each outline (0 for outlines only).

    Returns
    -------
    Path of the written PNG.

    Raises
    ------
    SegmentationError
        When the label map is not integer-valued or does not overlap the volume.
    """
    out_png = Path(out_png)
    try:
        panels, centre, mm_per_px, values = slice_panels(volume, labelmap, labels, panel_px, fill_opacity)
    except SegmentationError as exc:
        raise SegmentationError(str(exc), path=out_png) from None
    gap = 8
    width = sum(p[1].shape[1] for p in panels) + gap * (len(panels) + 1)
    ph = max(p[1].shape[0] for p in panels)
    legend_cols = 3
    n_leg = max(1, len(values))
    legend_h = 14 + 22 * ((n_leg + legend_cols - 1) // legend_cols)
    width = max(width, 600)
    pos = tuple(round(float(c), 1) for c in centre)
    title = f"QC montage - slices through the labels' centre at LPS {pos} mm"
    note = "radiological view: patient's R on the left (letters at the edges)"
    width, head, boxes = header_layout(width, title, note, gap)
    strip = 30  # scale bars sit under the panels (thin panels have no room inside)
    out = R.canvas(head + ph + strip + legend_h + gap, width, (14, 15, 18))
    (tx, ty, _, _), (nx, ny, nx1, _) = boxes
    R.draw_text(out, title, tx, ty, size=_TITLE[0], bold=_TITLE[1])
    R.draw_text(out, note, nx, ny, (170, 175, 185), _NOTE[0], _NOTE[1])
    x = gap
    for name, tile, r, d in panels:
        mm_px = mm_per_px[name]
        th, tw = tile.shape[:2]
        R.paste(out, tile, x, head)
        R.draw_text(out, name, x + 6, head + 6, (255, 235, 120), 14, True)
        col = (150, 200, 255)
        R.draw_text(out, R.axis_letter(r), x + tw - 5, head + th // 2, col, 14, True, "mr")
        R.draw_text(out, R.axis_letter(-r), x + 5, head + th // 2, col, 14, True, "ml")
        R.draw_text(out, R.axis_letter(-d), x + tw // 2, head + 6, col, 14, True, "tc")
        R.draw_text(out, R.axis_letter(d), x + tw // 2, head + th - 4, col, 14, True, "bc")
        R.draw_scale_bar(out, x + 2, head + ph + strip - 4, 1.0 / mm_px, max(40, tw // 3))
        x += tw + gap

    ly = head + ph + strip + 6
    colw = (width - 2 * gap) // legend_cols
    if len(values) == 0:
        R.draw_text(out, "no labelled voxels", gap, ly + 8, (255, 120, 120), 13, anchor="ml")
    for i, val in enumerate(values):
        nm, col = _label_name_color(labels, val)
        lx = gap + (i % legend_cols) * colw
        y = ly + (i // legend_cols) * 22
        R.fill_rect(out, lx, y, lx + 16, y + 16, col)
        nm = nm if len(nm) <= 40 else nm[:38] + "..."
        R.draw_text(out, f"{nm} ({int(val)})", lx + 22, y + 8, size=13, anchor="ml")
    return R.write_png(out, out_png)
