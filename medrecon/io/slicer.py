"""3D Slicer hand-off: ``.seg.nrrd`` segmentations and ``.mrml`` scenes.

* :func:`write_seg_nrrd` / :func:`read_seg_nrrd`: Slicer's segmentation file, a NRRD in
  ``left-posterior-superior`` space with the ``Segmentation_*`` and ``Segment<N>_*`` fields that
  Slicer's ``vtkMRMLSegmentationStorageNode`` reads (readable outside Slicer with ``slicerio``).
* :func:`write_scene`: an MRML scene that loads the volume (NRRD), the segmentation and the
  surface models with their names and colours. Node types follow Slicer's source:
  ``vtkMRMLScalarVolumeNode`` + ``vtkMRMLVolumeArchetypeStorageNode``,
  ``vtkMRMLSegmentationNode`` + ``vtkMRMLSegmentationStorageNode`` + display node,
  ``vtkMRMLModelNode`` + ``vtkMRMLModelStorageNode`` (``coordinateSystem="LPS"``) +
  ``vtkMRMLModelDisplayNode`` (colour).

* :func:`write_mesh_bundle`: the image, segmentation and scene of a ``mesh`` run.

Geometry: our :class:`~medrecon.volume.Volume` affine already maps index to LPS mm, which is
exactly NRRD's ``space directions`` (one column per array axis) plus ``space origin``; NRRD files
are written by :func:`medrecon.io.nrrd.write_nrrd_file`. All files are written atomically.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from medrecon.errors import InputError, MedreconError, SegmentationError
from medrecon.io.atomic import atomic_write_text
from medrecon.io.nrrd import header_geometry, write_nrrd_file
from medrecon.labelmap import LabelInfo, as_labelmap, label_name_color
from medrecon.orientation import SPACES
from medrecon.volume import Volume

#: Conversion parameters stored with the segmentation, so that Slicer's "Show 3D" builds
#: surfaces the way medrecon does (names are Slicer's own parameter names).
DEFAULT_CONVERSION = {
    "Smoothing factor": ("0.5", "0 = no smoothing ... 1 = strong smoothing (windowed sinc)"),
    "Decimation factor": ("0.0", "fraction of triangles removed (0 = none)"),
    "Compute surface normals": ("1", "1 = compute surface normals"),
    "Joint smoothing": ("0", "1 = smooth all segments of a layer together"),
    "Conversion method": ("0", "0 = flying edges, 1 = surface nets"),
}

SLICER_VERSION_TAG = "Slicer5.8.1"


class SlicerFormatError(InputError):
    """A .seg.nrrd or .mrml file is not what Slicer writes."""


# --- helpers ---------------------------------------------------------------------------------

def _fmt(x: float) -> str:
    return f"{float(x):.6g}"


def _clean_text(s: str) -> str:
    """Header values are one line; '|' and '&' separate Slicer's list fields."""
    return re.sub(r"[\r\n|&]+", " ", str(s)).strip()


# --- volumes ---------------------------------------------------------------------------------

def write_volume_nrrd(volume: Volume, path: str | os.PathLike, compression_level: int = 4) -> Path:
    """Write a 3D scalar volume as NRRD (LPS space, gzip) for Slicer; return the path.

    Integer images whose values fit in int16 are stored as int16 (lossless; CT in HU always
    fits), which halves the file of an int32 CT. gzip level 4: on CT it is ~30x faster than
    pynrrd's default level 9 for files ~10% larger.

    Raises
    ------
    MedreconError
        The volume is not 3D.
    """
    path = Path(path)
    arr = np.asarray(volume.array)
    if arr.ndim != 3:
        raise MedreconError(f"only 3D volumes can be written for the Slicer scene, got shape {arr.shape}", path=path)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer) and arr.dtype.itemsize > 2 and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if -32768 <= lo and hi <= 32767:
            arr = arr.astype(np.int16)
    write_nrrd_file(path, arr, volume.affine, header={"type": str(arr.dtype), "dimension": 3},
                    compression_level=compression_level)
    return path


# --- segmentations ---------------------------------------------------------------------------

