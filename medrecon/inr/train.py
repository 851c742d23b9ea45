"""Generic training loop, device choice and optional ``torch.compile``."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from medrecon.devices import resolve_device
from medrecon.errors import MedreconError
from medrecon.progress import ProgressEvent, ProgressFn

Progress = ProgressFn


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU (:func:`medrecon.devices.resolve_device`);
    raises :class:`~medrecon.errors.MedreconError` when CUDA is asked for but absent."""
    return resolve_device(device, MedreconError)


def maybe_compile(obj, device, enable: bool | None = None):
    """``torch.compile(obj)`` on CUDA unless ``enable`` is False; ``obj`` unchanged otherwise.

    Compilation errors surface lazily on first call in PyTorch; callers that need a hard
    guarantee should call the result once inside ``try`` and fall back to ``obj``.
    """
    dev = torch.device(device)
    if enable is False or (enable is None and dev.type != "cuda"):
        return obj
    try:
        return torch.compile(obj)
    except Exception:  # pragma: no cover - platform dependent
        return obj


@dataclass
class FitLog:
    """What :func:`fit` did: one loss per iteration, wall time, logged extras."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    extras: dict[str, list[float]] = field(default_factory=dict)


def fit(step: Callable[[int], torch.Tensor | dict], param_groups: Iterable, n_iter: int,
        lr: float = 5e-3, betas=(0.9, 0.99), eps: float = 1e-15, weight_decay: float = 0.0,
        milestones=(0.5, 0.75, 0.9), gamma: float = 0.33, grad_clip: float | None = None,
        progress: Progress | None = None, stage: str = "fit", log_every: int = 1) -> FitLog:
    """Run ``n_iter`` optimiser steps on the loss returned by ``step(it)``.

    Parameters
    ----------
    step : callable(it) -> loss tensor or dict
        Builds the loss for iteration ``it`` (a dict must hold ``"loss"``; its other entries,
        floats or 0-d tensors, are logged in ``FitLog.extras``).
    param_groups : iterable of tensors or of dicts (``{"params": [...], "lr": ...}``)
        As for ``torch.optim.Adam``.
    n_iter : int
        Iterations.
    lr, betas, eps, weight_decay :
        Adam settings (AdamW when ``weight_decay > 0``).
    milestones, gamma :
        The learning rate is multiplied by ``gamma`` at each fraction of ``n_iter`` listed.
    grad_clip : float, optional
        Clip the global gradient norm.
    progress : callable(stage, done, total), optional
        Called about 100 times.
    """
    params = list(param_groups)
    opt_cls = torch.optim.AdamW if weight_decay > 0 else torch.optim.Adam
    kw = {"weight_decay": weight_decay} if weight_decay > 0 else {}
    opt = opt_cls(params, lr=lr, betas=betas, eps=eps, **kw)
    steps = sorted({max(1, int(round(m * n_iter))) for m in milestones})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=steps, gamma=gamma)
    log = FitLog()
    every = max(1, -(-n_iter // 100))  # about 100 progress calls
    t0 = time.perf_counter()
    for it in range(n_iter):
        opt.zero_grad(set_to_none=True)
        out = step(it)
        loss = out["loss"] if isinstance(out, dict) else out
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], grad_clip)
        opt.step()
        sched.step()
        if it % log_every == 0 or it == n_iter - 1:
            log.losses.append(float(loss.detach()))
            if isinstance(out, dict):
                for k, v in out.items():
                    if k != "loss":
                        log.extras.setdefault(k, []).append(float(v))
        if progress is not None and (it % every == 0 or it == n_iter - 1):
            progress(ProgressEvent(stage, it + 1, n_iter, "iteration"))
    log.seconds = time.perf_counter() - t0
    return log
