"""Segment a CT with a MONAI bundle from a local folder, then name and mesh the result.

    python examples/segment_with_bundle.py                      # demo bundle, demo CT
    python examples/segment_with_bundle.py CT.nii.gz --bundle ~/bundles/wholeBody_ct_segmentation
    python examples/segment_with_bundle.py --totalseg seg.nii.gz   # import TotalSegmentator output

Without ``--bundle`` the script writes a tiny *demo bundle* (a 1x1x1 convolution that labels
voxels above 200 HU as "bone", with the preprocessing of a real bundle: RAS orientation, 2 mm
spacing, HU window) so that it runs anywhere without downloading anything. Without an input it
uses the TotalSegmentator example CT from ``../shared/data`` when present, else a synthetic
phantom. Outputs go to ``out/segment_example/``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console

import medrecon
from medrecon.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
SHARED_CT = ROOT.parent / "shared" / "data" / "ct_abdomen_totalsegmentator_refseg" / "example_ct.nii.gz"


def write_demo_bundle(folder: Path) -> Path:
    """A complete, valid MONAI bundle whose network is a HU > 200 threshold."""
    import torch

    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)
    meta = {"name": "demo_bone_threshold", "version": "0.1.0", "task": "bone (HU > 200), demo only",
            "network_data_format": {
                "inputs": {"image": {"type": "image", "format": "hounsfield", "num_channels": 1}},
                "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 2,
                                     "channel_def": {"0": "background", "1": "bone"}}}}}
    (folder / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2))
    cfg = {
        "image_key": "image",
        "network_def": {"_target_": "torch.nn.Conv3d", "in_channels": 1, "out_channels": 2, "kernel_size": 1},
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "@image_key"},
            {"_target_": "EnsureChannelFirstd", "keys": "@image_key"},
            {"_target_": "Orientationd", "keys": "@image_key", "axcodes": "RAS"},
            {"_target_": "Spacingd", "keys": "@image_key", "pixdim": [2.0, 2.0, 2.0], "mode": "bilinear"},
            {"_target_": "ScaleIntensityRanged", "keys": "@image_key", "a_min": -1000, "a_max": 1000,
             "b_min": 0.0, "b_max": 1.0, "clip": True}]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [64, 64, 64], "sw_batch_size": 2,
                    "overlap": 0.25, "mode": "gaussian"},
    }
    (folder / "configs" / "inference.json").write_text(json.dumps(cfg, indent=2))
    conv = torch.nn.Conv3d(1, 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[1] = 1.0
        conv.bias[1] = -0.6  # (200 HU + 1000) / 2000
    torch.save(conv.state_dict(), folder / "models" / "model.pt")
    return folder


def phantom() -> Volume:
    """A 1 mm CT-like phantom: a bony ring (1200 HU) in soft tissue (40 HU) in air."""
    z, y, x = np.mgrid[-40:40, -60:60, -60:60].astype(np.float32)
    r = np.hypot(x, y)
    hu = np.where(r < 55, 40.0, -1000.0)
    hu[(r > 30) & (r < 38) & (np.abs(z) < 30)] = 1200.0
    aff = np.diag([1.0, 1.0, 1.0, 1.0])[[2, 1, 0, 3]]  # array axes (z, y, x) -> LPS (x, y, z)
    return Volume(hu.astype(np.int16), aff, {"modality": "CT"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", nargs="?", help="CT: DICOM folder, NIfTI or NRRD")
    ap.add_argument("--bundle", help="MONAI bundle folder (default: write a demo bundle)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--totalseg", help="instead of segmenting: import this TotalSegmentator output")
    ap.add_argument("-o", "--outdir", default=str(ROOT / "out" / "segment_example"))
    a = ap.parse_args()
    console = Console()
    out = Path(a.outdir)
    out.mkdir(parents=True, exist_ok=True)

    from medrecon.io.volumes import save_volume
    from medrecon.io.label_tables import write_slicer_ctbl

    if a.totalseg:
        from medrecon.io.labelmaps import import_totalsegmentator

        labelmap, labels = import_totalsegmentator(a.totalseg)
        console.print(f"imported {len(labels)} named structures from {a.totalseg}")
    else:
        from medrecon.segment.ai import segment_volume

        if a.input:
            volume = medrecon.load(a.input)
        elif SHARED_CT.exists():
            volume = medrecon.load(str(SHARED_CT))
        else:
            volume = phantom()
        bundle = Path(a.bundle) if a.bundle else write_demo_bundle(out / "demo_bundle")
        console.print(f"segmenting {volume} with bundle {bundle.name} ...")
        labelmap, labels = segment_volume(volume, bundle, device=a.device)
        assert labelmap.shape == volume.shape and np.allclose(labelmap.affine, volume.affine)
        console.print(f"label map on the input grid: {labelmap.meta.get('description')}")

    save_volume(labelmap, out / "seg.nii.gz")
    write_slicer_ctbl(labels, out / "seg.ctbl")
    for v, li in sorted(labels.items())[:10]:
        n = int((labelmap.array == v).sum())
        console.print(f"  {v:4d} {li.name:28s} {n * float(np.prod(labelmap.spacing)) / 1000:9.1f} cm3")

    # one named, coloured mesh per structure (the surface owner's mesher), if it is installed
    try:
        from medrecon.io.meshes import write_models
        from medrecon.surface import build_surfaces
    except ImportError:
        console.print("meshing skipped (medrecon.surface not available)")
        return
    models = build_surfaces(labelmap, dict(sorted(labels.items())[:5]), smoothing=0.5, reduction=0.5)
    files = write_models(models, out / "meshes", ["stl"])
    console.print(f"wrote {out / 'seg.nii.gz'}, {out / 'seg.ctbl'} and {len(files)} meshes in {out / 'meshes'}")


if __name__ == "__main__":
    main()
