"""Label-map files, read with every structure named.

* :func:`read_labelmap`: any label map medrecon accepts (``--labels``): a Slicer ``.seg.nrrd``,
  a folder of per-structure NIfTI masks, a NIfTI with an embedded label table, or any volume the
  loader reads (names from its metadata, if any).

* **TotalSegmentator**: a multi-label NIfTI (``--ml``; names come from the label table it embeds in
  the NIfTI header, else from the built-in ``total`` table), or an output folder with one binary
  mask per structure (``liver.nii.gz``, ``vertebrae_L1.nii.gz``...; ids from the built-in table).
* **nnU-Net**: a predicted label map plus the model's ``dataset.json`` (v1 ``{"0": "background"}``
  or v2 ``{"background": 0}`` label dictionaries).

All return ``(Volume, dict[int, LabelInfo])``: an integer label map (affine index -> LPS mm, on
the file's own grid) and the structures present in it.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from medrecon.errors import InputError
from medrecon.io.label_tables import load_label_table
from medrecon.labelmap import LabelInfo, as_labelmap, default_color
from medrecon.volume import Volume

__all__ = ["read_labelmap", "read_labelmap_file", "import_totalsegmentator", "import_nnunet",
           "read_embedded_label_table"]

_NII = (".nii.gz", ".nii")
_LABEL_RE = re.compile(r'<Label\s+Key="(\d+)"[^>]*>\s*(?:<!\[CDATA\[(.*?)\]\]>|([^<]*))\s*</Label>', re.S)


def _is_nifti(p: Path) -> bool:
    return p.name.lower().endswith(_NII)


def _stem(p: Path) -> str:
    n = p.name
    for ext in _NII:
        if n.lower().endswith(ext):
            return n[: -len(ext)]
    return p.stem


def read_embedded_label_table(path: str | Path) -> dict[int, str]:
    """Label names stored in a NIfTI header extension (the XML ``<LabelTable>`` that
    TotalSegmentator and Connectome Workbench write). Empty dict when there is none."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception:  # noqa: BLE001 - unreadable files are reported by the reader proper
        return {}
    out: dict[int, str] = {}
    for ext in getattr(img.header, "extensions", []):
        try:
            text = ext.get_content()
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        except Exception:  # noqa: BLE001
            continue
        for key, cdata, plain in _LABEL_RE.findall(text):
            name = (cdata or plain).strip()
            if name and int(key) > 0:
                out[int(key)] = name
    return out


def read_labelmap_file(path: str | Path) -> Volume:
    """One label-map file (NIfTI, NRRD, MHA...) as a Volume holding a 3D non-negative integer
    array of the smallest dtype (:func:`medrecon.labelmap.as_labelmap`).

    Raises
    ------
    InputError
        Unreadable file, not 3D, non-integer or negative values.
    """
    path = Path(path)
    if _is_nifti(path):
        from medrecon.io.nifti import read_nifti

        vol = read_nifti(path)
    else:
        from medrecon.io.loader import load

        vol = load(str(path))
    if vol.array.ndim != 3:
        raise InputError(f"label map must be 3D, got shape {vol.shape}", path)
    return vol.with_array(as_labelmap(vol.array, path))


