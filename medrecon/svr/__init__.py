"""Slice-to-volume reconstruction: isotropic volumes from thick-slice stacks.

Public API
----------
``reconstruct(stacks, method="svr", spacing=None, mask=None, device="auto", progress=None, ...)``
    -> :class:`SVRResult` (volume in the stacks' LPS world space, per-slice poses and weights).
``reconstruct_files(paths, output, method=..., spacing=..., mask=None, device=..., progress=None)``
    Load stacks with :func:`medrecon.load`, reconstruct, write the volume (NIfTI / NRRD by
    extension) and ``<output stem>.json`` with per-slice poses and weights.
``simulate_stacks(volume, thickness=3.0, ...)`` -> :class:`SimulatedStacks` (stacks + true poses).
``evaluate(recon, reference, mask=None)`` -> ``{"psnr", "ssim", "ncc"}``.
``ForwardModel``: the shared PSF slice-acquisition operator (adjoint by autograd).

Methods: ``average`` (PSF back-projection), ``srr`` (edge-preserving super-resolution, prior
weight from the estimated noise), ``svr`` (stack alignment + per-slice registration + robust
SRR), ``inr`` (``svr`` then a hash-grid neural field with pose refinement; GPU recommended).
Progress goes through ``progress(ProgressEvent)`` (:mod:`medrecon.progress`); nothing here draws to a terminal.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from medrecon.svr.evaluate import evaluate
from medrecon.svr.forward import ForwardModel
from medrecon.svr.reconstruct import METHODS, SVRResult, reconstruct
from medrecon.svr.simulate import SimulatedStacks, simulate_stacks
from medrecon.svr.stacks import SliceStack, StackError, stack_name
from medrecon.progress import ProgressEvent, ProgressFn

__all__ = ["reconstruct", "reconstruct_files", "write_result", "simulate_stacks", "evaluate",
           "SVRResult", "SimulatedStacks", "ForwardModel", "SliceStack", "StackError", "METHODS",
           "json_path_for"]


def json_path_for(output: str | os.PathLike) -> Path:
    """``volume.nii.gz`` -> ``volume.json`` (beside the volume; the sidecar naming rule)."""
    from medrecon.io.dicom.sidecar import sidecar_path

    return sidecar_path(output)


def write_result(result: SVRResult, output: str | os.PathLike, inputs: Sequence | None = None,
                 command: str = "svr") -> tuple[Path, Path]:
    """Write the volume (format by extension, atomically) and the JSON report beside it."""
    from medrecon.io.atomic import atomic_write_text
    from medrecon.io.volumes import save_volume

    out = Path(output)
    save_volume(result.volume, out)
    report = result.to_dict()
    try:
        from medrecon.provenance import jsonable, provenance_record

        report["provenance"] = provenance_record(command, {"method": result.method, **{
            k: v for k, v in result.params.items() if k in ("spacing_mm", "device", "lambda")}},
            inputs=[str(p) for p in inputs] if inputs else None)
        report = jsonable(report)
    except Exception:  # provenance is optional decoration
        pass
    jp = json_path_for(out)
    atomic_write_text(jp, json.dumps(report, indent=1, default=float))
    return out, jp


def reconstruct_files(paths: Sequence, output, method: str = "svr", spacing: float | None = None,
                      mask=None, device: str = "auto", series: str | None = None,
                      progress: ProgressFn | None = None, **kwargs) -> SVRResult:
    """Load each stack (any input :func:`medrecon.load` accepts), reconstruct, write outputs."""
    from medrecon.io.loader import load

    vols = []
    for p in paths:
        if progress:
            progress(ProgressEvent("load stacks", len(vols), len(paths), "stack"))
        vols.append(load(str(p), series=series))  # series: which one of a DICOM folder
    mvol = load(str(mask)) if mask is not None else None
    names = [stack_name(p) for p in paths]
    result = reconstruct(vols, method=method, spacing=spacing, mask=mvol, device=device,
                         progress=progress, names=names, **kwargs)
    write_result(result, output, inputs=None)
    return result
