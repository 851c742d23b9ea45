"""The ``mesh`` pipeline, composition only: image -> segmentation -> surfaces -> files + ``report.json``.

:func:`mesh_volume` works on data in memory (a :class:`Volume`, optionally a label map): it
segments with one source of :mod:`medrecon.segment.sources` and meshes every structure
(:mod:`medrecon.surface`, the GPU mesher when ``device`` gives CUDA). :func:`write_mesh_result`
writes meshes (:func:`medrecon.io.meshes.write_models`), previews (:mod:`medrecon.viz`), the 3D
Slicer bundle and ``report.json``. :func:`run_mesh` = load + both. Progress: one callback
``progress(ProgressEvent)`` (:mod:`medrecon.progress`). Reports hold no patient identifiers (paths as hashes, input by voxel SHA-256).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from medrecon.errors import ConfigError, InputError
from medrecon.mesh_config import MeshConfig
from medrecon.io.meshes import FORMATS
from medrecon.labelmap import LabelInfo, labelmap_on_grid
from medrecon.segment.presets import exclude_presets
from medrecon.surface.printing import print_check
from medrecon.provenance import input_fingerprint, provenance_record, utc_now
from medrecon.report import report_settings
from medrecon.volume import Volume
from medrecon.progress import ProgressEvent, ProgressFn

__all__ = ["MeshConfig", "MeshResult", "run_mesh", "mesh_volume", "write_mesh_result", "IN_MEMORY", "print_check",
           "FORMATS", "input_fingerprint", "labelmap_on_grid", "Progress"]

#: A progress callback: ``progress(ProgressEvent)`` (:mod:`medrecon.progress`).
Progress = ProgressFn
_PATH_FIELDS = ("input", "outdir", "labels")


@dataclass
class MeshResult:
    """What :func:`mesh_volume` made (and :func:`write_mesh_result` wrote: ``files``, ``report_path``)."""

    files: list[Path]
    report_path: Optional[Path]
    models: list
    labelmap: Volume
    volume: Volume
    labels: dict[int, LabelInfo] = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    config: Optional[MeshConfig] = None  # what the writing step needs: settings, facts for the report
    segmentation: dict = field(default_factory=dict)
    fingerprint: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    started_utc: str = ""
    print_check: dict = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """Warnings about the input image and the segmentation, each once."""
        return list(dict.fromkeys([*self.volume.meta.get("warnings", []), *self.labelmap.meta.get("warnings", [])]))


class _Stages:
    """Times the stages and reports them to the progress callback."""

    def __init__(self, progress: Progress | None, times: dict[str, float] | None = None):
        self.progress, self.times = progress, ({} if times is None else times)

    def report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(stage, done, total))

    @contextmanager
    def stage(self, name: str, total: int = 1) -> Iterator[None]:
        self.report(name, 0, total)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(time.perf_counter() - t0, 3)
        self.report(name, total, total)


def _segment(cfg: MeshConfig, volume: Volume, st: _Stages, labelmap: Volume | None = None,
             labels: dict[int, LabelInfo] | None = None):
    from medrecon.segment import sources

    common = dict(min_component_mm3=cfg.min_component_mm3, largest=cfg.largest)
    if labelmap is not None:
        return sources.from_labelmap(volume, labelmap, label_table=labels or cfg.label_table,
                                     structures=cfg.structures, group=cfg.group, **common)
    if cfg.preset or cfg.threshold:
        return sources.from_preset(volume, cfg.preset, cfg.threshold, remove_table=cfg.remove_table, **common)
    select = dict(label_table=cfg.label_table, structures=cfg.structures, group=cfg.group, **common)
    if cfg.labels:
        return sources.from_labelmap(volume, cfg.labels, **select)
    return sources.from_bundle(volume, cfg.bundle, device=cfg.device, progress=st.progress, compile=cfg.compile,
                               **select)


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


#: The ``input`` / ``labels`` setting of a run given data in memory (:func:`mesh_volume`).
IN_MEMORY = "(in memory)"


def mesh_volume(volume: Volume, cfg: MeshConfig | dict | None = None, *, labelmap: Volume | None = None,
                labels: dict[int, LabelInfo] | None = None, progress: Progress | None = None) -> MeshResult:
    """Segment and mesh an image already in memory; data in, data out (no file is written).

    ``cfg``: settings (MeshConfig or dict; ``input``/``outdir`` may be left out). ``labelmap``:
    a label map in memory (resampled nearest-neighbour to ``volume``'s grid when it differs),
    instead of a segmentation source, named by ``labels`` ({value: LabelInfo}) or
    ``cfg.label_table``. Returns a :class:`MeshResult` (``models`` in LPS mm, ``labelmap``,
    ``report`` without files; ``files`` empty until :func:`write_mesh_result`).

    Examples
    --------
    >>> from medrecon.phantoms import sphere_phantom
    >>> vol = sphere_phantom(radius=8.0, spacing=(1.0, 1.0, 1.0)).volume
    >>> res = mesh_volume(vol, {"preset": "ct-bone"})
    >>> [m.name for m in res.models], res.files
    (['bone'], [])
    """
    from medrecon.segment.sources import iso_windows
    from medrecon.surface.advice import mesh_advice
    from medrecon.surface.gpu import mesher_for_device

    if cfg is None or isinstance(cfg, dict):
        in_memory = {"input": IN_MEMORY, "outdir": ".", **({"labels": IN_MEMORY} if labelmap is not None else {})}
        cfg = MeshConfig.build(**{**in_memory, **(cfg or {})})
    if volume.array.ndim != 3:
        where = None if cfg.input == IN_MEMORY else cfg.input
        raise InputError(f"mesh needs a 3D image, got shape {volume.shape} (choose one frame/series)", where)
    started, st, fingerprint = utc_now(), _Stages(progress), input_fingerprint(volume)
    with st.stage("segmenting"):
        seg = _segment(cfg, volume, st, labelmap, labels)
    lab, found = seg.labelmap, seg.labels
    if cfg.exclude:  # overlapping presets made disjoint (e.g. teeth taken out of bone)
        lab = exclude_presets(lab, volume, cfg.exclude, seg)
    iso = iso_windows(seg, found) if cfg.subvoxel and not cfg.joint else {}
    with st.stage("meshing", total=len(found)):
        mesh_labels = mesher_for_device(cfg.device)  # the GPU (PyTorch) mesher when the device gives CUDA
        models = mesh_labels(lab, found, smoothing=cfg.smoothing, reduction=cfg.reduction,
                             joint=cfg.joint, keep_volume=cfg.keep_volume,
                             **({"intensity": volume, "windows": iso} if iso else {}),
                             progress=progress)
    res = MeshResult([], None, models, lab, volume, found, {}, cfg, seg.info, fingerprint, st.times, started,
                     print_check(models, cfg.space))
    res.print_check["warnings"] += mesh_advice(models, smoothing=cfg.smoothing, keep_volume=cfg.keep_volume,
                                               joint=cfg.joint)  # open surfaces, volume lost to smoothing
    for w in res.print_check["warnings"]:
        lab.warn(w)
    res.report = _report(res, [], {})
    return res


def write_mesh_result(result: MeshResult, outdir: str | Path | None = None,
                      progress: Progress | None = None) -> MeshResult:
    """Write what :func:`mesh_volume` made into ``outdir`` (default ``config.outdir``): meshes,
    previews, the 3D Slicer bundle, ``report.json``. Fills and returns ``result``."""
    from medrecon.io.meshes import write_models
    from medrecon.report import write_report
    from medrecon.viz import mesh_previews

    cfg = result.config
    outdir = Path(outdir if outdir is not None else cfg.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ConfigError("output path exists and is not a folder", outdir)
    st, files = _Stages(progress, result.timings), []
    # the input by its voxel fingerprint only: a path or file name may identify the patient
    ident = None  # the patient's identifiers: opt-in only, never for an in-memory input
    if cfg.keep_identifiers and cfg.input != IN_MEMORY:
        from medrecon.io.dicom.anonymize import patient_identity

        ident = patient_identity(cfg.input, cfg.series)
    provenance = provenance_record("mesh", _report_config(cfg), extra={"input_fingerprint": result.fingerprint,
                                                                      **({"patient": ident} if ident else {})})
    with st.stage("writing meshes"):
        from medrecon.io.dicom.anonymize import identity_basename

        files += write_models(result.models, outdir, cfg.formats, space=cfg.space, provenance=provenance,
                              obj_axes=cfg.obj_axes, basename_fn=identity_basename(ident))
    extras: dict[str, list[Path]] = {}
    if cfg.preview:
        with st.stage("previews"):
            extras.update(mesh_previews(result.volume, result.labelmap, result.labels, result.models, outdir))
            for v in extras.values():
                files += v
    if cfg.slicer:
        from medrecon.io.slicer import write_mesh_bundle

        with st.stage("3D Slicer scene"):
            extras["slicer"] = write_mesh_bundle(outdir, result.volume, result.labelmap, result.labels,
                                                 result.models, files, cfg.formats, cfg.space)
            files += extras["slicer"]
    result.report = _report(result, files, extras)
    if cfg.keep_identifiers:
        result.report["patient"] = ident or {}
    result.report_path = write_report(outdir / "report.json", result.report)
    result.files = files + [result.report_path]
    return result


def run_mesh(cfg: MeshConfig | dict, progress: Progress | None = None) -> MeshResult:
    """Run the mesh pipeline for one input: :func:`~medrecon.io.loader.load`, :func:`mesh_volume`,
    :func:`write_mesh_result`. ``cfg``: MeshConfig or dict; ``progress(ProgressEvent)`` is
    told when each stage starts and ends (meshing: per structure; bundle inference: per window).

    Returns a :class:`MeshResult`: ``files`` (report included), ``report_path``, ``models``
    (LPS mm), ``labelmap`` (on the image grid), ``volume``. Raises a MedreconError (ConfigError,
    InputError/DicomError, SegmentationError, MeshError) with a one-line message.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from medrecon.io.volumes import save_volume
    >>> from medrecon.phantoms import sphere_phantom
    >>> tmp = Path(tempfile.mkdtemp())
    >>> ct = save_volume(sphere_phantom(radius=8.0, spacing=(1.0, 1.0, 1.0)).volume, tmp / "ct.nii.gz")
    >>> res = run_mesh({"input": str(ct), "outdir": str(tmp / "out"), "preset": "ct-bone", "preview": False})
    >>> sorted(p.name for p in res.files)
    ['bone.stl', 'report.json']
    """
    from medrecon.io.loader import load

    cfg = MeshConfig.build(**cfg) if isinstance(cfg, dict) else cfg
    _check_settings_files(cfg)
    st = _Stages(progress)
    with st.stage("loading image"):
        volume = load(cfg.input, series=cfg.series)
    res = mesh_volume(volume, cfg, progress=progress)
    res.timings = {**st.times, **res.timings}
    return write_mesh_result(res, cfg.outdir, progress=progress)


def _report(res: MeshResult, files: list[Path], extras: dict[str, list[Path]]) -> dict[str, Any]:
    from medrecon.report import mesh_report
    from medrecon.version import __version__

    cfg = res.config
    report = mesh_report(config=_report_config(cfg), volume=res.volume, fingerprint=res.fingerprint,
                         labelmap=res.labelmap, segmentation=res.segmentation, n_structures=len(res.labels),
                         models=res.models, files=files, space=cfg.space, outputs=extras, timings=res.timings,
                         created_utc=res.started_utc, version=__version__)
    report["print"] = res.print_check
    return report


def _report_config(cfg: MeshConfig) -> dict[str, Any]:  # paths as hashes, files by their names
    return report_settings(cfg.model_dump(), _PATH_FIELDS, keep=(IN_MEMORY,))
