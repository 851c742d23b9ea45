"""Command-line interface (typer). Thin: parse options, call the library, print.

Errors: a :class:`~medrecon.errors.MedreconError` prints one line on stderr and exits with
code 2; the traceback is shown only with ``--debug``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from medrecon.errors import MedreconError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="medrecon: medical images (DICOM, NIfTI, NRRD) to 3D models with exact geometry.",
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err_console = Console(stderr=True)
_STATE = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    _STATE["debug"] = debug


@app.command()
def info(
    path: List[Path] = typer.Argument(..., help="DICOM folder, zip or files; NIfTI or NRRD file."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """List every series found: modality, size, spacing, orientation, files, warnings."""
    from medrecon.io.loader import describe_series
    from medrecon.cli_display import common_warnings, series_table

    src = [str(p) for p in path] if len(path) > 1 else str(path[0])
    with err_console.status("reading headers...", spinner="dots"):
        rows = describe_series(src)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
    else:
        console.print(series_table(rows, width=console.width))
        for w in common_warnings(rows):
            console.print(f"[yellow]note:[/] {_terminal_safe(w)}", soft_wrap=True, highlight=False)
        n_vol = sum(1 for r in rows if r.get("is_volume", True))
        n_obj = sum(1 for r in rows if r.get("kind") == "non-image")
        console.print(f"{len(rows) - n_obj} series, {n_vol} loadable as volumes"
                      + (f", {n_obj} kind(s) of non-image object skipped" if n_obj else "")
                      + ("; choose one with --series N (SeriesNumber, or '#N' for the index)" if n_vol > 1 else ""),
                      highlight=False)  # wrapped at words on narrow terminals


@app.command()
def convert(
    path: List[Path] = typer.Argument(..., help="DICOM folder, zip or files; NIfTI or NRRD file."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .nii/.nii.gz/.nrrd/.mha file."),
    series: Optional[str] = typer.Option(None, "--series", help="SeriesNumber, or the index shown by `info` ('#N' always means the index)."),
    keep_tilt: bool = typer.Option(False, "--keep-tilt", help="Keep a gantry-tilted series sheared instead of resampling."),
    keep_gaps: bool = typer.Option(False, "--keep-gaps", help="Stack unevenly spaced slices as they are (approximate affine) instead of resampling."),
    philips_scaling: str = typer.Option("precise", "--philips-scaling", help="Philips values: 'precise' floating point (dcm2niix default) or 'display'."),
    no_sidecar: bool = typer.Option(False, "--no-sidecar", help="Do not write the BIDS JSON sidecar beside the output."),
    allow_index_grid: bool = typer.Option(False, "--allow-index-grid", help="Load frames without any patient geometry on a 1 mm index grid instead of refusing."),
) -> None:
    """Convert one series to NIfTI (RAS affine), NRRD (LPS) or MetaImage (.mha), with a BIDS JSON sidecar."""
    from medrecon.io.loader import convert as convert_series

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    src = [str(p) for p in path] if len(path) > 1 else str(path[0])
    with Progress(TextColumn("decoding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("decode", total=None)
        vol, _, js = convert_series(src, output, series=series, sidecar=not no_sidecar,
                                    correct_tilt=not keep_tilt, resample_gaps=not keep_gaps,
                                    philips_scaling=philips_scaling, allow_index_grid=allow_index_grid,
                                    progress=lambda done, total: bar.update(task, completed=done, total=total))
    for w in vol.meta.get("warnings", []):
        err_console.print(f"[yellow]warning:[/] {_terminal_safe(w)}", soft_wrap=True, highlight=False)
    console.print(f"wrote {_terminal_safe(output)}  shape={vol.shape}  spacing={tuple(round(float(s), 4) for s in vol.spacing)} mm"
                  + (f"  (+ {js.name})" if js is not None else ""), soft_wrap=True, highlight=False)


def _mesh_default(name: str):
    """A ``mesh`` option's default, read from the one place it is defined (``MeshConfig``)."""
    from medrecon.pipeline import MeshConfig

    return MeshConfig.model_fields[name].get_default(call_default_factory=True)


