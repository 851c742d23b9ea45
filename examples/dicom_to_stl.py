"""From a DICOM folder to STL (and 3MF) with medrecon, step by step and in one call.

Usage:
    .venv/bin/python examples/dicom_to_stl.py [DICOM_FOLDER] [-o OUTDIR] [--preset ct-bone]

Without a folder, a synthetic head CT is written as a DICOM series first (nothing is
downloaded), so the script runs anywhere.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console

import medrecon
from medrecon.cli_display import StageProgress
from medrecon.io.meshes import write_models
from medrecon.mesh_pipeline import MeshConfig, run_mesh
from medrecon.segment.presets import apply_preset
from medrecon.surface import build_surfaces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dicom", nargs="?", help="DICOM folder (default: a synthetic head CT)")
    ap.add_argument("-o", "--outdir", default="dicom_to_stl_out")
    ap.add_argument("--preset", default="ct-bone")
    args = ap.parse_args()
    console = Console()
    out = Path(args.outdir)

    src = args.dicom
    if src is None:
        from medrecon.io.dicom.write import write_dicom_series
        from medrecon.phantoms import head_ct_phantom

        src = Path(tempfile.mkdtemp(prefix="medrecon_phantom_")) / "dicom"
        write_dicom_series(head_ct_phantom(spacing=(1.5, 1.5, 1.5)).volume, src)
        console.print(f"no folder given: wrote a synthetic head CT to {src}")

    # 1. step by step: load -> segment -> mesh -> write
    volume = medrecon.load(src)                       # Volume: array + index -> LPS mm affine
    console.print(f"loaded {volume}")
    labelmap, labels = apply_preset(volume, args.preset)
    models = build_surfaces(labelmap, labels, smoothing=0.5)
    for m in models:
        console.print(f"{m.name}: {m.n_triangles} triangles, watertight={m.qa['watertight']}, "
                      f"{m.qa['mesh_volume_mm3'] / 1000:.1f} cm3")
    files = write_models(models, out / "step_by_step", ["stl", "3mf"])
    console.print(f"wrote {[str(f) for f in files]}")

    # 2. the same in one call, with report.json, previews and a viewer page
    with StageProgress(console) as bar:  # draws the library's progress(ProgressEvent) calls
        result = run_mesh(MeshConfig(input=str(src), outdir=str(out / "pipeline"), preset=args.preset,
                                     formats=["stl", "3mf"]), progress=bar)
    console.print(f"report: {result.report_path}")


if __name__ == "__main__":
    main()
