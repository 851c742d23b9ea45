"""Photos or a video -> cameras -> dense surface -> textured model, with report and provenance.

:func:`reconstruct_multiview` runs the stages of :mod:`medrecon.multiview` and writes the outputs.

Output frame: with ``cameras_dir`` the given cameras' world frame and units (``frame="cameras"``,
the default then; ``cameras/`` repeats the input cameras); ``frame="object"`` (the default without
cameras) rotates the reconstruction so that the cameras' mean "up" (image -y) is +z (glTF +Y),
centred on the object. Units: millimetres when a scale is known (ArUco board or ``scale_points``);
the given cameras' units (x1, ``"camera units"``) with ``cameras_dir``; otherwise **arbitrary**
(SfM units rescaled so the object's bounding-box diagonal is 100 units; the report says
``"units": "arbitrary"``). The dense stage is :mod:`medrecon.multiview.stereo` or
:mod:`medrecon.multiview.neural`; ``outdir/work`` (intermediate copies) is removed at the end unless
``keep_work``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError, MedreconError
from .cameras import CameraSet, read_colmap_text, run_sfm, triangulate_known, write_colmap_text
from .support import clean_mesh, up_vector  # noqa: F401  (part of this module's API before they moved)

from medrecon.progress import ProgressEvent, ProgressFn as Progress  # noqa: E402


@dataclass
class MultiviewOptions:
    """Settings of :func:`reconstruct_multiview` (see the CLI help for each)."""

    method: str = "stereo"  # stereo | neural
    device: str = "auto"
    max_images: int | None = None
    max_size: int = 1600
    faces: int = 30000
    smooth_iterations: int = 10
    n_src: int = 4
    masks: str | None = "auto"  # "auto", a folder, or None
    scale_points: str | None = None  # "IMAGE:x1,y1:x2,y2:MM"
    aruco_mm: float | None = None  # side of the ArUco markers in mm
    dense_size: int | None = None  # longest image side of the depth maps; None: chosen from the texture
    planes: int | None = None  # coarse sweep planes; None: chosen from the cameras' baselines
    resolution: int = 200  # voxels along the object's longest side
    texture_px: int = 1024
    keep_all: bool = False  # keep every surface component (no cleaning)
    keep_ground: bool = False  # keep the support (table, turntable, floor) under the object
    keep_work: bool = False  # keep outdir/work (ingested frames, SfM database)
    frame: str | None = None  # "cameras" (default with given cameras) or "object" (+z up, centred)
    trim_voxels: float = 4.0  # poisson: faces farther than this from every depth point are dropped
    fusion: str = "poisson"  # poisson (oriented depth points, screened Poisson) or tsdf
    trunc_px: float = 4.0  # TSDF truncation in pixels' footprint at the object's distance
    neural_iters: int | None = None  # neural: training steps (None: by device)
    matcher: str | None = None  # default: sequential for video, exhaustive for photos
    roughness: float = 0.9
    metallic: float = 0.0


@dataclass
class MultiviewResult:
    cameras: CameraSet
    vertices: np.ndarray  # output frame
    faces: np.ndarray
    report: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    mesh: Any = None


def _load_images(image_dir: Path, names: Sequence[str]) -> list[np.ndarray]:
    import PIL.Image

    out = []
    for n in names:
        with PIL.Image.open(image_dir / n) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def _match_names(cams: CameraSet, names: Sequence[str], where: Path) -> CameraSet:
    """Keep the given cameras whose image (by file stem) was ingested; rename to the ingested names."""
    stems = {Path(n).stem: n for n in names}
    keep, new = [], []
    for i, n in enumerate(cams.names):
        if Path(n).stem in stems:
            keep.append(i)
            new.append(stems[Path(n).stem])
    if len(keep) < 3:
        raise InputError("fewer than 3 of the given cameras match the input images by name", where)
    sub = cams.subset(keep)
    sub.names = new
    sub.total = len(names)
    return sub


def _undistort(images, cams: CameraSet):
    import cv2

    out = []
    for img, K, k1 in zip(images, cams.K, cams.k1):
        out.append(img if abs(k1) < 1e-9 else cv2.undistort(img, K, np.array([k1, 0, 0, 0.0])))
    return out


def _resize_for_dense(images, masks, cams: CameraSet, size: int):
    import cv2

    s = min(1.0, size / max(images[0].shape[:2]))
    if s >= 0.999:
        return images, masks, cams
    ims = [cv2.resize(im, (round(im.shape[1] * s), round(im.shape[0] * s)), interpolation=cv2.INTER_AREA) for im in images]
    ms = None
    if masks is not None:
        ms = [cv2.resize(m.astype(np.uint8), (ims[0].shape[1], ims[0].shape[0]), interpolation=cv2.INTER_NEAREST) > 0
              for m in masks]
    K = cams.K.copy()
    sx = ims[0].shape[1] / images[0].shape[1]
    sy = ims[0].shape[0] / images[0].shape[0]
    K[:, 0] *= sx
    K[:, 1] *= sy
    c = CameraSet(cams.names, K, cams.R, cams.t, np.array([(ims[0].shape[1], ims[0].shape[0])] * len(ims)),
                  np.zeros(len(ims)), cams.points, cams.colors, cams.reprojection_error_px, cams.total)
    return ims, ms, c


def _masks(option, images, names, image_dir: Path):
    from .ingest import auto_mask

    if option is None:
        return None
    if option == "auto":
        ms = [auto_mask(im) for im in images]
        cover = np.mean([m.mean() for m in ms])
        # a backdrop that is not uniform gives masks that cover (almost) everything: no masks then
        return ms if 0.01 < cover < 0.85 else None
    folder = Path(option)
    import PIL.Image

    ms = []
    for n, im in zip(names, images):
        cands = [p for p in folder.glob(Path(n).stem + ".*")]
        if not cands:
            raise InputError(f"no mask for image {n}", folder)
        with PIL.Image.open(cands[0]) as m:
            a = np.asarray(m.convert("L").resize((im.shape[1], im.shape[0]))) > 127
        ms.append(a)
    return ms


def _check_masks(masks, cams: CameraSet, option) -> tuple[list | None, str | None]:
    """Automatic masks are a help, not a requirement: drop them when the sparse points (object and
    support) fall outside them in more than 5 % of the projections."""
    if masks is None or option != "auto" or len(cams.points) < 20:
        return masks, None
    inside, total = 0, 0
    for i, m in enumerate(masks):
        Xc = cams.points @ cams.R[i].T + cams.t[i]
        q = Xc @ cams.K[i].T
        z = np.maximum(Xc[:, 2], 1e-9)
        u, v = (q[:, 0] / z).astype(int), (q[:, 1] / z).astype(int)
        H, W = m.shape
        ok = (Xc[:, 2] > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
        inside += int(m[v[ok], u[ok]].sum())
        total += int(ok.sum())
    frac = inside / max(total, 1)
    if frac < 0.95:
        return None, f"automatic masks dropped: only {frac:.0%} of the sparse points project inside them"
    return masks, f"automatic masks kept: {frac:.0%} of the sparse points project inside them"


def depth_maps_of_mesh(v: np.ndarray, f: np.ndarray, cams: CameraSet) -> np.ndarray:
    """Camera-z depth maps (N, H, W) of a mesh (point splats of a dense surface sampling, nearest wins)."""
    import trimesh

    pts = trimesh.Trimesh(v, f, process=False).sample(400000)
    W, H = (int(x) for x in cams.sizes[0])
    out = np.zeros((len(cams), H, W), np.float32)
    for i in range(len(cams)):
        Xc = pts @ cams.R[i].T + cams.t[i]
        q = Xc @ cams.K[i].T
        z = Xc[:, 2]
        u, vv = (q[:, 0] / np.maximum(z, 1e-9)).astype(int), (q[:, 1] / np.maximum(z, 1e-9)).astype(int)
        ok = (z > 0) & (u >= 0) & (u < W) & (vv >= 0) & (vv < H)
        zb = np.full(H * W, np.inf)
        np.minimum.at(zb, vv[ok] * W + u[ok], z[ok])
        out[i] = np.where(np.isfinite(zb), zb, 0).reshape(H, W)
    return out


def smooth(v: np.ndarray, f: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Taubin smoothing (no shrinkage) of the marching-cubes staircase and depth noise."""
    if iterations <= 0 or len(f) == 0:
        return v, f
    import trimesh

    m = trimesh.Trimesh(v, f, process=True)
    trimesh.smoothing.filter_taubin(m, lamb=0.5, nu=-0.53, iterations=iterations)
    return np.asarray(m.vertices), np.asarray(m.faces)


