"""Run a cohort on Dask distributed: plan, resume, schedule, record, summarise.

:func:`run` is the Python API behind ``medrecon cohort``. The process that calls it is the
*driver*: it finds the studies, decides what to compute (resume), starts or connects to a Dask
cluster, submits the tasks of :mod:`medrecon.cohort.tasks`, records every result in the SQLite
manifest and writes the summary. Workers only compute and publish study folders.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from medrecon.errors import ConfigError, MedreconError

from medrecon.cohort.config import recipe_settings, settings_hash, study_settings
from medrecon.cohort.discover import Study, discover, study_fingerprint
from medrecon.cohort.manifest import MANIFEST_NAME, Manifest
from medrecon.cohort.progress import ProgressEvent, eta_seconds

__all__ = ["run", "CohortResult", "plan", "parse_duration", "parse_gpus", "PlanItem"]

ProgressFn = Callable[[ProgressEvent], None]


@dataclass
class PlanItem:
    """What a run does with one study: ``action`` is ``run``, ``skip`` (done, unchanged),
    ``keep-failed`` (failed, unchanged; use rerun_failed), ``recover`` (folder published by a
    killed run: recorded without recomputing) or ``invalid`` (its settings are rejected)."""

    study: Study
    settings: dict
    fingerprint: str
    config_hash: str
    action: str
    reason: str = ""


@dataclass
class CohortResult:
    """Outcome of :func:`run`.

    ``counts`` has ``total``, ``run``, ``done``, ``failed``, ``skipped``, ``recovered``;
    ``failures`` maps study id -> one-line reason (every failed study of the manifest);
    ``plan`` is the per-study decision; paths are None for a dry run.
    """

    outdir: Path
    counts: dict[str, int]
    failures: dict[str, str]
    plan: list[PlanItem]
    dry_run: bool = False
    manifest: Optional[Path] = None
    summary_csv: Optional[Path] = None
    report_html: Optional[Path] = None
    plot_png: Optional[Path] = None
    dashboard: Optional[str] = None
    elapsed_s: float = 0.0
    cluster_start_s: float = 0.0
    run_id: Optional[str] = None
    study_results: dict[str, dict] = field(default_factory=dict)


def parse_duration(value: str | float | int | None) -> Optional[float]:
    """``"30m"``, ``"90s"``, ``"1h30m"``, ``"2h"`` or seconds -> seconds (None/0/"none" -> None)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    v = str(value).strip().lower()
    if v in ("", "none", "0", "off"):
        return None
    try:
        return float(v)
    except ValueError:
        pass
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", v)
    if not m or not any(m.groups()):
        raise ConfigError(f"bad duration {value!r} (use e.g. 90s, 30m, 1h30m)")
    h, mi, s = (float(x) if x else 0.0 for x in m.groups())
    return h * 3600 + mi * 60 + s


