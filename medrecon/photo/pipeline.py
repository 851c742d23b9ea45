"""One picture to a depth map and a closed, textured 3D model: the ``medrecon photo`` pipeline.

:func:`reconstruct` works in memory (picture in, :class:`PhotoResult` out);
:func:`run_photo` reads the picture, runs it and writes every output:

=====================  =====================================================================
``depth.npy``          front height above the picture plane, mm, float32, picture size (0 off the object)
``depth16.png``        the same as 16-bit PNG; ``meta.json`` gives ``mm_per_unit``
``depth_preview.png``  the height map in false colour (viewing aid)
``mask.png``           the object's mask (255 = object)
``model.glb``          textured glTF 2.0 (PBR, non-metallic), provenance in ``asset.extras``
``model.obj/.mtl/.png`` OBJ with its material and texture
``model.stl``          geometry only (mm)
``model.ply``          vertex colours
``preview.png``        software renders from three angles
``viewer.html``        offline viewer (written by a hook from the caller's floor, see below)
``meta.json``          units, scales, frames, method
``report.json``        provenance, parameters, QA (watertight, volume...), timings, files
=====================  =====================================================================

Model frame: mesh vertices are LPS mm (the project's convention) converted from the "view"
frame (x to the right of the picture, y up, z toward the camera) by
:func:`medrecon.orientation.yup_mm_to_lps`, so the GLB shows the picture's front toward a viewer
looking down -Z. ``size_mm`` is the real size of the picture's longest side.

The viewer lives above this floor (``medrecon.viz``); callers pass ``viewer`` (a callable
``(SurfaceModel, Path) -> Path``) to have it written and listed in the report.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from medrecon.errors import InputError, MedreconError
from medrecon.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from medrecon.photo import depth as D
from medrecon.photo.image import load_image, load_mask_file
from medrecon.photo.mask import clean_mask, foreground_mask
from medrecon.mesh import signed_volume
from medrecon.photo.mesh import build_closed_mesh, edge_check, uv_from_xy
from medrecon.surface.decimate import decimate_closed
from medrecon.io.images import png_bytes
from medrecon.io.meshes import write_models
from medrecon.mesh import PBRMaterial, SurfaceModel
from medrecon.orientation import yup_mm_to_lps
from medrecon.texture import pad_texture
from medrecon.options import dataclass_option as opt
from medrecon.progress import ProgressEvent, ProgressFn

__all__ = ["PhotoOptions", "PhotoResult", "reconstruct", "run_photo", "METHODS"]

METHODS = ("inflate", "relief", "slab")
Progress = ProgressFn


@dataclass
class PhotoOptions:
    """Settings of one run (see ``medrecon photo --help``).

    Parameters
    ----------
    method : "inflate", "relief" or "slab"
    depth_model : local ONNX file or Hugging Face folder, optional (detail fused onto ``inflate``)
    mask : path of a mask picture, optional
    thickness : float, scales the depth (1.0 = round cross-sections for ``inflate``)
    size_mm : float, real size of the picture's longest side
    faces : int, target triangle count of the model
    geometry_px : int, optional, long side of the depth/mesh grid (default: from ``faces``)
    texture_px : int, longest side of the texture image (the picture is downscaled if larger)
    detail : float, strength of the learned detail (fraction of the tallest point)
    previews : bool, write ``preview.png`` and ``depth_preview.png``
    """

    method: str = opt("inflate", "Method (the choices: medrecon photo --help).")
    depth_model: str | None = opt(None, "Local ONNX file or Hugging Face folder of a depth model (never downloaded); "
                                  "adds its detail to inflate.", path=True)
    mask: str | None = opt(None, "Mask picture (white = object); default: alpha channel, else found from the "
                           "background.", path=True)
    thickness: float = opt(1.0, "Depth scale (1.0: round cross-sections).")
    size_mm: float = opt(100.0, "Real size of the picture's longest side, mm.")
    faces: int = opt(100_000, "Target triangle count.")
    geometry_px: int | None = None
    texture_px: int = 2048
    detail: float = 0.15
    previews: bool = True

    def check(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"unknown method {self.method!r}; use one of {', '.join(METHODS)}")
        if not (self.thickness > 0 and np.isfinite(self.thickness)):
            raise InputError(f"--thickness must be > 0, got {self.thickness}")
        if not (self.size_mm > 0 and np.isfinite(self.size_mm)):
            raise InputError(f"--size-mm must be > 0, got {self.size_mm}")
        if int(self.faces) < 200:
            raise InputError(f"--faces must be at least 200, got {self.faces}")
        if self.geometry_px is not None and int(self.geometry_px) < 8:
            raise InputError(f"geometry_px must be at least 8, got {self.geometry_px}")
        if self.depth_model and self.method != "inflate":
            raise InputError("--depth-model adds detail to the inflate method; use --method inflate")


@dataclass
class PhotoResult:
    """What :func:`reconstruct` produces (and :func:`run_photo` writes)."""

    mesh: SurfaceModel                 # LPS mm, textured
    mask: np.ndarray                   # (H, W) bool, picture size
    height_mm: np.ndarray              # (H, W) float32 front height, mm, picture size
    back_mm: np.ndarray                # (H, W) float32 back depth (>= 0), mm, picture size
    grid_mask: np.ndarray              # depth/mesh grid
    grid_front: np.ndarray             # heights on the grid, pixels of the grid
    grid_back: np.ndarray
    pixel_mm: float                    # mm per pixel of the picture
    grid_pixel_mm: float               # mm per pixel of the grid
    mask_source: str
    qa: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    report_path: Path | None = None


def _tick(progress: Progress | None, stage: str, done: int, total: int) -> None:
    """Report ``photo`` then ``photo <stage>``: one bar whose text names the stage."""
    if progress is not None:
        progress(ProgressEvent("photo", done, total, message=None if done == 0 else stage))


def _grid_scale(n_mask: int, shape: tuple[int, int], faces: int, geometry_px: int | None) -> float:
    """Scale from the picture to the depth/mesh grid."""
    if geometry_px is not None:
        return min(1.0, float(geometry_px) / max(shape))
    # the closed grid mesh has 16 triangles per masked pixel; aim at ~2x the target, then decimate
    target_px = 2.0 * faces / 16.0
    s = np.sqrt(target_px / max(n_mask, 1))
    s = min(s, 640.0 / max(shape))  # the solve stays fast
    return float(min(1.0, max(s, 24.0 / max(shape))))


def _resize(a: np.ndarray, w: int, h: int, interp: int) -> np.ndarray:
    import cv2

    return cv2.resize(a, (w, h), interpolation=interp)


def reconstruct(rgb: np.ndarray, alpha: np.ndarray | None = None, user_mask: np.ndarray | None = None,
                options: PhotoOptions | None = None, depth_model=None,
                progress: Progress | None = None) -> PhotoResult:
    """Picture to textured closed mesh, in memory.

    Parameters
    ----------
    rgb : (H, W, 3) uint8
    alpha : (H, W) uint8, optional (transparency = background)
    user_mask : (H, W) bool, optional
    options : PhotoOptions
    depth_model : a loaded :class:`medrecon.photo.learned.DepthModel`, optional
        (``options.depth_model`` is loaded when this is None)
    progress : callable(stage, done, total), optional

    Raises
    ------
    MedreconError
        Bad options, an empty mask, a missing or wrong depth model.
    """
    import cv2

    opts = options or PhotoOptions()
    opts.check()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    H, W = rgb.shape[:2]
    stages = 5
    _tick(progress, "mask", 0, stages)
    if opts.method == "relief" and user_mask is None and alpha is None:
        mask, src = np.ones((H, W), bool), "whole picture (relief)"
    else:
        mask, src = foreground_mask(rgb, alpha=alpha, user_mask=user_mask)
    timings["mask_s"] = time.perf_counter() - t0

    # depth grid
    t = time.perf_counter()
    _tick(progress, "depth", 1, stages)
    s = _grid_scale(int(mask.sum()), (H, W), int(opts.faces), opts.geometry_px)
    gh, gw = max(2, int(round(H * s))), max(2, int(round(W * s)))
    if (gh, gw) == (H, W):
        gmask = mask.copy()
    else:
        gmask = _resize(mask.astype(np.float32), gw, gh, cv2.INTER_AREA) > 0.5
        gmask = clean_mask(gmask, min_speck_frac=0.0, max_hole_frac=0.0, min_speck_px=1)
        if not gmask.any():
            raise MedreconError("the object is too small for the mesh grid; raise --faces")
    grid_pixel_mm = float(opts.size_mm) / max(gh, gw)
    pixel_mm = float(opts.size_mm) / max(H, W)
    long_px = max(gh, gw)
    if opts.method == "inflate":
        base = D.inflate(gmask, thickness=opts.thickness)
        front, back = base, base.copy()  # symmetric about the picture plane
        if opts.depth_model is not None or depth_model is not None:
            from medrecon.photo.learned import fuse_detail, load_depth_model

            t_l = time.perf_counter()
            model = depth_model or load_depth_model(opts.depth_model)
            learned = model.predict(rgb)  # picture size
            g_learned = _resize(learned.astype(np.float32), gw, gh, cv2.INTER_AREA)
            front = fuse_detail(base, g_learned, gmask, strength=opts.detail)  # detail on the front only
            timings["learned_s"] = time.perf_counter() - t_l
    elif opts.method == "slab":
        front = D.slab(gmask, 0.04 * long_px * opts.thickness)
        back = front.copy()
    else:  # relief
        gray = D.luminance(_resize(rgb, gw, gh, cv2.INTER_AREA))
        front, back = D.relief(gray, gmask, depth_px=0.03 * long_px * opts.thickness, base_px=0.015 * long_px)
    timings["depth_s"] = time.perf_counter() - t

    # mesh
    t = time.perf_counter()
    _tick(progress, "mesh", 2, stages)
    g = build_closed_mesh(gmask, front, back, pixel_mm=grid_pixel_mm)
    raw_faces = len(g.faces)
    v, f, dec = decimate_closed(g.vertices, g.faces, target_faces=int(opts.faces))
    decimated = dec["method"] != "none"
    width_mm, height_mm = gw * grid_pixel_mm, gh * grid_pixel_mm
    uv = uv_from_xy(v[:, :2], width_mm, height_mm) if decimated else g.uv
    timings["mesh_s"] = time.perf_counter() - t

    # texture
    tex = rgb
    if max(H, W) > opts.texture_px:
        k = opts.texture_px / max(H, W)
        tex = _resize(rgb, max(1, int(round(W * k))), max(1, int(round(H * k))), cv2.INTER_AREA)
    th, tw = tex.shape[:2]
    tmask = mask if (th, tw) == (H, W) else _resize(mask.astype(np.uint8), tw, th, cv2.INTER_NEAREST).astype(bool)
    tex = pad_texture(tex, tmask)  # no background halo along the outline
    mesh = SurfaceModel("model", yup_mm_to_lps(v), f, uv=uv, texture=tex,
                        material=PBRMaterial(name="photo", metallic=0.0, roughness=0.9),
                        extras={"frame": "LPS mm from view frame (x right, y up, z toward the camera)",
                                "method": opts.method})

    # full-size height maps (mm)
    up = lambda a: _resize(a.astype(np.float32), W, H, cv2.INTER_LINEAR) if (gh, gw) != (H, W) else a.astype(np.float32)
    height_mm = np.where(mask, up(front) * grid_pixel_mm, 0.0).astype(np.float32)
    back_mm = np.where(mask, up(back) * grid_pixel_mm, 0.0).astype(np.float32)

    _tick(progress, "qa", 3, stages)
    # decimate_closed only returns a decimated mesh that passed edge_check; check the raw one here
    wt, wound = (True, True) if decimated else edge_check(f)
    vol = signed_volume(v, f)
    qa = {
        "watertight": wt, "winding_consistent": wound, "volume_mm3": vol,
        "positive_volume": bool(vol > 0), "faces": int(len(f)), "vertices": int(len(v)),
        "raw_faces": int(raw_faces), "decimated": bool(decimated),
        "grid": [int(gh), int(gw)], "grid_pixel_mm": grid_pixel_mm,
        "max_height_mm": float(height_mm.max()), "object_pixels": int(mask.sum()),
        "size_mm": [float(W * pixel_mm), float(H * pixel_mm)],  # the picture (width, height)
        # the model itself: width x height x thickness, as the STL measures (view frame)
        "extent_mm": [round(float(x), 4) for x in np.ptp(v, axis=0)],
        "bounds_view_mm": [v.min(0).round(4).tolist(), v.max(0).round(4).tolist()],
    }
    timings["total_s"] = time.perf_counter() - t0
    _tick(progress, "done", stages, stages)
    return PhotoResult(mesh, mask, height_mm, back_mm, gmask, front, back, pixel_mm, grid_pixel_mm, src,
                       qa, timings)


def _depth_preview(h: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import cv2

    m = h.max()
    g = np.zeros(h.shape, np.uint8) if m <= 0 else np.round(255 * h / m).astype(np.uint8)
    col = cv2.applyColorMap(g, cv2.COLORMAP_VIRIDIS)[..., ::-1].copy()
    col[~mask] = (20, 20, 24)
    return col


def run_photo(image: str | os.PathLike, outdir: str | os.PathLike, options: PhotoOptions | None = None,
              progress: Progress | None = None,
              viewer: Callable[[SurfaceModel, Path], Path] | None = None) -> PhotoResult:
    """Read ``image``, reconstruct, and write every output into ``outdir`` (module docstring).

    Parameters
    ----------
    image : path of the picture
    outdir : output folder (created)
    options : PhotoOptions
    progress : callable(stage, done, total), optional
    viewer : callable(mesh, html_path) -> path, optional
        Writes ``viewer.html`` (the CLI passes medrecon's offline viewer).

    Returns
    -------
    PhotoResult with ``files`` (name -> path) and ``report_path``.
    """
    from medrecon.provenance import path_token, provenance_record
    from medrecon.report import write_report

    opts = options or PhotoOptions()
    opts.check()
    image = Path(image)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InputError("output folder is an existing file", path=outdir)
    rgb, alpha = load_image(image)
    user_mask = load_mask_file(opts.mask, rgb.shape[:2]) if opts.mask else None
    model = None
    if opts.depth_model:
        from medrecon.photo.learned import load_depth_model

        model = load_depth_model(opts.depth_model)
    try:
        res = reconstruct(rgb, alpha, user_mask, opts, depth_model=model, progress=progress)
    except MedreconError as exc:
        if exc.path is None:  # name the picture in the one-line message
            raise type(exc)(str(exc), path=image) from None
        raise
    t = time.perf_counter()
    outdir.mkdir(parents=True, exist_ok=True)
    params = {
        "method": opts.method, "thickness": opts.thickness, "size_mm": opts.size_mm, "faces": opts.faces,
        "geometry_px": opts.geometry_px, "texture_px": opts.texture_px, "detail": opts.detail,
        "depth_model": path_token(opts.depth_model) if opts.depth_model else None,
        "depth_model_kind": model.kind if model is not None else None,
        "mask": path_token(opts.mask) if opts.mask else None,
    }
    inputs: list[Any] = [image] + ([Path(opts.mask)] if opts.mask else [])
    record = provenance_record("photo", params, inputs=inputs,
                               extra={"mask_source": res.mask_source})
    files: dict[str, Path] = {}

    with atomic_path(outdir / "depth.npy", suffix=".npy") as tmp:
        np.save(tmp, res.height_mm.astype(np.float32))
    files["depth_npy"] = outdir / "depth.npy"
    hmax = float(res.height_mm.max())
    mm_per_unit = hmax / 65535.0 if hmax > 0 else 1.0
    d16 = np.round(res.height_mm / mm_per_unit).clip(0, 65535).astype(np.uint16)
    files["depth_png"] = atomic_write_bytes(outdir / "depth16.png", png_bytes(d16))
    files["mask_png"] = atomic_write_bytes(outdir / "mask.png", png_bytes(res.mask.astype(np.uint8) * 255))
    jpeg_input = image.suffix.lower() in (".jpg", ".jpeg")  # a photo: keep the GLB small
    written = write_models([res.mesh], outdir, ["glb", "obj", "stl", "ply"], provenance=record, scene_name="model",
                           image_format="jpeg" if jpeg_input else "png",
                           header="frame: LPS (view frame x right, y up, z toward the camera -> LPS (x, -z, y))")
    files.update({("texture_png" if p.suffix == ".png" else p.suffix[1:]): p for p in written})
    if opts.previews:
        from medrecon.photo.render import preview_sheet, render_mesh_views

        views = render_mesh_views(res.mesh)
        files["preview_png"] = atomic_write_bytes(outdir / "preview.png", png_bytes(preview_sheet(views)))
        files["depth_preview_png"] = atomic_write_bytes(outdir / "depth_preview.png",
                                                        png_bytes(_depth_preview(res.height_mm, res.mask)))
    if viewer is not None:
        files["viewer_html"] = Path(viewer(res.mesh, outdir / "viewer.html"))
    meta = {
        "units": "mm",
        "image_size_px": [int(rgb.shape[1]), int(rgb.shape[0])],
        "pixel_mm": res.pixel_mm,
        "size_mm_longest_side": float(opts.size_mm),
        "depth": {
            "npy": "depth.npy", "png16": "depth16.png", "mm_per_unit": mm_per_unit, "offset_mm": 0.0,
            "quantity": "front height above the picture plane (toward the camera), mm; 0 off the object",
            "max_mm": hmax,
        },
        "mask": {"png": "mask.png", "source": res.mask_source},
        "model_frame": {"files": "LPS mm (GLB: glTF metres, +Y up, front toward +Z)",
                        "view_to_lps": "LPS = (x, -z, y) for view (x right, y up, z toward the camera)",
                        "uv": "image plane: u = x / width, v = 1 - row / height (back mirrored)"},
        "method": opts.method,
        "warning": "the back and the depth are invented from the outline: a shape prior, not a measurement",
    }
    files["meta_json"] = atomic_write_text(outdir / "meta.json", json.dumps(meta, indent=2) + "\n")
    res.timings["write_s"] = time.perf_counter() - t
    res.files = {k: str(Path(p).name) for k, p in files.items()}
    report = {
        "command": "photo", "provenance": record, "method": opts.method, "mask_source": res.mask_source,
        "qa": res.qa, "timings_s": {k: round(v, 4) for k, v in res.timings.items()},
        "files": res.files, "meta": meta,
    }
    res.report_path = write_report(outdir / "report.json", report)
    return res