def decimate(v: np.ndarray, f: np.ndarray, faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation (fast-simplification) down to about ``faces`` triangles."""
    if len(f) <= faces:
        return v, f
    from medrecon.surface.decimate import simplify

    return simplify(v, f, target_faces=faces)


def parse_scale_points(spec: str) -> tuple[str, np.ndarray, np.ndarray, float]:
    """``IMAGE:x1,y1:x2,y2:MM`` -> (image name, p1, p2, distance mm)."""
    try:
        name, a, b, mm = spec.rsplit(":", 3)
        p1 = np.array([float(x) for x in a.split(",")])
        p2 = np.array([float(x) for x in b.split(",")])
        d = float(mm)
        assert p1.shape == (2,) and p2.shape == (2,) and d > 0
    except (ValueError, AssertionError):
        raise InputError(f"--scale-points must be IMAGE:x1,y1:x2,y2:MM, got {spec!r}") from None
    return name, p1, p2, d


def _depth_at(depth: np.ndarray, p: np.ndarray, r: int = 4) -> float:
    H, W = depth.shape
    x, y = int(p[0]), int(p[1])
    win = depth[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
    vals = win[win > 0]
    return float(np.median(vals)) if vals.size else 0.0


def scale_from_points(spec: str, cams: CameraSet, depths: np.ndarray, size_scale: float) -> float:
    """Millimetres per world unit from two pixels of one image and their true distance.

    The pixels are lifted to 3D with that view's dense depth (median in a 9x9 window).
    ``size_scale`` converts original pixel coordinates to the dense images' pixels.
    """
    name, p1, p2, mm = parse_scale_points(spec)
    idx = [i for i, n in enumerate(cams.names) if n == name or Path(n).stem == Path(name).stem]
    if not idx:
        raise InputError(f"--scale-points: image {name} is not among the registered images")
    i = idx[0]
    X = []
    for p in (p1 * size_scale, p2 * size_scale):
        d = _depth_at(depths[i], p)
        if d <= 0:
            raise MedreconError(f"--scale-points: no surface depth at pixel {p / size_scale} of {name}")
        ray = np.linalg.inv(cams.K[i]) @ np.array([p[0], p[1], 1.0])
        X.append(cams.R[i].T @ (ray * d - cams.t[i]))
    dist = float(np.linalg.norm(X[0] - X[1]))
    if dist <= 0:
        raise MedreconError("--scale-points: the two points coincide in 3D")
    return mm / dist


def scale_from_aruco(images, cams: CameraSet, marker_mm: float) -> tuple[float, int] | None:
    """Millimetres per world unit from ArUco markers (4x4, 5x5, 6x6 dictionaries, OpenCV).

    Each marker's corners seen in >= 2 registered views are triangulated (linear, all views);
    the scale is ``marker_mm`` over the median triangulated side. Returns (scale, markers) or None.
    """
    import cv2

    dicts = [cv2.aruco.DICT_4X4_50, cv2.aruco.DICT_5X5_100, cv2.aruco.DICT_6X6_250]
    best = None
    for dname in dicts:
        det = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(dname), cv2.aruco.DetectorParameters())
        obs: dict[int, list] = {}
        for i, im in enumerate(images):
            corners, ids, _ = det.detectMarkers(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY))
            if ids is None:
                continue
            for c, mid in zip(corners, ids.ravel()):
                obs.setdefault(int(mid), []).append((i, c.reshape(4, 2)))
        sides = []
        for mid, lst in obs.items():
            if len(lst) < 2:
                continue
            P3 = []
            for k in range(4):
                A = []
                for i, c in lst:
                    Pm = cams.K[i] @ np.hstack([cams.R[i], cams.t[i][:, None]])
                    x, y = c[k] + 0.5  # OpenCV pixel centres are integers; ours are +0.5
                    A.append(x * Pm[2] - Pm[0])
                    A.append(y * Pm[2] - Pm[1])
                _, _, Vt = np.linalg.svd(np.array(A))
                X = Vt[-1]
                P3.append(X[:3] / X[3])
            P3 = np.array(P3)
            sides += [np.linalg.norm(P3[k] - P3[(k + 1) % 4]) for k in range(4)]
        if sides and (best is None or len(sides) > best[1] * 4):
            best = (marker_mm / float(np.median(sides)), len(sides) // 4)
    return best


def frame_transform(up: np.ndarray, centre: np.ndarray, scale: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) world -> output frame: ``up`` -> +z, ``centre`` -> 0, units x ``scale``."""
    z = up / np.linalg.norm(up)
    a = np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0])
    x = np.cross(a, z); x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return scale, R, -scale * R @ centre


