"""Intensity presets: validated YAML files that turn a CT/MR volume into one structure mask.

The built-in presets ship inside the package (``medrecon/configs/presets/*.yaml``, the single
source of truth; ``medrecon presets`` style listings read the same files). A preset is either a
fixed window (``method: threshold``, ``low``/``high`` in HU for CT), an automatic Otsu threshold
(``method: otsu``), the automatic head mask (``method: head``) or the automatic T1 brain mask
(``method: brain``), followed by clean-up in
physical units (:mod:`medrecon.segment.cleanup`).

Custom windows come from :func:`parse_threshold` (``"LOW:HIGH"``, either end may be omitted).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medrecon.errors import ConfigError, SegmentationError, validation_message
from medrecon.segment.cleanup import (clean_mask, closing_mm, dilate_mm, erode_mm, fill_holes, keep_largest,
                                      well_composed)
from medrecon.labelmap import LabelInfo
from medrecon.volume import Volume

__all__ = ["Cleanup", "Preset", "PRESET_DIR", "list_presets", "load_preset", "parse_threshold",
           "threshold_preset", "apply_preset", "otsu_threshold", "multi_otsu_thresholds", "body_mask",
           "head_mask", "fill_holes_slicewise"]

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "presets"


class Cleanup(BaseModel):
    """Clean-up after thresholding (sizes in mm / mm3)."""

    model_config = ConfigDict(extra="forbid")
    min_component_mm3: Optional[float] = Field(None, ge=0)
    largest: bool = False
    fill_holes: bool = False
    closing_mm: float = Field(0.0, ge=0, le=50)


class Preset(BaseModel):
    """One segmentation preset (see the YAML files in :data:`PRESET_DIR`)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1)
    description: str = ""
    modality: Literal["CT", "MR", "any"] = "any"
    method: Literal["threshold", "otsu", "head", "brain"] = "threshold"
    low: Optional[float] = None
    high: Optional[float] = None
    structure: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    color: tuple[float, float, float] = (0.9, 0.85, 0.75)
    inside_body: bool = False
    opening_mm: float = Field(4.0, ge=0, le=30)
    cleanup: Cleanup = Field(default_factory=Cleanup)
    source: str = ""

    @field_validator("color")
    @classmethod
    def _color_range(cls, v):
        if any(c < 0 for c in v) or max(v) > 255:
            raise ValueError("colour components must be 0..1 (or 0..255)")
        return tuple(c / 255.0 for c in v) if max(v) > 1 else v

    @model_validator(mode="after")
    def _window(self):
        if self.method == "threshold":
            if self.low is None and self.high is None:
                raise ValueError("method 'threshold' needs low and/or high")
            if self.low is not None and self.high is not None and not self.low < self.high:
                raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    def label_info(self, value: int = 1) -> LabelInfo:
        return LabelInfo(value, self.structure, self.color)


