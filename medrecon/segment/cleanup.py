"""Mask clean-up in physical units: components (cc3d), cavities (fill-voids), closing in mm.

Every size is in millimetres / cubic millimetres, converted with the grid's own voxel volume
(``|det(affine[:3, :3])|``, correct for anisotropic and sheared grids), so a setting means
the same on a 0.5 mm and a 3 mm scan.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from medrecon.errors import SegmentationError

__all__ = ["voxel_volume_mm3", "remove_small_components", "keep_largest", "fill_holes",
           "closing_mm", "dilate_mm", "erode_mm", "clean_mask", "clean_labelmap", "well_composed",
           "find_table", "remove_table"]


def voxel_volume_mm3(affine: np.ndarray) -> float:
    """Volume (mm3) of one voxel of the grid with this index -> LPS affine."""
    return float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3])))


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def remove_small_components(mask: np.ndarray, affine: np.ndarray, min_mm3: float,
                            connectivity: int = 26) -> np.ndarray:
    """Drop connected components smaller than ``min_mm3`` cubic millimetres."""
    import cc3d

    mask = np.asarray(mask, dtype=bool)
    if min_mm3 is None or min_mm3 <= 0 or not mask.any():
        return mask
    n_vox = int(np.ceil(float(min_mm3) / voxel_volume_mm3(affine)))
    out = cc3d.dust(mask.view(np.uint8), threshold=n_vox, connectivity=connectivity, binary_image=True)
    return out.astype(bool)


def keep_largest(mask: np.ndarray, k: int = 1, connectivity: int = 26) -> np.ndarray:
    """Keep the ``k`` largest connected components."""
    import cc3d

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask
    out = cc3d.largest_k(mask.view(np.uint8), k=int(k), connectivity=connectivity, binary_image=True)
    return out > 0


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill cavities that are fully enclosed in 3D (fill-voids)."""
    import fill_voids

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask
    return fill_voids.fill(mask, in_place=False)


