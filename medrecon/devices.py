"""Which compute device a run uses: the one rule for ``--device auto|cpu|cuda|cuda:N``.

PyTorch is imported only when a device is resolved, so this ground-floor module costs nothing
to import on a CPU-only install without the ``[ai]`` extra.
"""
from __future__ import annotations

from typing import Any

from medrecon.errors import MedreconError

__all__ = ["resolve_device"]


def resolve_device(device: Any = "auto", error: type[MedreconError] = MedreconError):
    """``"auto"``/None -> the first CUDA device if PyTorch sees one, else the CPU; ``"cpu"``,
    ``"cuda"``, ``"cuda:N"`` (or a ``torch.device``) as given.

    Parameters
    ----------
    device : str, torch.device or None
    error : MedreconError subclass
        Raised (one line) for an unknown device, CUDA asked for where PyTorch has none, or
        PyTorch missing; callers pass their own (``MeshError``, ``SegmentationError``...).

    Returns
    -------
    torch.device
    """
    try:
        import torch
    except ImportError as exc:
        raise error("this needs PyTorch: install medrecon[ai]") from exc
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = device if isinstance(device, torch.device) else torch.device(str(device))
    except RuntimeError as exc:
        raise error(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise error(f"device {device!r} asked for, but CUDA is not available here (PyTorch sees no CUDA "
                    "device); use --device cpu, or see docs/user-guide.md for a CUDA build")
    if dev.type not in ("cpu", "cuda"):
        raise error(f"unsupported device {device!r} (use auto, cpu, cuda or cuda:N)")
    return dev