def _mesh_epilog() -> str:
    """The choices of ``mesh`` (presets, groups, built-in label tables), read from where they live."""
    presets = sorted(p.stem for p in (Path(__file__).parent / "configs" / "presets").glob("*.yaml"))
    return ("Presets (--preset): " + ", ".join(presets) + ".  "
            "Groups (--group, with --labels or --bundle): bones, organs, vessels, muscles, lungs, spine, ribs.  "
            "Label tables (--label-table): totalsegmentator (built in), or a Slicer .ctbl/.txt, CSV, JSON or "
            "nnU-Net dataset.json file.  --labels takes a label-map file or a TotalSegmentator output folder; "
            "--structures takes label values or names of that table.  "
            "Printing: check 'watertight=True' per structure and the volume %; see docs/user-guide.md "
            "('Printing checklist').")


@app.command(epilog=_mesh_epilog())
def mesh(
    ctx: typer.Context,
    input: Path = typer.Argument(..., help="DICOM folder/zip, NIfTI or NRRD volume."),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder."),
    preset: Optional[str] = typer.Option(None, "--preset", help="HU/intensity preset, e.g. ct-bone."),
    threshold: Optional[str] = typer.Option(None, "--threshold", help="Custom LOW:HIGH threshold."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Label map to mesh: NIfTI/NRRD, .seg.nrrd, a TotalSegmentator output folder (one mask per structure), DICOM SEG or RTSTRUCT (contours rasterised on the image grid)."),
    label_table: Optional[str] = typer.Option(None, "--label-table", help="Label table: built-in 'totalsegmentator', a Slicer .ctbl/.txt, CSV, JSON or nnU-Net dataset.json file."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="MONAI bundle folder to segment with."),
    group: Optional[str] = typer.Option(None, "--group", help="Structure group of the label table: bones, organs, vessels, muscles, lungs, spine or ribs."),
    device: str = typer.Option(_mesh_default("device"), "--device", help="auto, cpu or cuda:N: bundle inference and meshing (auto: the GPU when there is one)."),
    structures: Optional[str] = typer.Option(None, "--structures", help="Comma list of label values or names of the label table (e.g. 1,2 or femur_left,hip_left); checked before any inference."),
    formats: str = typer.Option(",".join(_mesh_default("formats")), "--formats", help="Comma list of stl,obj,ply,vtp,glb,3mf."),
    smoothing: float = typer.Option(_mesh_default("smoothing"), "--smoothing", help="Slicer smoothing factor 0..1."),
    reduction: float = typer.Option(_mesh_default("reduction"), "--reduction", help="Decimation: fraction of triangles removed (0..0.99)."),
    space: str = typer.Option(_mesh_default("space"), "--space", help="Coordinate space of written meshes: LPS or RAS."),
    min_component_mm3: Optional[float] = typer.Option(None, "--min-component-mm3", help="Drop components smaller than this (mm3)."),
    largest: bool = typer.Option(False, "--largest", help="Keep only the largest connected component (drops every separate piece: ribs, femurs... on a CT; prefer --remove-table)."),
    remove_table: bool = typer.Option(False, "--remove-table", help="CT presets: drop the scanner table (flat pieces outside the body, found by the air around them); every bone piece stays."),
    joint: bool = typer.Option(False, "--joint", help="Joint multi-label meshing (surface nets, shared boundaries)."),
    keep_volume: bool = typer.Option(False, "--keep-volume", help="After smoothing, move every vertex outward along its normal by one common distance so the enclosed volume matches the voxels (no rescale)."),
    series: Optional[str] = typer.Option(None, "--series", help="Series when the input holds several: SeriesNumber, or '#N' for the index shown by `info`."),
    slicer: bool = typer.Option(False, "--slicer", help="Also write a 3D Slicer scene (.mrml) with volume, segmentation and models."),
    no_preview: bool = typer.Option(False, "--no-preview", help="Skip PNG previews and the HTML viewer."),
    config: Optional[Path] = typer.Option(None, "--config", help="Recipe YAML (e.g. configs/ct-bone-print.yaml); options given on the command line override it."),
    subvoxel: bool = typer.Option(True, "--subvoxel/--binary-surface", help="Presets/thresholds: surface on the image's partial-volume iso-surface (default) or on the binary mask, as Slicer does."),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="Comma list of presets taken out of this structure (e.g. ct-teeth out of ct-bone)."),
    obj_axes: str = typer.Option("LPS", "--obj-axes", help="OBJ axes: LPS (3D Slicer) or YUP (Blender and other Y-up tools)."),
) -> None:
    """Segment (preset, threshold, label map or MONAI bundle) and write one mesh per structure."""
    from medrecon.pipeline import MeshConfig, run_mesh

    _check_device(device)

    make_cfg = MeshConfig
    if config is not None:  # recipe values, overridden by options given on the command line
        from medrecon.cohort.config import config_from_recipe

        given = {n for n in ctx.params if getattr(ctx.get_parameter_source(n), "name", "") == "COMMANDLINE"}
        make_cfg = lambda **kw: config_from_recipe(config, kw, given)  # noqa: E731
    cfg = make_cfg(
        input=str(input), outdir=str(outdir), preset=preset, threshold=threshold,
        labels=str(labels) if labels else None, label_table=label_table,
        bundle=str(bundle) if bundle else None, group=group, device=device,
        structures=[s.strip() for s in structures.split(",") if s.strip()] if structures else None,
        formats=[f.strip().lower() for f in formats.split(",") if f.strip()],
        smoothing=smoothing, reduction=reduction, space=space.upper(),
        min_component_mm3=min_component_mm3, largest=largest, remove_table=remove_table, joint=joint,
        keep_volume=keep_volume, series=series, slicer=slicer, preview=not no_preview, subvoxel=subvoxel,
        exclude=[e.strip() for e in exclude.split(",") if e.strip()] if exclude else None, obj_axes=obj_axes,
    )
    from medrecon.cli_display import StageProgress, print_warnings

    with StageProgress(console) as bar:
        result = run_mesh(cfg, progress=bar)
    from medrecon.cli_display import structure_summary

    structure_summary(console, result.models)
    print_warnings(err_console, result.warnings)
    for f in result.files:
        console.print(f"wrote {_terminal_safe(f)}", soft_wrap=True, highlight=False)
    console.print(f"[green]done[/]: {len(result.files)} files in {_terminal_safe(outdir)} "
                  f"(report: {_terminal_safe(result.report_path)})", soft_wrap=True, highlight=False)


