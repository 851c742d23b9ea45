"""Cameras: structure from motion with pycolmap (CPU) and pose metrics. The camera type
(:class:`CameraSet`) and COLMAP text models in and out live in :mod:`medrecon.io.colmap`.

Frames and units: a :class:`CameraSet` uses the COLMAP convention, ``x_cam = R @ x_world + t``,
pixels ``K @ x_cam / z`` with the image's top-left corner at (0, 0). World units are those of
the cameras (arbitrary after SfM; millimetres once a scale is applied; the given cameras' units
with ``--cameras``). Distortion is kept as one radial coefficient ``k1`` (SIMPLE_RADIAL/RADIAL
style: ``x_d = x (1 + k1 r^2)`` on normalised coordinates); dense stages undistort first.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import InputError, MedreconError
from medrecon.progress import ProgressEvent, ProgressFn
from ..io.colmap import CameraError, CameraSet, quat_to_rot, read_colmap_text, rot_to_quat, write_colmap_text  # noqa: F401

Progress = ProgressFn


# ---------------------------------------------------------------------------------------------
# Structure from motion (pycolmap, CPU)

def _from_pycolmap(rec, total: int) -> CameraSet:
    names, Ks, Rs, ts, sizes, k1s = [], [], [], [], [], []
    for iid in sorted(rec.reg_image_ids(), key=lambda i: rec.image(i).name):
        im = rec.image(iid)
        cam = rec.camera(im.camera_id)
        pose = im.cam_from_world() if callable(im.cam_from_world) else im.cam_from_world
        M = np.asarray(pose.matrix())
        K = np.asarray(cam.calibration_matrix())
        p = list(cam.params)
        model = cam.model_name if hasattr(cam, "model_name") else str(cam.model)
        k1 = p[3] if "RADIAL" in model else (p[4] if "OPENCV" in model else 0.0)
        names.append(im.name); Ks.append(K); Rs.append(M[:, :3]); ts.append(M[:, 3])
        sizes.append((cam.width, cam.height)); k1s.append(k1)
    pts = [(p.xyz, p.color) for p in rec.points3D.values()]
    P = np.array([p[0] for p in pts]) if pts else np.zeros((0, 3))
    C = np.array([p[1] for p in pts], np.uint8) if pts else np.zeros((0, 3), np.uint8)
    err = float(rec.compute_mean_reprojection_error()) if pts else None
    return CameraSet(names, np.array(Ks), np.array(Rs), np.array(ts), np.array(sizes), np.array(k1s, float),
                     P, C, err, total)


def run_sfm(image_dir: str | Path, work_dir: str | Path, *, matcher: str = "exhaustive",
            mapper: str = "auto", focal_px: float | None = None, max_features: int = 4096,
            num_threads: int = -1, sequential_overlap: int = 8, min_registered: float = 0.9,
            progress: Progress | None = None, timings: dict | None = None) -> tuple[CameraSet, dict]:
    """Estimate cameras for every image in ``image_dir`` with pycolmap on the CPU.

    SIFT features, ``matcher`` = ``"exhaustive"`` (photo sets) or ``"sequential"`` (video
    keyframes, in name order), then incremental mapping; when fewer than ``min_registered`` of
    the images register (``mapper="auto"``), global mapping (GLOMAP) is tried on the same matches
    and the model with more registered images wins. One shared camera (SIMPLE_RADIAL), focal
    initialised from ``focal_px`` (EXIF) when given.

    Returns the largest model as a :class:`CameraSet` and an info dict (mapper used, counts).
    """
    import pycolmap

    image_dir, work_dir = Path(image_dir), Path(work_dir)
    names = sorted(p.name for p in image_dir.iterdir()
                   if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"))
    if len(names) < 3:
        raise InputError("structure from motion needs at least 3 images", image_dir)
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    db = work_dir / "database.db"
    timings = timings if timings is not None else {}
    prog = lambda *a: progress(ProgressEvent(*a)) if progress else None  # noqa: E731
    old_level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2  # COLMAP's INFO/WARNING lines would flood the terminal
    try:
        return _run_sfm(pycolmap, image_dir, work_dir, names, db, matcher, mapper, focal_px, max_features,
                        num_threads, sequential_overlap, min_registered, prog, timings)
    finally:
        pycolmap.logging.minloglevel = old_level


def _run_sfm(pycolmap, image_dir, work_dir, names, db, matcher, mapper, focal_px, max_features, num_threads,
             sequential_overlap, min_registered, prog, timings):

    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_RADIAL"
    if focal_px:
        import PIL.Image

        with PIL.Image.open(image_dir / names[0]) as im0:
            w, h = im0.size
        reader.camera_params = f"{focal_px},{w / 2},{h / 2},0"
    ext = pycolmap.FeatureExtractionOptions()
    ext.sift.max_num_features = max_features
    ext.num_threads = num_threads
    t0 = time.perf_counter()
    prog("features", 0, len(names))
    pycolmap.extract_features(db, image_dir, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                              reader_options=reader, extraction_options=ext, device=pycolmap.Device.cpu)
    timings["features_s"] = time.perf_counter() - t0
    prog("features", len(names), len(names))
    t0 = time.perf_counter()
    prog("matching", 0, 1)  # one pycolmap call: the stage is announced when it starts
    mopt = pycolmap.FeatureMatchingOptions()
    mopt.num_threads = num_threads
    if matcher == "sequential":
        pair = pycolmap.SequentialPairingOptions()
        pair.overlap = sequential_overlap
        pair.loop_detection = False
        pycolmap.match_sequential(db, matching_options=mopt, pairing_options=pair, device=pycolmap.Device.cpu)
    elif matcher == "exhaustive":
        pycolmap.match_exhaustive(db, matching_options=mopt, device=pycolmap.Device.cpu)
    else:
        raise ValueError(f"matcher must be exhaustive or sequential, not {matcher!r}")
    timings["matching_s"] = time.perf_counter() - t0
    prog("matching", 1, 1)

    best, used = None, None
    t0 = time.perf_counter()
    if mapper in ("auto", "incremental"):
        opts = pycolmap.IncrementalPipelineOptions()
        opts.num_threads = num_threads
        opts.random_seed = 0
        out = work_dir / "incremental"
        out.mkdir()
        n_reg = [0]

        def _next_image():  # called by COLMAP before each image it registers
            n_reg[0] += 1
            prog("mapping", min(n_reg[0], len(names)), len(names))

        prog("mapping", 0, len(names))
        recs = pycolmap.incremental_mapping(db, image_dir, out, options=opts, next_image_callback=_next_image)
        if recs:
            best = max(recs.values(), key=lambda r: r.num_reg_images())
            used = "incremental"
    timings["mapping_s"] = time.perf_counter() - t0
    n_inc = best.num_reg_images() if best is not None else 0
    if mapper == "global" or (mapper == "auto" and n_inc < min_registered * len(names)):
        t0 = time.perf_counter()
        gopt = pycolmap.GlobalPipelineOptions()
        gopt.num_threads = num_threads
        gopt.random_seed = 0
        out = work_dir / "global"
        out.mkdir()
        try:
            recs = pycolmap.global_mapping(db, image_dir, out, gopt)
        except Exception:  # pragma: no cover - GLOMAP failure leaves the incremental model
            recs = {}
        if recs:
            g = max(recs.values(), key=lambda r: r.num_reg_images())
            if g.num_reg_images() > n_inc:
                best, used = g, "global"
        timings["global_mapping_s"] = time.perf_counter() - t0
    prog("mapping", len(names), len(names))
    if best is None or best.num_reg_images() < 2:
        raise CameraError("no camera poses could be estimated (too little texture or overlap?)", image_dir)
    cams = _from_pycolmap(best, len(names))
    info = {"mapper": used, "matcher": matcher, "incremental_registered": n_inc,
            "cameras_registered": len(cams), "cameras_total": len(names),
            "reprojection_error_px": cams.reprojection_error_px, "points": int(len(cams.points))}
    return cams, info


def triangulate_known(cams: CameraSet, image_dir: str | Path, work_dir: str | Path,
                      num_threads: int = -1, progress: Progress | None = None) -> CameraSet:
    """Sparse points for known cameras (features, exhaustive matching, triangulation; poses fixed)."""
    import pycolmap

    prog = lambda *a: progress(ProgressEvent(*a)) if progress else None  # noqa: E731
    old_level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2
    try:
        return _triangulate_known(pycolmap, cams, image_dir, work_dir, num_threads, prog)
    finally:
        pycolmap.logging.minloglevel = old_level


def _triangulate_known(pycolmap, cams, image_dir, work_dir, num_threads, prog):

    image_dir, work_dir = Path(image_dir), Path(work_dir)
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    db = work_dir / "database.db"
    ext = pycolmap.FeatureExtractionOptions()
    ext.num_threads = num_threads
    ext.sift.max_num_features = 4096
    prog("features", 0, len(cams))
    pycolmap.extract_features(db, image_dir, image_names=list(cams.names), camera_mode=pycolmap.CameraMode.PER_IMAGE,
                              extraction_options=ext, device=pycolmap.Device.cpu)
    prog("features", len(cams), len(cams))
    by_name = {n: i for i, n in enumerate(cams.names)}

    def _pinhole(camera_id, i):
        K = cams.K[i]
        w, h = (int(x) for x in cams.sizes[i])
        cam = pycolmap.Camera.create_from_model_name(camera_id, "PINHOLE", K[0, 0], w, h)
        cam.params = [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]
        cam.has_prior_focal_length = True
        return cam

    # the given intrinsics go into the database before matching (geometric verification uses them)
    dbase = pycolmap.Database.open(str(db))
    for im in dbase.read_all_images():
        dbase.update_camera(_pinhole(im.camera_id, by_name[im.name]))
    dbase.close()
    prog("matching", 0, 1)
    mopt = pycolmap.FeatureMatchingOptions()
    mopt.num_threads = num_threads
    pycolmap.match_exhaustive(db, matching_options=mopt, device=pycolmap.Device.cpu)
    prog("matching", 1, 1)
    # Build a reconstruction whose image ids/camera ids follow the database.
    dbase = pycolmap.Database.open(str(db))
    rec = pycolmap.Reconstruction()
    for im in dbase.read_all_images():
        i = by_name[im.name]
        rec.add_camera_with_trivial_rig(_pinhole(im.camera_id, i))
        img = pycolmap.Image(name=im.name, camera_id=im.camera_id, image_id=im.image_id)
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(cams.R[i]), cams.t[i])
        rec.add_image_with_trivial_frame(img, pose)
    dbase.close()
    out = work_dir / "tri"
    out.mkdir()
    prog("triangulation", 0, 1)
    rec = pycolmap.triangulate_points(rec, db, image_dir, out)
    prog("triangulation", 1, 1)
    pts = np.array([p.xyz for p in rec.points3D.values()]) if rec.num_points3D() else np.zeros((0, 3))
    col = np.array([p.color for p in rec.points3D.values()], np.uint8) if rec.num_points3D() else np.zeros((0, 3), np.uint8)
    res = CameraSet(list(cams.names), cams.K, cams.R, cams.t, cams.sizes, cams.k1, pts, col,
                    float(rec.compute_mean_reprojection_error()) if rec.num_points3D() else None, cams.total)
    return res


# ---------------------------------------------------------------------------------------------
# Similarity alignment and pose errors

def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising ||s R src + t - dst||^2 (Umeyama 1991). Points are (N, 3)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    var = (xs ** 2).sum() / len(src)
    s = float(np.trace(np.diag(D) @ S) / var)
    t = mu_d - s * R @ mu_s
    return s, R, t


def pose_errors(est: CameraSet, truth: CameraSet) -> dict:
    """Align ``est`` to ``truth`` by a similarity of the camera centres (images matched by name).

    Returns rotation errors (degrees), centre errors as a fraction of each truth camera's
    distance to the truth cameras' look-at centroid, and the fraction registered.
    """
    idx_t = {n: i for i, n in enumerate(truth.names)}
    common = [n for n in est.names if n in idx_t]
    ie = [est.names.index(n) for n in common]
    it = [idx_t[n] for n in common]
    ce, ct = est.centres[ie], truth.centres[it]
    s, Rw, tw = umeyama(ce, ct)
    aligned = est.transformed(s, Rw, tw)
    rot = []
    for a, b in zip(ie, it):
        dR = aligned.R[a] @ truth.R[b].T
        rot.append(np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1, 1))))
    target = truth.points.mean(0) if len(truth.points) else ct.mean(0)
    dist = np.linalg.norm(ct - target, axis=1)
    cerr = np.linalg.norm(aligned.centres[ie] - ct, axis=1) / dist
    return {"registered_fraction": len(common) / max(len(truth.names), 1), "rotation_error_deg": np.array(rot),
            "centre_error_rel": cerr, "scale": s, "R": Rw, "t": tw}