def reconstruct_multiview(input_path: str | Path, outdir: str | Path, *, cameras_dir: str | Path | None = None,
                          options: MultiviewOptions | None = None, progress: Progress | None = None,
                          viewer: Callable | None = None, previews: Callable | None = None,
                          sign_key: str | Path | None = None, sign_cert: str | Path | None = None) -> MultiviewResult:
    """Run the whole multi-view pipeline and write every output into ``outdir``.

    Parameters
    ----------
    input_path : folder of photos or a video file
    outdir : output folder (``work/`` inside holds intermediate frames and the SfM database)
    cameras_dir : COLMAP text model of known cameras (image names matched by file stem)
    options : MultiviewOptions
    progress : callable(ProgressEvent)
    viewer : callable(TexturedMesh, html_path) -> path, writes ``viewer.html`` (the CLI passes medrecon's viewer)
    previews : callable(TexturedMesh, png_path) -> path, writes ``preview.png``
    sign_key, sign_cert : PEM private key and certificate chain: C2PA-sign the preview PNG and
        write a ``model.glb.c2pa`` sidecar manifest

    Returns
    -------
    MultiviewResult (cameras and mesh in the output frame, report dict, files)
    """
    opts = options or MultiviewOptions()
    if opts.method not in ("stereo", "neural"):
        raise InputError(f"--method must be stereo or neural, not {opts.method!r}")
    if bool(sign_key) != bool(sign_cert):
        raise InputError("--sign-key and --sign-cert go together")
    input_path, outdir = Path(input_path), Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    work = outdir / "work"
    try:
        return _reconstruct(input_path, outdir, work, cameras_dir, opts, progress, viewer, previews, sign_key, sign_cert)
    finally:
        if not opts.keep_work:  # the copies of the photos and the SfM database (tens of MB)
            import shutil

            shutil.rmtree(work, ignore_errors=True)


