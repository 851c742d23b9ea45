"""The ``mesh`` pipeline: image -> segmentation -> surfaces -> files + ``report.json``.

Stages (each a plain function of the library, chained here):

1. load the image (:func:`medrecon.io.loader.load`, DICOM/NIfTI/NRRD, index -> LPS affine);
2. segment it: an intensity preset or ``--threshold`` (+ clean-up in mm), a label map given
   with ``--labels`` (checked against the image grid, resampled nearest-neighbour when its grid
   differs), or a local MONAI bundle (:func:`medrecon.segment.monai.segment_volume`);
3. mesh every structure (:func:`medrecon.surface.build_surfaces`);
4. write the meshes (:func:`medrecon.io.mesh_writers.write_models`), optional previews / viewer /
   3D Slicer scene, and ``report.json`` (atomic) with per-structure QA and provenance.

Output file names are structure names only. The report never holds patient identifiers: path
settings are recorded as a hash (a folder name may be a patient's name), the input is
fingerprinted by the SHA-256 of its voxel data.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, List, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medrecon.errors import ConfigError, InputError, MeshError, SegmentationError, validation_message
from medrecon.segment.labels import LabelInfo, load_label_table, select_structures
from medrecon.volume import Volume

__all__ = ["MeshConfig", "MeshResult", "run_mesh", "FORMATS", "input_fingerprint", "labelmap_on_grid"]

#: Mesh formats the writers know.
FORMATS = ("stl", "obj", "ply", "vtp", "glb", "3mf")
_PATH_FIELDS = ("input", "outdir", "labels")


class MeshConfig(BaseModel):
    """Every setting of ``medrecon mesh`` (validated; bad values raise :class:`ConfigError`).

    Exactly one segmentation source: ``preset``, ``threshold``, ``labels`` or ``bundle``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    input: str = Field(..., min_length=1, description="DICOM folder/zip/file, NIfTI or NRRD volume")
    outdir: str = Field(..., min_length=1, description="output folder")
    preset: Optional[str] = Field(None, description="preset name (ct-bone, ...) or preset YAML path")
    threshold: Optional[str] = Field(None, description="custom window LOW:HIGH")
    labels: Optional[str] = Field(None, description="label map file to mesh")
    label_table: Optional[str] = Field(None, description="label table: built-in name or file")
    bundle: Optional[str] = Field(None, description="MONAI bundle folder")
    group: Optional[str] = Field(None, description="structure group (bones, organs, ...)")
    device: str = Field("auto", description="auto, cpu or cuda:N (bundle only)")
    structures: Optional[List[str]] = Field(None, description="structure names to mesh")
    formats: List[str] = Field(default_factory=lambda: ["stl"])
    smoothing: float = Field(0.5, ge=0.0, le=1.0)
    reduction: float = Field(0.0, ge=0.0, lt=1.0)
    space: Literal["LPS", "RAS"] = "LPS"
    min_component_mm3: Optional[float] = Field(None, ge=0.0)
    largest: bool = False
    joint: bool = False
    keep_volume: bool = False
    series: Optional[str] = None
    slicer: bool = False
    preview: bool = True

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError("invalid mesh settings: " + validation_message(exc)) from None

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, v):
        from medrecon.io.mesh_writers import parse_formats

        try:
            return parse_formats(v)
        except MeshError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("space", mode="before")
    @classmethod
    def _space(cls, v):
        return str(v).strip().upper()

    @field_validator("series", mode="before")
    @classmethod
    def _series(cls, v):
        return None if v is None else str(v)

    @model_validator(mode="after")
    def _one_source(self):
        sources = [n for n in ("preset", "threshold", "labels", "bundle") if getattr(self, n)]
        if len(sources) != 1:
            given = f" (got {', '.join('--' + s for s in sources)})" if sources else ""
            raise ValueError(f"give exactly one of --preset, --threshold, --labels, --bundle{given}")
        if sources[0] in ("preset", "threshold") and (self.structures or self.group or self.label_table):
            raise ValueError("--structures, --group and --label-table apply to --labels or --bundle, "
                             "not to a preset or threshold")
        if self.threshold:
            from medrecon.segment.presets import parse_threshold

            try:
                parse_threshold(self.threshold)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    @classmethod
    def build(cls, **kwargs) -> "MeshConfig":
        """Construct (same as ``MeshConfig(**kwargs)``; errors are :class:`ConfigError`)."""
        return cls(**kwargs)


