"""Benchmark: medrecon's sliding-window label inference vs MONAI's ``sliding_window_inference``.

Network: a wholeBody_ct_segmentation-sized SegResNet (105 output channels, init_filters 32,
blocks_down (1, 2, 2, 4), blocks_up (1, 1, 1)), roi 96^3, overlap 0.25, constant blending, on a
512 x 512 x 300 volume already on the GPU. Both sides run in the same process:

* reference: ``monai.inferers.sliding_window_inference(x, 96, 1, net)`` with MONAI's and PyTorch's
  default settings (fp32; PyTorch's default lets cuDNN use TF32 for convolutions), then argmax;
* ours: :func:`medrecon.segment.inference.sliding_window_labels` (bf16, 4 windows per call,
  slab-stitched argmax with a float16 accumulator), in a few variants: bf16 autocast or bf16
  weights, NCDHW or channels-last, eager or ``torch.compile``, stitching with PyTorch ops or with
  the two Triton kernels of :mod:`medrecon.segment._triton_stitch`. The fastest variant within
  8 GB peak is the headline figure.

Agreement of the label maps is measured on three networks:

* ``random``: MONAI's default random init on a smooth CT-like volume. Its softmax is nearly
  uniform, so the top two logits are often near-ties that any change of rounding flips;
* ``confident``: a deterministic init that behaves like a trained segmenter: every window's
  features are the (group-normalised) input, and the head is a 16-class quantiser of that value
  (tent-shaped logits, class margins about 0.27 normalised intensity units), on a periodic
  piecewise-constant phantom (period 24 voxels, so every 96^3 window sees the same intensity
  statistics). All other layers keep their random weights but their residual branches are
  scaled by ``alpha`` (0 = exactly the quantiser; 0.05 = the random body perturbs the margins).

Run (GPU)::

    python benchmarks/bench_inference.py --compile --profile --reps 5 --out bench_inference.json

Smoke run on CPU (small sizes, no figures worth reporting)::

    python benchmarks/bench_inference.py --small
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medrecon.segment.inference import plan_windows, prepare_network, sliding_window_labels  # noqa: E402


def make_net(classes: int, init_filters: int, device: torch.device, seed: int = 0):
    from monai.networks.nets import SegResNet

    torch.manual_seed(seed)
    net = SegResNet(spatial_dims=3, in_channels=1, out_channels=classes, init_filters=init_filters,
                    blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1), dropout_prob=0.2)
    return net.to(device).eval()


def ct_like(shape, device, seed=1):
    """Smooth random 'anatomy' with noise, normalised to about [-1, 1] (what NormalizeIntensity
    + ScaleIntensity give a CT)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    low = torch.randn((1, 1, *(max(2, s // 16) for s in shape)), generator=g)
    x = torch.nn.functional.interpolate(low.to(device), size=shape, mode="trilinear", align_corners=False)
    x = x + 0.05 * torch.randn(x.shape, generator=g).to(device)
    return (x / x.abs().amax()).float()


def periodic_phantom(shape, device, levels=16, period=24, cell=6, seed=2):
    """Piecewise-constant volume, period ``period`` along every axis, cells of ``cell``^3 with
    integer levels 0..levels-1. Returns (volume (1,1,*shape), one period as float64)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    n = period // cell
    cells = torch.randint(0, levels, (n, n, n), generator=g).double()
    per = cells.repeat_interleave(cell, 0).repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    reps = [-(-s // period) for s in shape]
    vol = per.repeat(*reps)[: shape[0], : shape[1], : shape[2]]
    return vol[None, None].float().to(device), per


def make_confident(net, period_block, levels=16, alpha=0.0, scale=8.0, eps=1e-5):
    """Turn a random SegResNet into a confident 'quantiser' segmenter (see module docstring)."""
    mu = float(period_block.mean())
    sd = float(((period_block - mu) ** 2).mean() + eps) ** 0.5
    t = [(lv - mu) / sd for lv in range(levels)]  # normalised value of each level
    with torch.no_grad():
        w = net.convInit.conv.weight
        w.zero_()
        w[:, 0, 1, 1, 1] = 1.0  # every channel = the input voxel
        for name, mod in net.named_modules():
            if name.endswith("conv2.conv") or (name.startswith("up_samples") and name.endswith(".conv")):
                mod.weight.mul_(alpha)
        gn, conv = net.conv_final[0], net.conv_final[2].conv
        assert gn.weight.numel() >= 2 * levels
        gn.weight.zero_()
        gn.bias.zero_()
        conv.weight.zero_()
        conv.bias.fill_(-scale * 4.0)  # classes outside the quantiser never win
        for m in range(levels):
            gn.weight[2 * m], gn.bias[2 * m] = 1.0, -t[m]          # relu(z - t_m)
            gn.weight[2 * m + 1], gn.bias[2 * m + 1] = -1.0, t[m]  # relu(t_m - z)
            conv.weight[m, 2 * m] = -scale                         # logit_m = -scale * |z - t_m|
            conv.weight[m, 2 * m + 1] = -scale
            conv.bias[m] = 0.0
    return net


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_reset(dev):
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def peak_gb(dev):
    return torch.cuda.max_memory_allocated(dev) / 1e9 if dev.type == "cuda" else float("nan")


def run_reference(net, x, roi, dev, margins=False):
    from monai.inferers import sliding_window_inference

    peak_reset(dev)
    sync(dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = sliding_window_inference(x, roi, 1, net)
        lab = out.argmax(1)[0].to(torch.uint8)
    sync(dev)
    dt = time.perf_counter() - t0
    pk = peak_gb(dev)
    stats = {}
    if margins:
        with torch.no_grad():
            top = torch.topk(out[0], 2, dim=0).values
            gap = (top[0] - top[1]).flatten()
            spread = out[0].float().std(dim=0).flatten()
            rel = gap / spread.clamp_min(1e-12)
            stats = {"frac_margin_lt_1pct_of_logit_sd": float((rel < 0.01).float().mean()),
                     "frac_margin_lt_10pct_of_logit_sd": float((rel < 0.1).float().mean()),
                     "median_margin_over_logit_sd": float(rel[:: max(1, rel.numel() // 1_000_000)].median())}
            del top, gap, spread, rel
    del out
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return lab, dt, pk, stats


def run_ours(net, x, roi, dev, reps, **kw):
    times = []
    lab = None
    for i in range(reps + 1):  # first = warm-up
        if i == 1:
            peak_reset(dev)
        sync(dev)
        t0 = time.perf_counter()
        lab = sliding_window_labels(x[0], net, roi, overlap=0.25, device=dev, out_device=dev, **kw)
        sync(dev)
        if i:
            times.append(time.perf_counter() - t0)
    return lab, statistics.median(times), min(times), peak_gb(dev)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    ap.add_argument("--classes", type=int, default=105)
    ap.add_argument("--init-filters", type=int, default=32)
    ap.add_argument("--roi", type=int, default=96)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="CPU smoke test: 64x64x48, roi 32, init_filters 8")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd variants")
    ap.add_argument("--no-confident", action="store_true", help="skip the confident-network agreement runs")
    ap.add_argument("--batch", type=int, default=4, help="windows per network call (ours)")
    ap.add_argument("--budget-s", type=float, default=240, help="start no compiled variant after this")
    ap.add_argument("--profile", action="store_true", help="print the CUDA kernel profile of the best variant")
    ap.add_argument("--alphas", type=float, nargs="*", default=[0.0, 0.05])
    ap.add_argument("--out", type=str, default=None, help="write all figures as JSON here")
    a = ap.parse_args(argv)
    if a.small:
        a.shape, a.roi, a.init_filters, a.reps = [64, 64, 48], 32, 8, 1
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    shape, roi = tuple(a.shape), (a.roi,) * 3
    res = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "torch": torch.__version__, "shape": shape, "classes": a.classes, "roi": roi, "runs": []}
    import monai

    res["monai"] = monai.__version__
    print(f"device {res['device']}  torch {torch.__version__}  monai {monai.__version__}  volume {shape}  "
          f"classes {a.classes}", flush=True)

    if dev.type == "cuda":  # the Triton stitching kernel against PyTorch's add, on strided views
        try:
            from medrecon.segment._triton_stitch import add_inplace

            worst = 0.0
            for bshape, sl, vdt in [((105, 96, 512, 300), (slice(None), slice(24, 96), slice(100, 196),
                                                          slice(204, 300)), torch.bfloat16),
                                   ((96, 512, 300, 105), (slice(0, 72), slice(7, 103), slice(0, 96), slice(None)),
                                    torch.float32)]:
                buf = torch.randn(bshape, device=dev).half()
                ref_buf = buf.clone()
                val = torch.randn(buf[sl].shape, device=dev).to(vdt)
                add_inplace(buf[sl], val)
                ref_buf[sl].add_(val)
                worst = max(worst, float((buf.float() - ref_buf.float()).abs().max()))
                del buf, ref_buf, val
            from medrecon.segment._triton_stitch import argmax_last_and_clear

            acc = torch.randn((40, 96, 300, 105), device=dev).half()
            acc[..., 7] = acc[..., 3]  # some exact ties: the lower channel must win, as in torch.argmax
            want = torch.argmax(acc, dim=-1).to(torch.uint8)
            got = argmax_last_and_clear(acc)
            mism = int((got != want).sum())
            cleared = bool((acc == 0).all())
            del acc, want, got
            res["triton_stitch_max_abs_diff"] = worst
            res["triton_argmax_mismatches"] = mism
            print(f"triton stitch kernels vs PyTorch: add max |diff| {worst:.3g}; argmax mismatches {mism}, "
                  f"accumulator cleared {cleared}", flush=True)
        except Exception as exc:  # noqa: BLE001
            print(f"triton stitch kernel unavailable: {type(exc).__name__}: {exc}", flush=True)

    # ---- timing on the random network, CT-like input ------------------------------------------
    net = make_net(a.classes, a.init_filters, dev)
    x = ct_like(shape, dev)
    with torch.no_grad():  # warm both code paths' kernels (cuDNN autotuning) on one window
        net(x[..., : roi[0], : roi[1], : roi[2]])
    ref, t_ref, pk_ref, m_ref = run_reference(net, x, roi, dev, margins=True)
    ref2, t_ref2, _, _ = run_reference(net, x, roi, dev)
    res["reference"] = {"time_s": [t_ref, t_ref2], "peak_gb": pk_ref, "margins": m_ref}
    print(f"reference fp32 sliding_window_inference: {t_ref:.3f} s / {t_ref2:.3f} s, peak {pk_ref:.1f} GB, "
          f"margins {m_ref}", flush=True)
    del ref2
    # variants: name -> prepare_network / engine options
    V = dict
    if dev.type == "cuda":
        specs = [
            V(name="eager bf16-autocast NCDHW", precision="bf16-autocast", cl=False, compile=None, stitch="torch"),
            V(name="compile bf16-autocast NCDHW", precision="bf16-autocast", cl=False, compile="default",
              stitch="torch"),
            V(name="compile bf16-autocast NCDHW triton-stitch", precision="bf16-autocast", cl=False,
              compile="default", stitch="triton"),
            V(name="compile bf16-weights channels_last", precision="bf16", cl=True, compile="default",
              stitch="torch"),
            V(name="compile bf16-weights channels_last triton-stitch", precision="bf16", cl=True,
              compile="default", stitch="triton"),
            V(name="compile bf16-autocast channels_last triton-stitch", precision="bf16-autocast", cl=True,
              compile="default", stitch="triton"),
        ]
        if not a.compile:
            specs = [sp for sp in specs if not sp["compile"]]
    else:
        specs = [V(name="eager fp32", precision="fp32", cl=False, compile=None, stitch="torch")]
    best = None
    t_start = time.perf_counter()
    for sp in specs:
        name, bs = sp["name"], a.batch
        if sp["compile"] and time.perf_counter() - t_start > a.budget_s:
            print(f"{name:45s} skipped (time budget)", flush=True)
            continue
        vnet = make_net(a.classes, a.init_filters, dev)
        try:
            t_c = time.perf_counter()
            comp = sp["compile"]
            pred, kw = prepare_network(vnet, dev, precision=sp["precision"], channels_last=sp["cl"],
                                       compile=bool(comp), compile_mode=None if comp in (None, "default") else comp)
            kw = dict(kw, stitch=sp["stitch"], ring_channels_last=sp.get("ring_cl"))
            lab, t_med, t_min, pk = run_ours(pred, x, roi, dev, a.reps, sw_batch_size=bs, **kw)
        except Exception as exc:  # noqa: BLE001
            print(f"{name:45s} FAILED: {type(exc).__name__}: {exc}", flush=True)
            continue
        agree = float((lab == ref).float().mean())
        row = {"variant": name, "median_s": t_med, "min_s": t_min, "peak_gb": pk, "agree_random": agree,
               "wall_incl_warmup_s": time.perf_counter() - t_c}
        res["runs"].append(row)
        print(f"{name:45s} {t_med:7.3f} s (min {t_min:.3f})  peak {pk:5.2f} GB  agree {100 * agree:.3f}%  "
              f"speed-up x{t_ref / t_med:.1f}  (first call {row['wall_incl_warmup_s'] - a.reps * t_med:.0f} s)",
              flush=True)
        ok_mem = pk <= 8.0 or dev.type != "cuda"
        if ok_mem and (best is None or t_med < best[1]["median_s"]):
            best = ((name, vnet, pred, kw, bs), row)
        del lab
    del ref
    (bname, bnet, bpred, bkw, bbs), brow = best
    # end to end: input on the host, labels back on the host
    xc = x.cpu()
    sync(dev)
    t0 = time.perf_counter()
    lab = sliding_window_labels(xc[0], bpred, roi, overlap=0.25, device=dev, out_device="cpu",
                                sw_batch_size=bbs, **bkw)
    sync(dev)
    res["host_to_host_s"] = time.perf_counter() - t0
    del lab, xc
    # where the time goes: the network alone over the same number of windows
    n_win = plan_windows(shape, roi, 0.25).n_windows
    wins = torch.randn((bbs, 1, *roi), device=dev).contiguous(
        memory_format=torch.channels_last_3d if bkw["channels_last"] else torch.contiguous_format)
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bkw["amp"]):
        bpred(wins)
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(-(-n_win // bbs)):
            bpred(wins)
        sync(dev)
    res["network_only_s"] = time.perf_counter() - t0
    print(f"network alone, {n_win} windows in batches of {bbs}: {res['network_only_s']:.3f} s "
          f"(the rest of {brow['median_s']:.3f} s is gathering, stitching and argmax)", flush=True)
    if a.profile and dev.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            sliding_window_labels(x[0], bpred, roi, overlap=0.25, device=dev, out_device=dev,
                                  sw_batch_size=bbs, **bkw)
            sync(dev)
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60)
        print(table, flush=True)
        if os.environ.get("OUT"):
            Path(os.environ["OUT"], "profile.txt").write_text(table)

    # ---- agreement on confident networks (same module as the best variant, new weights) ------
    levels = min(16, a.init_filters // 2)
    xp, per = periodic_phantom(shape, dev, levels=levels)
    res["confident"] = []
    for alpha in ([] if a.no_confident else a.alphas):
        state = make_confident(make_net(a.classes, a.init_filters, dev), per, levels=levels, alpha=alpha).state_dict()
        bnet.load_state_dict(state)
        ref_net = make_net(a.classes, a.init_filters, dev)
        ref_net.load_state_dict(state)
        ref, t_r, _, m_c = run_reference(ref_net, xp, roi, dev, margins=True)
        lab, t_med, _, pk = run_ours(bpred, xp, roi, dev, 1, sw_batch_size=bbs, **bkw)
        agree = float((lab == ref).float().mean())
        n_cls = int(torch.unique(ref).numel())
        res["confident"].append({"alpha": alpha, "agree": agree, "classes_present": n_cls, "margins": m_c,
                                 "ours_s": t_med, "reference_s": t_r})
        print(f"confident alpha={alpha}: agree {100 * agree:.4f}% ({n_cls} classes present), margins {m_c}",
              flush=True)
        del ref, lab, ref_net
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    print("\nsummary")
    print(f"  reference (MONAI sliding_window_inference, fp32 defaults): {min(t_ref, t_ref2):.3f} s, "
          f"peak {pk_ref:.1f} GB")
    print(f"  ours ({bname}, best within 8 GB): {brow['median_s']:.3f} s median of {a.reps}, peak {brow['peak_gb']:.2f} GB, "
          f"host->host {res['host_to_host_s']:.3f} s")
    print(f"  ratio reference/ours: x{min(t_ref, t_ref2) / brow['median_s']:.1f} time, "
          f"x{pk_ref / max(brow['peak_gb'], 1e-9):.1f} memory")
    print(f"  agreement: random net {100 * brow['agree_random']:.3f}%, "
          + ", ".join(f"confident alpha={c['alpha']} {100 * c['agree']:.4f}%" for c in res["confident"]))
    res["best"] = brow
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))
    out_dir = os.environ.get("OUT")
    if out_dir:
        Path(out_dir, "bench_inference.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