def _read_yaml(path: Path) -> Preset:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read preset: {exc.strerror or exc}", path=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}", path=path) from None
    if not isinstance(data, dict):
        raise ConfigError("preset file must hold a mapping of fields", path=path)
    try:
        return Preset(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid preset: {validation_message(exc)}", path=path) from None


@lru_cache(maxsize=None)
def _builtin() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.yaml"))}


def list_presets() -> dict[str, str]:
    """Built-in preset names -> one-line descriptions."""
    return {name: _read_yaml(p).description for name, p in _builtin().items()}


def load_preset(spec: str | Path) -> Preset:
    """A built-in preset by name (``ct-bone``) or a preset YAML file by path.

    Raises
    ------
    ConfigError
        Unknown name (lists the built-in ones and close matches), unreadable or invalid YAML
        (names the file and the offending field).
    """
    key = str(spec).strip()
    builtin = _builtin()
    if key in builtin:
        return _read_yaml(builtin[key])
    path = Path(key)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError("preset file not found", path=path)
        return _read_yaml(path)
    import difflib

    close = difflib.get_close_matches(key, list(builtin), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"unknown preset {key!r}{hint} (built-in: {', '.join(builtin)})")


_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


def parse_threshold(text: str) -> tuple[float | None, float | None]:
    """Parse ``"LOW:HIGH"`` (e.g. ``"226:3071"``, ``"-1000:-400"``, ``"300:"``, ``":-500"``).

    Returns ``(low, high)``; an omitted end is None (open). Raises :class:`ConfigError`.
    """
    s = str(text).strip().replace(" ", "")
    m = re.fullmatch(rf"({_NUM})?(?::|\.\.)({_NUM})?", s)
    if not m or (m.group(1) is None and m.group(2) is None):
        raise ConfigError(f"--threshold must be LOW:HIGH (numbers, e.g. 226:3071 or 300:), got {text!r}")
    low = float(m.group(1)) if m.group(1) is not None else None
    high = float(m.group(2)) if m.group(2) is not None else None
    if low is not None and high is not None and not low < high:
        raise ConfigError(f"--threshold LOW must be below HIGH, got {text!r}")
    return low, high


def threshold_preset(text_or_window, structure: str = "threshold") -> Preset:
    """A custom fixed-window preset from ``"LOW:HIGH"`` or a ``(low, high)`` pair."""
    low, high = parse_threshold(text_or_window) if isinstance(text_or_window, str) else text_or_window
    return Preset(name="custom-threshold", description=f"custom window {low}..{high}", method="threshold",
                  low=low, high=high, structure=structure, color=(0.95, 0.84, 0.57),
                  source="--threshold")


# --------------------------------------------------------------------------------------------
# automatic thresholds
# --------------------------------------------------------------------------------------------
def _histogram(values: np.ndarray, bins: int = 256):
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise SegmentationError("cannot compute an automatic threshold on an empty image")
    lo, hi = np.percentile(v, [0.1, 99.9]) if v.size > 1000 else (v.min(), v.max())
    if hi <= lo:
        raise SegmentationError("cannot compute an automatic threshold: the image is constant")
    hist, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return hist.astype(np.float64), 0.5 * (edges[:-1] + edges[1:])


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximum between-class variance) of the given intensities."""
    hist, centres = _histogram(values, bins)
    w = np.cumsum(hist)
    mu = np.cumsum(hist * centres)
    total_w, total_mu = w[-1], mu[-1]
    w1 = total_w - w
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mu * w - mu * total_w) ** 2 / (w * w1)
    between[~np.isfinite(between)] = -1
    between = between[:-1]
    # an empty gap between the classes gives a plateau of equal scores: take its middle
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    stop = np.flatnonzero(np.diff(best) > 1)
    run = best[: stop[0] + 1] if stop.size else best
    t_first = 0.5 * (centres[run[0]] + centres[run[0] + 1])
    t_last = 0.5 * (centres[run[-1]] + centres[run[-1] + 1])
    return float(0.5 * (t_first + t_last))


def multi_otsu_thresholds(values: np.ndarray, bins: int = 128) -> tuple[float, float]:
    """Two thresholds splitting the intensities into three classes (exhaustive multi-Otsu)."""
    hist, centres = _histogram(values, bins)
    p = hist / hist.sum()
    w = np.concatenate([[0], np.cumsum(p)])
    m = np.concatenate([[0], np.cumsum(p * centres)])
    n = len(p)
    i = np.arange(1, n - 1)[:, None]
    j = np.arange(2, n)[None, :]
    valid = j > i
    w0, m0 = w[i], m[i]
    w1, m1 = w[j] - w[i], m[j] - m[i]
    w2, m2 = w[n] - w[j], m[n] - m[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        score = m0 ** 2 / w0 + m1 ** 2 / w1 + m2 ** 2 / w2
    score = np.where(valid & (w0 > 0) & (w1 > 0) & (w2 > 0), score, -np.inf)
    top = np.argwhere(score >= score.max() * (1 - 1e-9))  # plateaus: take their middle
    best_ij = (int(i[int(np.median(top[:, 0])), 0]), int(j[0, int(np.median(top[:, 1]))]))
    t1 = 0.5 * (centres[best_ij[0] - 1] + centres[best_ij[0]])
    t2 = 0.5 * (centres[best_ij[1] - 1] + centres[best_ij[1]])
    return float(t1), float(t2)


def body_mask(volume: Volume, air_hu: float = -500.0) -> np.ndarray:
    """The patient's body in CT: largest component above ``air_hu`` with enclosed air filled."""
    arr = np.asarray(volume.array)
    return fill_holes(keep_largest(arr > air_hu))


def fill_holes_slicewise(mask: np.ndarray) -> np.ndarray:
    """Fill holes in every 2D slice along each of the three axes (cavities open at the border)."""
    from scipy import ndimage

    out = mask.copy()
    for ax in range(3):
        m = np.moveaxis(mask, ax, 0)
        out |= np.stack([ndimage.binary_fill_holes(sl) for sl in m], axis=ax)
    return out


def head_mask(volume: Volume, closing_radius_mm: float = 3.0) -> np.ndarray:
    """Head (or body) mask of an MR/CT image: Otsu threshold, closing, largest component, holes
    filled in 3D and slice by slice (the neck opening leaves the head cavities open in 3D)."""
    arr = np.asarray(volume.array, dtype=np.float32)
    t = otsu_threshold(arr[::2, ::2, ::2] if arr.size > 8_000_000 else arr)
    head = closing_mm(arr > t, volume.affine, closing_radius_mm)
    head = fill_holes(keep_largest(head))
    return fill_holes_slicewise(head)


