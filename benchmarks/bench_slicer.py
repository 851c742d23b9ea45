"""Slicer hand-off and viewer output, side by side with their peers in the same run.

* ``.seg.nrrd`` write and read: medrecon.io.slicer vs slicerio (the Slicer developers' package),
  same label map, same gzip level (6), on two real TotalSegmentator label maps.
* offline HTML viewer: medrecon.viz.html.write_viewer vs trimesh's ``scene_to_html`` (three.js +
  embedded GLB), same meshes: time to write and file size.
* the CT volume NRRD for the scene: ours vs ``pynrrd.write`` with its defaults.
* PNG previews: our numpy fallback rasteriser vs VTK's offscreen OpenGL (the normal path).
* QC montage: our time only (no peer writes this picture).

Run::

    .venv/bin/python benchmarks/bench_slicer.py [--repeat 5]

Prints one line per measurement with the ratio ours / peer (below 1: ours is faster or smaller).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MEDRECON_SHARED_DATA", ROOT.parent / "shared" / "data")) / "ct_abdomen_totalsegmentator_refseg"


def timed(fn, repeat: int) -> float:
    """Median wall time (s) of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def row(what: str, ours: float, peer: float, unit: str, peer_name: str) -> None:
    print(f"{what:<44} ours {ours:10.3f} {unit:<3} | {peer_name:<22} {peer:10.3f} {unit:<3} | ratio {ours / peer:6.2f}")