def _bbox(mask: np.ndarray, pad: Sequence[int]) -> tuple[slice, ...]:
    idx = [np.flatnonzero(np.any(mask, axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    return tuple(slice(max(0, int(i[0]) - p), min(s, int(i[-1]) + 1 + p)) for i, p, s in zip(idx, pad, mask.shape))


def dilate_mm(mask: np.ndarray, affine: np.ndarray, radius_mm: float) -> np.ndarray:
    """Dilate by a ball of ``radius_mm`` (exact Euclidean distance on the voxel grid)."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if radius_mm <= 0 or not mask.any():
        return mask
    sp = _spacing(affine)
    # every voxel within radius_mm of the mask lies in this crop, and the crop holds the
    # whole mask, so the distances inside it are exact
    sl = _bbox(mask, [int(np.ceil(radius_mm / s)) + 1 for s in sp])
    out = np.zeros_like(mask)
    out[sl] = ndimage.distance_transform_edt(~mask[sl], sampling=sp) <= radius_mm
    return out


def erode_mm(mask: np.ndarray, affine: np.ndarray, radius_mm: float) -> np.ndarray:
    """Erode by a ball of ``radius_mm`` (voxels farther than ``radius_mm`` from the outside)."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if radius_mm <= 0 or not mask.any():
        return mask
    sp = _spacing(affine)
    sl = _bbox(mask, [1, 1, 1])
    sub = np.pad(mask[sl], 1)  # the volume border counts as outside
    d = ndimage.distance_transform_edt(sub, sampling=sp)[1:-1, 1:-1, 1:-1]
    out = np.zeros_like(mask)
    out[sl] = d > radius_mm
    return out


def closing_mm(mask: np.ndarray, affine: np.ndarray, radius_mm: float) -> np.ndarray:
    """Morphological closing with a ball of ``radius_mm``: bridges gaps narrower than 2 r.

    The volume border does not erode the result (closing is done with enough padding).
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if radius_mm <= 0 or not mask.any():
        return mask
    sp = _spacing(affine)
    pad = [int(np.ceil(radius_mm / s)) + 2 for s in sp]
    sl = _bbox(mask, [0, 0, 0])
    sub = np.pad(mask[sl], [(p, p) for p in pad])
    grown = ndimage.distance_transform_edt(~sub, sampling=sp) <= radius_mm
    closed = ndimage.distance_transform_edt(grown, sampling=sp) > radius_mm
    closed |= sub
    out = mask.copy()
    out[sl] |= closed[tuple(slice(p, p + n) for p, n in zip(pad, mask[sl].shape))]
    return out


def well_composed(mask: np.ndarray, max_iter: int = 10) -> np.ndarray:
    """Add the few voxels that remove diagonal-only contacts, so the surface has no pinches.

    A binary mask whose parts touch only along a voxel edge (two diagonal voxels of a 2x2 square
    with the other two empty) or only at a corner (two opposite corners of a 2x2x2 cube, the
    other six empty, or the reverse for the background) has a surface that meets itself there:
    after smoothing such points are non-manifold once an STL reader merges equal positions.
    These are the critical configurations of well-composed sets (Latecki); each is resolved by
    switching one background voxel of the configuration on, repeated until none is left
    (normally one or two passes; a few voxels per million).
    """
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    n0, n1, n2 = m.shape
    for _ in range(max_iter):
        changed = 0
        for ax in range(3):  # edge contacts, in every axis-aligned 2x2 square
            o = [a for a in range(3) if a != ax]

            def sl(di: int, dj: int) -> tuple[slice, ...]:
                s = [slice(None)] * 3
                s[o[0]] = slice(di, m.shape[o[0]] - 1 + di)
                s[o[1]] = slice(dj, m.shape[o[1]] - 1 + dj)
                return tuple(s)

            a, b, c, d = m[sl(0, 0)], m[sl(1, 1)], m[sl(1, 0)], m[sl(0, 1)]
            p1 = a & b & ~c & ~d
            p2 = c & d & ~a & ~b
            n = int(np.count_nonzero(p1)) + int(np.count_nonzero(p2))
            if n:
                m[sl(1, 0)] |= p1
                m[sl(0, 0)] |= p2
                changed += n
        # corner contacts, in every 2x2x2 cube
        v = {(i, j, k): m[i:n0 - 1 + i, j:n1 - 1 + j, k:n2 - 1 + k]
             for i in (0, 1) for j in (0, 1) for k in (0, 1)}
        count = sum(x.astype(np.uint8) for x in v.values())
        for c in [c for c in v if c[0] == 0]:
            opp = (1 - c[0], 1 - c[1], 1 - c[2])
            p = v[c] & v[opp] & (count == 2)
            q = ~v[c] & ~v[opp] & (count == 6)
            n = int(np.count_nonzero(p)) + int(np.count_nonzero(q))
            if n:
                v[(1, c[1], c[2])] |= p   # a voxel next to c joins the two
                v[c] |= q                 # fill one end of the background's diagonal
                changed += n
        if not changed:
            break
    return m[1:-1, 1:-1, 1:-1]


def find_table(mask: np.ndarray, image: np.ndarray, affine: np.ndarray, *, air_hu: float = -400.0,
               min_air_fraction: float = 0.3, shell_mm: float = 3.0, max_flatness: float = 0.5,
               connectivity: int = 26) -> tuple[np.ndarray, list[dict]]:
    """The connected components of a CT mask that are the scanner table (or another support).

    A component is taken as table when it lies **outside the body** and is **flat**: at least
    ``min_air_fraction`` of a ``shell_mm`` shell around it is air (below ``air_hu`` HU; bone is
    wrapped in soft tissue, a few per cent at most) and its anterior-posterior extent is at most
    ``max_flatness`` times its left-right extent (patient axes, from the affine). Ribs, femurs
    and every other bone piece stay, whatever their size (unlike keeping the largest component).

    Parameters
    ----------
    mask : bool array (i, j, k)
    image : the CT in HU on the same grid
    affine : (4, 4) index -> LPS mm

    Returns
    -------
    table : bool array, the voxels of the table components
    found : list of dict, one per table component (``volume_mm3``, ``air_fraction``, ``size_mm``)
    """
    import cc3d
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    table = np.zeros_like(mask)
    if not mask.any():
        return table, []
    lin = np.asarray(affine, dtype=np.float64)[:3, :3]
    sp = _spacing(affine)
    cc, n = cc3d.connected_components(mask.view(np.uint8), connectivity=connectivity, return_N=True)
    stats = cc3d.statistics(cc)
    pad = [int(np.ceil(shell_mm / s)) + 1 for s in sp]
    found = []
    for i in range(1, n + 1):
        bb = stats["bounding_boxes"][i]
        sl = tuple(slice(max(0, s.start - p), min(dim, s.stop + p)) for s, p, dim in zip(bb, pad, mask.shape))
        comp = cc[sl] == i
        idx = np.argwhere(comp)
        pts = idx @ lin.T
        size = np.ptp(pts, axis=0) + np.abs(lin).sum(axis=1)  # LPS extent, one voxel added
        if size[1] > max_flatness * size[0]:  # not flat: AP thickness vs LR width
            continue
        shell = (ndimage.distance_transform_edt(~comp, sampling=sp) <= shell_mm) & ~comp & ~mask[sl]
        if not shell.any():
            continue
        air = float(np.mean(np.asarray(image)[sl][shell] < air_hu))
        if air < min_air_fraction:
            continue
        table[sl] |= comp
        found.append({"volume_mm3": round(float(comp.sum()) * voxel_volume_mm3(affine), 1),
                      "air_fraction": round(air, 3), "size_mm": np.round(size, 1).tolist()})
    return table, found


def remove_table(mask: np.ndarray, image: np.ndarray, affine: np.ndarray, **kwargs) -> tuple[np.ndarray, list[dict]]:
    """``mask`` without the components :func:`find_table` takes for the scanner table."""
    table, found = find_table(mask, image, affine, **kwargs)
    return np.asarray(mask, dtype=bool) & ~table, found


def clean_mask(mask: np.ndarray, affine: np.ndarray, *, min_component_mm3: float | None = None,
               largest: bool = False, fill: bool = False, closing_radius_mm: float = 0.0,
               connectivity: int = 26) -> np.ndarray:
    """Apply the clean-up steps in a fixed order: closing, small components, largest, fill.

    Parameters
    ----------
    mask : bool array
    affine : (4, 4) index -> LPS mm (only its linear part is used)
    min_component_mm3 : float, optional
        Components smaller than this (mm3) are removed.
    largest : bool
        Keep only the largest component.
    fill : bool
        Fill enclosed cavities.
    closing_radius_mm : float
        Closing radius in mm (0 = none).
    """
    m = np.asarray(mask, dtype=bool)
    if closing_radius_mm and closing_radius_mm > 0:
        m = closing_mm(m, affine, closing_radius_mm)
    if min_component_mm3:
        m = remove_small_components(m, affine, min_component_mm3, connectivity)
    if largest:
        m = keep_largest(m, 1, connectivity)
    if fill:
        m = fill_holes(m)
    return m


def clean_labelmap(labels: np.ndarray, affine: np.ndarray, *, min_component_mm3: float | None = None,
                   largest: bool = False, fill: bool = False, closing_radius_mm: float = 0.0,
                   values: Sequence[int] | None = None) -> np.ndarray:
    """Clean every label of a label map separately (inside its own bounding box).

    A label's filled cavities or closing never overwrite another label's voxels.
    """
    from scipy import ndimage

    arr = np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        raise SegmentationError("clean_labelmap needs an integer label map")
    if not (min_component_mm3 or largest or fill or closing_radius_mm):
        return arr
    out = arr.copy()
    objs = ndimage.find_objects(arr.astype(np.int64, copy=False)) if arr.size and arr.max() > 0 else []
    wanted = set(int(v) for v in values) if values is not None else None
    sp = _spacing(affine)
    pad = [int(np.ceil(closing_radius_mm / s)) + 1 if closing_radius_mm else 0 for s in sp]
    for i, sl in enumerate(objs):
        v = i + 1
        if sl is None or (wanted is not None and v not in wanted):
            continue
        sl = tuple(slice(max(0, s.start - p), min(n, s.stop + p)) for s, p, n in zip(sl, pad, arr.shape))
        sub_in = arr[sl] == v
        sub = clean_mask(sub_in, affine, min_component_mm3=min_component_mm3, largest=largest, fill=fill,
                         closing_radius_mm=closing_radius_mm)
        region = out[sl]
        region[sub_in & ~sub] = 0
        region[sub & (arr[sl] == 0)] = v
    return out
