"""The ``mesh`` pipeline: image -> segmentation -> surfaces -> files + ``report.json``.

Composition only: each stage is a plain function of the library, chained here.

1. load the image (:func:`medrecon.io.loader.load`, DICOM/NIfTI/NRRD, index -> LPS affine);
2. segment it with one source of :mod:`medrecon.segment.sources` (preset or threshold, a label
   map given with ``--labels``, or a local MONAI bundle), which returns a
   :class:`~medrecon.segment.sources.Segmentation`;
3. mesh every structure (:func:`medrecon.surface.build_surfaces`, or
   :func:`medrecon.surface.gpu.build_surfaces_gpu` when ``device`` gives CUDA);
4. write the meshes (:func:`medrecon.io.meshes.write_models`), optional previews / viewer
   (:mod:`medrecon.viz`), the 3D Slicer bundle (:func:`medrecon.io.slicer.write_mesh_bundle`) and
   ``report.json`` (:mod:`medrecon.report`, provenance from :mod:`medrecon.provenance`).

Progress goes through a callback ``progress(stage, done, total)``; the CLI draws it. Output file
names are structure names only. The report never holds patient identifiers: path settings are
recorded as a hash, the input is fingerprinted by the SHA-256 of its voxel data.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, List, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medrecon.errors import ConfigError, InputError, MeshError, validation_message
from medrecon.io.meshes import FORMATS
from medrecon.labelmap import LabelInfo, labelmap_on_grid
from medrecon.segment.presets import exclude_presets
from medrecon.surface.printing import print_check
from medrecon.provenance import input_fingerprint, path_token, provenance_record, spec_name, utc_now
from medrecon.volume import Volume

__all__ = ["MeshConfig", "MeshResult", "run_mesh", "print_check", "FORMATS", "input_fingerprint", "labelmap_on_grid",
           "Progress"]

#: A progress callback: ``progress(stage, done, total)``.
Progress = Callable[[str, int, int], None]
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
    device: str = Field("auto", description="auto, cpu or cuda:N: bundle inference and meshing (auto: CUDA when present)")
    compile: bool = Field(False, description="bundle: torch.compile the network (GPU; kernels cached on disk)")
    structures: Optional[List[str]] = Field(None, description="structure names to mesh")
    formats: List[str] = Field(default_factory=lambda: ["stl"])
    smoothing: float = Field(0.5, ge=0.0, le=1.0)
    reduction: float = Field(0.0, ge=0.0, lt=1.0)
    space: Literal["LPS", "RAS"] = "LPS"
    min_component_mm3: Optional[float] = Field(None, ge=0.0)
    largest: bool = False
    remove_table: bool = Field(False, description="presets/thresholds: drop the scanner table (flat pieces "
                               "outside the body), keep every bone piece")
    joint: bool = False
    keep_volume: bool = False
    series: Optional[str] = None
    slicer: bool = False
    preview: bool = True
    subvoxel: bool = Field(True, description="thresholds/presets: mesh the intensity iso-surface inside the "
                           "segmentation (sub-voxel); False: the binary mask, as Slicer does")
    exclude: Optional[List[str]] = Field(None, description="presets whose voxels are taken out of this "
                                         "run's structure (e.g. ct-teeth out of ct-bone), so solids are disjoint")
    obj_axes: Literal["LPS", "YUP"] = Field("LPS", description="OBJ vertex axes: LPS (Slicer) or Y-up (Blender...)")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError("invalid mesh settings: " + validation_message(exc)) from None

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, v):
        from medrecon.io.meshes import parse_formats

        try:
            return parse_formats(v)
        except MeshError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("space", "obj_axes", mode="before")
    @classmethod
    def _space(cls, v):
        return str(v).strip().upper().replace("-", "")

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
        if self.remove_table and sources[0] not in ("preset", "threshold"):
            raise ValueError("--remove-table applies to --preset or --threshold (a CT's intensities)")
        if self.joint and (self.reduction > 0 or self.keep_volume):  # refused, never silently ignored
            raise ValueError("--joint keeps the shared boundaries whole, so it does not decimate or restore volume: "
                             "drop --reduction/--keep-volume, or drop --joint (joint surfaces are for viewing, "
                             "not printing)")
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

    @property
    def warnings(self) -> list[str]:
        """Warnings about the input image and the segmentation, each once."""
        out: list[str] = []
        for w in [*self.volume.meta.get("warnings", []), *self.labelmap.meta.get("warnings", [])]:
            if w not in out:
                out.append(w)
        return out


class _Stages:
    """Times the stages and reports them to the progress callback."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.times: dict[str, float] = {}

    def report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    @contextmanager
    def stage(self, name: str, total: int = 1) -> Iterator[None]:
        self.report(name, 0, total)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(time.perf_counter() - t0, 3)
        self.report(name, total, total)