def _dicom_label_object(p: Path) -> tuple[str, Path] | None:
    """``("seg" | "rtstruct", file)`` when ``p`` is a DICOM SEG / RTSTRUCT file, or a folder
    holding exactly one such object; else None."""
    import pydicom

    from medrecon.io.dicom.sop_classes import is_rtstruct, is_segmentation, sop_class_of

    def kind_of(f: Path) -> str | None:
        if f.name.lower().endswith((".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".json", ".txt")):
            return None
        try:
            ds = pydicom.dcmread(str(f), stop_before_pixels=True, specific_tags=["SOPClassUID"])
        except Exception:  # noqa: BLE001 - not DICOM
            return None
        sop = sop_class_of(ds)
        return "seg" if is_segmentation(sop) else "rtstruct" if is_rtstruct(sop) else None

    if p.is_file():
        k = kind_of(p)
        return (k, p) if k else None
    if p.is_dir():
        found = [(k, f) for f in sorted(p.rglob("*")) if f.is_file() for k in [kind_of(f)] if k]
        if len(found) == 1:
            return found[0]
    return None


def read_labelmap(path: str | Path, reference: Volume | None = None) -> tuple[Volume, dict[int, LabelInfo] | None]:
    """Read a label map and whatever label names travel with it.

    Handles Slicer ``.seg.nrrd``, a folder of per-structure NIfTI masks (TotalSegmentator's
    default output), NIfTI files carrying an embedded label table (TotalSegmentator
    ``--ml``), DICOM SEG (segment names and colours; highdicom), RT Structure Sets (contours
    rasterised onto ``reference``'s grid, ROI names and colours), and any volume the loader
    reads (names from its metadata, if any). A folder holding exactly one SEG or RTSTRUCT
    object counts as that object.

    Parameters
    ----------
    reference : Volume, optional
        The image the label map belongs to; required for an RTSTRUCT (contours have no grid).

    Returns
    -------
    (Volume, dict[int, LabelInfo] or None)
        The label map on its own grid (an RTSTRUCT: on ``reference``'s), and its label table
        when the file names its labels.
    """
    p = Path(path)
    dcm = None if str(path).lower().endswith((".nii", ".nii.gz", ".nrrd", ".seg.nrrd")) else _dicom_label_object(p)
    if dcm is not None:
        kind, f = dcm
        if kind == "seg":
            from medrecon.io.dicom.seg import read_dicom_seg

            return read_dicom_seg(f)
        if reference is None:
            raise InputError("an RT Structure Set holds contours, not a grid: it needs the image it was "
                             "drawn on", f)
        from medrecon.io.dicom.rtstruct import read_rtstruct

        return read_rtstruct(f, reference)
    if str(path).lower().endswith(".seg.nrrd"):
        from medrecon.io.slicer import read_seg_nrrd

        return read_seg_nrrd(path)
    if p.is_dir() and (any(p.glob("*.nii.gz")) or any(p.glob("*.nii"))):
        return import_totalsegmentator(p)
    from medrecon.io.loader import load

    lab = load(path)
    names = lab.meta.get("label_names")
    if not (isinstance(names, dict) and names) and _is_nifti(p):
        names = read_embedded_label_table(p)
    table = None
    if isinstance(names, dict) and names:
        table = load_label_table({int(k): v for k, v in names.items()})
    return lab, table


def _finish(vol: Volume, names: dict[int, str], where: Path | str,
            colors: dict[int, tuple] | None = None) -> tuple[Volume, dict[int, LabelInfo]]:
    present = [int(v) for v in np.unique(vol.array) if v]
    labels: dict[int, LabelInfo] = {}
    for v in present:
        if v in names:
            name = names[v]
        else:
            name = f"label_{v}"
            vol.warn(f"{Path(str(where)).name}: label value {v} has no name; called it {name}")
        color = (colors or {}).get(v) or default_color(name, v)
        labels[v] = LabelInfo(v, name, color)
    out = vol.with_array(vol.array, kind="labelmap", units=None,
                         label_names={v: li.name for v, li in labels.items()},
                         label_colors={v: list(li.color) for v, li in labels.items()})
    return out, labels


def import_totalsegmentator(path: str | Path) -> tuple[Volume, dict[int, LabelInfo]]:
    """Read TotalSegmentator output: a multi-label NIfTI or a folder of per-structure masks.

    Parameters
    ----------
    path : multi-label ``.nii``/``.nii.gz`` file, or a folder of ``<structure>.nii.gz`` masks.

    Returns
    -------
    (Volume, dict[int, LabelInfo])
        Label map on the file's grid; for a folder, label values are the ``total`` task's ids
        (structures not in that table get the next free values) and only non-empty masks count.

    Raises
    ------
    InputError
        Missing path, empty folder, masks on different grids, non-integer data.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", p)
    builtin = {v: li.name for v, li in load_label_table("totalsegmentator").items()}
    if p.is_file():
        vol = read_labelmap_file(p)
        names = read_embedded_label_table(p) if _is_nifti(p) else {}
        if not names:
            names = builtin
        return _finish(vol, names, p)

    masks = sorted(f for f in p.iterdir() if f.is_file() and _is_nifti(f))
    if not masks:
        raise InputError("folder holds no NIfTI masks (expected TotalSegmentator's <structure>.nii.gz files)", p)
    by_name = {n.lower(): v for v, n in builtin.items()}
    next_free = max(builtin) + 1
    ids: dict[str, int] = {}
    for f in masks:
        name = _stem(f)
        if name.lower() in by_name:
            ids[name] = by_name[name.lower()]
        else:
            ids[name] = next_free
            next_free += 1
    ref: Volume | None = None
    out: np.ndarray | None = None
    overlap = 0
    for f in masks:
        m = read_labelmap_file(f)
        if ref is None:
            ref = m
            dtype = np.uint8 if max(ids.values()) <= 255 else np.uint16
            out = np.zeros(m.shape, dtype)
        elif m.shape != ref.shape or not np.allclose(m.affine, ref.affine, atol=1e-4):
            raise InputError(f"mask is on a different grid than {masks[0].name} "
                             f"(shape {m.shape} vs {ref.shape})", f)
        sel = m.array > 0
        if not sel.any():
            continue
        overlap += int(np.count_nonzero(out[sel]))
        out[sel] = ids[_stem(f)]
    assert ref is not None and out is not None
    vol = ref.with_array(out, source="TotalSegmentator masks")
    if overlap:
        vol.warn(f"{overlap} voxels belong to more than one mask; the mask later in name order wins")
    return _finish(vol, {v: n for n, v in ids.items()}, p)


def import_nnunet(seg_path: str | Path, dataset_json: str | Path) -> tuple[Volume, dict[int, LabelInfo]]:
    """Read an nnU-Net prediction and name its labels from the model's ``dataset.json``.

    Parameters
    ----------
    seg_path : predicted label map (NIfTI, NRRD or MHA).
    dataset_json : the trained model's ``dataset.json`` (``"labels"`` in v1 or v2 form).

    Raises
    ------
    InputError : unreadable or non-integer label map.
    ConfigError : unreadable or malformed ``dataset.json``.
    """
    sp = Path(seg_path)
    if not sp.exists():
        raise InputError("no such file", sp)
    table = load_label_table(str(dataset_json))
    vol = read_labelmap_file(sp)
    return _finish(vol, {v: li.name for v, li in table.items()}, sp,
                   colors={v: li.color for v, li in table.items()})