@dataclass
class MeshResult:
    """What :func:`run_mesh` produced."""

    files: list[Path]
    report_path: Path
    models: list
    labelmap: Volume
    volume: Volume
    labels: dict[int, LabelInfo] = field(default_factory=dict)
    report: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def input_fingerprint(volume: Volume) -> dict[str, Any]:
    """SHA-256 of the voxel data (C order, native dtype) with shape and dtype; no identifiers."""
    arr = np.ascontiguousarray(volume.array)
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(memoryview(arr).cast("B"))
    return {"sha256": h.hexdigest(), "shape": list(arr.shape), "dtype": str(arr.dtype)}


def _path_token(p: str | None) -> str | None:
    if p is None:
        return None
    return "sha256:" + hashlib.sha256(str(Path(p).resolve()).encode()).hexdigest()[:16]


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def labelmap_on_grid(labelmap: Volume, volume: Volume, tol_mm: float = 1e-3, where: str = "label map") -> Volume:
    """The label map on the image's grid: as it is when the grids agree, else resampled
    (nearest neighbour, in LPS) with a warning.

    Raises
    ------
    InputError
        Not 3D, not integer, or no overlap with the image.
    """
    arr = np.asarray(labelmap.array)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise InputError(f"label map must be 3D, got shape {arr.shape}", where)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int32)
        else:
            raise InputError("label map holds non-integer values", where)
    if arr.min(initial=0) < 0:
        raise InputError("label map holds negative labels", where)
    out_dtype = np.uint8 if arr.max(initial=0) < 256 else (np.uint16 if arr.max() < 65536 else np.int32)
    shape = volume.shape[:3]
    # compare the grids by the LPS positions of the image's corners
    corners = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)],
                       dtype=float)
    pts = volume.index_to_lps(corners)
    same = arr.shape == shape and np.abs(labelmap.index_to_lps(corners) - pts).max() <= tol_mm
    if same:
        return volume.with_array(arr.astype(out_dtype, copy=False), kind="labelmap", warnings=[])
    from scipy import ndimage

    m = np.linalg.inv(labelmap.affine) @ volume.affine  # image index -> label-map index
    out = ndimage.affine_transform(arr, m[:3, :3], offset=m[:3, 3], output_shape=shape, order=0,
                                   mode="constant", cval=0).astype(out_dtype)
    if not out.any() and arr.any():
        raise InputError("label map does not overlap the image (check that both come from the same scan)", where)
    res = volume.with_array(out, kind="labelmap", warnings=[])
    # same voxels, other axis order / direction (e.g. NIfTI rows flipped): an exact re-indexing
    rot = np.round(m[:3, :3])
    exact = (np.allclose(m[:3, :3], rot, atol=1e-4) and np.allclose(m[:3, 3], np.round(m[:3, 3]), atol=1e-3)
             and np.all(np.abs(rot).sum(0) == 1) and np.all(np.abs(rot).sum(1) == 1)
             and int(np.count_nonzero(out)) == int(np.count_nonzero(arr)))
    if not exact:
        res.meta["warnings"] = [f"label map grid {arr.shape} differs from the image grid {shape}: "
                                "resampled (nearest neighbour) onto the image grid"]
    return res


class _Stages:
    """rich progress for the stages (quiet without a console)."""

    def __init__(self, console):
        self.console = console
        self.progress = None
        self.times: dict[str, float] = {}

    def __enter__(self):
        if self.console is not None:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                     console=self.console, transient=False)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    @contextmanager
    def stage(self, name: str, total: int | None = 1) -> Iterator[Any]:
        task = self.progress.add_task(name, total=total) if self.progress is not None else None
        t0 = time.perf_counter()
        try:
            yield task
        finally:
            self.times[name] = round(time.perf_counter() - t0, 3)
            if task is not None:
                t = self.progress.tasks[[x.id for x in self.progress.tasks].index(task)]
                self.progress.update(task, completed=t.total if t.total is not None else 1,
                                     total=t.total if t.total is not None else 1)

    def log(self, msg: str) -> None:
        if self.progress is not None:
            self.progress.console.log(msg)
        elif self.console is not None:
            self.console.log(msg)


