"""``medrecon demo``: a synthetic head CT written as a real DICOM series, then meshed.

Nothing is downloaded: the phantom (:func:`medrecon.phantoms.head_ct_phantom`: skull with
diploe, jaws with 32 enamel-capped teeth, cervical spine, brain, sinuses; realistic HU, noise,
partial volume) is written with :func:`medrecon.io.dicom.write.write_dicom_series`, read back
through the normal DICOM loader, and meshed twice with :func:`medrecon.mesh_pipeline.run_mesh`:
``ct-bone`` (with previews, HTML viewer and a 3D Slicer scene) and ``ct-teeth``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from medrecon.mesh_pipeline import MeshConfig, MeshResult, Progress, run_mesh

__all__ = ["run_demo"]


def run_demo(outdir: str | Path = "medrecon-demo", *, progress: Progress | None = None,
             log: Callable[[str], None] | None = None, spacing: Sequence[float] = (1.0, 1.0, 1.25),
             formats: Sequence[str] = ("stl", "3mf", "glb"), preview: bool = True,
             slicer: bool = True) -> dict[str, MeshResult]:
    """Write the head phantom as DICOM under ``outdir/dicom`` and mesh bone and teeth.

    Parameters
    ----------
    outdir : path
        Output folder: ``dicom/`` (the CT series), ``bone/`` and ``teeth/`` (meshes, report.json,
        previews).
    progress : callable(stage, done, total), optional
        Stage progress of both mesh runs (see :func:`medrecon.mesh_pipeline.run_mesh`).
    log : callable(str), optional
        Told what is being written; quiet when None.
    spacing : (3,) mm
        Voxel size of the phantom (x, y, z).
    formats : mesh formats for both runs.
    preview, slicer : write previews/viewer and a Slicer scene for each run.

    Returns
    -------
    dict
        ``{"bone": MeshResult, "teeth": MeshResult}``.
    """
    from medrecon.io.dicom.write import write_dicom_series
    from medrecon.phantoms import head_ct_phantom

    outdir = Path(outdir)
    say = log if log is not None else (lambda *a, **k: None)
    say(f"medrecon demo: synthetic head CT -> DICOM -> bone and teeth models in {outdir}")
    phantom = head_ct_phantom(spacing=spacing)
    dicom_dir = outdir / "dicom"
    if dicom_dir.exists():
        for old in dicom_dir.glob("IM*.dcm"):
            old.unlink()
    files = write_dicom_series(phantom.volume, dicom_dir, series_description="medrecon head phantom")
    say(f"wrote {len(files)} CT slices ({phantom.volume.shape[0]}x{phantom.volume.shape[1]} pixels, "
        f"{', '.join(f'{s:g}' for s in spacing)} mm) to {dicom_dir}")
    results: dict[str, MeshResult] = {}
    # the bone preset (226..3071 HU) also holds the enamel: teeth are taken out of the bone so the
    # two models are disjoint solids (printed together they would overlap); a Slicer scene each
    runs = [("bone", "ct-bone", preview, slicer, ["ct-teeth"]), ("teeth", "ct-teeth", preview, slicer, None)]
    for name, preset, prev, sl, exclude in runs:
        cfg = MeshConfig(input=str(dicom_dir), outdir=str(outdir / name), preset=preset, formats=list(formats),
                         preview=prev, slicer=sl, exclude=exclude)
        results[name] = run_mesh(cfg, progress=progress)
    return results
