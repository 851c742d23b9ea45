"""Worker-side task functions of a cohort run (plain functions on plain data; Dask ships them).

A study runs either as one CPU task (:func:`process_study`: load, segment with a preset,
threshold or label map, mesh, write) or, when the recipe segments with a MONAI bundle, as three
chained tasks so CPU and GPU work overlap across studies:

1. :func:`load_stage` (CPU worker): decode the image -> :class:`Volume`;
2. :func:`segment_stage` (GPU worker when there is one, tagged with the ``GPU`` worker
   resource): run the bundle; the network is loaded **once per worker process** and reused;
3. :func:`mesh_stage` (CPU worker): mesh the label map and write everything.

The stages pass data (the decoded :class:`Volume`, the label map), never intermediate files.

Outputs of a study are written into ``OUTDIR/.staging/<id>.<random>/`` and moved to
``OUTDIR/studies/<id>/`` by one directory rename once complete (with a ``cohort.json`` marker
inside holding the fingerprint and config hash), so a study folder is either absent or whole.

Bad input (a :class:`MedreconError`) is returned as a failure, not raised, so it is not retried;
any other exception is raised and Dask retries it.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from medrecon.errors import MedreconError

__all__ = ["warm_up", "process_study", "load_stage", "segment_stage", "mesh_stage", "EVENT_TOPIC", "MARKER", "read_marker",
           "model_cache_info"]

EVENT_TOPIC = "medrecon-cohort"
MARKER = "cohort.json"
_BUNDLE_CACHE: dict[tuple[str, str], Any] = {}
_CACHE_STATS = {"loads": 0, "hits": 0, "load_s": 0.0}


def warm_up(segment: bool = False) -> float:
    """Import the pipeline's modules in this worker process (run once per worker before the first
    study, so import time counts neither against ``--timeout`` nor in a study's timings).
    ``segment``: also the bundle stack (torch, MONAI), on the workers that will segment."""
    t0 = time.perf_counter()
    if segment:
        import medrecon.segment.ai  # noqa: F401
        import monai.bundle  # noqa: F401
    import medrecon.io.loader  # noqa: F401
    import medrecon.io.meshes  # noqa: F401
    import medrecon.io.volumes  # noqa: F401
    import medrecon.mesh_pipeline  # noqa: F401
    import medrecon.report  # noqa: F401
    import medrecon.segment.sources  # noqa: F401
    import medrecon.surface  # noqa: F401
    import medrecon.surface.mesher  # noqa: F401
    import nibabel  # noqa: F401
    from medrecon.mesh_pipeline import MeshConfig

    MeshConfig(input="x", outdir="y", preset="ct-bone")  # pulls in the mesh writers' format parser
    return time.perf_counter() - t0


def _event(job: dict, event: str, stage: str) -> None:
    """Tell the driver a stage started (Dask structured events; silent outside a worker)."""
    try:
        from distributed import get_worker

        w = get_worker()
        w.log_event(EVENT_TOPIC, {"study_id": job["study_id"], "token": job.get("token"), "event": event,
                                  "stage": stage, "worker": w.address, "t": time.time()})
    except Exception:  # noqa: BLE001 - not in a worker (tests, serial use)
        pass


def _where() -> dict:
    """Which worker runs this stage (name, and the GPU it is pinned to, if any)."""
    try:
        from distributed import get_worker

        name = str(get_worker().name)
    except Exception:  # noqa: BLE001
        name = None
    return {"worker": name, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def _failure(job: dict, exc: BaseException, timings: dict) -> dict:
    return {"study_id": job["study_id"], "status": "failed", "error": str(exc), "error_type": type(exc).__name__,
            "timings": timings, "warnings": []}


def _staging(job: dict) -> Path:
    d = Path(job["outdir"]) / ".staging" / f"{job['study_id']}.{uuid.uuid4().hex[:10]}"
    d.mkdir(parents=True, exist_ok=False)
    return d


def _summary(report: dict) -> list[dict]:
    rows = []
    for s in report.get("structures", []):
        qa = s.get("qa") or {}
        rows.append({"structure": s.get("name"), "label": s.get("label"),
                     "volume_mm3": qa.get("mesh_volume_mm3"), "voxel_volume_mm3": qa.get("voxel_volume_mm3"),
                     "area_mm2": qa.get("surface_area_mm2"), "triangles": qa.get("triangles"),
                     "watertight": qa.get("watertight"), "volume_diff_pct": qa.get("volume_diff_pct")})
    return rows


def _warnings(report: dict) -> list[str]:
    w = list(report.get("input", {}).get("warnings", []) or [])
    w += list(report.get("segmentation", {}).get("warnings", []) or [])
    w += [x for x in ((report.get("print") or {}).get("warnings") or []) if x not in w]  # printability checks
    absent = report.get("segmentation", {}).get("absent_structures") or []
    if absent:
        w.append(f"absent structures: {', '.join(absent[:10])}")
    for s in report.get("structures", []):
        qa = s.get("qa") or {}
        if qa.get("watertight") is False:
            w.append(f"{s.get('name')}: mesh not watertight")
    return w


def _publish(job: dict, staging: Path, report: dict, timings: dict, extra_warnings: list[str] | None = None,
             stages: dict | None = None) -> dict:
    """Write the marker into ``staging`` and rename the folder onto ``studies/<id>``."""
    from medrecon.version import __version__
    from medrecon.io.atomic import atomic_write_text
    from medrecon.cohort.manifest import utcnow

    summary = _summary(report)
    warnings = list(extra_warnings or []) + _warnings(report)
    marker = {"study_id": job["study_id"], "fingerprint": job["fingerprint"], "config_hash": job["config_hash"],
              "medrecon_version": __version__, "run_id": job.get("run_id"), "compute_id": uuid.uuid4().hex,
              "finished_utc": utcnow(), "timings_s": timings, "warnings": warnings, "structures": summary,
              "stages": stages or {}}
    atomic_write_text(staging / MARKER, json.dumps(marker, indent=2, default=str) + "\n")
    root = Path(job["outdir"])
    final = root / "studies" / job["study_id"]
    final.parent.mkdir(parents=True, exist_ok=True)
    trash = None
    if final.exists():
        trash = root / ".trash" / f"{job['study_id']}.{uuid.uuid4().hex[:10]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.replace(final, trash)
    os.replace(staging, final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return {"study_id": job["study_id"], "status": "done", "timings": timings, "warnings": warnings,
            "summary": summary, "compute_id": marker["compute_id"], "finished_utc": marker["finished_utc"]}


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The ``cohort.json`` marker of a published study folder, or None."""
    p = Path(folder) / MARKER
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _mesh(job: dict, settings: dict, staging: Path):
    from medrecon.mesh_pipeline import MeshConfig, run_mesh

    settings = dict(settings)
    svr = settings.pop("svr", None)
    if svr is not None:  # recipe with a slice-to-volume stage: mesh the reconstructed volume
        from medrecon.svr.stage import run_svr_stage

        _event(job, "start", "svr")
        settings["input"] = str(run_svr_stage(settings["input"], svr, staging, job["study_id"]))
    cfg = MeshConfig(**{**settings, "outdir": str(staging)})
    return run_mesh(cfg)