def _brain_mask(volume: Volume, preset: Preset) -> np.ndarray:
    """T1 brain: tissue above the lower multi-Otsu threshold inside the head, opened by
    ``opening_mm`` (cuts the links to scalp, eyes and neck), largest component, closed by 2 mm."""
    arr = np.asarray(volume.array, dtype=np.float32)
    head = head_mask(volume)
    if not head.any():
        raise SegmentationError("mr-brain: no head found (Otsu threshold gave an empty mask)")
    t1, _t2 = multi_otsu_thresholds(arr[head])
    tissue = head & (arr > t1)
    r = preset.opening_mm
    core = keep_largest(erode_mm(tissue, volume.affine, r)) if r > 0 else keep_largest(tissue)
    if not core.any():
        raise SegmentationError(f"mr-brain: nothing left after a {r} mm opening; the image may not be a head T1")
    brain = dilate_mm(core, volume.affine, r) & tissue if r > 0 else core
    return closing_mm(fill_holes(brain), volume.affine, 2.0)


# --------------------------------------------------------------------------------------------
# applying a preset
# --------------------------------------------------------------------------------------------
def apply_preset(volume: Volume, preset: Preset | str, *, min_component_mm3: float | None = None,
                 largest: bool | None = None, value: int = 1) -> tuple[Volume, dict[int, LabelInfo]]:
    """Segment ``volume`` with ``preset``; returns a uint8 label map (one structure) and its table.

    Parameters
    ----------
    volume : Volume
        CT in Hounsfield units or an MR image (3D).
    preset : Preset or str
        A preset or a name/path for :func:`load_preset`.
    min_component_mm3, largest : optional
        Override the preset's clean-up (``None`` keeps the preset's value).
    value : int
        Label value of the structure.

    Raises
    ------
    ConfigError
        The preset is for another modality than the volume's (when the volume says which).
    SegmentationError
        The mask is empty after thresholding / clean-up.
    """
    if isinstance(preset, (str, Path)):
        preset = load_preset(preset)
    arr = np.asarray(volume.array)
    if arr.ndim != 3:
        raise SegmentationError(f"preset {preset.name}: needs a 3D volume, got shape {arr.shape}")
    modality = str(volume.meta.get("modality") or "").upper()
    if preset.modality != "any" and modality in ("CT", "MR") and modality != preset.modality:
        raise ConfigError(f"preset {preset.name!r} is for {preset.modality}, but the volume is {modality}; "
                          f"use a {modality} preset or --threshold LOW:HIGH")
    if preset.method == "threshold":
        mask = np.ones(arr.shape, dtype=bool)
        if preset.low is not None:
            mask &= arr >= preset.low
        if preset.high is not None:
            mask &= arr <= preset.high
    elif preset.method == "otsu":
        mask = arr > otsu_threshold(arr[::2, ::2, ::2] if arr.size > 8_000_000 else arr)
    elif preset.method == "head":
        mask = head_mask(volume)
    else:
        mask = _brain_mask(volume, preset)
    if preset.inside_body:
        mask &= body_mask(volume)
    c = preset.cleanup
    mask = clean_mask(
        mask, volume.affine,
        min_component_mm3=c.min_component_mm3 if min_component_mm3 is None else min_component_mm3,
        largest=c.largest if largest is None else (largest or c.largest),
        fill=c.fill_holes, closing_radius_mm=c.closing_mm,
    )
    mask = well_composed(mask)  # no edge/corner-only contacts: no pinched surface points
    if not mask.any():
        window = f" ({preset.low}..{preset.high})" if preset.method == "threshold" else ""
        raise SegmentationError(f"preset {preset.name}{window} selected no voxels in this volume")
    lab = volume.with_array(mask.astype(np.uint8) * np.uint8(value), kind="labelmap", warnings=[],
                            label_names={int(value): preset.structure})
    return lab, {int(value): preset.label_info(value)}


def exclude_presets(labelmap: Volume, volume: Volume, presets: list[str], seg) -> Volume:
    """Take the voxels of other presets out of the label map (structures become disjoint solids).

    Each excluded preset is applied to the image with its own clean-up; its voxels become
    background here. Recorded in ``seg.info["excluded"]`` (voxels removed per preset).
    """
    from medrecon.errors import SegmentationError
    from medrecon.segment.presets import apply_preset

    arr = np.array(labelmap.array, copy=True)
    removed = {}
    for name in presets:
        try:
            other, _ = apply_preset(volume, name)
        except SegmentationError:  # nothing of it in this image
            removed[name] = 0
            continue
        hit = (other.array != 0) & (arr != 0)
        removed[name] = int(np.count_nonzero(hit))
        arr[hit] = 0
    seg.info["excluded"] = removed
    if not arr.any():
        raise SegmentationError("nothing left after --exclude " + ", ".join(presets))
    return labelmap.with_array(arr)