# --------------------------------------------------------------------------------------------
# segmentation sources
# --------------------------------------------------------------------------------------------
def _segment_preset(cfg: MeshConfig, volume: Volume) -> tuple[Volume, dict[int, LabelInfo], dict]:
    from medrecon.segment.presets import apply_preset, load_preset, threshold_preset

    preset = load_preset(cfg.preset) if cfg.preset else threshold_preset(cfg.threshold)
    lab, table = apply_preset(volume, preset, min_component_mm3=cfg.min_component_mm3,
                              largest=True if cfg.largest else None)
    return lab, table, {"method": "preset" if cfg.preset else "threshold", "preset": preset.model_dump()}


def _read_labelmap(path: str) -> tuple[Volume, dict[int, LabelInfo] | None]:
    """Read a label map and whatever label names travel with it.

    Handles Slicer ``.seg.nrrd``, a folder of per-structure NIfTI masks (TotalSegmentator's
    default output), NIfTI files carrying an embedded label table (TotalSegmentator
    ``--ml``), and any volume the loader reads (names from its metadata, if any).
    """
    p = Path(path)
    if str(path).lower().endswith(".seg.nrrd"):
        from medrecon.io.slicer import read_seg_nrrd

        return read_seg_nrrd(path)
    if p.is_dir() and any(p.glob("*.nii.gz")) or p.is_dir() and any(p.glob("*.nii")):
        from medrecon.segment.imports import import_totalsegmentator

        return import_totalsegmentator(p)
    from medrecon.io.loader import load

    lab = load(path)
    names = lab.meta.get("label_names")
    if not (isinstance(names, dict) and names) and p.name.lower().endswith((".nii", ".nii.gz")):
        from medrecon.segment.imports import read_embedded_label_table

        names = read_embedded_label_table(p)
    table = None
    if isinstance(names, dict) and names:
        table = load_label_table({int(k): v for k, v in names.items()})
    return lab, table


def _segment_labels(cfg: MeshConfig, volume: Volume) -> tuple[Volume, dict[int, LabelInfo], dict]:
    from medrecon.segment.cleanup import clean_labelmap

    if not Path(cfg.labels).exists():
        raise InputError("label map not found", cfg.labels)
    raw, embedded = _read_labelmap(cfg.labels)
    lab = labelmap_on_grid(raw, volume, where=cfg.labels)
    table = load_label_table(cfg.label_table) if cfg.label_table else embedded
    present = [int(v) for v in np.unique(lab.array) if v != 0]
    if not present:
        raise SegmentationError("label map is empty (only background)", cfg.labels)
    if table is None:
        from medrecon.segment.labels import default_color

        table = {v: LabelInfo(v, f"label_{v}", default_color(f"label_{v}", v)) for v in present}
    selected = select_structures(table, cfg.structures, cfg.group)
    missing = [li.name for v, li in selected.items() if v not in present]
    wanted = {v: li for v, li in selected.items() if v in present}
    if not wanted:
        raise SegmentationError("none of the selected structures is present in the label map"
                                + (f" (absent: {', '.join(missing[:8])})" if missing else ""), cfg.labels)
    unnamed = sorted(set(present) - set(table))
    arr = lab.array
    if cfg.min_component_mm3 or cfg.largest:
        arr = clean_labelmap(arr, lab.affine, min_component_mm3=cfg.min_component_mm3, largest=cfg.largest,
                             values=list(wanted))
    keep = np.zeros(int(arr.max()) + 1, dtype=bool)
    keep[list(wanted)] = True
    arr = np.where(keep[arr], arr, 0).astype(arr.dtype)
    lab = lab.with_array(arr, label_names={v: li.name for v, li in wanted.items()})
    info = {"method": "labels", "label_table": _table_name(cfg.label_table) if cfg.label_table else
            ("embedded" if embedded else None), "absent_structures": missing, "unnamed_labels": unnamed}
    return lab, wanted, info


def _table_name(spec: str) -> str:
    p = Path(spec)
    return p.name if p.exists() else spec


