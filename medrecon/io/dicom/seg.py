"""DICOM Segmentation (SEG) objects: read as a label map with names and colours, write one that
references its source series (both with highdicom).

Reading: every segment becomes one label value (its SegmentNumber), named by SegmentLabel and
coloured by RecommendedDisplayCIELabValue (converted to sRGB; a palette colour when absent). The
label map lies on the SEG's own frame grid (highdicom derives a regular volume from the frames'
positions); index -> LPS mm as everywhere in medrecon. Overlapping segments cannot be one label
map: where two segments overlap the higher segment number wins, with a warning.

Writing: a BINARY SEG whose frames reference the source images (SOP Instance UIDs) of the series
the label map was computed on. The label map must lie on that series' own grid (a volume that
was resampled for tilt or uneven spacing is refused). As the standard requires, a SEG copies the
patient and study modules of its source images, so that a PACS files it with them: unlike every
other medrecon output it therefore carries the identifiers the source carries (it goes back
where the images came from).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from medrecon.errors import DicomError, InputError
from medrecon.labelmap import LabelInfo, color_for
from medrecon.volume import Volume

__all__ = ["read_dicom_seg", "write_dicom_seg", "cielab_to_rgb", "rgb_to_cielab"]


def cielab_to_rgb(lab16: Sequence[int]) -> tuple[float, float, float]:
    """DICOM CIELab (L*, a*, b* scaled to 0..65535) -> sRGB in 0..1 (highdicom's conversion)."""
    from highdicom.color import CIELabColor

    rgb = CIELabColor.from_dicom_value(tuple(int(v) for v in lab16)).to_rgb()
    return tuple(float(c) / 255.0 for c in rgb)  # type: ignore[return-value]


def rgb_to_cielab(rgb: Sequence[float]) -> tuple[int, int, int]:
    """sRGB in 0..1 -> DICOM CIELab (0..65535) (highdicom's conversion)."""
    from highdicom.color import CIELabColor

    r, g, b = (int(round(float(np.clip(c, 0.0, 1.0)) * 255)) for c in list(rgb)[:3])
    return tuple(int(v) for v in CIELabColor.from_rgb(r, g, b).value)  # type: ignore[return-value]


def _hd_volume_to_ours(arr: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """highdicom volumes are indexed (slice, row, column); medrecon's are (column, row, slice)."""
    out = np.transpose(arr, (2, 1, 0))
    A = np.asarray(affine, dtype=np.float64)[:, [2, 1, 0, 3]].copy()
    # slices ascending along the in-plane normal (row dir x column dir), as the image loader does
    if out.shape[2] > 1 and float(np.dot(A[:3, 2], np.cross(A[:3, 0], A[:3, 1]))) < 0:
        A[:3, 3] = A[:3, 3] + A[:3, 2] * (out.shape[2] - 1)
        A[:3, 2] = -A[:3, 2]
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out), A


def read_dicom_seg(path: str | os.PathLike) -> tuple[Volume, dict[int, LabelInfo]]:
    """Read a DICOM SEG file into a label map Volume and its label table.

    Returns
    -------
    volume : Volume
        uint8/uint16 label map (0 = background, value = SegmentNumber), affine index -> LPS mm.
    table : dict[int, LabelInfo]
        Segment names and colours.

    Raises
    ------
    InputError
        The file is not a DICOM SEG.
    DicomError
        The frames do not form a regular volume, or the object cannot be read.
    """
    import highdicom as hd

    p = Path(path)
    try:
        seg = hd.seg.segread(str(p))
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise InputError(f"not a readable DICOM SEG ({exc})", p) from exc
    except Exception as exc:  # noqa: BLE001 - pydicom/highdicom parse errors
        raise DicomError(f"cannot read DICOM SEG ({type(exc).__name__}: {exc})", p) from exc
    numbers = list(seg.segment_numbers)
    table: dict[int, LabelInfo] = {}
    for n in numbers:
        desc = seg.get_segment_description(n)
        name = str(getattr(desc, "segment_label", "") or f"segment_{n}").strip() or f"segment_{n}"
        lab = desc.get("RecommendedDisplayCIELabValue") if hasattr(desc, "get") else None
        color = cielab_to_rgb(lab) if lab is not None and len(lab) == 3 else color_for(n)
        table[int(n)] = LabelInfo(int(n), name, color)
    warnings: list[str] = []
    try:
        vol = seg.get_volume(combine_segments=True, relabel=False, skip_overlap_checks=False)
        arr = np.asarray(vol.array)
    except Exception as exc:  # noqa: BLE001
        msg = str(exc)
        if "overlap" not in msg.lower():
            raise DicomError(f"DICOM SEG frames do not form a regular volume ({msg.splitlines()[0] if msg else exc})",
                             p) from exc
        # overlapping segments: combine by hand, the higher segment number wins
        vol = seg.get_volume(combine_segments=False)
        stack = np.asarray(vol.array)  # (slices, rows, cols, segments)
        arr = np.zeros(stack.shape[:3], dtype=np.uint16)
        for i, n in enumerate(numbers):
            arr[stack[..., i] > 0] = n
        warnings.append("DICOM SEG segments overlap: where they do, the higher segment number is kept")
    lab_arr, A = _hd_volume_to_ours(arr, vol.affine)
    dtype = np.uint8 if (max(numbers) if numbers else 0) < 256 else np.uint16
    meta = {"source": "dicom-seg", "label_names": {v: li.name for v, li in table.items()},
            "warnings": warnings, "modality": "SEG"}
    return Volume(lab_arr.astype(dtype), A, meta), table


def write_dicom_seg(labelmap: Volume, labels: Mapping[int, LabelInfo], source_datasets: Sequence,
                    path: str | os.PathLike, series_number: int = 9001,
                    series_description: str = "medrecon segmentation") -> Path:
    """Write ``labelmap`` as a BINARY DICOM SEG referencing ``source_datasets``.

    Parameters
    ----------
    labelmap : Volume
        Integer label map on the grid of the source series: axis 0 along the source rows'
        direction (columns index), axis 1 along the columns' direction (rows index), axis 2 the
        slices in the order of ``source_datasets``.
    labels : dict[int, LabelInfo]
        Names and colours of the label values to write (values absent from the map are skipped).
    source_datasets : sequence of pydicom Dataset
        The source images (with pixel data), one per slice, in the label map's slice order.
    path : path
        Output ``.dcm`` file (written atomically).
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from medrecon.io.atomic import atomic_path
    from medrecon.version import __version__

    arr = np.asarray(labelmap.array)
    if arr.ndim != 3:
        raise InputError("a DICOM SEG needs a 3D label map", path)
    if len(source_datasets) != arr.shape[2]:
        raise DicomError(f"label map has {arr.shape[2]} slices but the source series {len(source_datasets)} "
                         "images (a resampled volume cannot be written as DICOM SEG of its source)", path)
    ds0 = source_datasets[0]
    if arr.shape[0] != int(ds0.Columns) or arr.shape[1] != int(ds0.Rows):
        raise DicomError(f"label map {arr.shape[:2]} is not on the source grid ({ds0.Columns}x{ds0.Rows}): "
                         "a resampled volume cannot be written as DICOM SEG of its source", path)
    # check the affine against the source positions (first and last slice)
    ipp0 = np.array([float(x) for x in ds0.ImagePositionPatient])
    ipp1 = np.array([float(x) for x in source_datasets[-1].ImagePositionPatient])
    last = labelmap.affine @ np.array([0, 0, arr.shape[2] - 1, 1.0])
    if not (np.allclose(labelmap.affine[:3, 3], ipp0, atol=1e-2) and np.allclose(last[:3], ipp1, atol=1e-2)):
        raise DicomError("label map is not on the source images' grid (positions differ): a resampled "
                         "volume cannot be written as DICOM SEG of its source", path)
    present = [int(v) for v in np.unique(arr) if v != 0]
    values = [v for v in sorted(labels) if v in present]
    if not values:
        raise InputError("label map holds none of the labels to write", path)
    descriptions = []
    seg_arr = np.zeros((arr.shape[2], arr.shape[1], arr.shape[0]), dtype=np.uint16)
    stack = np.transpose(arr, (2, 1, 0))
    for i, v in enumerate(values, start=1):
        li = labels[v]
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=i,
            segment_label=str(li.name)[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="medrecon", version=str(__version__), family=codes.DCM.ArtificialIntelligence),
        ))
        descriptions[-1].RecommendedDisplayCIELabValue = list(rgb_to_cielab(li.color))
        seg_arr[stack == v] = i
    try:
        seg = hd.seg.Segmentation(
            source_images=list(source_datasets), pixel_array=seg_arr,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=generate_uid(),
            series_number=int(series_number), sop_instance_uid=generate_uid(), instance_number=1,
            manufacturer="medrecon", manufacturer_model_name="medrecon",
            software_versions=str(__version__), device_serial_number="none",
            series_description=series_description, omit_empty_frames=False,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise DicomError(f"cannot build DICOM SEG from the source series ({exc})", path) from exc
    out = Path(path)
    with atomic_path(out) as tmp:
        seg.save_as(str(tmp))
    return out


def write_dicom_seg_for_source(labelmap: Volume, labels: Mapping[int, LabelInfo], source,
                               path: str | os.PathLike, series=None) -> Path:
    """Write ``labelmap`` (computed on a DICOM series at ``source``) as a DICOM SEG that references
    that series' images. ``series`` picks the series as :func:`medrecon.io.loader.load` does.

    Raises
    ------
    InputError
        ``source`` is not DICOM (a NIfTI/NRRD input has no source images to reference).
    DicomError
        The label map is not on the series' own grid (the volume was resampled for tilt or
        uneven spacing, or is 4D).
    """
    from medrecon.io.dicom.scan import read_dataset
    from medrecon.io.loader import _choose_dicom, is_volume_file

    if is_volume_file(source):
        raise InputError("a DICOM SEG references DICOM source images; the input is not DICOM", source)
    chosen = _choose_dicom(source, series)
    if chosen.n_per_position != 1 or chosen.mosaic is not None or chosen.geometry is None:
        raise DicomError("a DICOM SEG can reference a plain 3D series only (not 4D, mosaic or without geometry)",
                         path)
    dss = []
    for pos in chosen.slices:
        f = chosen.frames[pos[0]]
        if f.frame is not None:
            raise DicomError("source is a multi-frame object: DICOM SEG output supports single-frame series",
                             path)
        res = read_dataset(f.source, stop_before_pixels=False)
        if res is None:
            raise DicomError("source image not readable as DICOM any more", f.source.name)
        dss.append(res[0])
    return write_dicom_seg(labelmap, labels, dss, path)