def _label_extents(data: np.ndarray, n_values: int) -> np.ndarray:
    """(n_values, 6) inclusive index bounding boxes ``i0 i1 j0 j1 k0 k1`` (``0 -1`` when absent).

    One bincount per slice along each axis: linear in the voxels and several times faster than
    ``scipy.ndimage.find_objects`` on whole-body label maps.
    """
    ext = np.tile(np.array([0, -1], np.int64), (n_values, 3))
    if data.size == 0:
        return ext
    for ax in range(3):
        moved = np.moveaxis(data, ax, 0)
        pres = np.stack([np.bincount(moved[i].ravel(order="K"), minlength=n_values)[:n_values] > 0
                         for i in range(moved.shape[0])])
        found = pres.any(0)
        first = np.argmax(pres, axis=0)
        last = moved.shape[0] - 1 - np.argmax(pres[::-1], axis=0)
        ext[found, 2 * ax] = first[found]
        ext[found, 2 * ax + 1] = last[found]
    return ext


def write_seg_nrrd(labelmap: Volume, labels: Mapping[int, Any] | None, path: str | os.PathLike, *,
                   include_empty: bool = False, conversion: Mapping[str, Any] | None = None,
                   status: str = "inprogress") -> Path:
    """Write an integer label map as a 3D Slicer segmentation (``.seg.nrrd``).

    Parameters
    ----------
    labelmap : Volume
        3D integer label map; its affine (index -> LPS mm) becomes ``space directions`` and
        ``space origin``. 0 is background. One layer (a label map cannot overlap).
    labels : dict[int, LabelInfo]
        Name and colour (0..1) per label value. Values present in the map but missing here get
        ``Segment_<value>`` and a generated colour.
    path : path
        Output file, normally ending in ``.seg.nrrd``. Written atomically.
    include_empty : bool
        Also write segments for table entries absent from the map (empty extent).
    conversion : dict, optional
        Overrides of Slicer's closed-surface conversion parameters, e.g.
        ``{"Smoothing factor": 0.5}``.
    status : str
        ``Segmentation.Status`` tag (Slicer: notstarted, inprogress, completed, flagged).

    Returns
    -------
    Path of the written file.

    Raises
    ------
    SegmentationError
        The label map is not 3D or not integer-valued.
    """
    path = Path(path)
    data = as_labelmap(labelmap.array, path, error=SegmentationError)
    dtype = data.dtype
    labels = dict(labels or {})

    counts = np.bincount(data.ravel(order="K")) if data.size else np.zeros(1, np.int64)
    present = [int(v) for v in np.flatnonzero(counts) if v != 0]
    values = sorted(set(present) | ({int(k) for k in labels if int(k) > 0} if include_empty else set()))
    extents = _label_extents(data, len(counts))

    conv = {k: [v[0], v[1]] for k, v in DEFAULT_CONVERSION.items()}
    for k, v in (conversion or {}).items():
        conv.setdefault(k, ["", ""])[0] = str(v)
    header: dict[str, Any] = {
        "type": str(np.dtype(dtype)), "dimension": 3,
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|Closed surface|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
        "Segmentation_ConversionParameters": "".join(
            f"{_clean_text(k)}|{_clean_text(v[0])}|{_clean_text(v[1])}&" for k, v in conv.items()),
    }
    for n, value in enumerate(values):
        name, color = label_name_color(labels.get(value), value, "Segment_{value}")
        ext = " ".join(str(int(x)) for x in extents[value]) if value < len(extents) else "0 -1 0 -1 0 -1"
        p = f"Segment{n}_"
        header[p + "ID"] = f"Segment_{value}"
        header[p + "Name"] = _clean_text(name)
        header[p + "NameAutoGenerated"] = "0"
        header[p + "Color"] = " ".join(_fmt(c) for c in color)
        header[p + "ColorAutoGenerated"] = "0"
        header[p + "LabelValue"] = str(value)
        header[p + "Layer"] = "0"
        header[p + "Extent"] = ext
        header[p + "Tags"] = f"Segmentation.Status:{_clean_text(status)}|"
    write_nrrd_file(path, data, labelmap.affine, header=header, compression_level=6)
    return path