def main() -> None:
    import slicerio
    import trimesh
    from trimesh.viewer.notebook import scene_to_html

    from medrecon.io.nifti import read_nifti
    from medrecon.io.slicer import read_seg_nrrd, write_seg_nrrd
    from medrecon.io.label_tables import load_label_table
    from medrecon.labelmap import select_structures
    from medrecon.surface import build_surfaces
    from medrecon.viz.html import write_viewer
    from medrecon.viz.montage import qc_montage
    from medrecon.viz.preview import render_previews

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    table = load_label_table("totalsegmentator")
    tmp = Path(tempfile.mkdtemp(prefix="bench_slicer_"))

    for fname in ("example_seg_dicom.nii.gz", "example_seg_fast_force_split.nii.gz"):
        lm = read_nifti(DATA / fname)
        lm = lm.with_array(lm.array.astype(np.uint8))
        present = [int(v) for v in np.unique(lm.array) if v]
        labels = {v: table[v] for v in present if v in table}
        ours_p, peer_p = tmp / "ours.seg.nrrd", tmp / "peer.seg.nrrd"

        def segments_meta():  # what a slicerio user must prepare: names, colours, extents
            return [{"id": f"Segment_{v}", "name": labels[v].name, "color": list(labels[v].color),
                     "labelValue": v, "layer": 0,
                     "extent": [int(x) for ax in np.nonzero(lm.array == v) for x in (ax.min(), ax.max())],
                     "status": "inprogress"} for v in labels]

        # variant 1: the peer gets its metadata (including extents) prepared outside the timed call
        seg = {"voxels": lm.array, "ijkToLPS": lm.affine, "encoding": "gzip",
               "masterRepresentation": "Binary labelmap",
               "containedRepresentationNames": ["Binary labelmap", "Closed surface"],
               "referenceImageExtentOffset": [0, 0, 0],
               "segments": [{"id": f"Segment_{v}", "name": labels[v].name, "color": list(labels[v].color),
                             "labelValue": v, "layer": 0,
                             "extent": [int(x) for ax in np.nonzero(lm.array == v) for x in (ax.min(), ax.max())],
                             "status": "inprogress"} for v in labels]}

        def peer_write():
            slicerio.write_segmentation(str(peer_p), seg, compression_level=6)

        def ours_write():
            write_seg_nrrd(lm, labels, ours_p)

        def peer_write_with_meta():  # variant 2: metadata built the straightforward way, then written
            slicerio.write_segmentation(str(peer_p), {**seg, "segments": segments_meta()}, compression_level=6)

        tag = f"{fname.split('.')[0]} {'x'.join(map(str, lm.shape))}, {len(present)} labels"
        t_ours = timed(ours_write, args.repeat)
        row(f"seg.nrrd write  {tag}", t_ours, timed(peer_write, args.repeat), "s", "slicerio.write only")
        row(f"seg.nrrd write  {tag}", t_ours, timed(peer_write_with_meta, args.repeat), "s", "slicerio + extents")
        row(f"seg.nrrd read   {tag}", timed(lambda: read_seg_nrrd(ours_p), args.repeat),
            timed(lambda: slicerio.read_segmentation(str(peer_p)), args.repeat), "s", "slicerio.read")
        row(f"seg.nrrd size   {tag}", ours_p.stat().st_size / 1e3, peer_p.stat().st_size / 1e3, "kB", "slicerio.write")

    # meshes for the viewer and the pictures: the bones of the 3 mm abdomen CT
    ct = read_nifti(DATA / "example_ct.nii.gz")
    ct.meta["modality"] = "CT"

    # the CT for the scene: ours vs pynrrd.write with its defaults (gzip level 9, dtype as is)
    import nrrd

    from medrecon.io.slicer import write_volume_nrrd

    vo, vp = tmp / "ours_ct.nrrd", tmp / "peer_ct.nrrd"
    t_o = timed(lambda: write_volume_nrrd(ct, vo), args.repeat)
    t_p = timed(lambda: nrrd.write(str(vp), ct.array, {"space": "left-posterior-superior",
                                                        "space directions": ct.affine[:3, :3].T,
                                                        "space origin": ct.affine[:3, 3]}), max(1, args.repeat // 2))
    tag = f"CT {'x'.join(map(str, ct.shape))} {ct.array.dtype}"
    row(f"volume NRRD write  {tag}", t_o, t_p, "s", "pynrrd.write default")
    row(f"volume NRRD size   {tag}", vo.stat().st_size / 1e6, vp.stat().st_size / 1e6, "MB", "pynrrd.write default")
    lm = read_nifti(DATA / "example_seg_fast_force_split.nii.gz")
    lm = lm.with_array(lm.array.astype(np.uint8))
    models = build_surfaces(lm, select_structures(table, group="bones"), qa=False)
    n_tri = sum(m.n_triangles for m in models)
    tag = f"{len(models)} bone meshes, {n_tri / 1e3:.0f}k triangles"
    ours_h, peer_h = tmp / "ours.html", tmp / "peer.html"

    def peer_html():
        scene = trimesh.Scene()
        for m in models:
            tm = trimesh.Trimesh(m.vertices, m.faces, process=False)
            tm.visual.face_colors = [int(c * 255) for c in m.color] + [255]
            scene.add_geometry(tm, node_name=m.name)
        peer_h.write_text(scene_to_html(scene))

    row(f"viewer html write  {tag}", timed(lambda: write_viewer(models, ours_h), args.repeat),
        timed(peer_html, args.repeat), "s", "trimesh scene_to_html")
    row(f"viewer html size   {tag}", ours_h.stat().st_size / 1e6, peer_h.stat().st_size / 1e6, "MB", "trimesh scene_to_html")

    from medrecon.viz import preview as P

    t_prev = timed(lambda: render_previews(models, tmp / "p.png", backend="vtk"), args.repeat)
    backend = P.RENDER_BACKEND
    t_soft = timed(lambda: render_previews(models, tmp / "s.png", backend="software"), args.repeat)
    row(f"previews 3x420 px, fallback  {tag}", t_soft, t_prev, "s", f"VTK ({backend})")
    t_qc = timed(lambda: qc_montage(ct, lm, table, tmp / "q.png"), args.repeat)
    print(f"{'QC montage ' + 'x'.join(map(str, ct.shape)) + ' CT':<44} ours {t_qc:10.3f} s")


if __name__ == "__main__":
    main()