@app.command()
def demo(
    outdir: Path = typer.Option(Path("medrecon-demo"), "-o", "--outdir", help="Output folder."),
) -> None:
    """Write a synthetic CT phantom as a DICOM series, mesh it, and say where the models are."""
    import time

    from medrecon.cli_display import StageProgress, demo_summary
    from medrecon.demo import run_demo

    t0 = time.perf_counter()
    with StageProgress(console) as bar:
        results = run_demo(outdir, progress=bar, log=lambda msg: console.print(msg, soft_wrap=True, highlight=False))
    demo_summary(console, results, outdir, time.perf_counter() - t0)


@app.command()
def segment(
    input: Path = typer.Argument(..., help="DICOM folder/zip, NIfTI or NRRD volume."),
    output: Path = typer.Option(..., "-o", "--output", help="Output label map (.nii.gz / .nrrd)."),
    bundle: Path = typer.Option(..., "--bundle", help="MONAI bundle folder (configs/, models/)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda:N."),
    series: Optional[str] = typer.Option(None, "--series", help="Series when the input holds several."),
    dicom_seg: Optional[Path] = typer.Option(None, "--dicom-seg", help="Also write the result as a DICOM SEG (.dcm) referencing the source series (DICOM input)."),
) -> None:
    """Run a local MONAI bundle and write its label map on the input's own grid."""
    from medrecon.cli_display import StageProgress
    from medrecon.segment.ai import segment_to_file

    _check_device(device)
    with StageProgress(err_console) as bar:
        res = segment_to_file(str(input), str(output), bundle=str(bundle), device=device, series=series, progress=bar)
    console.print(f"{len(res.found)} of {len(res.labels)} structures found "
                  f"({res.labelmap.meta.get('description', '')})", soft_wrap=True, highlight=False)
    console.print(f"wrote {_terminal_safe(res.path)}", soft_wrap=True, highlight=False)
    console.print(f"wrote {_terminal_safe(res.table_path)} (colour table: mesh --labels {_terminal_safe(res.path)} "
                  f"--label-table {_terminal_safe(res.table_path)})", soft_wrap=True, highlight=False)
    if dicom_seg is not None:
        from medrecon.io.dicom.seg import write_dicom_seg_for_source

        out = write_dicom_seg_for_source(res.labelmap, res.labels, str(input), dicom_seg, series=series)
        console.print(f"wrote {out} (DICOM SEG referencing the source series)")


