"""Segmentation sources: an image in, one :class:`Segmentation` out.

Every way of getting a label map for ``medrecon mesh`` is a plain function here, returning the
same small type: the label map on the image's grid, the structures to mesh, and facts for the
report. Sources:

* :func:`from_preset`: an intensity preset or a custom ``LOW:HIGH`` threshold (+ clean-up in mm);
* :func:`from_labelmap`: a label-map file (checked against the image grid, resampled
  nearest-neighbour when its grid differs; names from the file or a label table);
* :func:`from_bundle`: a local MONAI bundle (:func:`medrecon.segment.ai.segment_volume`).

A new source goes here, returning a :class:`Segmentation`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from medrecon.errors import InputError, SegmentationError
from medrecon.io.label_tables import load_label_table
from medrecon.labelmap import LabelInfo, default_color, keep_labels, labelmap_on_grid, present_labels, select_structures
from medrecon.provenance import spec_name
from medrecon.volume import Volume
from medrecon.progress import ProgressFn

__all__ = ["Segmentation", "from_preset", "from_labelmap", "from_bundle", "iso_windows"]


@dataclass
class Segmentation:
    """What a segmentation source returns.

    Attributes
    ----------
    labelmap : Volume
        Integer label map on the image's grid (same shape and affine), 0 = background.
    labels : dict[int, LabelInfo]
        The structures to mesh (all present in ``labelmap``).
    info : dict
        JSON-able facts for the report (``method`` and source-specific details).
    """

    labelmap: Volume
    labels: dict[int, LabelInfo]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return list(self.labelmap.meta.get("warnings", []))


def _clean(arr: np.ndarray, affine: np.ndarray, values: Iterable[int], min_component_mm3: float | None,
           largest: bool) -> np.ndarray:
    if not (min_component_mm3 or largest):
        return arr
    from medrecon.segment.cleanup import clean_labelmap

    return clean_labelmap(arr, affine, min_component_mm3=min_component_mm3, largest=largest, values=list(values))


def from_preset(volume: Volume, preset: str | None = None, threshold: str | None = None, *,
                min_component_mm3: float | None = None, largest: bool = False,
                remove_table: bool = False) -> Segmentation:
    """Segment with an intensity preset (name or YAML path) or a ``LOW:HIGH`` threshold.

    ``remove_table``: drop the scanner table (flat components outside the body,
    :func:`medrecon.segment.cleanup.find_table`), keeping every bone piece.
    """
    from medrecon.segment.presets import apply_preset, load_preset, threshold_preset

    p = load_preset(preset) if preset else threshold_preset(threshold)
    lab, table = apply_preset(volume, p, min_component_mm3=min_component_mm3, largest=True if largest else None)
    info = {"method": "preset" if preset else "threshold", "preset": p.model_dump()}
    if remove_table:
        from medrecon.segment.cleanup import remove_table as _remove_table

        arr = np.asarray(lab.array)
        kept, found = _remove_table(arr != 0, np.asarray(volume.array), lab.affine)
        info["table_removed"] = found
        if not kept.any():
            raise SegmentationError("nothing left after --remove-table")
        lab = lab.with_array(np.where(kept, arr, 0).astype(arr.dtype))
    return Segmentation(lab, table, info)


def from_labelmap(volume: Volume, path: str | Volume, *, label_table: str | dict[int, LabelInfo] | None = None,
                  structures: list[str] | None = None, group: str | None = None,
                  min_component_mm3: float | None = None, largest: bool = False) -> Segmentation:
    """Mesh-ready structures from a label map on ``volume``'s grid (resampled nearest-neighbour
    when its grid differs).

    ``path`` is a label-map file (``--labels``) or a label map already in memory (a
    :class:`Volume` of integer labels, e.g. from a cohort's segmentation stage);
    ``label_table`` a table name/file or a ``{value: LabelInfo}`` dict.

    Raises
    ------
    InputError : missing or unusable label map (not 3D, non-integer, no overlap).
    SegmentationError : empty, or none of the selected structures present.
    """
    from medrecon.io.labelmaps import read_labelmap

    if isinstance(path, Volume):
        raw, embedded, path = path, None, None
    else:
        if not Path(path).exists():
            raise InputError("label map not found", path)
        raw, embedded = read_labelmap(path, reference=volume)  # reference: RTSTRUCT contours
    lab = labelmap_on_grid(raw, volume, where=path if path is not None else "label map")
    given_table = isinstance(label_table, dict)
    table = dict(label_table) if given_table else load_label_table(label_table) if label_table else embedded
    present = present_labels(lab.array)
    if not present:
        raise SegmentationError("label map is empty (only background)", path)
    if table is None:
        table = {v: LabelInfo(v, f"label_{v}", default_color(f"label_{v}", v)) for v in present}
    selected = select_structures(table, structures, group)
    missing = [li.name for v, li in selected.items() if v not in present]
    wanted = {v: li for v, li in selected.items() if v in present}
    if not wanted:
        raise SegmentationError("none of the selected structures is present in the label map"
                                + (f" (absent: {', '.join(missing[:8])})" if missing else ""), path)
    unnamed = sorted(set(present) - set(table))
    arr = keep_labels(_clean(lab.array, lab.affine, wanted, min_component_mm3, largest), wanted)
    lab = lab.with_array(arr, label_names={v: li.name for v, li in wanted.items()})
    info = {"method": "labels", "label_table": "given" if given_table else spec_name(label_table) if label_table else
            ("embedded" if embedded else None), "absent_structures": missing, "unnamed_labels": unnamed}
    return Segmentation(lab, wanted, info)


def from_bundle(volume: Volume, bundle: str, *, device: str = "auto", label_table: str | None = None,
                structures: list[str] | None = None, group: str | None = None,
                min_component_mm3: float | None = None, largest: bool = False,
                progress: ProgressFn | None = None, compile: bool = False) -> Segmentation:
    """Segment with a local MONAI bundle; keep the selected structures it found
    (``compile``: ``torch.compile`` the network, see :func:`medrecon.segment.ai.segment_volume`).

    Raises
    ------
    BundleError, SegmentationError : see :func:`medrecon.segment.ai.segment_volume`; also when the
        bundle found none of the selected structures.
    """
    from medrecon.segment.ai import labels_from_channel_def, segment_volume
    from medrecon.segment.bundle import _read_json, bundle_files, channel_def

    # the selection is checked against the bundle's own names before the (long) inference
    meta_path = bundle_files(bundle)[0]
    table = (load_label_table(label_table) if label_table
             else labels_from_channel_def(channel_def(_read_json(meta_path), meta_path)))
    select_structures(table, structures, group)
    lab, found_table = segment_volume(volume, bundle, device=device, progress=progress, compile=compile)
    if not label_table:
        table = found_table
    selected = select_structures(table, structures, group)
    arr = _clean(np.asarray(lab.array), lab.affine, selected, min_component_mm3, largest)
    present = set(present_labels(arr))
    wanted = {v: li for v, li in selected.items() if v in present}
    if not wanted:
        raise SegmentationError("the bundle found none of the selected structures in this image", bundle)
    lab = lab.with_array(keep_labels(arr, wanted), kind="labelmap", warnings=[])
    return Segmentation(lab, wanted, {"method": "bundle", "bundle": Path(bundle).name})


def iso_windows(seg: Segmentation, labels: Iterable[int]) -> dict[int, tuple[float, float | None]]:
    """Threshold window per label for meshing on the image's iso-surface (sub-voxel): presets and
    thresholds with a lower bound only; label maps keep the binary path (empty dict)."""
    p = seg.info.get("preset") or {}
    if seg.info.get("method") not in ("preset", "threshold") or p.get("method") != "threshold" or p.get("low") is None:
        return {}
    return {int(v): (float(p["low"]), None if p.get("high") is None else float(p["high"])) for v in labels}
