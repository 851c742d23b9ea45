"""Closed, textured double-sided mesh from height maps on a pixel grid.

Construction (watertight and manifold by construction):

1. The mask is upsampled 2x. Vertices sit on the corners of the sub-pixels; a corner is *inside*
   when any of its four sub-pixels is in the mask and on the *boundary* when some but not all
   are. Its height is the mean over its masked sub-pixels (0 on the boundary).
2. Every sub-pixel is split into two triangles along the diagonal through the centre of its
   2x2 block (the original pixel's centre). Every triangle therefore has an interior vertex and
   no interior edge joins two boundary vertices, so front and back never share an edge that is
   not on the outline.
3. The back is a copy of the interior vertices at ``-h_back`` with reversed winding; boundary
   vertices are shared by front and back.
4. Corner-only contacts in the mask must be removed first (:func:`medrecon.photo.mask.remove_pinches`).

Frame: "view" millimetres, x to the right of the picture, y up, z toward the camera; the picture
is centred on the origin and its longest side is ``size_mm`` long. UVs are in the image plane
(``u = x / W``, ``v = 1 - y / H`` of the original picture) for both sides, so the back shows the
picture mirrored. Decimation (fast-simplification) keeps the mesh closed; UVs are recomputed
from x and y afterwards (they are a linear function of the position).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medrecon.errors import MeshError

__all__ = ["GridMesh", "build_closed_mesh", "edge_check", "smooth_rim", "uv_from_xy"]


@dataclass
class GridMesh:
    """A mesh in the view frame (mm) with its image-plane UVs."""

    vertices: np.ndarray  # (N, 3) float64, view-frame mm
    faces: np.ndarray     # (M, 3) int64, counter-clockwise seen from outside
    uv: np.ndarray        # (N, 2) float64, v up
    n_front_faces: int


def uv_from_xy(xy: np.ndarray, width_mm: float, height_mm: float) -> np.ndarray:
    """Image-plane UVs (v up) of view-frame points for a picture ``width_mm x height_mm`` centred on 0."""
    u = xy[:, 0] / width_mm + 0.5
    v = xy[:, 1] / height_mm + 0.5
    return np.clip(np.column_stack([u, v]), 0.0, 1.0)


def build_closed_mesh(mask: np.ndarray, front: np.ndarray, back: np.ndarray | None = None,
                      pixel_mm: float = 1.0, smooth_rim_iterations: int = 8) -> GridMesh:
    """Closed mesh of the solid ``-back <= z <= front`` over ``mask``.

    Parameters
    ----------
    mask : (H, W) bool, without corner-only contacts
    front, back : (H, W) heights in pixels, > 0 inside the mask (``back`` defaults to ``front``)
    pixel_mm : float, size of one grid pixel in mm (heights are scaled by the same factor)
    smooth_rim_iterations : int, Taubin steps on the outline (0: keep the pixel staircase)

    Returns
    -------
    GridMesh in view-frame mm, UVs over the whole grid.
    """
    m = np.asarray(mask, bool)
    if not m.any():
        raise MeshError("empty mask: nothing to mesh")
    H, W = m.shape
    eps = 1e-3
    fr = np.where(m, np.maximum(np.asarray(front, float), eps), 0.0)
    bk = fr if back is None else np.where(m, np.maximum(np.asarray(back, float), eps), 0.0)

    m2 = np.repeat(np.repeat(m, 2, 0), 2, 1)
    f2 = np.repeat(np.repeat(fr, 2, 0), 2, 1)
    b2 = np.repeat(np.repeat(bk, 2, 0), 2, 1)
    h2, w2 = m2.shape
    # corner (i, j), i in 0..h2, j in 0..w2: its 4 sub-pixels (i-1|i, j-1|j)
    pm = np.pad(m2, 1).astype(np.int32)
    cnt = pm[:-1, :-1] + pm[:-1, 1:] + pm[1:, :-1] + pm[1:, 1:]
    pf = np.pad(f2, 1)
    pb = np.pad(b2, 1)
    sf = pf[:-1, :-1] + pf[:-1, 1:] + pf[1:, :-1] + pf[1:, 1:]
    sb = pb[:-1, :-1] + pb[:-1, 1:] + pb[1:, :-1] + pb[1:, 1:]
    inside = cnt > 0
    interior = cnt == 4
    hf = np.where(interior, sf / np.maximum(cnt, 1), 0.0)
    hb = np.where(interior, sb / np.maximum(cnt, 1), 0.0)

    fid = np.full(inside.shape, -1, np.int64)
    ci, cj = np.nonzero(inside)
    nf = len(ci)
    fid[ci, cj] = np.arange(nf)
    bid = fid.copy()
    ii, ij = np.nonzero(interior)
    bid[ii, ij] = nf + np.arange(len(ii))

    # world coordinates (view frame): corner (i, j) of the 2x grid is at pixel (i/2, j/2)
    x = (cj / 2.0 - W / 2.0) * pixel_mm
    y = (H / 2.0 - ci / 2.0) * pixel_mm
    zf = hf[ci, cj] * pixel_mm
    verts = np.concatenate([np.column_stack([x, y, zf]),
                            np.column_stack([(ij / 2.0 - W / 2.0) * pixel_mm, (H / 2.0 - ii / 2.0) * pixel_mm,
                                             -hb[ii, ij] * pixel_mm])])

    # triangles of each masked sub-pixel (r, c), split through its block centre (odd, odd) corner
    r, c = np.nonzero(m2)
    a = (r, c)            # top-left corner
    b_ = (r, c + 1)       # top-right
    d = (r + 1, c)        # bottom-left
    e = (r + 1, c + 1)    # bottom-right
    # the block centre corner is (2*(r//2)+1, 2*(c//2)+1); sub-pixel parity picks which corner it is
    pr, pc = r % 2, c % 2
    # diagonal TL-BR when the centre is at TL or BR (pr == pc), else TR-BL
    main = pr == pc

    def ids(t, sel):
        return fid[t[0][sel], t[1][sel]]

    tris = []
    s = main
    # y points up (rows down), so counter-clockwise seen from +z is clockwise in (row, col)
    tris.append(np.column_stack([ids(a, s), ids(d, s), ids(e, s)]))
    tris.append(np.column_stack([ids(a, s), ids(e, s), ids(b_, s)]))
    s = ~main
    tris.append(np.column_stack([ids(a, s), ids(d, s), ids(b_, s)]))
    tris.append(np.column_stack([ids(b_, s), ids(d, s), ids(e, s)]))
    front_f = np.concatenate(tris)
    # front id -> back id (interior corners map to their back copy, boundary corners to themselves)
    f2b = bid[ci, cj]
    back_f = f2b[front_f][:, ::-1]
    faces = np.concatenate([front_f, back_f])
    rim = np.zeros(len(verts), bool)
    rim[:nf] = ~interior[ci, cj]
    if smooth_rim_iterations > 0:
        verts = smooth_rim(verts, front_f, rim, smooth_rim_iterations)
    uv = uv_from_xy(verts[:, :2], W * pixel_mm, H * pixel_mm)
    return GridMesh(verts, faces, uv, len(front_f))


def smooth_rim(vertices: np.ndarray, front_faces: np.ndarray, rim: np.ndarray, iterations: int = 8) -> np.ndarray:
    """Taubin-smooth the outline (x and y of the rim vertices, along the outline only).

    The rim follows pixel edges (a staircase); smoothing it along itself, with Taubin's
    shrink-free lambda/mu steps, rounds the silhouette without changing the topology. Rim
    vertices move by at most half a grid pixel, so they never cross their interior neighbours.
    """
    f = np.asarray(front_faces, np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = e[rim[e[:, 0]] & rim[e[:, 1]]]
    if len(e) == 0:
        return vertices
    e = np.unique(np.sort(e, axis=1), axis=0)
    v = np.asarray(vertices, np.float64).copy()
    start = v[:, :2].copy()
    deg = np.bincount(e.ravel(), minlength=len(v)).astype(float)
    ok = deg > 0
    step = float(np.median(np.linalg.norm(v[e[:, 0], :2] - v[e[:, 1], :2], axis=1)))
    for _ in range(int(iterations)):
        for lam in (0.5, -0.53):
            acc = np.zeros((len(v), 2))
            np.add.at(acc, e[:, 0], v[e[:, 1], :2])
            np.add.at(acc, e[:, 1], v[e[:, 0], :2])
            mean = acc[ok] / deg[ok, None]
            v[ok, :2] += lam * (mean - v[ok, :2])
    d = v[:, :2] - start  # at most half a grid pixel (a 2x-grid step) from the pixel edge
    n = np.linalg.norm(d, axis=1)
    lim = 1.0 * step
    far = n > lim
    v[far, :2] = start[far] + d[far] * (lim / n[far])[:, None]
    return v


def edge_check(faces: np.ndarray) -> tuple[bool, bool]:
    """(watertight, consistently wound): every edge in exactly two faces, once in each direction."""
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return False, False
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    n = int(e.max()) + 1
    key_dir = e[:, 0] * n + e[:, 1]
    und = np.sort(e, axis=1)
    key = und[:, 0] * n + und[:, 1]
    _, counts = np.unique(key, return_counts=True)
    watertight = bool(np.all(counts == 2))
    _, dcounts = np.unique(key_dir, return_counts=True)
    wound = watertight and bool(np.all(dcounts == 1))
    return watertight, wound
