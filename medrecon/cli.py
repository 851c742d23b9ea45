"""Command-line interface (typer). Thin: parse options, call the library, print.

Errors: a :class:`~medrecon.errors.MedreconError` prints one line on stderr and exits with
code 2; the traceback is shown only with ``--debug``.

Fast to start: nothing heavy (the pipeline, numpy, PyTorch, VTK, pydicom) is imported before a
command needs it. Options are declared once: ``mesh`` is built from
:class:`medrecon.mesh_config.MeshConfig` (:mod:`medrecon.cli_options`), ``--device`` and
``--series`` from :mod:`medrecon.options`, the ``--method`` choices from the registry
:mod:`medrecon.methods`, the mesh formats from :data:`medrecon.io.meshes.MESH_FORMATS`; commands
built from models are built only when they run or show their help.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from medrecon.errors import MedreconError
from medrecon.options import DEVICE_HELP, SERIES_HELP

_APP_SETTINGS = dict(
    add_completion=False,
    no_args_is_help=True,
    help="medrecon: medical images (DICOM, NIfTI, NRRD) to 3D models with exact geometry.",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: starts in a fraction of the time of rich's panels
)
#: The commands declared with their options in this file; ``mesh`` is added by :func:`build_command`.
app = typer.Typer(**_APP_SETTINGS)
console = Console(stderr=False)
err_console = Console(stderr=True)
_STATE = {"debug": False}


def _device_option(default: str = "auto"):
    """``--device``: declared once (:data:`medrecon.options.DEVICE_HELP`)."""
    return typer.Option(default, "--device", help=DEVICE_HELP)


def _series_option():
    """``--series``: declared once for every command that takes a DICOM folder."""
    return typer.Option(None, "--series", help=SERIES_HELP)


def _method_option(family: str, default: str):
    """``--method`` of a method family; its help lists what :mod:`medrecon.methods` holds when the
    command line is built (:func:`build_command`), so a registered method shows up."""
    return typer.Option(default, "--method", help=f"{family} method")


#: Commands whose ``--method`` choices come from the method registry (command -> family).
METHOD_FAMILIES = {"svr": "svr", "photo": "photo", "multiview": "multiview"}


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
        from medrecon.cli_display import plural

        console.print(f"{len(rows) - n_obj} series, {n_vol} loadable as {'a volume' if n_vol == 1 else 'volumes'}"
                      + (f", {plural(n_obj, 'kind')} of non-image object skipped" if n_obj else "")
                      + ("; choose one with --series N (SeriesNumber, or '#N' for the index)" if n_vol > 1 else ""),
                      highlight=False)  # wrapped at words on narrow terminals


@app.command()
def convert(
    path: List[Path] = typer.Argument(..., help="DICOM folder, zip or files; NIfTI or NRRD file."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .nii/.nii.gz/.nrrd/.mha file."),
    series: Optional[str] = _series_option(),
    keep_tilt: bool = typer.Option(False, "--keep-tilt", help="Keep a gantry-tilted series sheared instead of resampling."),
    keep_gaps: bool = typer.Option(False, "--keep-gaps", help="Stack unevenly spaced slices as they are (approximate affine) instead of resampling."),
    philips_scaling: str = typer.Option("precise", "--philips-scaling", help="Philips values: 'precise' floating point (dcm2niix default) or 'display'."),
    no_sidecar: bool = typer.Option(False, "--no-sidecar", help="Do not write the BIDS JSON sidecar beside the output."),
    allow_index_grid: bool = typer.Option(False, "--allow-index-grid", help="Load frames without any patient geometry on a 1 mm index grid instead of refusing."),
) -> None:
    """Convert one series to NIfTI (RAS affine), NRRD (LPS) or MetaImage (.mha), with a BIDS JSON sidecar."""
    from medrecon.io.loader import convert as convert_series

    from medrecon.cli_display import StageProgress

    src = [str(p) for p in path] if len(path) > 1 else str(path[0])
    with StageProgress(console, transient=True) as bar:
        vol, _, js = convert_series(src, output, series=series, sidecar=not no_sidecar,
                                    correct_tilt=not keep_tilt, resample_gaps=not keep_gaps,
                                    philips_scaling=philips_scaling, allow_index_grid=allow_index_grid,
                                    progress=bar)
    for w in vol.meta.get("warnings", []):
        err_console.print(f"[yellow]warning:[/] {_terminal_safe(w)}", soft_wrap=True, highlight=False)
    console.print(f"wrote {_terminal_safe(output)}  shape={vol.shape}  spacing={tuple(round(float(s), 4) for s in vol.spacing)} mm"
                  + (f"  (+ {js.name})" if js is not None else ""), soft_wrap=True, highlight=False)


def _mesh_epilog() -> str:
    """The choices of ``mesh`` (presets, groups, formats, built-in label tables), read from where they live."""
    from medrecon.io.meshes import MESH_FORMATS
    from medrecon.labelmap import GROUPS

    presets = sorted(p.stem for p in (Path(__file__).parent / "configs" / "presets").glob("*.yaml"))
    formats = [n for n, f in MESH_FORMATS.items() if getattr(f, "can_write", getattr(f, "write", True))]
    return ("Presets (--preset): " + ", ".join(presets) + ".  "
            "Groups (--group, with --labels or --bundle): " + ", ".join(GROUPS) + ".  "
            "Formats (--formats): " + ", ".join(formats) + ".  "
            "Label tables (--label-table): totalsegmentator (built in), or a Slicer .ctbl/.txt, CSV, JSON or "
            "nnU-Net dataset.json file.  --labels takes a label-map file or a TotalSegmentator output folder; "
            "--structures takes label values or names of that table.  "
            "Printing: check 'watertight=True' per structure and the volume %; see docs/user-guide.md "
            "('Printing checklist').")


_MESH_HELP = "Segment (preset, threshold, label map or MONAI bundle) and write one mesh per structure."
_CONFIG_HELP = "Recipe YAML (e.g. configs/ct-bone-print.yaml); options given on the command line override it."


def _mesh(ctx: typer.Context, **values) -> None:
    """Run ``mesh`` with the options the command line gave (built from :class:`MeshConfig`)."""
    from medrecon.cli_options import given_options, model_values
    from medrecon.mesh_config import MeshConfig

    config = values.pop("config", None)
    kw = model_values(MeshConfig, values)
    kw["space"] = str(kw.get("space", "LPS")).upper()
    _check_device(kw.get("device", "auto"))
    if config is not None:  # recipe values, overridden by options given on the command line
        from medrecon.recipes import config_from_recipe

        cfg = config_from_recipe(config, kw, given_options(ctx))
    else:
        cfg = MeshConfig(**kw)
    from medrecon.cli_display import StageProgress, print_warnings, structure_summary
    from medrecon.mesh_pipeline import run_mesh

    with StageProgress(console) as bar:
        result = run_mesh(cfg, progress=bar)
    structure_summary(console, result.models)
    print_warnings(err_console, result.warnings)
    for f in result.files:
        console.print(f"wrote {_terminal_safe(f)}", soft_wrap=True, highlight=False)
    from medrecon.cli_display import plural

    console.print(f"[green]done[/]: {plural(len(result.files), 'file')} in {_terminal_safe(cfg.outdir)} "
                  f"(report: {_terminal_safe(result.report_path)})", soft_wrap=True, highlight=False)


def mesh_command(full: bool = True):
    """``(function, command settings)`` of ``mesh``: its options built from :class:`MeshConfig`
    (``full``), or only its name and summary (listing the commands imports no model)."""
    import inspect

    def mesh(ctx: typer.Context, **values) -> None:
        _mesh(ctx, **values)

    mesh.__doc__ = _MESH_HELP
    if not full:
        mesh.__signature__ = inspect.Signature([])
        return mesh, {}
    from medrecon.cli_options import model_parameters
    from medrecon.mesh_config import MeshConfig

    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
              *model_parameters(MeshConfig),
              inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                default=typer.Option(None, "--config", help=_CONFIG_HELP))]
    mesh.__signature__ = inspect.Signature(params)
    return mesh, {"epilog": _mesh_epilog()}


_PHOTO_HELP = ("One picture to a depth map and a closed, textured 3D model (GLB, OBJ, STL, PLY, viewer). "
               "The back is invented.")


def _photo(image: Path, outdir: Path, **values) -> None:
    """Run ``photo`` with the options the command line gave (built from :class:`PhotoOptions`)."""
    from medrecon.cli_display import StageProgress, plural
    from medrecon.cli_options import model_values
    from medrecon.methods import get_method
    from medrecon.photo import PhotoOptions

    kw = model_values(PhotoOptions, values)
    method = get_method("photo", kw.get("method", "inflate"))
    opts = PhotoOptions(**{**kw, "method": method.name})
    with StageProgress(console) as bar:
        res = method.function()(image, outdir, opts, progress=bar, viewer=_textured_viewer("medrecon photo model"))
    qa = res.qa
    ex, pic = qa["extent_mm"], qa["size_mm"]  # the model's own extent (the STL's), and the picture's
    console.print(f"  {qa['faces']} triangles, watertight={qa['watertight']}, volume {qa['volume_mm3']:.0f} mm3, "
                  f"model {ex[0]:.1f} x {ex[1]:.1f} x {ex[2]:.1f} mm (picture {pic[0]:.1f} x {pic[1]:.1f} mm), "
                  f"mask from {res.mask_source}", soft_wrap=True, highlight=False)
    console.print(f"[green]done[/]: {plural(len(res.files), 'file')} in {outdir} (report: {res.report_path}); "
                  "the back and depth are invented from the outline", soft_wrap=True, highlight=False)


def photo_command(full: bool = True):
    """``photo``: the picture and the output folder, then the fields of :class:`PhotoOptions`."""
    import inspect

    def photo(**values) -> None:
        _photo(**values)

    photo.__doc__ = _PHOTO_HELP
    if not full:
        photo.__signature__ = inspect.Signature([])
        return photo, {}
    from medrecon.cli_options import model_parameters
    from medrecon.photo import PhotoOptions

    kw = inspect.Parameter.KEYWORD_ONLY
    photo.__signature__ = inspect.Signature([
        inspect.Parameter("image", kw, annotation=Path, default=typer.Argument(
            ..., help="Picture (PNG, JPEG, TIFF, WebP...): a photo, drawing, diagram or logo.")),
        inspect.Parameter("outdir", kw, annotation=Path, default=typer.Option(..., "-o", "--outdir",
                                                                              help="Output folder.")),
        *model_parameters(PhotoOptions)])
    return photo, {}


#: Commands built from options models: name -> (builder(full) -> (function, settings), where the
#: command stands in the list of commands).
MODEL_COMMANDS = {"mesh": (mesh_command, 2), "photo": (photo_command, 7)}


def build_command(selected: Optional[str] = None, full: bool = False):
    """The click command of the whole CLI. Commands built from models are built fully when
    ``selected`` names them (or ``full``); otherwise only their name and summary are listed."""
    import typer.main

    run_app = typer.Typer(**_APP_SETTINGS)
    run_app.registered_callback = app.registered_callback
    run_app.registered_commands = list(app.registered_commands)
    for name, (builder, position) in MODEL_COMMANDS.items():
        fn, settings = builder(full or selected == name)
        run_app.command(name=name, **settings)(fn)
        run_app.registered_commands.insert(position, run_app.registered_commands.pop())
    group = typer.main.get_command(run_app)
    for name, family in METHOD_FAMILIES.items():
        cmd = getattr(group, "commands", {}).get(name)
        for p in getattr(cmd, "params", []):
            if p.name == "method":
                from medrecon.methods import method_help

                p.help = method_help(family) + "."
    for cmd in [group, *getattr(group, "commands", {}).values()]:
        if cmd is not group and cmd.help and not cmd.short_help:  # the whole summary line, never cut at 45 characters
            cmd.short_help = cmd.help.strip().split("\n\n")[0].replace("\n", " ")
        for p in cmd.params:  # a flag takes no value: show no value type (never "--json <bool>")
            if getattr(p, "is_flag", False):
                p.metavar = ""
            elif getattr(p, "param_type_name", "") == "argument" and p.metavar is None:
                p.metavar = p.name.upper()  # INPUT, PATH
        helper = cmd.get_help_option(typer.Context(cmd))
        if helper is not None:
            helper.metavar = ""
    return group


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
    device: str = _device_option(),
    series: Optional[str] = _series_option(),
    dicom_seg: Optional[Path] = typer.Option(None, "--dicom-seg", help="Also write the result as a DICOM SEG (.dcm) referencing the source series (DICOM input)."),
) -> None:
    """Run a local MONAI bundle and write its label map on the input's own grid."""
    from medrecon.cli_display import StageProgress
    from medrecon.segment.ai import segment_to_file

    _check_device(device)
    with StageProgress(console) as bar:
        res = segment_to_file(str(input), str(output), bundle=str(bundle), device=device, series=series, progress=bar)
    from medrecon.cli_display import plural

    console.print(f"{len(res.found)} of {plural(len(res.labels), 'structure')} found "
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

    mode = progress.strip().lower()
    if mode not in ("rich", "plain", "json"):
        raise typer.BadParameter("use rich, plain or json", param_hint="--progress")
    kw = dict(config=config, workers=workers, gpus=gpus, memory_limit=memory_limit, scheduler=scheduler,
              retries=retries, timeout=timeout, resume=resume, rerun_failed=rerun_failed, dry_run=dry_run,
              layout=layout, dashboard=dashboard)
    if mode == "rich" and not dry_run:
        from medrecon.cli_display import CohortProgress

        with CohortProgress(err_console) as bar:
            res = run_cohort(input, outdir, progress=bar, **kw)
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
def multiview(
    input: Path = typer.Argument(..., help="Folder of photos (PNG, JPEG, TIFF) or a video file (.mp4, .mov...)."),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder."),
    cameras: Optional[Path] = typer.Option(None, "--cameras", help="Known cameras: COLMAP text model folder (cameras.txt, images.txt)."),
    method: str = _method_option("multiview", "stereo"),
    scale_points: Optional[str] = typer.Option(None, "--scale-points", help="IMAGE:x1,y1:x2,y2:MM - two pixels of one photo and their real distance."),
    aruco_mm: Optional[float] = typer.Option(None, "--aruco-mm", help="Side of the ArUco markers in the photos, mm (gives the scale)."),
    masks: str = typer.Option("auto", "--masks", help="auto (uniform backdrop), none, or a folder of masks named like the photos."),
    device: str = _device_option(),
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
    from medrecon.cli_display import StageProgress, plural
    from medrecon.methods import get_method
    from medrecon.multiview.pipeline import MultiviewOptions

    reconstruct_multiview = get_method("multiview", method).function()

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
        res = reconstruct_multiview(input, outdir, cameras_dir=cameras, options=opts, progress=bar,
                                    viewer=_textured_viewer("medrecon multi-view model"),
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
    console.print(f"[green]done[/]: {plural(len(res.files), 'file')} in {outdir}", soft_wrap=True, highlight=False)

@app.command()
def anonymize(
    input: Path = typer.Argument(..., help="DICOM folder, zip or file."),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder for the de-identified copy."),
) -> None:
    """Write a de-identified copy of a DICOM series (DICOM basic confidentiality profile, consistent new UIDs)."""
    from medrecon.io.dicom.anonymize import anonymize_series

    res = anonymize_series(str(input), outdir)
    from medrecon.cli_display import plural

    console.print(f"wrote {plural(len(res.files), 'de-identified file')} to {_terminal_safe(outdir)}"
                  + (f" ({plural(len(res.skipped), 'non-DICOM file')} skipped)" if res.skipped else ""),
                  soft_wrap=True, highlight=False)


@app.command()
def svr(
    stacks: List[Path] = typer.Argument(..., help="Thick-slice stacks: NIfTI/NRRD files or DICOM series folders."),
    output: Path = typer.Option(..., "-o", "--output", help="Output volume (.nii.gz/.nrrd); poses+weights JSON beside it."),
    method: str = _method_option("svr", "svr"),
    spacing: Optional[float] = typer.Option(None, "--spacing", help="Output voxel size in mm (default: in-plane pixel size)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Region-of-interest mask (any grid)."),
    device: str = _device_option(),
    series: Optional[str] = _series_option(),
) -> None:
    """Reconstruct one isotropic volume from thick-slice stacks (slice-to-volume reconstruction)."""
    from medrecon.cli_display import StageProgress
    from medrecon.methods import get_method
    from medrecon.svr import json_path_for

    m = get_method("svr", method)
    with StageProgress(console) as bar:
        res = m.function()([str(s) for s in stacks], output, method=m.name, spacing=spacing,
                           mask=str(mask) if mask else None, device=device, series=series, progress=bar)
    sp = res.params.get("spacing_mm")
    sp = f"{float(sp):.3g}" if isinstance(sp, (int, float)) else sp  # a voxel size to 3 figures (2.5, not 2.4999999)
    console.print(f"wrote {_terminal_safe(output)} ({res.method}, {sp} mm, shape {res.volume.shape}) "
                  f"and {_terminal_safe(json_path_for(output))} in {res.timings.get('total', 0):.1f} s",
                  soft_wrap=True, highlight=False)


def _textured_viewer(title: str):
    """The ``viewer`` hook of ``photo`` and ``multiview``: a textured mesh as the offline HTML viewer."""

    def viewer(mesh, path):
        from medrecon.mesh import vertex_rgb
        from medrecon.texture import to_surface_model
        from medrecon.viz.html import write_viewer

        return write_viewer([to_surface_model(mesh)], path, title=title, vertex_colors=[vertex_rgb(mesh)],
                            units=mesh.extras.get("units", "mm"))

    return viewer


def _terminal_safe(text: object) -> str:
    from medrecon.cli_display import terminal_safe

    return terminal_safe(text)


def _safe_warnings() -> None:
    from medrecon.cli_display import safe_warnings

    safe_warnings(err_console)


def _quiet_third_party() -> None:
    from medrecon.cli_display import quiet_third_party

    quiet_third_party()


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
    selected = next((a for a in args if not a.startswith("-")), None)
    try:
        build_command(selected)(args=args, prog_name="medrecon", standalone_mode=False)
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
            if type(exc).__name__ == "NoArgsIsHelpError":  # `medrecon` alone: the help, as click prints it
                typer.echo(exc.format_message())
                sys.exit(2)
            hint = ""
            ctx = getattr(exc, "ctx", None)
            if ctx is not None and getattr(ctx, "command_path", None):
                hint = f" (see: {_terminal_safe(ctx.command_path)} --help)"
            _fail("error", _terminal_safe(exc.format_message()) + hint)
        if debug:
            raise
        from medrecon.cli_display import missing_extra

        missing = missing_extra(exc)
        if missing is not None:
            extra, name = missing
            _fail("error", _terminal_safe(f"this command needs the optional [{extra}] extra (missing package "
                                          f"{name!r}): pip install 'medrecon[{extra}]'"))
        _fail("internal error", _terminal_safe(f"{type(exc).__name__}: {exc}") + " (run with --debug for the traceback)")


if __name__ == "__main__":
    main()