@app.command()
def view(
    meshes: List[Path] = typer.Argument(..., help="Mesh files (STL/OBJ/PLY/VTP/GLB/3MF) or a report.json."),
    output: Path = typer.Option(Path("viewer.html"), "-o", "--output", help="Output HTML file."),
    title: Optional[str] = typer.Option(None, "--title", help="Page title (never a patient identifier)."),
) -> None:
    """Write one self-contained offline HTML viewer for the given meshes (rotate, zoom, show/hide, measure in mm)."""
    from medrecon.viz.html import write_viewer_from_files

    out = write_viewer_from_files([str(m) for m in meshes], str(output), title=title)
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, opens offline in any browser)",
                  soft_wrap=True, highlight=False)


@app.command()
def cohort(
    input: Path = typer.Argument(..., help="Folder of studies (one per sub-folder) or a CSV manifest (study_id, path, per-study settings)."),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder (studies/, cohort.sqlite, summary.csv, report.html)."),
    config: Optional[str] = typer.Option(None, "--config", help="Recipe YAML or its name in configs/ (default: ct-bone preset, STL)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="CPU worker processes of the local cluster (default: CPU count)."),
    gpus: str = typer.Option("auto", "--gpus", help="auto, none, or GPU indices like 0,1 (one GPU worker each; bundle recipes)."),
    memory_limit: Optional[str] = typer.Option(None, "--memory-limit", help="Memory per worker, e.g. 8GB (default: RAM / workers)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Existing Dask scheduler, tcp://HOST:8786 (or a scheduler JSON file)."),
    retries: int = typer.Option(2, "--retries", help="Retries after an unexpected error or a dead worker."),
    timeout: Optional[str] = typer.Option(None, "--timeout", help="Per-study time limit, e.g. 30m."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Skip studies already done with the same input and settings."),
    rerun_failed: bool = typer.Option(False, "--rerun-failed", help="Compute only the studies that failed before."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would run; write nothing, start nothing."),
    progress: str = typer.Option("rich", "--progress", help="rich (bar), plain or json (one line per event, for logs)."),
    layout: str = typer.Option("auto", "--layout", help="Folder layout: auto/subfolders (one study per sub-folder) or series (every series found)."),
    dashboard: bool = typer.Option(True, "--dashboard/--no-dashboard", help="Serve the Dask dashboard of the local cluster."),
) -> None:
    """Run a whole cohort of studies through the mesh pipeline on Dask: resumable, keeps going past bad studies."""
    from medrecon.cohort import json_printer, plain_printer, run as run_cohort
    from medrecon.cohort.progress import format_seconds

    mode = progress.strip().lower()
    if mode not in ("rich", "plain", "json"):
        raise typer.BadParameter("use rich, plain or json", param_hint="--progress")
    kw = dict(config=config, workers=workers, gpus=gpus, memory_limit=memory_limit, scheduler=scheduler,
              retries=retries, timeout=timeout, resume=resume, rerun_failed=rerun_failed, dry_run=dry_run,
              layout=layout, dashboard=dashboard)
    if mode == "rich" and not dry_run:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("cohort"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[counts]}"),
                      TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"), console=err_console) as bar:
            task = bar.add_task("cohort", total=None, counts="", eta="?")

            def draw(ev) -> None:
                if ev.kind == "info":
                    bar.console.print(ev.message, soft_wrap=True, highlight=False)
                    return
                if ev.kind == "study" and ev.status == "failed":
                    bar.console.print(f"[red]failed[/] {ev.study_id}: {ev.message}", soft_wrap=True, highlight=False)
                bar.update(task, total=ev.to_run, completed=ev.done + ev.failed, eta=format_seconds(ev.eta_s),
                           counts=f"done {ev.done}  failed {ev.failed}  running {ev.running}  skipped {ev.skipped}")

            res = run_cohort(input, outdir, progress=draw, **kw)
    else:
        printer = json_printer() if mode == "json" else plain_printer()
        res = run_cohort(input, outdir, progress=printer, **kw)
    c = res.counts
    if res.dry_run:
        if mode == "json":
            for it in res.plan:
                typer.echo(json.dumps({"kind": "plan", "study_id": it.study.study_id, "action": it.action,
                                       "reason": it.reason}))
        else:
            for it in res.plan:
                console.print(f"  {it.action:12s} {it.study.study_id}" + (f"  ({it.reason})" if it.reason else ""),
                              soft_wrap=True, highlight=False)
            console.print(f"dry run: {c['total']} studies; would run {c['run']}, skip {c['skipped']} done, "
                          f"record {c['recovered']} recovered; nothing written", highlight=False, soft_wrap=True)
        return
    if mode == "json":
        typer.echo(json.dumps({"kind": "result", **c, "failures": res.failures, "summary_csv": str(res.summary_csv),
                               "report_html": str(res.report_html), "elapsed_s": round(res.elapsed_s, 3)}))
    else:
        console.print(f"[green]cohort[/]: {c['done']} done, {c['failed']} failed, {c['skipped'] + c['recovered']} "
                      f"skipped (already done) of {c['total']} in {res.elapsed_s:.1f} s; summary: {res.summary_csv}, "
                      f"report: {res.report_html}", soft_wrap=True, highlight=False)
    if res.failures:
        sys.exit(3)  # some studies failed (listed in report.html / cohort.sqlite)


@app.command()
def photo(
    image: Path = typer.Argument(..., help="Picture (PNG, JPEG, TIFF, WebP...): a photo, drawing, diagram or logo."),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder."),
    method: str = typer.Option("inflate", "--method", help="inflate (rounded), relief (lithophane) or slab (flat, bevelled)."),
    depth_model: Optional[Path] = typer.Option(None, "--depth-model", help="Local ONNX file or Hugging Face folder of a depth model (never downloaded); adds its detail to inflate."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Mask picture (white = object); default: alpha channel, else found from the background."),
    thickness: float = typer.Option(1.0, "--thickness", help="Depth scale (1.0: round cross-sections)."),
    size_mm: float = typer.Option(100.0, "--size-mm", help="Real size of the picture's longest side, mm."),
    faces: int = typer.Option(100_000, "--faces", help="Target triangle count."),
) -> None:
    """One picture to a depth map and a closed, textured 3D model (GLB, OBJ, STL, PLY, viewer). The back is invented."""
    from medrecon.cli_display import StageProgress
    from medrecon.photo import PhotoOptions, run_photo

    def viewer(mesh, path):
        from medrecon.texture import sample_texture, to_surface_model
        from medrecon.viz.html import write_viewer

        return write_viewer([to_surface_model(mesh)], path, title="medrecon photo model",
                            vertex_colors=[sample_texture(mesh)])

    opts = PhotoOptions(method=method.strip().lower(), depth_model=str(depth_model) if depth_model else None,
                        mask=str(mask) if mask else None, thickness=thickness, size_mm=size_mm, faces=faces)
    with StageProgress(console, transient=True) as bar:
        res = run_photo(image, outdir, opts, progress=bar, viewer=viewer)
    qa = res.qa
    console.print(f"  {qa['faces']} triangles, watertight={qa['watertight']}, volume {qa['volume_mm3']:.0f} mm3, "
                  f"{qa['size_mm'][0]:.1f} x {qa['size_mm'][1]:.1f} x {2 * qa['max_height_mm']:.1f} mm, "
                  f"mask from {res.mask_source}", soft_wrap=True, highlight=False)
    console.print(f"[green]done[/]: {len(res.files)} files in {outdir} (report: {res.report_path}); "
                  "the back and depth are invented from the outline", soft_wrap=True, highlight=False)



@app.command()
def multiview(
    input: Path = typer.Argument(..., help="Folder of photos (PNG, JPEG, TIFF) or a video file (.mp4, .mov...)."),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder."),
    cameras: Optional[Path] = typer.Option(None, "--cameras", help="Known cameras: COLMAP text model folder (cameras.txt, images.txt)."),
    method: str = typer.Option("stereo", "--method", help="stereo (plane-sweep MVS + Poisson) or neural (NeuS-style SDF; meant for a GPU)."),
    scale_points: Optional[str] = typer.Option(None, "--scale-points", help="IMAGE:x1,y1:x2,y2:MM - two pixels of one photo and their real distance."),
    aruco_mm: Optional[float] = typer.Option(None, "--aruco-mm", help="Side of the ArUco markers in the photos, mm (gives the scale)."),
    masks: str = typer.Option("auto", "--masks", help="auto (uniform backdrop), none, or a folder of masks named like the photos."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (dense stage)."),
    max_images: Optional[int] = typer.Option(None, "--max-images", help="Use at most N photos / keyframes."),
    faces: int = typer.Option(30_000, "--faces", help="Target triangle count."),
    keep_all: bool = typer.Option(False, "--keep-all", help="Keep every surface piece (no floater removal)."),
    keep_ground: bool = typer.Option(False, "--keep-ground", help="Keep the support (table, turntable, floor) under the object."),
    keep_work: bool = typer.Option(False, "--keep-work", help="Keep OUTDIR/work (copies of the photos, camera database)."),
    frame: Optional[str] = typer.Option(None, "--frame", help="cameras (default with --cameras: the cameras' world frame and units) or object (+z up, centred)."),
    sign_key: Optional[Path] = typer.Option(None, "--sign-key", help="PEM private key for C2PA signing."),
    sign_cert: Optional[Path] = typer.Option(None, "--sign-cert", help="PEM certificate chain for C2PA signing."),
) -> None:
    """Many photos or a video of an object to a textured model (GLB, USDZ, OBJ, PLY, STL, cameras, viewer); in mm with a scale source, else in arbitrary units."""
    from medrecon.cli_display import StageProgress
    from medrecon.multiview.pipeline import MultiviewOptions, reconstruct_multiview

    def viewer(mesh, path):
        from medrecon.texture import sample_texture, to_surface_model
        from medrecon.viz.html import write_viewer

        return write_viewer([to_surface_model(mesh)], path, title="medrecon multi-view model",
                            vertex_colors=[sample_texture(mesh)], units=mesh.extras.get("units", "arbitrary"))

    def previews(mesh, path):
        from medrecon.texture import to_surface_model
        from medrecon.viz.preview import render_previews

        return render_previews([to_surface_model(mesh)], path, size_mm_bar=mesh.extras.get("units") == "mm",
                               title="medrecon multi-view model")

    opts = MultiviewOptions(method=method.strip().lower(), device=device, max_images=max_images, faces=faces,
                            masks=None if masks.strip().lower() == "none" else masks, scale_points=scale_points,
                            aruco_mm=aruco_mm, keep_all=keep_all, keep_ground=keep_ground, keep_work=keep_work,
                            frame=frame.strip().lower() if frame else None)
    with StageProgress(console, transient=True) as bar:
        res = reconstruct_multiview(input, outdir, cameras_dir=cameras, options=opts, progress=bar, viewer=viewer,
                                    previews=previews, sign_key=sign_key, sign_cert=sign_cert)
    r = res.report
    err = r["reprojection_error_px"]
    console.print(f"  cameras {r['cameras_registered']}/{r['cameras_total']} ({r['camera_source']})"
                  + (f", reprojection error {err:.2f} px" if err is not None else "")
                  + f"; {r['mesh']['faces']} triangles; units: {r['scale']['units']} ({r['scale']['source']})",
                  soft_wrap=True, highlight=False)
    dn = r.get("dense") or {}
    if dn.get("textured_pixels_with_depth") is not None:
        console.print(f"  depth for {dn['textured_pixels_with_depth']:.0%} of the textured pixels; removed: {r.get('removed')}",
                      soft_wrap=True, highlight=False)
    console.print(f"[green]done[/]: {len(res.files)} files in {outdir}", soft_wrap=True, highlight=False)

@app.command()
def anonymize(
    input: Path = typer.Argument(..., help="DICOM folder, zip or file."),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder for the de-identified copy."),
) -> None:
    """Write a de-identified copy of a DICOM series (DICOM basic confidentiality profile, consistent new UIDs)."""
    from medrecon.io.dicom.anonymize import anonymize_series

    res = anonymize_series(str(input), outdir)
    console.print(f"wrote {len(res.files)} de-identified file(s) to {_terminal_safe(outdir)}"
                  + (f" ({len(res.skipped)} non-DICOM file(s) skipped)" if res.skipped else ""),
                  soft_wrap=True, highlight=False)


@app.command()
def svr(
    stacks: List[Path] = typer.Argument(..., help="Thick-slice stacks: NIfTI/NRRD files or DICOM series folders."),
    output: Path = typer.Option(..., "-o", "--output", help="Output volume (.nii.gz/.nrrd); poses+weights JSON beside it."),
    method: str = typer.Option("svr", "--method", help="average, srr, svr (motion correction) or inr (neural field, GPU)."),
    spacing: Optional[float] = typer.Option(None, "--spacing", help="Output voxel size in mm (default: in-plane pixel size)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Region-of-interest mask (any grid)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
) -> None:
    """Reconstruct one isotropic volume from thick-slice stacks (slice-to-volume reconstruction)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from medrecon.svr import json_path_for, reconstruct_files

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        tasks: dict = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        res = reconstruct_files([str(s) for s in stacks], output, method=method, spacing=spacing,
                                mask=str(mask) if mask else None, device=device, progress=progress)
    sp = res.params.get("spacing_mm")
    console.print(f"wrote {_terminal_safe(output)} ({res.method}, {sp} mm, shape {res.volume.shape}) "
                  f"and {_terminal_safe(json_path_for(output))} in {res.timings.get('total', 0):.1f} s",
                  soft_wrap=True, highlight=False)


#: Top-level packages of the optional extras: a missing one names the extra to install.
_EXTRAS = {"torch": "ai", "monai": "ai", "slicerio": "slicer", "dask": "cohort", "distributed": "cohort",
           "bokeh": "cohort", "cv2": "photo", "skimage": "photo", "pyamg": "photo", "onnxruntime": "photo",
           "onnx": "photo", "onnxscript": "photo", "transformers": "photo",
           "pycolmap": "multiview", "av": "multiview", "xatlas": "multiview", "pxr": "multiview", "c2pa": "multiview",
           "dicomanonymizer": "reliability"}


def _terminal_safe(text: object) -> str:
    """One line for the terminal: control characters (newlines, ESC, ...) shown as escapes, never
    raw; rich markup in it (a path like ``a[/]b``) printed literally; no leading blank."""
    from rich.markup import escape

    out = []
    for ch in str(text):
        o = ord(ch)
        if o < 32 or 127 <= o < 160 or ch in "\u2028\u2029":
            out.append(repr(ch)[1:-1] if o < 256 else f"\\u{o:04x}")
        else:
            out.append(ch)
    return escape("".join(out).strip())


def _missing_extra(exc: BaseException) -> Optional[tuple[str, str]]:
    """(extra, package) when a package of an optional extra is missing, anywhere in the chain."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ImportError):
            name = (getattr(exc, "name", None) or "").split(".")[0]
            if name in _EXTRAS:
                return _EXTRAS[name], name
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _safe_warnings() -> None:
    """Library warnings and log records (which may quote file names) reach the terminal as one
    escaped line each, never raw control characters."""
    import logging
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        err_console.print(f"[yellow]warning:[/] {_terminal_safe(message)}", soft_wrap=True, highlight=False)

    warnings.showwarning = show

    class _Safe(logging.Handler):
        def emit(self, record):
            try:
                err_console.print(f"[yellow]{record.levelname.lower()}:[/] {_terminal_safe(record.getMessage())}",
                                  soft_wrap=True, highlight=False)
            except Exception:  # noqa: BLE001 - logging must never fail the command
                pass

    logging.lastResort = _Safe(logging.WARNING)


def _check_device(device: str) -> None:
    """``--device cuda...`` where PyTorch has no CUDA: say why and how to get a CUDA build, up front."""
    if not str(device).strip().lower().startswith("cuda"):
        return
    try:
        import torch
    except ImportError:
        return  # the missing [ai] extra is reported where torch is needed
    if torch.cuda.is_available():
        return
    if getattr(torch.version, "cuda", None) is None:
        why = f"this PyTorch ({torch.__version__}) is a CPU-only build"
    else:
        why = f"this PyTorch (CUDA {torch.version.cuda}) sees no GPU (driver missing or CUDA_VISIBLE_DEVICES empty)"
    _fail("error", f"--device {_terminal_safe(device)}: {why}; use --device cpu (or auto), or install a CUDA build "
                   "of torch: docs/user-guide.md, section 'Installing with a CUDA torch'")


def _quiet_third_party() -> None:
    """Third-party noise (MONAI's optional-reader notices, FutureWarning/DeprecationWarning of
    dependencies) stays off the terminal; medrecon's own warnings still show."""
    import logging
    import warnings

    for cat in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=cat)
    warnings.filterwarnings("ignore", message=r".*nvImageCodec.*")
    warnings.filterwarnings("ignore", message=r".*nvimgcodec.*")
    warnings.filterwarnings("ignore", module=r"(monai|torch|timm|transformers|dask|distributed)(\..*)?$",
                            category=UserWarning)
    for name in ("monai", "torch", "nibabel", "pydicom", "distributed", "PIL", "trimesh"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _fail(prefix: str, message: str) -> None:
    err_console.print(f"[red]{prefix}:[/] {message}", soft_wrap=True, highlight=False)
    sys.exit(2)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: run the app; every failure is one line on stderr and exit code 2.

    * :class:`~medrecon.errors.MedreconError` and usage errors: ``error: <message>``;
    * a missing optional package: ``error: ... needs the [ai] extra: pip install 'medrecon[ai]'``;
    * anything else (a bug): ``internal error: <type>: <message> (run with --debug ...)``.

    Messages never carry raw control characters or rich markup from file names. Only typer's
    public API is used (no private click module). ``--debug`` may stand anywhere on the
    command line; it shows tracebacks.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    _safe_warnings()
    _quiet_third_party()
    debug = "--debug" in args
    if debug:  # accepted anywhere, handed to the root callback once
        args = ["--debug"] + [a for a in args if a != "--debug"]
    try:
        app(args=args, prog_name="medrecon", standalone_mode=False)
    except MedreconError as exc:
        if debug:
            raise
        _fail("error", _terminal_safe(exc))
    except (typer.Exit, SystemExit) as exc:  # normal exits
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:
        if callable(getattr(exc, "format_message", None)) and hasattr(exc, "exit_code"):
            # click's usage errors (unknown option, missing argument...), vendored or not
            if type(exc).__name__ == "Abort":
                sys.exit(130)
            hint = ""
            ctx = getattr(exc, "ctx", None)
            if ctx is not None and getattr(ctx, "command_path", None):
                hint = f" (see: {_terminal_safe(ctx.command_path)} --help)"
            _fail("error", _terminal_safe(exc.format_message()) + hint)
        if debug:
            raise
        missing = _missing_extra(exc)
        if missing is not None:
            extra, name = missing
            _fail("error", _terminal_safe(f"this command needs the optional [{extra}] extra (missing package "
                                          f"{name!r}): pip install 'medrecon[{extra}]'"))
        _fail("internal error", _terminal_safe(f"{type(exc).__name__}: {exc}") + " (run with --debug for the traceback)")


if __name__ == "__main__":
    main()
