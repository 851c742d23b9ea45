"""``medrecon demo``: a synthetic head CT written as a real DICOM series, then meshed.

Nothing is downloaded: the phantom (:func:`medrecon.phantoms.head_ct_phantom`: skull with
diploe, jaws with 32 enamel-capped teeth, cervical spine, brain, sinuses; realistic HU, noise,
partial volume) is written with :func:`medrecon.io.dicom_write.write_dicom_series`, read back
through the normal DICOM loader, and meshed twice with :func:`medrecon.pipeline.run_mesh`:
``ct-bone`` (with previews, HTML viewer and a 3D Slicer scene) and ``ct-teeth``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from medrecon.pipeline import MeshConfig, MeshResult, run_mesh

__all__ = ["run_demo"]


def run_demo(outdir: str | Path = "medrecon-demo", console=None, *, spacing: Sequence[float] = (1.0, 1.0, 1.25),
             formats: Sequence[str] = ("stl", "3mf", "glb"), preview: bool = True,
             slicer: bool = True) -> dict[str, MeshResult]:
    """Write the head phantom as DICOM under ``outdir/dicom`` and mesh bone and teeth.

    Parameters
    ----------
    outdir : path
        Output folder: ``dicom/`` (the CT series), ``bone/`` and ``teeth/`` (meshes, report.json,
        previews).
    console : rich.console.Console, optional
        Progress and the final summary; quiet when None.
    spacing : (3,) mm
        Voxel size of the phantom (x, y, z).
    formats : mesh formats for both runs.
    preview, slicer : write previews/viewer and a Slicer scene for the bone run.

    Returns
    -------
    dict
        ``{"bone": MeshResult, "teeth": MeshResult}``.
    """
    from medrecon.io.dicom_write import write_dicom_series
    from medrecon.phantoms import head_ct_phantom

    outdir = Path(outdir)
    t0 = time.perf_counter()
    say = console.print if console is not None else (lambda *a, **k: None)
    say(f"[bold]medrecon demo[/]: synthetic head CT -> DICOM -> bone and teeth models in {outdir}")
    phantom = head_ct_phantom(spacing=spacing)
    dicom_dir = outdir / "dicom"
    if dicom_dir.exists():
        for old in dicom_dir.glob("IM*.dcm"):
            old.unlink()
    files = write_dicom_series(phantom.volume, dicom_dir, series_description="medrecon head phantom")
    say(f"wrote {len(files)} CT slices ({phantom.volume.shape[0]}x{phantom.volume.shape[1]} pixels, "
        f"{', '.join(f'{s:g}' for s in spacing)} mm) to {dicom_dir}")
    results: dict[str, MeshResult] = {}
    runs = [("bone", "ct-bone", preview, slicer), ("teeth", "ct-teeth", preview, False)]
    for name, preset, prev, sl in runs:
        cfg = MeshConfig(input=str(dicom_dir), outdir=str(outdir / name), preset=preset, formats=list(formats),
                         preview=prev, slicer=sl)
        results[name] = run_mesh(cfg, console=console)
    if console is not None:
        from rich.table import Table

        table = Table(title="demo models")
        for col in ("structure", "triangles", "watertight", "volume mm3", "files"):
            table.add_column(col)
        for name, res in results.items():
            for m in res.models:
                qa = m.qa or {}
                table.add_row(m.name, str(m.n_triangles), str(qa.get("watertight", "?")),
                              f"{qa.get('mesh_volume_mm3', float('nan')):.0f}",
                              str(outdir / name))
        console.print(table)
        for name, res in results.items():
            console.print(f"{name}: report {res.report_path}")
            for p in res.files:
                if p.suffix in (".png", ".html", ".mrml"):
                    console.print(f"  {p}")
        console.print(f"[green]demo finished in {time.perf_counter() - t0:.1f} s[/]")
    return results
