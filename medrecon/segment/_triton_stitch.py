"""GPU kernel for the stitching step: ``acc += value`` on two 4D strided views (Triton).

PyTorch's generic strided, mixed-dtype in-place add reaches well under half of the GPU's memory
bandwidth on the accumulator's window views. This kernel walks the views as rows of their
innermost (unit-stride) axis, adds in float32 and stores in the accumulator's dtype. Imported
only on CUDA machines with Triton; :mod:`medrecon.segment.inference` falls back to
``Tensor.add_`` otherwise.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _add_rows(acc_ptr, val_ptr, n_rows, d1, d2, n_inner,
              as0, as1, as2, vs0, vs1, vs2,
              BLOCK_R: tl.constexpr, BLOCK_I: tl.constexpr):
    pid_r = tl.program_id(0)
    pid_i = tl.program_id(1)
    rows = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    inner = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    i2 = (rows % d2).to(tl.int64)
    t = rows // d2
    i1 = (t % d1).to(tl.int64)
    i0 = (t // d1).to(tl.int64)
    a_off = i0 * as0 + i1 * as1 + i2 * as2
    v_off = i0 * vs0 + i1 * vs1 + i2 * vs2
    mask = (rows < n_rows)[:, None] & (inner < n_inner)[None, :]
    a_ptrs = acc_ptr + a_off[:, None] + inner[None, :]
    v_ptrs = val_ptr + v_off[:, None] + inner[None, :]
    s = tl.load(a_ptrs, mask=mask, other=0.0).to(tl.float32) + tl.load(v_ptrs, mask=mask, other=0.0).to(tl.float32)
    tl.store(a_ptrs, s.to(acc_ptr.dtype.element_ty), mask=mask)


def add_inplace(acc: torch.Tensor, value: torch.Tensor) -> None:
    """``acc += value`` for same-shaped 4D CUDA tensors whose last axis has unit stride."""
    if acc.ndim != 4 or acc.shape != value.shape or acc.stride(-1) != 1 or value.stride(-1) != 1:
        acc.add_(value)
        return
    d0, d1, d2, n_inner = acc.shape
    n_rows = d0 * d1 * d2
    block_i = min(128, triton.next_power_of_2(n_inner))
    block_r = max(1, 4096 // block_i)
    grid = (triton.cdiv(n_rows, block_r), triton.cdiv(n_inner, block_i))
    _add_rows[grid](acc, value, n_rows, d1, d2, n_inner,
                    acc.stride(0), acc.stride(1), acc.stride(2),
                    value.stride(0), value.stride(1), value.stride(2),
                    BLOCK_R=block_r, BLOCK_I=block_i, num_warps=4)


@triton.jit
def _argmax_clear(acc_ptr, out_ptr, n_vox, n_ch, BLOCK_V: tl.constexpr, BLOCK_C: tl.constexpr):
    vox = tl.program_id(0) * BLOCK_V + tl.arange(0, BLOCK_V)
    ch = tl.arange(0, BLOCK_C)
    mask = (vox < n_vox)[:, None] & (ch < n_ch)[None, :]
    ptrs = acc_ptr + vox.to(tl.int64)[:, None] * n_ch + ch[None, :]
    x = tl.load(ptrs, mask=mask, other=float("-inf")).to(tl.float32)
    best = tl.argmax(x, axis=1, tie_break_left=True)
    tl.store(out_ptr + vox, best.to(out_ptr.dtype.element_ty), mask=vox < n_vox)
    tl.store(ptrs, tl.zeros([BLOCK_V, BLOCK_C], dtype=acc_ptr.dtype.element_ty), mask=mask)


def argmax_last_and_clear(acc: torch.Tensor, out_dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """Arg-max over the last (channel) axis of a contiguous CUDA tensor, then zero it, in one pass.
    Ties go to the lowest channel, as ``torch.argmax``."""
    if not acc.is_contiguous() or acc.shape[-1] > 1024:
        lab = torch.argmax(acc, dim=-1).to(out_dtype)
        acc.zero_()
        return lab
    n_ch = acc.shape[-1]
    n_vox = acc.numel() // max(n_ch, 1)
    out = torch.empty(acc.shape[:-1], dtype=out_dtype, device=acc.device)
    block_c = triton.next_power_of_2(n_ch)
    block_v = max(1, 4096 // block_c)
    _argmax_clear[(triton.cdiv(n_vox, block_v),)](acc, out, n_vox, n_ch, BLOCK_V=block_v, BLOCK_C=block_c,
                                                  num_warps=4)
    return out
