"""Regenerate every picture in docs/img with the project's own generators (one command).

    .venv/bin/python scripts/make_doc_images.py              # all pictures (several minutes, CPU)
    .venv/bin/python scripts/make_doc_images.py --list       # which picture comes from which generator
    .venv/bin/python scripts/make_doc_images.py --only torso # one group

Each group calls an existing generator (``medrecon demo``, an example script, the mesh
benchmark's synthetic torso) in a scratch folder and copies the pictures into ``docs/img``
(or ``--outdir``). ``slicer_viewer.png`` needs Chromium (``scripts/install_system_deps.sh``);
without it that one picture is left as it is and said so.
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _run(*args: str, cwd: Path = ROOT) -> None:
    print("  $", " ".join(args), flush=True)
    subprocess.run(list(args), check=True, cwd=cwd)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    print(f"  wrote {dst}")


def demo(out: Path, tmp: Path) -> None:
    _run(str(ROOT / ".venv" / "bin" / "medrecon"), "demo", "-o", str(tmp / "demo"))
    _copy(tmp / "demo" / "bone" / "preview.png", out / "demo_bone_preview.png")
    _copy(tmp / "demo" / "teeth" / "preview.png", out / "demo_teeth_preview.png")


def tilt(out: Path, tmp: Path) -> None:
    _run(PY, "examples/load_and_convert.py", "-o", str(tmp / "tilt"), "--tilt-png", str(out / "dicom_tilt_correction.png"))


def slicer(out: Path, tmp: Path) -> None:
    _run(PY, "examples/slicer_scene.py", "--outdir", str(tmp / "slicer"), "--panel-px", "340")
    _copy(tmp / "slicer" / "preview.png", out / "slicer_preview.png")
    _copy(tmp / "slicer" / "qc_montage.png", out / "slicer_qc_montage.png")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("  chromium not found: slicer_viewer.png left as it is")
        return
    _run(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
         "--window-size=1000,600", "--virtual-time-budget=8000", f"--screenshot={out / 'slicer_viewer.png'}",
         (tmp / "slicer" / "viewer.html").resolve().as_uri())


def photo(out: Path, tmp: Path) -> None:
    _run(PY, "examples/photo_docs_images.py", "-o", str(out))


def cohort(out: Path, tmp: Path) -> None:
    _run(PY, "examples/cohort_run.py", "-o", str(tmp / "cohort"), "--workers", "2")
    found = sorted((tmp / "cohort").rglob("cohort_volumes.png"))
    _copy(found[0], out / "cohort_volumes.png")


def multiview(out: Path, tmp: Path) -> None:
    _run(PY, "examples/multiview_synthetic.py", "-o", str(tmp / "mv"), "--known-cameras",
         "--docs-image", str(out / "multiview_synthetic.png"))


def multiview_support(out: Path, tmp: Path) -> None:
    """The three support-plane scenes of docs/multiview.md, known cameras, shaded previews."""
    for scene in ("sphere_box", "fine_lowcontrast", "coarse_saturated"):
        _run(PY, "examples/multiview_support.py", "-o", str(tmp / f"mv-{scene}"), "--scene", scene,
             "--known-cameras", "--docs-image", str(out / f"multiview_support_{scene}.png"))


def multiview_temple(out: Path, tmp: Path) -> None:
    """templeRing with its published calibration (``templeR_par.txt`` as a COLMAP text model with
    no points), default options, then the shaded preview (slow: about 10 minutes on 2 quiet cores)."""
    import numpy as np

    from medrecon.io.colmap import CameraSet, write_colmap_text

    folder = ROOT.parent / "shared" / "data" / "photos_templering_middlebury"
    rows = [ln.split() for ln in (folder / "templeR_par.txt").read_text().splitlines()[1:] if ln.strip()]
    v = np.array([[float(x) for x in r[1:]] for r in rows])
    n = len(rows)
    cams = CameraSet([r[0] for r in rows], v[:, :9].reshape(-1, 3, 3), v[:, 9:18].reshape(-1, 3, 3), v[:, 18:21],
                     np.array([(640, 480)] * n), np.zeros(n), total=n)
    cal = write_colmap_text(cams, tmp / "temple-cal")
    _run(PY, "-m", "medrecon", "multiview", str(folder), "-o", str(tmp / "temple"), "--cameras", str(cal))
    _run(PY, "examples/multiview_support.py", "--preview-of", str(tmp / "temple"),
         "--docs-image", str(out / "multiview_temple_calibrated.png"))


def svr(out: Path, tmp: Path) -> None:
    _run(PY, "examples/svr_reconstruct.py", "--demo", "-o", str(tmp / "svr" / "brain.nii.gz"),
         "--figure", str(out / "svr_brain.png"))


def torso(out: Path, tmp: Path) -> None:
    """The mesh benchmark's synthetic torso CT (256 x 256 x 250 at 1.6 mm), ct-bone, previews."""
    import numpy as np

    from medrecon.segment.presets import apply_preset
    from medrecon.surface import build_surfaces
    from medrecon.viz.preview import render_previews
    from medrecon.volume import Volume

    spec = importlib.util.spec_from_file_location("bench_mesh", ROOT / "benchmarks" / "bench_mesh.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ct, aff = bench.torso_ct((256, 256, 250), 1.6)
    lab, labels = apply_preset(Volume(ct.astype(np.float32), aff, {"modality": "CT"}), "ct-bone")
    models = build_surfaces(lab, labels, reduction=0.5)
    render_previews(models, out / "meshing_torso_bone.png", title="ct-bone on the synthetic torso CT")
    print(f"  wrote {out / 'meshing_torso_bone.png'}")


#: group -> (generator, pictures it makes)
GROUPS = {
    "demo": (demo, ["demo_bone_preview.png", "demo_teeth_preview.png"]),
    "tilt": (tilt, ["dicom_tilt_correction.png"]),
    "slicer": (slicer, ["slicer_preview.png", "slicer_qc_montage.png", "slicer_viewer.png"]),
    "photo": (photo, ["photo_sphere_photo.png", "photo_diagram.png", "photo_logo.png", "photo_relief.png",
                      "photo_viewer.png"]),
    "cohort": (cohort, ["cohort_volumes.png"]),
    "multiview": (multiview, ["multiview_synthetic.png", "multiview_synthetic_preview.png"]),
    "multiview_support": (multiview_support, [f"multiview_support_{s}.png" for s in
                                              ("sphere_box", "fine_lowcontrast", "coarse_saturated")]),
    "multiview_temple": (multiview_temple, ["multiview_temple_calibrated.png"]),
    "svr": (svr, ["svr_brain.png"]),
    "torso": (torso, ["meshing_torso_bone.png"]),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate the pictures in docs/img with the project's generators.")
    ap.add_argument("--outdir", type=Path, default=ROOT / "docs" / "img", help="where the pictures go (docs/img)")
    ap.add_argument("--only", action="append", choices=sorted(GROUPS), help="one group (repeatable); default all")
    ap.add_argument("--list", action="store_true", help="list the groups and their pictures, make nothing")
    args = ap.parse_args(argv)
    if args.list:
        for name, (_, pics) in GROUPS.items():
            print(f"{name:10s} {', '.join(pics)}")
        return 0
    args.outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medrecon-docimg-") as tmp:
        for name in args.only or list(GROUPS):
            print(f"{name}:", flush=True)
            GROUPS[name][0](args.outdir.resolve(), Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
