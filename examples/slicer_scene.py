"""Real CT + label map -> meshes, a 3D Slicer scene, PNG previews, a QC montage and an offline viewer.

Uses the TotalSegmentator test CT (abdomen and pelvis, 3 mm) and its reference label map from
``../shared/data`` (see its README.txt), keeps the bones, and writes into ``--outdir``:

* ``meshes/*.stl``               one mesh per bone, LPS mm with ``SPACE=LPS`` in the header
* ``ct_volume.nrrd``             the CT for Slicer's slice views
* ``bones.seg.nrrd``             the label map as a Slicer segmentation (names, colours)
* ``bones.mrml``                 the scene: open it in Slicer (File > Add Data, or drag it in)
* ``preview.png``, ``qc_montage.png``, ``viewer.html``

Run::

    .venv/bin/python examples/slicer_scene.py --outdir out/slicer_example
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from medrecon.io.meshes import write_models
from medrecon.io.nifti import read_nifti
from medrecon.io.slicer import write_scene, write_seg_nrrd, write_volume_nrrd
from medrecon.io.label_tables import load_label_table
from medrecon.labelmap import select_structures
from medrecon.surface import build_surfaces
from medrecon.viz.html import write_viewer
from medrecon.viz.montage import qc_montage
from medrecon.viz.preview import render_previews

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ct_abdomen_totalsegmentator_refseg"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outdir", type=Path, default=Path("out/slicer_example"))
    ap.add_argument("--data", type=Path, default=DATA, help="folder holding example_ct.nii.gz and its label map")
    ap.add_argument("--group", default="bones", help="structure group of the TotalSegmentator table to keep")
    ap.add_argument("--panel-px", type=int, default=420, help="size of each preview / montage panel in pixels")
    args = ap.parse_args()
    console = Console()
    t0 = time.perf_counter()
    out: Path = args.outdir
    out.mkdir(parents=True, exist_ok=True)

    ct = read_nifti(args.data / "example_ct.nii.gz")
    ct.meta["modality"] = "CT"
    labelmap = read_nifti(args.data / "example_seg_fast_force_split.nii.gz")
    labelmap = labelmap.with_array(labelmap.array.astype("uint8"))
    full_table = load_label_table("totalsegmentator")
    table = select_structures(full_table, group=args.group)
    console.print(f"CT {ct.shape} at {tuple(round(float(s), 2) for s in ct.spacing)} mm; "
                  f"{len(table)} {args.group} in the table")

    with console.status("meshing"):
        models = build_surfaces(labelmap, table, smoothing=0.5)
    files = write_models(models, out / "meshes", ["stl"])
    console.print(f"{len(models)} meshes -> {out / 'meshes'}")

    keep = {m.label: table[m.label] for m in models}
    seg = write_seg_nrrd(labelmap, keep, out / "bones.seg.nrrd")
    vol = write_volume_nrrd(ct, out / "ct_volume.nrrd")
    scene = write_scene(out, vol, seg, [(f, m.name, m.color) for f, m in zip(files, models)], "bones")
    console.print(f"Slicer scene: {scene}")

    with console.status("pictures"):
        png = render_previews(models, out / "preview.png", panel_px=args.panel_px)
        # the montage shows every label of the map (bones and organs), named from the full table
        qc = qc_montage(ct, labelmap, full_table, out / "qc_montage.png", panel_px=args.panel_px)
        html = write_viewer(models, out / "viewer.html", title=f"TotalSegmentator test CT: {args.group}")
    console.print(f"preview {png}\nQC montage {qc}\nviewer {html}")
    console.print(f"[green]done[/] in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
