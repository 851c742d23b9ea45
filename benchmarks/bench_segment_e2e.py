"""End-to-end bundle segmentation on the GPU: correctness smoke checks and whole-call timing.

1. The tests' threshold bundle (``tests/segment/test_segment_ai_bundle.py``) on CUDA: exact on the native grid,
   and equal to the CPU result after 2 mm resampling (eager and ``torch.compile``).
2. A wholeBody_ct_segmentation-style bundle written here (SegResNet, 105 channels, RAS, 1.5 mm,
   NormalizeIntensity + ScaleIntensity, 96^3 gaussian windows, random weights) run through
   :func:`medrecon.segment.ai.segment_volume` on a 512 x 512 x 300 CT-like volume at
   0.8 x 0.8 x 1.5 mm: the whole call (preprocessing on the CPU, inference, resampling back),
   eager and compiled.

Run on a GPU machine from the repository root::

    python benchmarks/bench_segment_e2e.py
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medrecon.segment.ai import segment_volume  # noqa: E402
from medrecon.volume import Volume  # noqa: E402


def smoke(tmp: Path, dev: str) -> None:
    from tests.segment.test_segment_ai_bundle import THRESHOLD_HU, _sphere_volume, make_bundle, oblique_free_phantom

    v = oblique_free_phantom()
    lab, _ = segment_volume(v, make_bundle(tmp / "b1", pixdim=(0.8, 1.2, 2.5)), device=dev)
    print(f"threshold bundle on {dev}, native grid: exact = "
          f"{np.array_equal(lab.array, (v.array > THRESHOLD_HU).astype(np.uint8))}", flush=True)
    v2, _ = _sphere_volume()
    b2 = make_bundle(tmp / "b2", pixdim=(2.0, 2.0, 2.0), roi=(16, 16, 16))
    cpu, _ = segment_volume(v2, b2, device="cpu")
    gpu, _ = segment_volume(v2, b2, device=dev)
    gpuc, _ = segment_volume(v2, b2, device=dev, compile=True)
    print(f"threshold bundle, 2 mm model grid: GPU == CPU on {100 * (gpu.array == cpu.array).mean():.4f}% "
          f"(compiled {100 * (gpuc.array == cpu.array).mean():.4f}%), affine equal "
          f"{np.array_equal(gpu.affine, v2.affine)}", flush=True)


def wholebody_bundle(root: Path) -> Path:
    from monai.networks.nets import SegResNet

    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    names = {"0": "background", **{str(i): f"class_{i}" for i in range(1, 105)}}
    meta = {"name": "wholebody_like", "network_data_format": {
        "inputs": {"image": {"type": "image", "format": "hounsfield", "num_channels": 1}},
        "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 105,
                             "channel_def": names}}}}
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    net_def = {"_target_": "SegResNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 105,
               "init_filters": 32, "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1], "dropout_prob": 0.2}
    cfg = {"image_key": "image", "network_def": net_def,
           "preprocessing": {"_target_": "Compose", "transforms": [
               {"_target_": "LoadImaged", "keys": "@image_key"},
               {"_target_": "EnsureTyped", "keys": "@image_key"},
               {"_target_": "EnsureChannelFirstd", "keys": "@image_key"},
               {"_target_": "Orientationd", "keys": "@image_key", "axcodes": "RAS"},
               {"_target_": "Spacingd", "keys": "@image_key", "pixdim": [1.5, 1.5, 1.5], "mode": "bilinear"},
               {"_target_": "NormalizeIntensityd", "keys": "@image_key", "nonzero": True},
               {"_target_": "ScaleIntensityd", "keys": "@image_key", "minv": -1.0, "maxv": 1.0}]},
           "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [96, 96, 96], "sw_batch_size": 1,
                       "overlap": 0.25, "padding_mode": "replicate", "mode": "gaussian"}}
    (root / "configs" / "inference.json").write_text(json.dumps(cfg))
    torch.manual_seed(0)
    kw = {k: v for k, v in net_def.items() if k != "_target_"}
    torch.save(SegResNet(**kw).state_dict(), root / "models" / "model.pt")
    return root


def ct_volume() -> Volume:
    g = torch.Generator().manual_seed(3)
    low = torch.randn((1, 1, 32, 32, 20), generator=g)
    x = torch.nn.functional.interpolate(low, size=(512, 512, 300), mode="trilinear")[0, 0]
    hu = (x / x.abs().max() * 1200).to(torch.int16).numpy()
    aff = np.diag([0.8, 0.8, 1.5, 1.0])
    aff[:3, 3] = [-200.0, -180.0, -300.0]
    return Volume(hu, aff, {"modality": "CT"})


def main() -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Writes $OUT/bench_segment_e2e.json when "
                            "OUT is set; on a CPU-only machine runs the smoke checks only.").parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tmp = Path(tempfile.mkdtemp())
    smoke(tmp, dev)
    if dev != "cuda":
        print("no GPU: skipping the whole-body timing")
        return
    bundle = wholebody_bundle(tmp / "wb")
    vol = ct_volume()
    res = {}
    for name, comp in (("eager", False), ("compiled, first call", True), ("compiled, second call", True)):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        lab, labels = segment_volume(vol, bundle, device=dev, compile=comp)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        res[name] = {"s": dt, "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
                     "detail": lab.meta.get("description")}
        assert lab.shape == vol.shape and np.array_equal(lab.affine, vol.affine)
        print(f"segment_volume wholeBody-like, {name}: {dt:.2f} s, peak {res[name]['peak_gb']:.2f} GB "
              f"({lab.meta.get('description')}); {len(np.unique(lab.array))} labels", flush=True)
    import os

    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "bench_segment_e2e.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