def _segment(cfg: MeshConfig, volume: Volume, st: _Stages):
    from medrecon.segment import sources

    common = dict(min_component_mm3=cfg.min_component_mm3, largest=cfg.largest)
    if cfg.preset or cfg.threshold:
        return sources.from_preset(volume, cfg.preset, cfg.threshold, remove_table=cfg.remove_table, **common)
    select = dict(label_table=cfg.label_table, structures=cfg.structures, group=cfg.group, **common)
    if cfg.labels:
        return sources.from_labelmap(volume, cfg.labels, **select)
    return sources.from_bundle(volume, cfg.bundle, device=cfg.device, progress=st.report, compile=cfg.compile,
                               **select)


def _iso_windows(cfg: MeshConfig, seg, labels) -> dict:
    """Threshold window per label for meshing on the image's iso-surface (``--subvoxel``):
    presets and thresholds with a lower bound only; label maps keep the binary path."""
    p = seg.info.get("preset") or {}
    if not cfg.subvoxel or cfg.joint or seg.info.get("method") not in ("preset", "threshold"):
        return {}
    if p.get("method") != "threshold" or p.get("low") is None:
        return {}
    return {int(v): (float(p["low"]), None if p.get("high") is None else float(p["high"])) for v in labels}


def _check_settings_files(cfg: MeshConfig) -> None:
    """Settings that live in files are checked before the (possibly long) image load."""
    outdir = Path(cfg.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ConfigError("output path exists and is not a folder", outdir)
    if cfg.preset:
        from medrecon.segment.presets import load_preset

        load_preset(cfg.preset)
    if cfg.label_table:
        from medrecon.io.label_tables import load_label_table

        load_label_table(cfg.label_table)
    if cfg.labels and not Path(cfg.labels).exists():
        raise InputError("label map not found", cfg.labels)


def run_mesh(cfg: MeshConfig | dict, progress: Progress | None = None) -> MeshResult:
    """Run the whole mesh pipeline for one input.

    Parameters
    ----------
    cfg : MeshConfig or dict
        Settings (a dict is validated into a :class:`MeshConfig`).
    progress : callable(stage, done, total), optional
        Told when each stage starts and ends (meshing: after each structure, with its name in
        the stage text; bundle inference: per window).

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
    from medrecon.io.loader import load
    from medrecon.io.meshes import write_models
    from medrecon.report import mesh_report, write_report
    from medrecon.surface.advice import mesh_advice
    from medrecon.surface.gpu import mesher_for_device
    from medrecon.version import __version__

    if isinstance(cfg, dict):
        cfg = MeshConfig.build(**cfg)
    _check_settings_files(cfg)
    outdir = Path(cfg.outdir)
    started = utc_now()
    files: list[Path] = []
    st = _Stages(progress)
    with st.stage("loading image"):
        volume = load(cfg.input, series=cfg.series)
    if volume.array.ndim != 3:
        raise InputError(f"mesh needs a 3D image, got shape {volume.shape} (choose one frame/series)", cfg.input)
    fingerprint = input_fingerprint(volume)
    with st.stage("segmenting"):
        seg = _segment(cfg, volume, st)
    labelmap, labels = seg.labelmap, seg.labels
    if cfg.exclude:  # overlapping presets made disjoint (e.g. teeth taken out of bone)
        labelmap = exclude_presets(labelmap, volume, cfg.exclude, seg)
    iso = _iso_windows(cfg, seg, labels)
    with st.stage("meshing", total=len(labels)):
        mesh_labels = mesher_for_device(cfg.device)  # the GPU (PyTorch) mesher when the device gives CUDA
        models = mesh_labels(labelmap, labels, smoothing=cfg.smoothing, reduction=cfg.reduction,
                             joint=cfg.joint, keep_volume=cfg.keep_volume,
                             **({"intensity": volume, "windows": iso} if iso else {}),
                             progress=lambda done, total, name: st.report(f"meshing {name}", done, total))
    config = _report_config(cfg)
    # the input by its voxel fingerprint only: a path or file name may identify the patient
    provenance = provenance_record("mesh", config, extra={"input_fingerprint": fingerprint})
    with st.stage("writing meshes"):
        files += write_models(models, outdir, cfg.formats, space=cfg.space, provenance=provenance,
                              obj_axes=cfg.obj_axes)
    extras: dict[str, list[Path]] = {}
    if cfg.preview:
        with st.stage("previews"):
            extras.update(_previews(volume, labelmap, labels, models, outdir))
            for v in extras.values():
                files += v
    if cfg.slicer:
        from medrecon.io.slicer import write_mesh_bundle

        with st.stage("3D Slicer scene"):
            extras["slicer"] = write_mesh_bundle(outdir, volume, labelmap, labels, models, files, cfg.formats,
                                                 cfg.space)
            files += extras["slicer"]
    report = mesh_report(config=config, volume=volume, fingerprint=fingerprint, labelmap=labelmap,
                         segmentation=seg.info, n_structures=len(labels), models=models, files=files,
                         space=cfg.space, outputs=extras, timings=st.times, created_utc=started,
                         version=__version__)
    report["print"] = print_check(models, cfg.space)
    report["print"]["warnings"] += mesh_advice(models, smoothing=cfg.smoothing, keep_volume=cfg.keep_volume,
                                               joint=cfg.joint)  # open surfaces, volume lost to smoothing
    for w in report["print"]["warnings"]:
        labelmap.warn(w)
    report_path = write_report(outdir / "report.json", report)
    files.append(report_path)
    return MeshResult(files, report_path, models, labelmap, volume, labels, report)


def _report_config(cfg: MeshConfig) -> dict[str, Any]:
    d = cfg.model_dump()
    for k in _PATH_FIELDS:
        d[k] = path_token(d.get(k))
    if d.get("bundle"):
        d["bundle"] = Path(d["bundle"]).name
    for k in ("label_table", "preset"):  # a file by its file name, a built-in by its name
        if d.get(k):
            d[k] = spec_name(d[k])
    return d


def _previews(volume, labelmap, labels, models, outdir: Path) -> dict[str, list[Path]]:
    """3D preview, QC montage and HTML viewer (each one file)."""
    from medrecon.viz.html import write_viewer
    from medrecon.viz.montage import qc_montage
    from medrecon.viz.preview import render_previews

    def paths(out) -> list[Path]:
        return [] if out is None else [Path(p) for p in (out if isinstance(out, (list, tuple)) else [out])]

    return {
        "preview": paths(render_previews(models, outdir / "preview.png", size_mm_bar=True)),
        "qc_montage": paths(qc_montage(volume, labelmap, labels, outdir / "qc_montage.png")),
        "viewer": paths(write_viewer(models, outdir / "viewer.html", title=f"medrecon: {len(models)} structures")),
    }