def _segment_bundle(cfg: MeshConfig, volume: Volume, stages: _Stages) -> tuple[Volume, dict[int, LabelInfo], dict]:
    from medrecon.segment.monai import segment_volume

    lab, table = segment_volume(volume, cfg.bundle, device=cfg.device, progress=stages.progress)
    if cfg.label_table:
        table = load_label_table(cfg.label_table)
    selected = select_structures(table, cfg.structures, cfg.group)
    arr = np.asarray(lab.array)
    if cfg.min_component_mm3 or cfg.largest:
        from medrecon.segment.cleanup import clean_labelmap

        arr = clean_labelmap(arr, lab.affine, min_component_mm3=cfg.min_component_mm3, largest=cfg.largest,
                             values=list(selected))
    present = set(int(v) for v in np.unique(arr) if v != 0)
    wanted = {v: li for v, li in selected.items() if v in present}
    if not wanted:
        raise SegmentationError("the bundle found none of the selected structures in this image", cfg.bundle)
    keep = np.zeros(int(arr.max()) + 1, dtype=bool)
    keep[list(wanted)] = True
    lab = lab.with_array(np.where(keep[arr], arr, 0).astype(arr.dtype), kind="labelmap", warnings=[])
    return lab, wanted, {"method": "bundle", "bundle": Path(cfg.bundle).name}


# --------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------
def _optional(stages: _Stages, what: str, fn) -> list[Path]:
    """Run an optional output step (previews, viewer, Slicer scene); return the paths it wrote."""
    out = fn()
    if out is None:
        return []
    return [Path(p) for p in (out if isinstance(out, (list, tuple)) else [out])]


