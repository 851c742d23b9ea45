"""Sliding-window inference that returns a label map, not a C-channel probability volume.

MONAI's :func:`monai.inferers.sliding_window_inference` stitches every window's logits into one
full-resolution float buffer of ``C`` channels and only then takes the argmax. For a whole-body
model (105 channels) on a 512 x 512 x 300 CT that buffer alone is 33 GB in float32. This engine
uses the *same* windows, the *same* blending weights and the *same* argmax, but keeps only a
**slab** of the blended logits in memory:

* windows are visited in order of their start along one axis (the "slab axis", by default the
  longest one);
* a ring buffer ``roi`` voxels thick along that axis holds the weighted logit sums
  (``C x roi_a x`` cross-section, float16 on GPU, float32 on CPU);
* as soon as the next window starts further along the slab axis, every row before it can receive
  no more contributions: those rows are arg-maxed into the label map and cleared.

Dividing by the sum of blending weights does not change the argmax (it is one positive factor per
voxel), so the labels equal ``argmax(sliding_window_inference(...))`` up to the rounding of the
accumulator and of the network's own arithmetic. On CUDA the network runs under bf16 autocast
and windows are batched (``sw_batch_size``). Everything is array-index based; no geometry here.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medrecon.devices import resolve_device as _resolve_device
from medrecon.progress import ProgressEvent, ProgressFn



@dataclass(frozen=True)
class WindowPlan:
    """Where the windows go. ``starts`` is an (N, D) int array of window corners (padded image
    indices), already sorted along ``slab_axis``; ``pad`` is MONAI's symmetric padding per axis
    as ``(before, after)`` pairs."""

    image_size: tuple[int, ...]
    padded_size: tuple[int, ...]
    roi_size: tuple[int, ...]
    pad: tuple[tuple[int, int], ...]
    starts: np.ndarray
    slab_axis: int

    @property
    def n_windows(self) -> int:
        return int(self.starts.shape[0])

    def buffer_shape(self, n_classes: int) -> tuple[int, ...]:
        """Shape of the ring buffer of weighted logits: (C, roi along slab axis, other axes...)."""
        shp = list(self.padded_size)
        shp[self.slab_axis] = self.roi_size[self.slab_axis]
        return (n_classes, *shp)


def plan_windows(image_size: Sequence[int], roi_size: Sequence[int] | int, overlap: float | Sequence[float] = 0.25,
                 slab_axis: int | None = None) -> WindowPlan:
    """Window corners exactly as MONAI's ``sliding_window_inference`` places them.

    Parameters
    ----------
    image_size : spatial shape of the image (voxels).
    roi_size : window shape (voxels); non-positive entries mean "whole axis", as in MONAI.
    overlap : fraction of overlap between neighbouring windows (0 <= overlap < 1), per axis or one.
    slab_axis : axis along which the result is stitched slab by slab; default: the axis whose
        padded size is largest (smallest cross-section, hence smallest buffer).
    """
    from monai.data.utils import dense_patch_slices
    from monai.inferers.utils import _get_scan_interval
    from monai.utils import ensure_tuple_rep, fall_back_tuple

    image_size = tuple(int(s) for s in image_size)
    nd = len(image_size)
    roi = tuple(int(r) for r in fall_back_tuple(roi_size, image_size))
    ov = tuple(float(o) for o in ensure_tuple_rep(overlap, nd))
    for o in ov:
        if not 0 <= o < 1:
            raise ValueError(f"overlap must be >= 0 and < 1, got {overlap}")
    padded = tuple(max(s, r) for s, r in zip(image_size, roi))
    pad = tuple(((p - s) // 2, (p - s) - (p - s) // 2) for s, p in zip(image_size, padded))
    interval = _get_scan_interval(padded, roi, nd, ov)
    slices = dense_patch_slices(padded, roi, interval, return_slice=False)
    starts = np.asarray([[a for a, _ in w] for w in slices], dtype=np.int64).reshape(-1, nd)
    if slab_axis is None:
        slab_axis = int(np.argmax(padded))
    slab_axis = int(slab_axis) % nd
    order = np.argsort(starts[:, slab_axis], kind="stable")
    return WindowPlan(image_size, padded, roi, pad, starts[order], slab_axis)


class _Ring:
    """Ring buffer of weighted logit sums along the slab axis.

    Layout ``(C, *spatial)`` or, with ``channels_last``, ``(*spatial, C)``: the latter matches a
    channels-last network output, so that adding a window copies long contiguous runs.
    """

    def __init__(self, spatial: tuple[int, ...], n_classes: int, dtype: torch.dtype, device: torch.device,
                 axis: int, channels_last: bool = False, adder: Callable | None = None,
                 popper: Callable | None = None):
        shape = (*spatial, n_classes) if channels_last else (n_classes, *spatial)
        self.buf = torch.zeros(shape, dtype=dtype, device=device)
        self.cl = channels_last
        self.off = 0 if channels_last else 1  # index of the first spatial axis in buf
        self.depth = spatial[axis]
        self.axis = axis
        self.lo = 0  # first not-yet-finalised row (padded index)
        self.adder = adder or _add_inplace
        self.popper = popper  # fused arg-max + clear over the last axis (channels-last only)

    def _parts(self, a: int, b: int) -> list[tuple[int, int, int]]:
        """Split global rows [a, b) into (ring_start, ring_stop, offset_in_range) pieces."""
        out, r = [], a
        while r < b:
            rs = r % self.depth
            n = min(b - r, self.depth - rs)
            out.append((rs, rs + n, r - a))
            r += n
        return out

    def view(self, rs: int, re: int, other: tuple[slice, ...]) -> torch.Tensor:
        idx: list[Any] = [slice(None)] * self.buf.ndim
        for ax, sl in enumerate(other):
            idx[self.off + ax] = slice(rs, re) if ax == self.axis else sl
        return self.buf[tuple(idx)]

    def add(self, start: tuple[int, ...], roi: tuple[int, ...], value: torch.Tensor) -> None:
        """Add ``value`` (C, *roi) at window corner ``start`` (cast to the buffer's dtype)."""
        if self.cl:
            value = value.permute(*range(1, value.ndim), 0)
        a = start[self.axis]
        other = tuple(slice(s, s + r) for s, r in zip(start, roi))
        for rs, re, off in self._parts(a, a + roi[self.axis]):
            self.adder(self.view(rs, re, other), value.narrow(self.off + self.axis, off, re - rs))

    def pop(self, a: int, b: int) -> list[tuple[int, torch.Tensor]]:
        """Arg-max rows [a, b) and clear them; returns (global_row, labels) pieces."""
        pieces = []
        full = tuple(slice(None) for _ in range(self.buf.ndim - 1))
        for rs, re, off in self._parts(a, b):
            v = self.view(rs, re, full)
            if self.cl and self.popper is not None:
                pieces.append((a + off, self.popper(v)))
                continue
            pieces.append((a + off, torch.argmax(v, dim=-1 if self.cl else 0)))
            v.zero_()
        return pieces


def _add_inplace(view: torch.Tensor, value: torch.Tensor) -> None:
    view.add_(value)  # casts value to the view's dtype


def _triton_kernels() -> tuple[Callable, Callable] | None:
    """The Triton stitching kernels (add, arg-max+clear), or None where Triton is not installed."""
    try:
        from medrecon.segment._triton_stitch import add_inplace, argmax_last_and_clear
    except Exception:  # noqa: BLE001 - no Triton (CPU builds): PyTorch's ops are used
        return None
    return add_inplace, argmax_last_and_clear


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        return _first_tensor(next(iter(out.values())))
    if isinstance(out, (list, tuple)):
        return _first_tensor(out[0])
    raise TypeError(f"network returned {type(out).__name__}, expected a tensor")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto' (or None) -> first CUDA device if there is one, else CPU
    (:func:`medrecon.devices.resolve_device`, raising :class:`SegmentationError`)."""
    from medrecon.errors import SegmentationError

    return _resolve_device(device, SegmentationError)


def prepare_network(net: Any, device: str | torch.device | None = "auto", *, precision: str = "auto",
                    channels_last: bool | None = None, compile: bool = False,
                    compile_mode: str | None = None) -> tuple[Callable, dict[str, Any]]:
    """Put a network on ``device`` in the fastest safe form and say how to call the engine.

    Parameters
    ----------
    net : ``torch.nn.Module`` or TorchScript module.
    precision : ``"bf16-autocast"`` (weights fp32, matrix work in bf16: the default on CUDA),
        ``"bf16"`` (weights cast to bf16 too), ``"fp32"`` (default on CPU), or ``"auto"``.
    channels_last : NDHWC weight layout for 3D networks (default: on for CUDA when compiling;
        eager PyTorch runs SegResNet's group norms slower in that layout).
    compile : wrap with ``torch.compile`` (pays ~30 s once; worth it for large volumes on GPU).
    compile_mode : ``torch.compile`` mode, e.g. ``"max-autotune-no-cudagraphs"``.

    Returns
    -------
    (predictor, engine_kwargs)
        ``predictor(batch)`` to hand to :func:`sliding_window_labels`, and the keyword arguments
        (``amp``, ``channels_last``) that go with it.
    """
    dev = resolve_device(device)
    if precision == "auto":
        precision = "bf16-autocast" if dev.type == "cuda" else "fp32"
    if precision not in ("bf16-autocast", "bf16", "fp32"):
        raise ValueError(f"unknown precision {precision!r}")
    cl = (dev.type == "cuda" and compile) if channels_last is None else bool(channels_last)
    net = net.to(dev).eval()
    is_script = isinstance(net, torch.jit.ScriptModule)
    if cl and not is_script:
        net = net.to(memory_format=torch.channels_last_3d)
    if precision == "bf16":
        net = net.to(torch.bfloat16)
    if compile and not is_script:
        net = torch.compile(net, mode=compile_mode)
    if precision == "bf16":
        def predictor(batch: torch.Tensor, _n=net):
            return _n(batch.to(torch.bfloat16))
    else:
        predictor = net
    return predictor, {"amp": precision == "bf16-autocast", "channels_last": cl}


@torch.inference_mode()
def sliding_window_labels(
    image: torch.Tensor | np.ndarray,
    predictor: Callable[[torch.Tensor], Any],
    roi_size: Sequence[int] | int,
    *,
    overlap: float | Sequence[float] = 0.25,
    mode: str = "constant",
    sigma_scale: float | Sequence[float] = 0.125,
    sw_batch_size: int = 4,
    device: str | torch.device | None = "auto",
    amp: bool | None = None,
    amp_dtype: torch.dtype = torch.bfloat16,
    acc_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    ring_channels_last: bool | None = None,
    stitch: str = "auto",
    slab_axis: int | None = None,
    padding_mode: str = "constant",
    cval: float = 0.0,
    out_device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Label map from a segmentation network applied window by window.

    Parameters
    ----------
    image : (C_in, *spatial) or (1, C_in, *spatial) tensor or array, already preprocessed.
    predictor : network (``torch.nn.Module``, TorchScript or any callable) mapping a batch
        (B, C_in, *roi) to logits (B, C, *roi); a tuple/list/dict output uses its first tensor.
    roi_size : window shape in voxels (as MONAI's ``roi_size``).
    overlap, mode, sigma_scale, padding_mode, cval : as in MONAI's ``sliding_window_inference``
        (``mode`` is ``"constant"`` or ``"gaussian"`` blending of overlapping windows).
    sw_batch_size : windows per network call.
    device : where the network runs: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    amp : bf16 autocast; default on for CUDA, off for CPU.
    acc_dtype : dtype of the slab accumulator; default float16 on CUDA, float32 on CPU.
    channels_last : feed windows in channels-last (NDHWC) layout and keep the accumulator
        channels-last too (pairs with a network converted by :func:`prepare_network`).
    ring_channels_last : accumulator layout (default: same as ``channels_last``).
    stitch : how windows are added into the accumulator: ``"triton"`` (a small Triton kernel,
        CUDA only), ``"torch"`` (``Tensor.add_``) or ``"auto"`` (Triton when on CUDA and installed).
    slab_axis : axis stitched slab by slab (default: the longest).
    out_device : where the returned label map lives.
    progress : ``progress(ProgressEvent)`` after each batch (stage ``segmenting (windows)``).

    Returns
    -------
    torch.Tensor
        Spatial-shaped label map (argmax over channels): uint8 when there are at most 256
        channels, else int32.
    """
    from monai.data.utils import compute_importance_map

    dev = resolve_device(device)
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if x.ndim < 2:
        raise ValueError(f"image needs a channel axis, got shape {tuple(x.shape)}")
    if isinstance(roi_size, int):
        nd = x.ndim - 1
    else:
        nd = len(roi_size)
    if x.ndim == nd + 2:
        if x.shape[0] != 1:
            raise ValueError("one image at a time (batch size 1)")
        x = x[0]
    if x.ndim != nd + 1:
        raise ValueError(f"image shape {tuple(x.shape)} does not fit a {nd}-D roi_size")
    x = x.as_subclass(torch.Tensor) if type(x) is not torch.Tensor else x
    x = x.to(device=dev, dtype=torch.float32)
    plan = plan_windows(x.shape[1:], roi_size, overlap, slab_axis)
    if any(p for pr in plan.pad for p in pr):
        flat = [v for pr in reversed(plan.pad) for v in pr]
        x = F.pad(x[None], flat, mode=padding_mode, value=cval)[0] if padding_mode == "constant" \
            else F.pad(x[None], flat, mode=padding_mode)[0]
    use_amp = (dev.type == "cuda") if amp is None else bool(amp)
    if acc_dtype is None:
        acc_dtype = torch.float16 if dev.type == "cuda" else torch.float32
    roi = plan.roi_size
    weight = None
    if str(mode).lower() != "constant":
        weight = compute_importance_map(roi, mode=mode, sigma_scale=sigma_scale, device=dev, dtype=torch.float32)
    mem_fmt = torch.channels_last_3d if (channels_last and nd == 3) else torch.contiguous_format
    ax = plan.slab_axis
    out_dev = torch.device(out_device)
    labels: torch.Tensor | None = None
    ring: _Ring | None = None

    def emit(pieces: list[tuple[int, torch.Tensor]]) -> None:
        assert labels is not None
        for row0, lab in pieces:
            labels.narrow(ax, row0, lab.shape[ax]).copy_(lab.to(labels.dtype), non_blocking=False)

    done = 0
    starts = plan.starts
    for b0 in range(0, plan.n_windows, max(1, int(sw_batch_size))):
        batch_starts = starts[b0:b0 + max(1, int(sw_batch_size))]
        win = torch.stack([x[(slice(None), *(slice(int(s), int(s) + r) for s, r in zip(st, roi)))]
                           for st in batch_starts])
        win = win.contiguous(memory_format=mem_fmt)
        with torch.autocast(device_type=dev.type, dtype=amp_dtype, enabled=use_amp):
            out = _first_tensor(predictor(win))
        if tuple(out.shape[2:]) != roi:
            raise ValueError(f"network output spatial shape {tuple(out.shape[2:])} differs from the window {roi}")
        if ring is None:
            n_classes = int(out.shape[1])
            spatial = plan.buffer_shape(n_classes)[1:]
            kernels = None
            if stitch not in ("auto", "torch", "triton"):
                raise ValueError(f"unknown stitch {stitch!r}")
            if stitch != "torch" and dev.type == "cuda":
                kernels = _triton_kernels()
                if kernels is None and stitch == "triton":
                    raise RuntimeError("stitch='triton' asked for, but Triton is not installed")
            ldtype = torch.uint8 if n_classes <= 256 else torch.int32
            ring = _Ring(spatial, n_classes, acc_dtype, dev, ax,
                         channels_last=channels_last if ring_channels_last is None else ring_channels_last,
                         adder=kernels[0] if kernels else None,
                         popper=(lambda v, _k=kernels[1], _d=ldtype: _k(v, _d)) if kernels else None)
            labels = torch.empty(plan.padded_size, dtype=ldtype, device=out_dev)
        for st, o in zip(batch_starts, out):
            st = tuple(int(s) for s in st)
            if st[ax] > ring.lo:
                emit(ring.pop(ring.lo, st[ax]))
                ring.lo = st[ax]
            ring.add(st, roi, o.float() * weight if weight is not None else o)  # add_ casts to acc dtype
        done += len(batch_starts)
        if progress is not None:
            progress(ProgressEvent("segmenting (windows)", done, plan.n_windows, "window"))
    assert ring is not None and labels is not None
    emit(ring.pop(ring.lo, plan.padded_size[ax]))
    crop = tuple(slice(b, b + s) for (b, _), s in zip(plan.pad, plan.image_size))
    return labels[crop]
