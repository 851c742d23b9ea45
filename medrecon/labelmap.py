"""Label-map basics (ground floor): what a label is, its colour, and the checks and resampling
every label map goes through.

* :class:`LabelInfo`: value, name and display colour (0..1) of one structure.
* :data:`PALETTE` / :func:`color_for`: the one palette for labels and meshes that come without a
  colour; :func:`default_color`: an anatomical colour from a structure name.
* :func:`as_labelmap`: the one coercion of an array into a 3D non-negative integer label map.
* :func:`resample_labels_to`: the one nearest-neighbour resampling of a label map onto a grid
  (both grids as index -> LPS mm affines); :func:`labelmap_on_grid` applies it to a Volume
  when its grid differs from the image's.
* :func:`keep_labels`: zero every label outside a set.
* :data:`GROUPS` / :func:`select_structures`: choosing structures of a label table by name or by
  group (bones, organs, vessels, muscles, lungs, spine, ribs).

Label tables (files, the built-in TotalSegmentator table) are :mod:`medrecon.io.label_tables`;
label-map files :mod:`medrecon.io.labelmaps`.

Examples
--------
>>> table = {1: LabelInfo(1, "femur_left"), 2: LabelInfo(2, "liver"), 3: LabelInfo(3, "aorta")}
>>> sorted(li.name for li in select_structures(table, group="bones").values())
['femur_left']
>>> [li.name for li in select_structures(table, ["Liver", "3"]).values()]
['liver', 'aorta']
"""
from __future__ import annotations

import colorsys
import difflib
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from medrecon.errors import ConfigError, InputError
from medrecon.volume import Volume

__all__ = ["LabelInfo", "PALETTE", "color_for", "default_color", "structure_group", "label_name_color", "as_labelmap",
           "GROUPS", "select_structures",
           "label_dtype", "resample_labels_to", "labelmap_on_grid", "keep_labels", "present_labels"]


@dataclass
class LabelInfo:
    """One structure of a label map.

    Parameters
    ----------
    value : int
        Label value in the label map (> 0).
    name : str
        Structure name (used for file names; never a patient identifier).
    color : (r, g, b)
        Display colour, floats in 0..1 (0..255 input is rescaled).
    """

    value: int
    name: str
    color: tuple[float, float, float] = (0.9, 0.85, 0.75)

    def __post_init__(self) -> None:
        self.value = int(self.value)
        self.name = str(self.name).strip()
        c = [float(x) for x in list(self.color)[:3]]
        if len(c) != 3:
            raise ConfigError(f"label {self.value} ({self.name}): colour needs 3 components, got {self.color!r}")
        if max(c) > 1.0:
            c = [x / 255.0 for x in c]
        self.color = tuple(min(max(x, 0.0), 1.0) for x in c)  # type: ignore[assignment]


# --------------------------------------------------------------------------------------------
# colours
# --------------------------------------------------------------------------------------------
#: Colours (0..1 RGB, Slicer-like) for labels and meshes that come without one, in order.
PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.945, 0.839, 0.569), (0.502, 0.682, 0.502), (0.847, 0.396, 0.310), (0.435, 0.722, 0.824),
    (0.867, 0.510, 0.396), (0.565, 0.933, 0.565), (0.753, 0.408, 0.345), (0.863, 0.961, 0.078),
    (0.306, 0.247, 0.000), (1.000, 0.980, 0.863), (0.902, 0.863, 0.275), (0.784, 0.784, 0.922),
)


def color_for(i: int) -> tuple[float, float, float]:
    """The ``i``-th palette colour (cycling)."""
    return PALETTE[int(i) % len(PALETTE)]


# Name patterns of the coarse structure groups (matched against lower-case names).
_BONE = re.compile(r"(vertebra|sacrum|rib_|^rib|skull|femur|hip|humerus|scapula|clavicul|sternum|"
                   r"costal_cartilage|bone|mandible|maxilla|teeth|tooth|pelvi|tibia|fibula|patella|radius|"
                   r"ulna|spine|coccyx|cranium|vertebrae)")
_VESSEL = re.compile(r"(aorta|artery|vein|vena|trunk|vessel|carotid|portal)")
_MUSCLE = re.compile(r"(gluteus|autochthon|iliopsoas|muscle)")