def _reconstruct(input_path, outdir, work, cameras_dir, opts, progress, viewer, previews, sign_key, sign_cert):
    import torch  # noqa: F401

    from ..io.atomic import atomic_write_bytes
    from ..provenance import path_token, provenance_record
    from ..report import write_report
    from ..io.images import png_bytes
    from ..io.meshes import write_glb, write_obj, write_ply, write_stl, write_usdz
    from ..mesh import PBRMaterial
    from ..mesh import SurfaceModel as TexturedMesh
    from . import appearance as A
    from . import dense as D
    from .ingest import ingest

    T: dict[str, float] = {}
    t0 = time.perf_counter()
    ing = ingest(input_path, work / "images", max_images=opts.max_images, max_size=opts.max_size, progress=progress)
    T["ingest_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    sfm_info: dict[str, Any] = {}
    if cameras_dir is not None:
        cams = _match_names(read_colmap_text(cameras_dir), ing.names, Path(cameras_dir))
        camera_source = "given (COLMAP text model)"
    else:
        matcher = opts.matcher or ("sequential" if ing.kind == "video" else "exhaustive")
        cams, sfm_info = run_sfm(ing.image_dir, work / "sfm", matcher=matcher, focal_px=ing.focal_px,
                                 progress=progress, timings=T)
        camera_source = f"structure from motion (pycolmap {sfm_info['mapper']} mapping, {matcher} matching)"
    T["cameras_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    images = _undistort(_load_images(ing.image_dir, cams.names), cams)
    masks = _masks(opts.masks, images, cams.names, ing.image_dir)
    if cameras_dir is not None and len(cams.points) < 20:
        # known cameras without points (a calibrated rig, a turntable): triangulate matches with the given poses
        try:
            cams = triangulate_known(cams, ing.image_dir, work / "triangulation", progress=progress)
            sparse_source = f"triangulated with the given poses ({len(cams.points)} points)"
        except Exception as e:  # noqa: BLE001 - pycolmap failing leaves the frustum bound
            sparse_source = f"none (triangulation failed: {type(e).__name__}); depth range from the cameras' frusta"
    else:
        sparse_source = f"{len(cams.points)} points"
    masks, mask_note = _check_masks(masks, cams, opts.masks)
    T["sparse_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dev = D.resolve_device(opts.device)
    if opts.method == "neural":
        from .neural import neural_surface

        v, f, dense_info, dx = neural_surface(images, masks, cams, opts, resize=_resize_for_dense, dev=dev,
                                              progress=progress)
    else:
        from .stereo import stereo_surface

        v, f, dense_info, dx = stereo_surface(images, masks, cams, opts, resize=_resize_for_dense, dev=dev,
                                              work_dir=work / "dense", progress=progress)
    dense_info["sparse"] = sparse_source
    d_cams, d_images, carve, fd = dx["cams"], dx["images"], dx["masks"], dx.get("depths")
    size_scale = d_images[0].shape[1] / images[0].shape[1]
    T["dense_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    up = up_vector(cams)
    v, f = smooth(v, f, opts.smooth_iterations)
    v, f = decimate(v, f, opts.faces)
    T["smooth_decimate_s"] = time.perf_counter() - t0

    # scale and frame
    t0 = time.perf_counter()
    scale_source, units, mm_per_unit = "none", "arbitrary", None
    if opts.scale_points:
        if fd is None:
            fd = depth_maps_of_mesh(v, f, d_cams)
        mm_per_unit = scale_from_points(opts.scale_points, d_cams, fd, size_scale)
        scale_source, units = "scale points (--scale-points)", "mm"
    elif opts.aruco_mm:
        r = scale_from_aruco(images, cams, opts.aruco_mm)
        if r is not None:
            mm_per_unit = r[0]
            scale_source, units = f"ArUco markers ({r[1]} seen in >= 2 views, side {opts.aruco_mm} mm)", "mm"
    frame = opts.frame or ("cameras" if cameras_dir is not None else "object")
    if frame not in ("cameras", "object"):
        raise InputError(f"--frame must be cameras or object, not {frame!r}")
    if frame == "cameras" and cameras_dir is None:
        raise InputError("--frame cameras needs --cameras (without them the cameras' frame is arbitrary)")
    if mm_per_unit is None and cameras_dir is not None:
        s_out, units, scale_source = 1.0, "camera units", "given cameras"
    elif mm_per_unit is None:
        s_out = 100.0 / max(float(np.linalg.norm(np.ptp(v, axis=0))), 1e-12)
    else:
        s_out = mm_per_unit
    if frame == "cameras":
        s, Rw, tw = s_out, np.eye(3), np.zeros(3)
        frame_text = "the given cameras' world frame" + (" (scaled to mm)" if mm_per_unit else " and units")
    else:
        centre = 0.5 * (v.min(0) + v.max(0))
        s, Rw, tw = frame_transform(up, centre, s_out)
        frame_text = "object frame: cameras' mean up = +z (glTF +Y), centred on the object's box"
    out_cams = cams.transformed(s, Rw, tw)
    d_out = d_cams.transformed(s, Rw, tw)
    vo = (s * (Rw @ v.T)).T + tw

    # appearance
    vu, fu, uv, vmap = A.unwrap(vo, f)
    S = opts.texture_px
    tex = A.texel_surface(vu, fu, uv, S)
    shaded, used = A.bake(tex, d_images, d_out, S, masks=carve, progress=progress)
    albedo, sh = A.delight(shaded, used, tex)
    T["texture_s"] = time.perf_counter() - t0

    # outputs
    t0 = time.perf_counter()
    params = {"method": opts.method, "device": str(dev), "max_images": opts.max_images, "faces": opts.faces,
              "masks": opts.masks if opts.masks in (None, "auto") else path_token(opts.masks),
              "cameras": path_token(cameras_dir) if cameras_dir else None, "scale_points": opts.scale_points,
              "aruco_mm": opts.aruco_mm, "dense_size": opts.dense_size or "auto", "planes": opts.planes or "auto",
              "resolution": opts.resolution, "texture_px": S, "frame": frame, "keep_ground": opts.keep_ground}
    inputs = ing.sources if ing.kind == "video" else ing.sources
    record = provenance_record("multiview", params, inputs=inputs,
                               extra={"digital_source_type": "compositeCapture (photogrammetry of real photographs)"})
    mat = PBRMaterial(name="multiview", metallic=opts.metallic, roughness=opts.roughness)
    mesh = TexturedMesh("multiview", vu, fu, uv=uv, texture=albedo, material=mat,
                        extras={"units": units, "scale_source": scale_source})
    files: dict[str, Path] = {}
    n_out = 8 + (previews is not None) + (viewer is not None)
    step = [0]

    def wrote():
        step[0] += 1
        if progress:
            progress(ProgressEvent("write", step[0], n_out, unit="file"))

    files["glb"] = write_glb(mesh, outdir / "model.glb", provenance=record); wrote()
    obj = write_obj(mesh, outdir / "model.obj", header=f"medrecon multiview; units: {units}; frame: {frame}")
    files["obj"], files["mtl"] = obj[0], obj[1]
    if len(obj) > 2:
        files["texture_png"] = obj[2]
    wrote()
    files["ply"] = write_ply(mesh, outdir / "model.ply"); wrote()
    files["stl"] = write_stl(mesh, outdir / "model.stl"); wrote()
    files["usdz"] = write_usdz(mesh, outdir / "model.usdz"); wrote()
    files["texture_shaded_png"] = atomic_write_bytes(outdir / "texture_shaded.png", png_bytes(shaded)); wrote()
    files["cameras"] = write_colmap_text(out_cams, outdir / "cameras"); wrote()
    if previews is not None:
        files["preview_png"] = Path(previews(mesh, outdir / "preview.png")); wrote()
    if viewer is not None:
        files["viewer_html"] = Path(viewer(mesh, outdir / "viewer.html")); wrote()
    T["write_s"] = time.perf_counter() - t0
    signed = None
    if sign_key:
        from ..provenance import c2pa_sign_outputs

        signed = c2pa_sign_outputs(files, record, sign_key, sign_cert)
        files.update(signed)
    ext = np.ptp(vu, axis=0)
    report = {
        "command": "multiview",
        "provenance": record,
        "input": {"kind": ing.kind, "images": len(ing.names), "frames_decoded": ing.frames_decoded or None,
                  "keyframes": ing.keyframe_indices or None},
        "cameras_registered": int(len(cams)),
        "cameras_total": int(cams.total or len(ing.names)),
        "camera_source": camera_source,
        "sfm": sfm_info or None,
        "reprojection_error_px": cams.reprojection_error_px,
        "masks": "auto (uniform backdrop)" if (masks is not None and opts.masks == "auto") else (
            None if masks is None else "given"),
        "masks_note": mask_note,
        "scale": {"source": scale_source, "units": units, "mm_per_world_unit": mm_per_unit,
                  "output_per_world_unit": s},
        "frame": frame_text + "; cameras/ in the same frame",
        "mesh": {"faces": int(len(fu)), "vertices": int(len(vu)), "extent": ext.tolist(), "units": units,
                 "bbox": [vu.min(0).tolist(), vu.max(0).tolist()]},
        "dense": dense_info,
        "removed": (dense_info.get("support") or {}).get("removed"),
        "work_folder": "kept (--keep-work)" if opts.keep_work else "removed",
        "material": {"base_color": "albedo texture (lighting divided out by a 9-coefficient SH fit)",
                     "metallic": opts.metallic, "roughness": opts.roughness,
                     "roughness_metallic_note": "defaults, not measured", "sh_coefficients": sh.tolist()},
        "c2pa": {k: str(Path(p).name) for k, p in (signed or {}).items()} or None,
        "timings_s": {k: round(float(x), 3) for k, x in T.items()},
        "files": {k: Path(p).name for k, p in files.items()},
    }
    write_report(outdir / "report.json", report)
    wrote()
    return MultiviewResult(out_cams, vu, fu, report, files, mesh)