def read_seg_nrrd(path: str | os.PathLike) -> tuple[Volume, dict[int, LabelInfo]]:
    """Read a Slicer ``.seg.nrrd`` into a label map and its label table.

    Parameters
    ----------
    path : path
        A segmentation written by Slicer, slicerio or :func:`write_seg_nrrd`.

    Returns
    -------
    labelmap : Volume
        Integer label map, affine index -> LPS mm. For a 3D file the stored label values are
        kept. A 4D (layered, possibly overlapping) file is flattened: segment ``n`` (in file
        order) gets label value ``n + 1``; where segments overlap the later one wins and a
        warning is added to ``labelmap.meta["warnings"]``.
    labels : dict[int, LabelInfo]
        Segment names and colours (0..1) by label value.

    Raises
    ------
    SlicerFormatError
        Missing, unreadable, or not a segmentation (no ``Segment<N>_`` fields).
    """
    import nrrd

    path = Path(path)
    if not path.is_file():
        raise SlicerFormatError("segmentation file not found", path=path)
    try:
        data, header = nrrd.read(str(path), index_order="F")
    except Exception as exc:
        raise SlicerFormatError(f"not a readable NRRD file ({type(exc).__name__}: {exc})", path=path) from None
    segs: dict[int, dict[str, str]] = {}
    for key, val in header.items():
        m = re.match(r"^Segment(\d+)_(.+)$", key)
        if m:
            segs.setdefault(int(m.group(1)), {})[m.group(2)] = str(val)
    if not segs:
        raise SlicerFormatError("no Segment<N>_ fields: not a Slicer segmentation", path=path)
    try:
        affine, _, _ = header_geometry(header, data.ndim, strict=True)
    except ValueError as exc:
        raise SlicerFormatError(str(exc), path=path) from None

    labels: dict[int, LabelInfo] = {}
    warnings: list[str] = []
    if data.ndim == 3:
        out = np.asarray(data)
        for n in sorted(segs):
            f = segs[n]
            value = int(f.get("LabelValue", n + 1))
            color = tuple(float(x) for x in f.get("Color", f.get("DefaultColor", "0.5 0.5 0.5")).split()[:3])
            labels[value] = LabelInfo(value, f.get("Name", f.get("ID", f"Segment_{value}")), color)
    elif data.ndim == 4:
        kinds = [str(k) for k in header.get("kinds", [])]
        layer_axis = kinds.index("list") if "list" in kinds else 0
        layers = np.moveaxis(np.asarray(data), layer_axis, 0)
        out = np.zeros(layers.shape[1:], np.uint16 if len(segs) > 255 else np.uint8)
        for new_value, n in enumerate(sorted(segs), start=1):
            f = segs[n]
            layer, value = int(f.get("Layer", 0)), int(f.get("LabelValue", 1))
            mask = layers[layer] == value
            if np.any(out[mask] != 0):
                warnings.append(f"segments overlap in {path.name}; '{f.get('Name')}' drawn over earlier ones")
            out[mask] = new_value
            color = tuple(float(x) for x in f.get("Color", "0.5 0.5 0.5").split()[:3])
            labels[new_value] = LabelInfo(new_value, f.get("Name", f"Segment_{new_value}"), color)
    else:
        raise SlicerFormatError(f"unexpected dimension {data.ndim}", path=path)
    vol = Volume(out, affine, {"kind": "labelmap", "source": path.name,
                               "label_names": {int(k): v.name for k, v in labels.items()}})
    for w in warnings:
        vol.warn(w)
    return vol, labels


# --- scenes ----------------------------------------------------------------------------------

@dataclass
class SceneModel:
    """One model entry of a scene: file, display name, colour (0..1), file coordinate system."""

    path: str
    name: str
    color: tuple[float, float, float] = (0.9, 0.85, 0.75)
    space: str = "LPS"


def _as_scene_model(item: Any) -> SceneModel:
    if isinstance(item, SceneModel):
        return item
    if isinstance(item, Mapping):
        return SceneModel(str(item["path"]), str(item.get("name") or Path(item["path"]).stem),
                          tuple(item.get("color", (0.9, 0.85, 0.75))), str(item.get("space", "LPS")))
    if isinstance(item, (tuple, list)) and len(item) >= 1:
        p = str(item[0])
        name = str(item[1]) if len(item) > 1 and item[1] else Path(p).stem
        color = tuple(item[2]) if len(item) > 2 and item[2] is not None else (0.9, 0.85, 0.75)
        space = str(item[3]) if len(item) > 3 else "LPS"
        return SceneModel(p, name, color, space)
    return SceneModel(str(item), Path(str(item)).stem)