def _stage_times(report: dict) -> dict:
    return {k.replace(" ", "_") + "_s": v for k, v in (report.get("timings_s") or {}).items()}


def process_study(job: dict) -> dict:
    """Run the whole pipeline for one study on a CPU worker and publish its folder.

    Parameters
    ----------
    job : dict
        ``study_id``, ``settings`` (MeshConfig keyword arguments with ``input``), ``outdir``
        (the cohort output folder), ``fingerprint``, ``config_hash``, ``run_id``.

    Returns
    -------
    dict
        ``status`` ``"done"`` (with ``timings``, ``warnings``, ``summary``) or ``"failed"``
        (with ``error``, one line).
    """
    _event(job, "start", "mesh")
    t0 = time.perf_counter()
    staging = _staging(job)
    try:
        res = _mesh(job, job["settings"], staging)
    except MedreconError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        return _failure(job, exc, {"total_s": round(time.perf_counter() - t0, 3)})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    timings = {**_stage_times(res.report),
               "compute_s": round(time.perf_counter() - t0, 3)}
    return _publish(job, staging, res.report, timings)


# --------------------------------------------------------------------------------------------
# split stages (MONAI bundle recipes)
# --------------------------------------------------------------------------------------------
def load_stage(job: dict) -> dict:
    """CPU stage: decode the study's image. Returns ``{"volume": Volume}`` or a failure dict."""
    from medrecon.io.loader import load

    _event(job, "start", "load")
    t0 = time.perf_counter()
    s = job["settings"]
    try:
        vol = load(s["input"], series=s.get("series"))
        if vol.array.ndim != 3:
            raise MedreconError(f"needs a 3D image, got shape {vol.shape}", s["input"])
    except MedreconError as exc:
        return _failure(job, exc, {"load_s": round(time.perf_counter() - t0, 3)})
    return {"study_id": job["study_id"], "status": "loaded", "volume": vol,
            "timings": {"load_s": round(time.perf_counter() - t0, 3)}, "stages": {"load": _where()}}