def run_mesh(cfg: MeshConfig | dict, console=None) -> MeshResult:
    """Run the whole mesh pipeline for one input.

    Parameters
    ----------
    cfg : MeshConfig or dict
        Settings (a dict is validated into a :class:`MeshConfig`).
    console : rich.console.Console, optional
        Shows stage progress and log lines; quiet when None.

    Returns
    -------
    MeshResult
        ``files`` (every written file, report included), ``report_path``, ``models``
        (SurfaceModel list, LPS mm), ``labelmap`` (on the image grid), ``volume``.

    Raises
    ------
    MedreconError
        ConfigError for bad settings, InputError/DicomError for unreadable input,
        SegmentationError when nothing is found, MeshError when meshing/writing fails.
    """
    import medrecon
    from medrecon.io.loader import load
    from medrecon.io.mesh_writers import write_models
    from medrecon.surface import build_surfaces

    if isinstance(cfg, dict):
        cfg = MeshConfig.build(**cfg)
    outdir = Path(cfg.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ConfigError("output path exists and is not a folder", outdir)
    # settings that live in files are checked before the (possibly long) image load
    if cfg.preset:
        from medrecon.segment.presets import load_preset

        load_preset(cfg.preset)
    if cfg.label_table:
        load_label_table(cfg.label_table)
    if cfg.labels and not Path(cfg.labels).exists():
        raise InputError("label map not found", cfg.labels)
    started = _dt.datetime.now(_dt.timezone.utc)
    files: list[Path] = []
    with _Stages(console) as st:
        with st.stage("loading image"):
            volume = load(cfg.input, series=cfg.series)
        if volume.array.ndim != 3:
            raise InputError(f"mesh needs a 3D image, got shape {volume.shape} (choose one frame/series)", cfg.input)
        fingerprint = input_fingerprint(volume)
        with st.stage("segmenting"):
            if cfg.preset or cfg.threshold:
                labelmap, labels, seg_info = _segment_preset(cfg, volume)
            elif cfg.labels:
                labelmap, labels, seg_info = _segment_labels(cfg, volume)
            else:
                labelmap, labels, seg_info = _segment_bundle(cfg, volume, st)
        for w in labelmap.meta.get("warnings", []):
            st.log(f"[yellow]warning:[/] {w}")
        with st.stage("meshing", total=len(labels)) as task:
            def progress(done, total, name):
                if st.progress is not None:
                    st.progress.update(task, completed=done, total=total, description=f"meshing {name}")
            models = build_surfaces(labelmap, labels, smoothing=cfg.smoothing, reduction=cfg.reduction,
                                    joint=cfg.joint, keep_volume=cfg.keep_volume, progress=progress)
        provenance = {"medrecon_version": medrecon.__version__, "config": _report_config(cfg),
                      "input_fingerprint": fingerprint}
        with st.stage("writing meshes"):
            files += write_models(models, outdir, cfg.formats, space=cfg.space, provenance=provenance)
        extras: dict[str, Any] = {}
        if cfg.preview:
            with st.stage("previews"):
                extras["preview"] = _optional(st, "3D preview", lambda: _previews(models, outdir))
                extras["qc_montage"] = _optional(st, "QC montage", lambda: _montage(volume, labelmap, labels, outdir))
                extras["viewer"] = _optional(st, "HTML viewer", lambda: _viewer(models, outdir))
                for v in extras.values():
                    files += v
        if cfg.slicer:
            with st.stage("3D Slicer scene"):
                extras["slicer"] = _optional(st, "Slicer scene",
                                             lambda: _slicer(volume, labelmap, labels, models, files, outdir, cfg))
                files += extras["slicer"]
        report = _report(cfg, volume, labelmap, labels, models, files, outdir, seg_info, fingerprint,
                         started, st.times, extras)
        from medrecon.io.atomic import atomic_write_text

        report_path = atomic_write_text(outdir / "report.json", json.dumps(_jsonable(report), indent=2) + "\n")
        files.append(report_path)
    return MeshResult(files, report_path, models, labelmap, volume, labels, report)


def _report_config(cfg: MeshConfig) -> dict[str, Any]:
    d = cfg.model_dump()
    for k in _PATH_FIELDS:
        d[k] = _path_token(d.get(k))
    if d.get("bundle"):
        d["bundle"] = Path(d["bundle"]).name
    if d.get("label_table"):
        d["label_table"] = _table_name(d["label_table"])
    if d.get("preset"):
        d["preset"] = _table_name(d["preset"])  # a preset file by its file name
    return d


def _previews(models, outdir: Path) -> Path:
    from medrecon.viz.preview import render_previews

    return render_previews(models, outdir / "preview.png", size_mm_bar=True)


def _montage(volume, labelmap, labels, outdir: Path) -> Path:
    from medrecon.viz.montage import qc_montage

    return qc_montage(volume, labelmap, labels, outdir / "qc_montage.png")


def _viewer(models, outdir: Path) -> Path:
    from medrecon.viz.html import write_viewer

    return write_viewer(models, outdir / "viewer.html", title=f"medrecon: {len(models)} structures")


def _slicer(volume, labelmap, labels, models, files, outdir: Path, cfg: MeshConfig) -> list[Path]:
    from medrecon.io.slicer import write_scene, write_seg_nrrd, write_volume_nrrd

    vpath = write_volume_nrrd(volume, outdir / "image.nrrd")
    spath = write_seg_nrrd(labelmap, labels, outdir / "segmentation.seg.nrrd")
    per_file = [f for f in ("stl", "ply", "vtp", "obj") if f in cfg.formats]
    model_items = []
    if per_file:
        by_name = {p.name: p for p in files}
        from medrecon.io.mesh_writers import safe_filename

        for m in models:
            p = by_name.get(f"{safe_filename(m.name)}.{per_file[0]}")
            if p is not None:
                model_items.append((p, m.name, m.color, cfg.space))
    scene = write_scene(outdir, vpath, spath, model_items, scene_name="medrecon")
    return [vpath, spath, scene]


def _report(cfg, volume, labelmap, labels, models, files, outdir, seg_info, fingerprint, started, times,
            extras) -> dict[str, Any]:
    import medrecon

    per_file = {}
    for p in files:
        per_file.setdefault(p.stem, []).append(p.name)
    structures = []
    for m in models:
        from medrecon.io.mesh_writers import safe_filename

        stem = safe_filename(m.name)
        structures.append({
            "name": m.name, "label": int(m.label), "color": [round(c, 4) for c in m.color],
            "files": sorted(per_file.get(stem, [])), "qa": m.qa,
        })
    vox = float(abs(np.linalg.det(volume.affine[:3, :3])))
    return {
        "medrecon_version": medrecon.__version__,
        "created_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": _report_config(cfg),
        "input": {
            "fingerprint": fingerprint,
            "modality": volume.meta.get("modality"),
            "spacing_mm": [round(float(s), 6) for s in volume.spacing],
            "voxel_volume_mm3": vox,
            "oblique": bool(volume.is_oblique()),
            "warnings": list(volume.meta.get("warnings", [])),
        },
        "segmentation": {**seg_info, "structures": len(labels),
                         "warnings": list(labelmap.meta.get("warnings", []))},
        "space": cfg.space,
        "structures": structures,
        "files": sorted({p.name for p in files} | {"report.json"}),
        "outputs": {k: [Path(p).name for p in v] for k, v in extras.items()},
        "timings_s": times,
    }
