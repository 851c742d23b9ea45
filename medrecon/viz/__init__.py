"""Looking at results: 3D previews (:mod:`.preview`), the QC montage (:mod:`.montage`) and the offline
HTML viewer (:mod:`.html`). Terminal tables and progress bars are the CLI's (:mod:`medrecon.cli_display`)."""

from pathlib import Path


def mesh_previews(volume, labelmap, labels, models, outdir: Path) -> dict[str, list[Path]]:
    """The ``mesh`` command's pictures: 3D preview, QC montage and HTML viewer (each one file)."""
    from medrecon.viz.html import write_viewer
    from medrecon.viz.montage import qc_montage
    from medrecon.viz.preview import render_previews

    def paths(out) -> list[Path]:
        return [] if out is None else [Path(p) for p in (out if isinstance(out, (list, tuple)) else [out])]

    return {
        "preview": paths(render_previews(models, outdir / "preview.png", size_mm_bar=True)),
        "qc_montage": paths(qc_montage(volume, labelmap, labels, outdir / "qc_montage.png")),
        "viewer": paths(write_viewer(models, outdir / "viewer.html", title=f"medrecon: {len(models)} structures")),
    }