def _rel(p: str | os.PathLike, root: Path) -> str:
    p = Path(p)
    if not p.is_absolute():
        p = (Path.cwd() / p)
    try:
        return os.path.relpath(p.resolve(), root.resolve()).replace(os.sep, "/")
    except ValueError:  # other drive (Windows)
        return str(p.resolve())


# Slicer URL-encodes these characters (and only these) in storage nodes' fileName attributes
# (vtkMRMLNode::URLEncodeString) and decodes them when reading a scene.
_URL_CODES = [("%", "%25"), (" ", "%20"), ("'", "%27"), (">", "%3E"), ("<", "%3C"), ('"', "%22")]


def _url_encode(name: str) -> str:
    for ch, code in _URL_CODES:
        name = name.replace(ch, code)
    return name


def _url_decode(name: str) -> str:
    for ch, code in reversed(_URL_CODES):
        name = name.replace(code, ch)
    return name


def _attrs(**kw: Any) -> str:
    out = []
    for k, v in kw.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        out.append(f"{k}={quoteattr(str(v))}")
    return " ".join(out)


def _color_attr(c: Sequence[float]) -> str:
    c = np.asarray(c, float).ravel()[:3]
    if c.max(initial=0) > 1.0:
        c = c / 255.0
    return " ".join(_fmt(x) for x in np.clip(c, 0, 1))