# Anatomical colours (0..255), close to the ones 3D Slicer's terminology uses.
_NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "spleen": (157, 108, 162), "kidney": (185, 102, 83), "gallbladder": (139, 150, 98),
    "liver": (221, 130, 101), "stomach": (216, 132, 105), "pancreas": (249, 180, 111),
    "adrenal_gland": (244, 186, 150), "lung": (197, 165, 145), "esophagus": (211, 171, 143),
    "trachea": (182, 228, 255), "thyroid": (220, 160, 170), "small_bowel": (205, 167, 142),
    "duodenum": (255, 253, 229), "colon": (204, 168, 143), "urinary_bladder": (222, 154, 132),
    "prostate": (230, 158, 140), "kidney_cyst": (205, 205, 100), "heart": (206, 110, 84),
    "aorta": (224, 97, 76), "artery": (216, 101, 79), "trunk": (216, 101, 79), "pulmonary_vein": (0, 151, 206),
    "vein": (0, 151, 206), "vena": (0, 151, 206), "portal": (0, 151, 206),
    "atrial_appendage": (200, 100, 90), "brain": (250, 250, 225), "spinal_cord": (244, 214, 49),
    "autochthon": (192, 104, 88), "gluteus": (192, 104, 88), "iliopsoas": (192, 104, 88),
    "muscle": (192, 104, 88), "skin": (177, 122, 101), "soft_tissue": (200, 150, 130),
    "airway": (182, 228, 255), "teeth": (255, 250, 220), "enamel": (255, 250, 220),
    "costal_cartilage": (111, 184, 210), "ventricle": (88, 106, 215), "csf": (88, 106, 215),
}
_BONE_COLOR = (241, 214, 145)


def structure_group(name: str) -> str:
    """Coarse group of a structure name: bones, vessels, muscles or organs."""
    n = name.lower()
    if _BONE.search(n):
        return "bones"
    if _VESSEL.search(n):
        return "vessels"
    if _MUSCLE.search(n):
        return "muscles"
    return "organs"


def default_color(name: str, value: int = 0) -> tuple[float, float, float]:
    """A sensible anatomical colour (0..1) for a structure name.

    Bones are ivory with a small per-label variation so that neighbouring vertebrae and ribs
    stay distinguishable; organs and vessels follow Slicer-like conventions; unknown names get
    a colour from a golden-ratio hue walk keyed on the label value.
    """
    n = name.lower()
    for key in sorted(_NAMED_COLORS, key=len, reverse=True):
        if key in n and not (key == "vein" and "artery" in n):
            return tuple(c / 255.0 for c in _NAMED_COLORS[key])  # type: ignore[return-value]
    if structure_group(n) == "bones":
        shade = ((value * 37) % 7 - 3) * 6
        return tuple(min(255, max(0, c + shade)) / 255.0 for c in _BONE_COLOR)  # type: ignore[return-value]
    r, g, b = colorsys.hsv_to_rgb((value * 0.618034) % 1.0, 0.5, 0.9)
    return (round(r, 4), round(g, 4), round(b, 4))


def label_name_color(info, value: int, default_name: str = "label_{value}") -> tuple[str, tuple[float, float, float]]:
    """Name and colour (0..1) of label ``value`` from whatever describes it: a :class:`LabelInfo`
    (or any object with ``.name`` / ``.color``), a mapping with ``name`` / ``color``, a
    ``(name, color)`` tuple, or None. Missing name: ``default_name`` (``{value}`` filled in);
    missing colour: :func:`default_color` of the name. 0..255 colours are rescaled."""
    name = color = None
    if isinstance(info, Mapping):
        name, color = info.get("name"), info.get("color")
    elif isinstance(info, (tuple, list)):
        name, color = info[0], (info[1] if len(info) > 1 else None)
    elif info is not None:
        name, color = getattr(info, "name", None), getattr(info, "color", None)
    name = str(name or default_name.format(value=int(value)))
    if color is None:
        return name, default_color(name, int(value))
    c = np.asarray(color, dtype=np.float64).ravel()[:3]
    if c.max(initial=0.0) > 1.0:
        c = c / 255.0
    return name, tuple(float(x) for x in np.clip(c, 0.0, 1.0))  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# arrays