def parse_gpus(value: str | Iterable[int] | None) -> list[int]:
    """``"auto"`` (every visible GPU), ``"none"``, ``"0,1"`` or a list -> GPU indices.

    ``auto`` reads ``CUDA_VISIBLE_DEVICES`` when set, else counts ``nvidia-smi -L`` lines; it never
    imports torch in the driver.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "", "no", "cpu")):
        return []
    if not isinstance(value, str):
        return [int(x) for x in value]
    v = value.strip().lower()
    if v == "auto":
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        if env is not None:
            return [i for i, x in enumerate(x for x in env.split(",") if x.strip() and x.strip() != "-1")]
        exe = shutil.which("nvidia-smi")
        if not exe:
            return []
        try:
            out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return list(range(sum(1 for line in out.splitlines() if line.startswith("GPU "))))
    try:
        return [int(x) for x in v.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"bad --gpus value {value!r} (auto, none, or indices like 0,1)") from None


# --------------------------------------------------------------------------------------------
# planning (resume)
# --------------------------------------------------------------------------------------------
def plan(studies: list[Study], base_settings: Mapping[str, Any], outdir: Path, previous: Mapping[str, dict], *,
         resume: bool = True, rerun_failed: bool = False) -> list[PlanItem]:
    """Decide per study what this run does (see :class:`PlanItem`)."""
    from medrecon.mesh_pipeline import MeshConfig
    from medrecon.cohort.tasks import read_marker

    items: list[PlanItem] = []
    studies_dir = outdir / "studies"
    for st in studies:
        s = study_settings(base_settings, st.overrides, st.path, st.study_id)
        fp = study_fingerprint(st, s)
        try:
            MeshConfig(**{**{k: v for k, v in s.items() if k != "svr"}, "outdir": "<outdir>"})
        except MedreconError as exc:
            items.append(PlanItem(st, s, fp, "", "invalid", str(exc)))
            continue
        ch = settings_hash(s)
        prev = previous.get(st.study_id)
        same = prev is not None and prev.get("fingerprint") == fp and prev.get("config_hash") == ch
        status = prev.get("status") if prev else None
        if rerun_failed:
            action = "run" if status == "failed" else ("skip" if status == "done" and same else "leave")
            items.append(PlanItem(st, s, fp, ch, action, "failed before" if action == "run" else ""))
            continue
        if not resume:
            items.append(PlanItem(st, s, fp, ch, "run", "--no-resume"))
            continue
        if same and status == "done" and (studies_dir / st.study_id).is_dir():
            items.append(PlanItem(st, s, fp, ch, "skip", "done, unchanged"))
            continue
        if same and status == "failed":
            items.append(PlanItem(st, s, fp, ch, "keep-failed", prev.get("error") or ""))
            continue
        marker = read_marker(studies_dir / st.study_id) if status != "done" or not same else None
        if marker and marker.get("fingerprint") == fp and marker.get("config_hash") == ch:
            items.append(PlanItem(st, s, fp, ch, "recover", "published by an interrupted run"))
            continue
        reason = "new" if prev is None else ("input or settings changed" if not same else f"was {status}")
        items.append(PlanItem(st, s, fp, ch, "run", reason))
    return items


# --------------------------------------------------------------------------------------------
# cluster
# --------------------------------------------------------------------------------------------
def _memory_bytes(limit: str | int | None, n_workers: int) -> Any:
    from dask.utils import parse_bytes
    from distributed.system import MEMORY_LIMIT

    if limit in (None, "", "auto"):
        return int(MEMORY_LIMIT / max(n_workers, 1))
    if isinstance(limit, str) and limit.strip().lower() in ("0", "none", "off"):
        return 0
    try:
        return parse_bytes(limit) if isinstance(limit, str) else int(limit)
    except ValueError:
        raise ConfigError(f"bad --memory-limit {limit!r} (use e.g. 8GB)") from None


def worker_environ(n_workers: int, n_cores: int | None = None) -> dict[str, str]:
    """Environment of each local worker process, set before it starts (and imports numpy).

    * Thread pools (OpenMP, MKL, OpenBLAS, VTK SMP, PyTorch through ``OMP_NUM_THREADS``) get the
      cores divided among the workers: 1 each when there are as many workers as cores, so the
      processes do not oversubscribe the machine; a single worker gets every core, as a plain
      loop would.
    * Dask's default ``MALLOC_TRIM_THRESHOLD_=65536`` is left out: setting it switches off glibc's
      dynamic mmap threshold, so every large numpy temporary is mmapped, page-faulted and
      unmapped again; measured, it doubles the CPU time of meshing a study
      (docs/benchmarks.md, issue 23). Workers hold one study at a time, so memory is returned
      when the study's arrays are freed anyway.
    """
    if n_cores is None:
        try:
            n_cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            n_cores = os.cpu_count() or 1
    k = str(max(1, int(n_cores) // max(int(n_workers), 1)))
    return {"OMP_NUM_THREADS": k, "MKL_NUM_THREADS": k, "OPENBLAS_NUM_THREADS": k, "VTK_SMP_MAX_THREADS": k}


def _local_cluster(n_cpu: int, gpus: list[int], memory_limit, dashboard: bool):
    """An in-process SpecCluster: ``n_cpu`` CPU workers + one pinned GPU worker per GPU."""
    from distributed import Nanny, Scheduler, SpecCluster

    n = n_cpu + len(gpus)
    mem = _memory_bytes(memory_limit, n)
    quiet = logging.ERROR
    workers: dict[str, dict] = {}
    for i in range(n_cpu):
        # CPU workers see no GPU: only the pinned GPU workers touch the devices (the mesher
        # would otherwise pick CUDA for device "auto" in every CPU worker at once)
        workers[f"cpu-{i}"] = {"cls": Nanny, "options": {"nthreads": 1, "memory_limit": mem, "silence_logs": quiet,
                                                         "resources": {"CPU": 1}, "host": "127.0.0.1",
                                                         "env": {"CUDA_VISIBLE_DEVICES": ""}}}
    for g in gpus:
        workers[f"gpu-{g}"] = {"cls": Nanny, "options": {"nthreads": 1, "memory_limit": mem, "resources": {"GPU": 1},
                                                         "env": {"CUDA_VISIBLE_DEVICES": str(g)},
                                                         "silence_logs": quiet, "host": "127.0.0.1"}}
    # without the dashboard the scheduler still serves a few HTTP routes: on a free port, not 8787
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":8787" if dashboard else ":0",
                                               "host": "127.0.0.1"}}
    if not dashboard:
        scheduler["options"]["dashboard"] = False
    return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.ERROR, name="medrecon-cohort")


def _dashboard_link(client, local: bool) -> Optional[str]:
    """The dashboard URL, or None (no dashboard; for a local cluster also when bokeh is missing,
    since the scheduler then serves only a few plain HTTP routes)."""
    import importlib.util

    if local and importlib.util.find_spec("bokeh") is None:
        return None
    try:
        info = client.scheduler_info()
        port = info.get("services", {}).get("dashboard")
        if not port:
            return None
        return client.dashboard_link
    except Exception:  # noqa: BLE001
        return None


@contextlib.contextmanager
def _locked(outdir: Path):
    """Hold ``OUTDIR/.cohort.lock`` (one run per output folder at a time)."""
    outdir.mkdir(parents=True, exist_ok=True)
    f = open(outdir / ".cohort.lock", "a+")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError("another cohort run is using this output folder", outdir) from None
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()


def _clean_leftovers(outdir: Path) -> int:
    """Remove half-written study folders of killed runs (``.staging``, ``.trash``)."""
    n = 0
    for sub in (".staging", ".trash"):
        d = outdir / sub
        if d.is_dir():
            n += sum(1 for _ in d.iterdir())
            shutil.rmtree(d, ignore_errors=True)
    return n


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------
def run(input: str | os.PathLike, outdir: str | os.PathLike, config: Any = None, *, workers: Optional[int] = None,
        gpus: str | Iterable[int] | None = "auto", memory_limit: str | int | None = None,
        scheduler: Optional[str] = None, retries: int = 2, timeout: str | float | None = None,
        resume: bool = True, rerun_failed: bool = False, dry_run: bool = False,
        progress: Optional[ProgressFn] = None, layout: str = "auto", dashboard: bool = True,
        summary: bool = True) -> CohortResult:
    """Process a cohort: every study of ``input`` through the mesh pipeline, on Dask.

    Parameters
    ----------
    input : folder of studies (one per sub-folder, or every series with ``layout="series"``) or
        a CSV manifest (``study_id``, ``path``, optional per-study setting columns).
    outdir : output folder: ``studies/<id>/`` (meshes, report.json, cohort.json),
        ``cohort.sqlite`` (manifest), ``summary.csv``, ``report.html``, ``cohort_volumes.png``.
    config : recipe YAML path or name (``configs/``), a :class:`~medrecon.cohort.config.Recipe`,
        or a mapping of mesh settings. Default: ``preset: ct-bone``, STL, no previews.
    workers : CPU worker processes of the local cluster (default: CPU count). Ignored with
        ``scheduler``.
    gpus : ``"auto"``, ``"none"``, ``"0,1"``: one GPU worker per GPU (``CUDA_VISIBLE_DEVICES``
        pinned), used only by recipes that segment with a MONAI bundle.
    memory_limit : per worker (``"8GB"``); default: system memory / workers. The Dask nanny
        restarts a worker above 95 %; a study that kills ``retries + 1`` workers is failed.
    scheduler : ``tcp://HOST:8786`` (or a scheduler JSON file) of a running Dask cluster.
    retries : Dask retries of a study after an unexpected error or a dead worker (bad input,
        a :class:`MedreconError`, fails at once).
    timeout : per study stage attempt (``"30m"``); a study whose stage is still running then is
        failed and its worker restarted.
    resume : skip studies done with the same input fingerprint and config hash (default).
    rerun_failed : compute only the studies that failed before.
    dry_run : plan only: nothing is written, no cluster started.
    progress : ``callable(ProgressEvent)``.
    layout : folder layout for discovery (``auto``, ``subfolders``, ``series``).
    dashboard : serve the Dask dashboard of a local cluster (needs bokeh).
    summary : write summary.csv, report.html and the plot at the end.

    Returns
    -------
    CohortResult

    Raises
    ------
    MedreconError
        Bad input folder/manifest, bad recipe, output folder busy.
    """
    from medrecon.version import __version__

    t_start = time.perf_counter()
    out = Path(outdir)
    emit = progress or (lambda ev: None)
    timeout_s = parse_duration(timeout)
    retries = max(int(retries), 0)
    base = recipe_settings(config)
    studies = discover(input, layout=layout, exclude=[out])
    if out.exists() and not out.is_dir():
        raise ConfigError("output path exists and is not a folder", out)
    mpath = out / MANIFEST_NAME
    with Manifest(mpath, readonly=True) as m:
        previous = m.all()
    items = plan(studies, base, out, previous, resume=resume, rerun_failed=rerun_failed)
    counts = {"total": len(items), "run": sum(i.action == "run" for i in items),
              "skipped": sum(i.action == "skip" for i in items), "recovered": sum(i.action == "recover" for i in items),
              "invalid": sum(i.action == "invalid" for i in items), "done": 0, "failed": 0}
    if dry_run:
        failures = {sid: r.get("error") or "" for sid, r in previous.items() if r.get("status") == "failed"}
        failures.update({i.study.study_id: i.reason for i in items if i.action == "invalid"})
        emit(ProgressEvent("start", total=len(items), to_run=counts["run"], skipped=counts["skipped"],
                           elapsed_s=time.perf_counter() - t_start, message="dry run"))
        return CohortResult(out, counts, failures, items, dry_run=True, elapsed_s=time.perf_counter() - t_start)

    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    version = __version__
    result = CohortResult(out, counts, {}, items, manifest=mpath, run_id=run_id)
    with _locked(out), Manifest(mpath) as man:
        (out / ".medrecon-output").touch(exist_ok=True)  # never read back as input (io.limits.OUTPUT_MARKER)
        _clean_leftovers(out)
        man.reset_running()
        man.start_run(run_id, version, {"config": base, "retries": retries, "timeout_s": timeout_s,
                                        "resume": resume, "rerun_failed": rerun_failed})
        for it in items:
            if it.action == "recover":
                from medrecon.cohort.tasks import read_marker

                mk = read_marker(out / "studies" / it.study.study_id) or {}
                man.mark_done(it.study.study_id, it.fingerprint, it.config_hash, mk.get("medrecon_version", version),
                              mk.get("run_id") or run_id, mk.get("timings_s"), mk.get("warnings"),
                              mk.get("structures"), computed=0, finished_utc=mk.get("finished_utc"))
            elif it.action == "invalid":
                man.mark_failed(it.study.study_id, it.fingerprint, "", version, run_id, it.reason)
                counts["failed"] += 1
        todo = [i for i in items if i.action == "run"]
        emit(ProgressEvent("start", total=len(items), to_run=len(todo), skipped=counts["skipped"] + counts["recovered"],
                           failed=counts["failed"], elapsed_s=time.perf_counter() - t_start))
        if todo:
            _execute(todo, out, man, run_id, version, counts, result, emit, t_start, workers=workers, gpus=gpus,
                     memory_limit=memory_limit, scheduler=scheduler, retries=retries, timeout_s=timeout_s,
                     dashboard=dashboard)
        final = man.all()
        result.failures = {sid: r.get("error") or "" for sid, r in final.items() if r.get("status") == "failed"
                           and sid in {i.study.study_id for i in items}}
        man.end_run(run_id, counts)
        _clean_leftovers(out)
        if summary:
            from medrecon.cohort.summary import write_summary

            ids = [i.study.study_id for i in items]
            paths = write_summary(out, [final[s] for s in ids if s in final])
            result.summary_csv, result.report_html, result.plot_png = paths
    result.elapsed_s = time.perf_counter() - t_start
    emit(ProgressEvent("end", total=len(items), to_run=counts["run"], done=counts["done"], failed=counts["failed"],
                       skipped=counts["skipped"] + counts["recovered"], elapsed_s=result.elapsed_s, eta_s=0.0))
    return result


def _needs_gpu(settings: Mapping[str, Any]) -> bool:
    return bool(settings.get("bundle")) and str(settings.get("device", "auto")).lower() != "cpu"


def _execute(todo: list[PlanItem], out: Path, man: Manifest, run_id: str, version: str, counts: dict,
             result: CohortResult, emit: ProgressFn, t_start: float, *, workers, gpus, memory_limit, scheduler,
             retries: int, timeout_s: Optional[float], dashboard: bool) -> None:
    import dask
    from distributed import Client, as_completed
    from distributed.scheduler import KilledWorker

    from medrecon.cohort import tasks

    gpu_ids = parse_gpus(gpus) if any(_needs_gpu(i.settings) for i in todo) and scheduler is None else []
    n_cpu = max(1, int(workers) if workers else (os.cpu_count() or 1))
    # Workers stay daemonic: the DICOM decoder then decodes in the worker itself (parallelism
    # comes from the many workers) instead of each worker starting a pool of all cores.
    cfg = {"distributed.scheduler.allowed-failures": retries,
           "distributed.scheduler.worker-saturation": 1.0,
           "distributed.admin.tick.limit": "60s",
           "distributed.nanny.pre-spawn-environ": worker_environ(n_cpu + len(gpu_ids))}
    running: dict[str, tuple[float, str]] = {}   # study id -> (start time, worker)
    tokens: dict[str, str] = {}

    def on_event(event):
        _, msg = event
        sid = msg.get("study_id")
        if sid in tokens and msg.get("token") == tokens[sid] and msg.get("event") == "start":
            # the clock restarts at every stage and every retry (a study moved off a restarted
            # worker starts afresh)
            running[sid] = (msg.get("t", time.time()), msg.get("worker"))

    t_cluster = time.perf_counter()
    with dask.config.set(cfg), contextlib.ExitStack() as stack:
        if scheduler:
            kw = {"scheduler_file": scheduler} if Path(scheduler).is_file() else {"address": scheduler}
            try:
                client = stack.enter_context(Client(timeout="30s", **kw))
            except (OSError, TimeoutError) as exc:
                raise ConfigError(f"cannot reach the Dask scheduler: {exc}", scheduler) from None
        else:
            cluster = stack.enter_context(_local_cluster(n_cpu, gpu_ids, memory_limit, dashboard))
            client = stack.enter_context(Client(cluster))
        result.cluster_start_s = time.perf_counter() - t_cluster
        result.dashboard = _dashboard_link(client, local=not scheduler) if (dashboard or scheduler) else None
        if result.dashboard:
            emit(ProgressEvent("info", message=f"Dask dashboard: {result.dashboard}",
                               elapsed_s=time.perf_counter() - t_start))
        elif dashboard and not scheduler:
            emit(ProgressEvent("info", message="Dask dashboard off: it needs bokeh (pip install 'medrecon[cohort]')",
                               elapsed_s=time.perf_counter() - t_start))
        if scheduler:
            try:
                client.wait_for_workers(1, timeout=120)
            except (TimeoutError, OSError):
                raise ConfigError("no Dask worker joined the scheduler within 120 s", scheduler) from None
        winfo = client.scheduler_info().get("workers", {})
        has_gpu = any("GPU" in (w.get("resources") or {}) for w in winfo.values())
        # Tag CPU tasks only when GPU workers exist (an untagged task could land on one). Tags
        # switch off the scheduler's own queuing, so the driver caps the studies in flight: a
        # worker then holds one study at a time and a worker death blames only that study.
        has_cpu_tag = any("CPU" in (w.get("resources") or {}) for w in winfo.values())
        cpu_res = {"CPU": 1} if has_gpu and has_cpu_tag else None
        gpu_res = {"GPU": 1} if has_gpu else None
        n_gpu_workers = sum(1 for w in winfo.values() if "GPU" in (w.get("resources") or {}))
        cpu_threads = sum(int(w.get("nthreads", 1)) for w in winfo.values()
                          if "GPU" not in (w.get("resources") or {})) or 1
        cap = cpu_threads + 2 * n_gpu_workers
        emit(ProgressEvent("info", message=f"{len(winfo)} worker{'' if len(winfo) == 1 else 's'} ({n_gpu_workers} GPU)"
                                           + (f", scheduler {client.scheduler.address}" if scheduler else ""),
                           elapsed_s=time.perf_counter() - t_start))
        client.subscribe_topic(tasks.EVENT_TOPIC, on_event)
        try:  # imports once per worker, before any study's clock starts
            client.run(tasks.warm_up)
            if any(i.settings.get("bundle") for i in todo):
                seg_workers = [a for a, w in winfo.items() if "GPU" in (w.get("resources") or {})] or None
                client.run(tasks.warm_up, True, workers=seg_workers)
        except ImportError as exc:  # an external worker without medrecon (or torch/MONAI)
            raise ConfigError(f"a Dask worker cannot import what the pipeline needs: {exc}") from None
        except Exception:  # noqa: BLE001 - a worker that died meanwhile: the studies will show it
            pass

        futures: dict[Any, PlanItem] = {}
        chains: dict[str, list] = {}
        waiting = list(reversed(todo))
        ac = as_completed()

        def submit_next() -> None:
            it = waiting.pop()
            sid = it.study.study_id
            tok = uuid.uuid4().hex[:8]
            tokens[sid] = tok
            man.mark_submitted([(sid, it.fingerprint, it.config_hash)], run_id)
            job = {"study_id": sid, "settings": it.settings, "outdir": str(out.resolve()), "token": tok,
                   "fingerprint": it.fingerprint, "config_hash": it.config_hash, "run_id": run_id}
            if it.settings.get("bundle"):
                f1 = client.submit(tasks.load_stage, job, key=f"load-{sid}-{tok}", resources=cpu_res,
                                   retries=retries, pure=False)
                f2 = client.submit(tasks.segment_stage, job, f1, key=f"segment-{sid}-{tok}", resources=gpu_res,
                                   retries=retries, pure=False, priority=1)
                f3 = client.submit(tasks.mesh_stage, job, f2, key=f"mesh-{sid}-{tok}", resources=cpu_res,
                                   retries=retries, pure=False, priority=2)
                chains[sid] = [f1, f2, f3]
            else:
                f3 = client.submit(tasks.process_study, job, key=f"study-{sid}-{tok}", resources=cpu_res,
                                   retries=retries, pure=False)
                chains[sid] = [f3]
            futures[f3] = it
            ac.add(f3)

        while waiting and len(futures) < cap:
            submit_next()
        n_todo = len(todo)
        finished = 0
        t_run0 = time.perf_counter()
        t_last_fin = [t_run0]  # when the last study finished (the ETA counts down from there)
        last_tick = 0.0

        def state(kind: str, **kw) -> ProgressEvent:
            el = time.perf_counter() - t_start
            fin = counts["done"] + counts["failed"] - counts["invalid"]
            eta = eta_seconds(fin, max(n_todo - fin, 0), t_run0, t_last_fin[0], time.perf_counter())
            run_n = len([s for s in running if s in chains])
            return ProgressEvent(kind, total=counts["total"], to_run=n_todo, done=counts["done"],
                                 failed=counts["failed"] - counts["invalid"],
                                 skipped=counts["skipped"] + counts["recovered"], running=run_n,
                                 queued=max(n_todo - fin - run_n, 0), elapsed_s=el, eta_s=eta, **kw)

        def finish(it: PlanItem, res: dict | None, error: str | None) -> None:
            sid = it.study.study_id
            t_last_fin[0] = time.perf_counter()
            running.pop(sid, None)
            chains.pop(sid, None)
            if res is not None and res.get("status") == "done":
                man.mark_done(sid, it.fingerprint, it.config_hash, version, run_id, res.get("timings"),
                              res.get("warnings"), res.get("summary"), finished_utc=res.get("finished_utc"))
                counts["done"] += 1
                result.study_results[sid] = res
                emit(state("study", study_id=sid, status="done",
                           message=f"{(res.get('timings') or {}).get('compute_s', 0):.1f} s"))
            else:
                err = error or (res or {}).get("error") or "unknown error"
                man.mark_failed(sid, it.fingerprint, it.config_hash, version, run_id, err,
                                (res or {}).get("timings"), (res or {}).get("warnings"))
                counts["failed"] += 1
                result.study_results[sid] = {"status": "failed", "error": err}
                emit(state("study", study_id=sid, status="failed", message=err))

        while finished < n_todo:
            batch = ac.next_batch(block=False) if ac.has_ready() else []
            for f in batch:
                it = futures.pop(f, None)
                if it is None or it.study.study_id not in chains:
                    continue  # cancelled after a timeout (already recorded)
                finished += 1
                if f.status == "finished":
                    finish(it, f.result(), None)
                elif f.status == "cancelled":
                    finish(it, None, "cancelled")
                else:
                    exc = f.exception()
                    if isinstance(exc, KilledWorker):
                        err = (f"worker died {retries + 1} times while processing this study "
                               "(out of memory? raise --memory-limit) ")
                    else:
                        err = f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                    finish(it, None, err)
                f.release()
            while waiting and len(futures) < cap:
                submit_next()
            now = time.perf_counter()
            if timeout_s is not None:
                for sid, (t0, worker) in list(running.items()):
                    if sid in chains and time.time() - t0 > timeout_s:
                        fut = chains[sid][-1]
                        it = futures.pop(fut, None)
                        for c in chains[sid]:
                            c.cancel()
                        if it is not None:
                            finished += 1
                            finish(it, None, f"timed out after {timeout_s:.0f} s (--timeout); its worker was restarted")
                        with contextlib.suppress(Exception):
                            client.restart_workers([worker], raise_for_error=False)
            if not batch:
                if now - last_tick >= 1.0:
                    emit(state("tick"))
                    last_tick = now
                time.sleep(0.01)
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(tasks.EVENT_TOPIC)