def write_scene(outdir: str | os.PathLike, volume_path: str | os.PathLike | None,
                seg_path: str | os.PathLike | None,
                model_paths_with_names_colors: Iterable[Any] = (),
                scene_name: str = "medrecon", *, ct_window: tuple[float, float] | None = (1800.0, 300.0),
                show_segmentation_3d: bool | None = None) -> Path:
    """Write a 3D Slicer scene (``<scene_name>.mrml``) in ``outdir`` referencing existing files.

    Parameters
    ----------
    outdir : path
        Folder of the scene; file references are written relative to it.
    volume_path : path or None
        Image volume (NRRD) shown in the slice views (grey, window/level ``ct_window``).
    seg_path : path or None
        ``.seg.nrrd`` segmentation (names and colours come from the file).
    model_paths_with_names_colors : iterable
        ``(path, name, color[, space])`` tuples, dicts with those keys, or :class:`SceneModel`;
        ``space`` is the coordinate system of the mesh file (``"LPS"`` default, as medrecon
        writes them, or ``"RAS"``). Colours are 0..1.
    scene_name : str
        File stem of the scene and the name of the segmentation node. Must not be a patient
        identifier.
    ct_window : (width, level) or None
        Display window for the volume; None lets Slicer choose automatically.
    show_segmentation_3d : bool, optional
        Show the segmentation's own surfaces in 3D. Default: only when there are no models
        (otherwise the models are the 3D representation and the segmentation shows in 2D).

    Returns
    -------
    Path of the ``.mrml`` file.

    Raises
    ------
    InputError
        A referenced file does not exist.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    models = [_as_scene_model(m) for m in model_paths_with_names_colors]
    for p in [volume_path, seg_path, *[m.path for m in models]]:
        if p is not None and not Path(p).is_file():
            raise InputError("file for the Slicer scene does not exist", path=p)
    safe_stem = re.sub(r"[^A-Za-z0-9._-]+", "_", scene_name).strip("._") or "scene"
    scene_path = outdir / f"{safe_stem}.mrml"

    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<MRML {_attrs(version=SLICER_VERSION_TAG, userTags="")}>']
    vol_id = None
    if volume_path is not None:
        vol_id, disp, sto = "vtkMRMLScalarVolumeNode1", "vtkMRMLScalarVolumeDisplayNode1", "vtkMRMLVolumeArchetypeStorageNode1"
        win = {} if ct_window is None else {"window": _fmt(ct_window[0]), "level": _fmt(ct_window[1]), "autoWindowLevel": "0"}
        if ct_window is None:
            win = {"autoWindowLevel": "1"}
        lines.append(f'  <VolumeDisplay {_attrs(id=disp, name="VolumeDisplay", hideFromEditors=True, visibility=True, colorNodeID="vtkMRMLColorTableNodeGrey", interpolate="1", **win)}></VolumeDisplay>')
        lines.append(f'  <VolumeArchetypeStorage {_attrs(id=sto, name="VolumeArchetypeStorage", hideFromEditors=True, fileName=_url_encode(_rel(volume_path, outdir)), useCompression="1", defaultWriteFileExtension="nrrd", centerImage="0", UseOrientationFromFile="1")}></VolumeArchetypeStorage>')
        vname = Path(volume_path).name.split(".")[0] or "volume"
        lines.append(f'  <Volume {_attrs(id=vol_id, name=vname, hideFromEditors=False, selectable=True, displayNodeRef=disp, storageNodeRef=sto, references=f"display:{disp};storage:{sto};", userTags="")}></Volume>')
    if seg_path is not None:
        sid, disp, sto = "vtkMRMLSegmentationNode1", "vtkMRMLSegmentationDisplayNode1", "vtkMRMLSegmentationStorageNode1"
        show3d = (not models) if show_segmentation_3d is None else bool(show_segmentation_3d)
        lines.append(f'  <SegmentationDisplay {_attrs(id=disp, name="SegmentationDisplay", hideFromEditors=True, visibility=True, visibility2D=True, visibility3D=show3d, opacity="1", PreferredDisplayRepresentationName2D="Binary labelmap", PreferredDisplayRepresentationName3D="Closed surface", Visibility2DFill=True, Visibility2DOutline=True, Opacity3D="1", Opacity2DFill="0.5", Opacity2DOutline="1")}></SegmentationDisplay>')
        lines.append(f'  <SegmentationStorage {_attrs(id=sto, name="SegmentationStorage", hideFromEditors=True, fileName=_url_encode(_rel(seg_path, outdir)), useCompression="1", defaultWriteFileExtension="seg.nrrd")}></SegmentationStorage>')
        refs = f"display:{disp};storage:{sto};" + (f"referenceImageGeometryRef:{vol_id};" if vol_id else "")
        lines.append(f'  <Segmentation {_attrs(id=sid, name=f"{scene_name} segmentation", hideFromEditors=False, selectable=True, displayNodeRef=disp, storageNodeRef=sto, references=refs, userTags="")}></Segmentation>')
    for n, m in enumerate(models, start=1):
        mid, disp, sto = f"vtkMRMLModelNode{n}", f"vtkMRMLModelDisplayNode{n}", f"vtkMRMLModelStorageNode{n}"
        space = m.space.upper()
        if space not in SPACES:
            raise MedreconError(f"model coordinate system must be LPS or RAS, got {m.space!r}", path=m.path)
        lines.append(f'  <ModelDisplay {_attrs(id=disp, name="ModelDisplay", hideFromEditors=True, color=_color_attr(m.color), opacity="1", visibility=True, visibility2D=True, visibility3D=True, scalarVisibility=False, backfaceCulling=False, sliceIntersectionThickness="2")}></ModelDisplay>')
        lines.append(f'  <ModelStorage {_attrs(id=sto, name="ModelStorage", hideFromEditors=True, fileName=_url_encode(_rel(m.path, outdir)), useCompression="1", coordinateSystem=space)}></ModelStorage>')
        lines.append(f'  <Model {_attrs(id=mid, name=m.name, hideFromEditors=False, selectable=True, displayNodeRef=disp, storageNodeRef=sto, references=f"display:{disp};storage:{sto};", userTags="")}></Model>')
    lines.append("</MRML>")
    atomic_write_text(scene_path, "\n".join(lines) + "\n")
    return scene_path


def parse_scene(path: str | os.PathLike) -> dict[str, Any]:
    """Read back what :func:`write_scene` (or Slicer) put in an ``.mrml`` file.

    Returns
    -------
    dict with ``volumes``, ``segmentations`` and ``models``: lists of dicts holding ``id``,
    ``name``, ``file`` (absolute path), and for models ``color`` (3 floats) and ``space``.

    Raises
    ------
    SlicerFormatError
        Not an MRML XML file, or a node references a missing node.
    """
    import xml.etree.ElementTree as ET

    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise SlicerFormatError(f"not a readable MRML scene ({exc})", path=path) from None
    if root.tag != "MRML":
        raise SlicerFormatError(f"root element is <{root.tag}>, not <MRML>", path=path)
    nodes = {el.get("id"): el for el in root if el.get("id")}

    def refs(el) -> dict[str, str]:
        out = {}
        for part in (el.get("references") or "").split(";"):
            if ":" in part:
                role, ids = part.split(":", 1)
                out[role] = ids.split()[0] if ids.split() else ""
        out.setdefault("display", el.get("displayNodeRef", ""))
        out.setdefault("storage", el.get("storageNodeRef", ""))
        for role, nid in out.items():
            if nid and nid not in nodes:
                raise SlicerFormatError(f"node {el.get('id')} refers to missing node {nid}", path=path)
        return out

    def file_of(el) -> str | None:
        sid = refs(el).get("storage")
        if not sid:
            return None
        fn = nodes[sid].get("fileName")
        return str((path.parent / _url_decode(fn)).resolve()) if fn else None

    result: dict[str, Any] = {"volumes": [], "segmentations": [], "models": []}
    for el in root:
        if el.tag == "Volume":
            result["volumes"].append({"id": el.get("id"), "name": el.get("name"), "file": file_of(el)})
        elif el.tag == "Segmentation":
            result["segmentations"].append({"id": el.get("id"), "name": el.get("name"), "file": file_of(el)})
        elif el.tag == "Model":
            r = refs(el)
            disp = nodes.get(r.get("display", ""))
            color = tuple(float(x) for x in (disp.get("color") if disp is not None else "1 1 1").split())
            sto = nodes.get(r.get("storage", ""))
            space = (sto.get("coordinateSystem") if sto is not None else None) or "RAS"  # Slicer: legacy = RAS
            result["models"].append({"id": el.get("id"), "name": el.get("name"), "file": file_of(el),
                                     "color": color, "space": space})
    return result


def write_slicer_bundle(outdir: str | os.PathLike, volume: Volume | None, labelmap: Volume | None,
                        labels: Mapping[int, Any] | None, model_files: Iterable[Any] = (),
                        scene_name: str = "medrecon", *, volume_name: str | None = None,
                        seg_name: str | None = None) -> Path:
    """Write the volume (NRRD), the segmentation (``.seg.nrrd``) and a scene referencing them and
    the given (already written) model files; return the scene path.

    File names: ``volume_name`` (default ``<scene>_volume.nrrd``) and ``seg_name`` (default
    ``<scene>.seg.nrrd``) in ``outdir``. ``model_files`` are as in :func:`write_scene`.
    """
    outdir = Path(outdir)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", scene_name).strip("._") or "scene"
    vpath = (write_volume_nrrd(volume, outdir / (volume_name or f"{stem}_volume.nrrd"))
             if volume is not None else None)
    spath = (write_seg_nrrd(labelmap, labels, outdir / (seg_name or f"{stem}.seg.nrrd"))
             if labelmap is not None else None)
    return write_scene(outdir, vpath, spath, model_files, scene_name)


def write_mesh_bundle(outdir: str | os.PathLike, volume: Volume, labelmap: Volume, labels: Mapping[int, Any],
                      models: Sequence[Any], files: Sequence[Path], formats: Sequence[str],
                      space: str = "LPS", scene_name: str = "medrecon") -> list[Path]:
    """The Slicer hand-off of a ``mesh`` run: ``image.nrrd``, ``segmentation.seg.nrrd`` and a
    scene that loads them with the models (the first per-structure mesh format among
    ``formats`` that was written: STL, PLY, VTP or OBJ; none for GLB/3MF only).

    Returns the three written paths (volume, segmentation, scene).
    """
    from medrecon.io.meshes import safe_filename

    outdir = Path(outdir)
    per_file = [f for f in ("stl", "ply", "vtp", "obj") if f in formats]
    model_items = []
    if per_file:
        by_name = {Path(p).name: Path(p) for p in files}
        for m in models:
            p = by_name.get(f"{safe_filename(m.name)}.{per_file[0]}")
            if p is not None:
                model_items.append((p, m.name, m.color, space))
    scene = write_slicer_bundle(outdir, volume, labelmap, labels, model_items, scene_name,
                                volume_name="image.nrrd", seg_name="segmentation.seg.nrrd")
    return [outdir / "image.nrrd", outdir / "segmentation.seg.nrrd", scene]