# --------------------------------------------------------------------------------------------
def label_dtype(max_value: int) -> np.dtype:
    """Smallest dtype holding labels up to ``max_value``: uint8, uint16, else int32."""
    return np.dtype(np.uint8 if max_value < 256 else (np.uint16 if max_value < 65536 else np.int32))


def as_labelmap(array, where: object = None, *, error: type[Exception] = InputError,
                narrow: bool = True) -> np.ndarray:
    """A 3D, non-negative, integer label-map array from ``array``.

    A trailing singleton 4th axis is dropped, booleans become uint8, floats holding whole
    numbers become integers; with ``narrow`` the result has the smallest dtype for its largest
    label (:func:`label_dtype`), else integer input keeps its dtype (no copy).

    Raises
    ------
    error (InputError by default; a MedreconError subclass naming ``where``)
        Not 3D, non-integer (or non-finite) values, or negative labels.
    """
    arr = np.asarray(array)

    def fail(msg: str):
        return error(msg, where) if where is not None else error(msg)

    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise fail(f"label map must be 3D, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    elif not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise fail("label map holds non-integer values (is this an image, not a segmentation?)")
        rounded = np.rint(arr)
        if not np.array_equal(rounded, arr):
            raise fail("label map holds non-integer values (is this an image, not a segmentation?)")
        if arr.size and rounded.min() < 0:
            raise fail("label map holds negative labels")
        arr = rounded.astype(np.int64 if arr.size and rounded.max() >= 2**31 else np.int32)
    if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
        raise fail("label map holds negative labels")
    if narrow:
        arr = arr.astype(label_dtype(int(arr.max()) if arr.size else 0), copy=False)
    return arr


def present_labels(array: np.ndarray) -> list[int]:
    """Sorted non-zero label values present in ``array``."""
    return [int(v) for v in np.unique(array) if v != 0]


def keep_labels(array: np.ndarray, values: Iterable[int]) -> np.ndarray:
    """``array`` with every label outside ``values`` set to 0 (same dtype; a new array)."""
    arr = np.asarray(array)
    top = int(arr.max()) if arr.size else 0
    keep = np.zeros(top + 1, dtype=bool)
    vals = [int(v) for v in values if 0 < int(v) <= top]
    keep[vals] = True
    return np.where(keep[arr], arr, 0).astype(arr.dtype)


def resample_labels_to(labels: np.ndarray, labels_affine: np.ndarray, target_shape, target_affine) -> np.ndarray:
    """Nearest-neighbour resampling of a label map onto another grid.

    Parameters
    ----------
    labels : (I, J, K) int array
    labels_affine : (4, 4)
        Index -> LPS mm of ``labels``.
    target_shape : (3,) ints
    target_affine : (4, 4)
        Index -> LPS mm of the target grid.

    Returns
    -------
    (target_shape) array of ``labels``' dtype; points outside the label map get 0.

    Axis-aligned cases (flips, permutations, scalings) use an exact separable gather; anything
    else uses ``scipy.ndimage.affine_transform(order=0)``.
    """
    m = np.linalg.inv(np.asarray(labels_affine, dtype=np.float64)) @ np.asarray(target_affine, dtype=np.float64)
    lin, off = m[:3, :3], m[:3, 3]
    shape = tuple(int(s) for s in target_shape[:3])
    nz = np.abs(lin) > 1e-9 * max(1.0, np.abs(lin).max())
    if nz.sum(axis=0).tolist() == [1, 1, 1] and nz.sum(axis=1).tolist() == [1, 1, 1]:
        # label axis r is driven by target axis c
        r_of_c = [int(np.flatnonzero(nz[:, c])[0]) for c in range(3)]
        lab_t = np.transpose(labels, r_of_c)
        idx, ok = [], []
        for c in range(3):
            r = r_of_c[c]
            pos = np.floor(lin[r, c] * np.arange(shape[c]) + off[r] + 0.5 + 1e-6).astype(np.int64)
            inside = (pos >= 0) & (pos < labels.shape[r])
            idx.append(np.clip(pos, 0, labels.shape[r] - 1))
            ok.append(inside)
        out = lab_t[np.ix_(*idx)]
        if not all(o.all() for o in ok):
            inside = ok[0][:, None, None] & ok[1][None, :, None] & ok[2][None, None, :]
            out[~inside] = 0
        return np.ascontiguousarray(out)
    from scipy import ndimage

    return ndimage.affine_transform(labels, lin, offset=off, output_shape=shape, order=0, mode="constant", cval=0)


def labelmap_on_grid(labelmap: Volume, volume: Volume, tol_mm: float = 1e-3, where: str = "label map") -> Volume:
    """The label map on the image's grid: as it is when the grids agree, else resampled
    (nearest neighbour, in LPS) with a warning.

    Raises
    ------
    InputError
        Not 3D, not integer, or no overlap with the image.
    """
    arr = as_labelmap(labelmap.array, where)
    shape = volume.shape[:3]
    if arr.shape == shape and labelmap.same_grid(volume, tol_mm):
        return volume.with_array(arr, kind="labelmap", warnings=[])
    out = resample_labels_to(arr, labelmap.affine, shape, volume.affine)
    if not out.any() and arr.any():
        raise InputError("label map does not overlap the image (check that both come from the same scan)", where)
    res = volume.with_array(out, kind="labelmap", warnings=[])
    # same voxels, other axis order / direction (e.g. NIfTI rows flipped): an exact re-indexing
    m = np.linalg.inv(labelmap.affine) @ volume.affine
    rot = np.round(m[:3, :3])
    exact = (np.allclose(m[:3, :3], rot, atol=1e-4) and np.allclose(m[:3, 3], np.round(m[:3, 3]), atol=1e-3)
             and np.all(np.abs(rot).sum(0) == 1) and np.all(np.abs(rot).sum(1) == 1)
             and int(np.count_nonzero(out)) == int(np.count_nonzero(arr)))
    if not exact:
        res.meta["warnings"] = [f"label map grid {arr.shape} differs from the image grid {shape}: "
                                "resampled (nearest neighbour) onto the image grid"]
    return res


_LUNG = re.compile(r"(lung)")
GROUPS = ("bones", "organs", "vessels", "muscles", "lungs", "spine", "ribs")


def _in_group(name: str, group: str) -> bool:
    n = name.lower()
    if group == "spine":
        return bool(re.search(r"(vertebra|sacrum|spine|coccyx)", n))
    if group == "ribs":
        return n.startswith("rib") or "costal_cartilage" in n
    if group == "lungs":
        return bool(_LUNG.search(n))
    return structure_group(n) == group


def select_structures(labels: Mapping[int, LabelInfo], structures: Iterable[str] | None = None,
                      group: str | None = None) -> dict[int, LabelInfo]:
    """Subset of a label table by structure names and/or a group.

    Parameters
    ----------
    labels : dict[int, LabelInfo]
    structures : list of str, optional
        Structure names (case-insensitive) or label values; all when None.
    group : str, optional
        One of :data:`GROUPS` (bones, organs, vessels, muscles, lungs, spine, ribs).

    Raises
    ------
    ConfigError
        Unknown structure name (the message lists close names), unknown group, or a group with
        no structure in this table.
    """
    selected = dict(labels)
    if group:
        g = group.strip().lower()
        if g not in GROUPS:
            raise ConfigError(f"unknown structure group {group!r}; groups: {', '.join(GROUPS)}")
        selected = {v: li for v, li in selected.items() if _in_group(li.name, g)}
        if not selected:
            raise ConfigError(f"the label table has no structure in group {group!r}")
    if structures:
        by_name = {li.name.lower(): v for v, li in labels.items()}
        out: dict[int, LabelInfo] = {}
        for s in structures:
            s = str(s).strip()
            if not s:
                continue
            if s.lower() in by_name:
                v = by_name[s.lower()]
            elif re.fullmatch(r"\d+", s) and int(s) in labels:
                v = int(s)
            else:
                close = difflib.get_close_matches(s.lower(), list(by_name), n=5, cutoff=0.5)
                if not close:
                    close = [n for n in by_name if s.lower() in n][:5]
                hint = f"; did you mean: {', '.join(close)}" if close else ""
                valid = ", ".join(f"{v}={li.name}" for v, li in sorted(labels.items()))
                raise ConfigError(f"unknown structure {s!r}{hint}; valid (value=name): {valid}")
            if v not in selected:
                raise ConfigError(f"structure {s!r} is not in group {group!r}")
            out[v] = labels[v]
        selected = out
    return selected