def _cached_load_bundle():
    """Install a per-process cache in front of :func:`medrecon.segment.bundle.load_bundle`.

    ``segment_volume`` loads the bundle on every call; in a long-lived GPU worker the network is
    kept instead (keyed by bundle folder and device). Stop-gap until ``segment_volume`` takes a
    loaded bundle.
    """
    import medrecon.segment.bundle as B

    if getattr(B.load_bundle, "_medrecon_cohort_cache", False):
        return
    original = B.load_bundle

    def load_bundle(root, device="cpu"):
        key = (str(Path(root).resolve()), str(device))
        if key in _BUNDLE_CACHE:
            _CACHE_STATS["hits"] += 1
            return _BUNDLE_CACHE[key]
        t0 = time.perf_counter()
        b = original(root, device)
        _CACHE_STATS["loads"] += 1
        _CACHE_STATS["load_s"] += time.perf_counter() - t0
        _BUNDLE_CACHE[key] = b
        return b

    load_bundle._medrecon_cohort_cache = True  # type: ignore[attr-defined]
    B.load_bundle = load_bundle


def model_cache_info() -> dict:
    """This worker process's bundle cache: ``loads``, ``hits``, ``load_s``, ``cuda_visible_devices``."""
    return {**_CACHE_STATS, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


def segment_stage(job: dict, loaded: dict) -> dict:
    """GPU stage: run the recipe's MONAI bundle on the decoded volume (network cached per worker)."""
    if loaded.get("status") == "failed":
        return loaded
    from medrecon.segment.ai import segment_volume

    _event(job, "start", "segment")
    _cached_load_bundle()
    s = job["settings"]
    t0 = time.perf_counter()
    loads_before = _CACHE_STATS["loads"]
    try:
        lab, table = segment_volume(loaded["volume"], s["bundle"], device=s.get("device", "auto"))
    except MedreconError as exc:
        return _failure(job, exc, {**loaded["timings"], "segment_s": round(time.perf_counter() - t0, 3)})
    timings = {**loaded["timings"], "segment_s": round(time.perf_counter() - t0, 3),
               "model_loaded": _CACHE_STATS["loads"] > loads_before}
    return {"study_id": job["study_id"], "status": "segmented", "labelmap": lab, "volume": loaded["volume"],
            "table": {int(k): {"name": v.name, "color": list(v.color)} for k, v in table.items()},
            "timings": timings, "stages": {**loaded.get("stages", {}), "segment": _where()}}


def mesh_stage(job: dict, seg: dict) -> dict:
    """CPU stage: mesh the bundle's label map (named by the bundle) and publish the study.

    Data in memory all the way: the image decoded by :func:`load_stage` and the label map of
    :func:`segment_stage` go to :func:`medrecon.mesh_pipeline.mesh_volume` (no NIfTI round trip, no
    second decode); only the outputs are written."""
    if seg.get("status") == "failed":
        return seg
    from medrecon.io.volumes import save_volume
    from medrecon.labelmap import LabelInfo
    from medrecon.mesh_pipeline import mesh_volume, write_mesh_result

    _event(job, "start", "mesh")
    t0 = time.perf_counter()
    staging = _staging(job)
    try:
        settings = {k: v for k, v in job["settings"].items() if k not in ("bundle", "device")}
        table = None if settings.get("label_table") else {
            int(k): LabelInfo(int(k), v["name"], tuple(v["color"])) for k, v in seg["table"].items()}
        res = mesh_volume(seg["volume"], {**settings, "outdir": str(staging)}, labelmap=seg["labelmap"],
                          labels=table)
        write_mesh_result(res, staging)
        save_volume(seg["labelmap"], staging / "segmentation.nii.gz")  # an output (the bundle's label map)
    except MedreconError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        return _failure(job, exc, {**seg["timings"], "mesh_s": round(time.perf_counter() - t0, 3)})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    timings = {**seg["timings"], **_stage_times(res.report),
               "mesh_stage_s": round(time.perf_counter() - t0, 3)}
    timings["compute_s"] = round(sum(v for k, v in timings.items()
                                     if k in ("load_s", "segment_s", "mesh_stage_s")), 3)
    return _publish(job, staging, res.report, timings, stages={**seg.get("stages", {}), "mesh": _where()})
