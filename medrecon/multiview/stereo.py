"""The stereo surface stage: depth maps -> hole filling -> consistency -> object/support split -> TSDF -> mesh.

:func:`stereo_surface` is what :func:`medrecon.multiview.pipeline.reconstruct_multiview` calls
for ``method="stereo"``. Choices made from the data (and reported):

* depth-map resolution: the largest of 1/1, 1/2 (capped at 640 px) whose textured pixels
  (:func:`~medrecon.multiview.dense.textured`) are still >= 90 % of the full-resolution ones
  (a coarse texture loses nothing at half size, a fine one does);
* plane count: :func:`~medrecon.multiview.dense.auto_planes` (about one pixel of disparity per
  plane at half resolution);
* the object's box: the scene is reconstructed first (depth maps over the box of the sparse
  points, or of the cameras' common frustum when there are none), the support plane is found and
  the object separated (:mod:`medrecon.multiview.support`); the TSDF then spans the object only,
  so its voxels are fine where it matters.

Frames and units: world units of the cameras.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..io.colmap import CameraSet

from medrecon.progress import ProgressEvent, ProgressFn

Progress = ProgressFn


def choose_dense_size(images, limit: int = 640) -> int:
    """Longest side for the depth maps chosen from the texture (see module docstring)."""
    import cv2

    from .dense import textured

    full = max(images[0].shape[:2])
    if full <= 400:
        return full
    sample = images[:: max(1, len(images) // 5)]
    t1 = np.mean([textured([im]).mean() for im in sample])
    half = [cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2), interpolation=cv2.INTER_AREA) for im in sample]
    t2 = np.mean([textured([im]).mean() for im in half])
    size = full // 2 if t2 >= 0.9 * t1 else full
    return int(min(max(size, min(full, 240)), limit))


def stereo_surface(images, masks, cams: CameraSet, opts, *, resize, dev, work_dir, progress: Progress | None = None
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], dict[str, Any]]:
    """Dense surface of the object (vertices, faces in world units), report info, and extras
    (dense-resolution cameras, depth maps, masks for texturing).

    ``resize(images, masks, cams, size)`` gives the dense-resolution images (the pipeline's helper).
    """
    import cv2

    from . import dense as D
    from . import support as SP
    from .support import clean_mesh, up_vector

    size = opts.dense_size or choose_dense_size(images)
    d_images, d_masks, d_cams = resize(images, masks, cams, size)
    have_points = len(cams.points) >= 20
    scene_box = D.points_bbox(cams.points) if have_points else D.frusta_bbox(d_cams)
    box_source = "sparse points" if have_points else "cameras' common frustum"
    if d_masks is not None:
        scene_box = D.visual_hull_bbox(d_cams, d_masks, scene_box)
        box_source += " and silhouettes"
    planes = opts.planes or D.auto_planes(d_cams, scene_box, opts.n_src)
    res = D.depth_maps(d_images, d_cams, scene_box, masks=d_masks, planes=planes, n_src=opts.n_src, device=dev,
                       progress=progress)
    min_score = 0.3
    raw = np.where(res.score > min_score, res.depth, 0).astype(np.float32)
    filled = np.zeros(raw.shape, bool)
    depth2, score2 = raw.copy(), res.score.copy()
    for i in range(len(raw)):
        d, fm = D.fill_holes(raw[i], max_gap=max(8, round(0.06 * max(raw.shape[1:]))))
        if d_masks is not None:
            fm &= d_masks[i]
        depth2[i] = np.where(fm, d, raw[i])
        score2[i] = np.where(fm, min_score + 0.05, score2[i])
        filled[i] = fm
    fd = D.filter_depths(D.DepthResult(depth2, score2), d_cams, min_score=min_score, n_src=opts.n_src, device=dev)
    tex = D.textured(d_images)
    if d_masks is not None:
        tex &= np.array(d_masks)
    coverage = float(((fd > 0) & tex).sum() / max(tex.sum(), 1))

    up = up_vector(cams)
    P = SP.depth_points(fd, d_cams, step=2)
    if len(P) < 50:
        from ..errors import MedreconError

        raise MedreconError("dense reconstruction found almost no depth (too little texture, or wrong cameras?)")
    sdiag = float(np.linalg.norm(np.ptp(np.percentile(P, [2, 98], axis=0), axis=0)))
    tol = 0.004 * sdiag
    plane = None if opts.keep_ground else SP.fit_support(P, up, tol)
    look = D.cameras_bbox(d_cams).mean(0)
    region = SP.object_region(P, d_cams, up, plane, 3 * tol, 0.01 * sdiag, look)
    box = region.bbox
    ext = np.ptp(box, axis=0)
    box = np.stack([box[0] - 0.05 * ext, box[1] + 0.05 * ext])
    voxel = float(ext.max() / opts.resolution)
    carve = None
    if d_masks is not None:
        carve = [cv2.dilate(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) for m in d_masks]
    w = [np.clip(s, 0, 1) * np.where(fm, 0.5, 1.0) for s, fm in zip(np.maximum(res.score, score2), filled)]
    # truncation: a few voxels, but never below the depth maps' own uncertainty (~ a few pixels'
    # footprint at the object's distance), or noise breaks the surface into pieces
    dist = float(np.median(np.linalg.norm(d_cams.centres - region.points.mean(0), axis=1)))
    footprint = dist / float(np.median(d_cams.K[:, 0, 0]))
    trunc_vox = max(3.0, opts.trunc_px * footprint / voxel)
    if opts.fusion == "poisson":
        if progress:
            progress(ProgressEvent("surface", 0, 1))
        Pw, Nw = SP.oriented_points(fd, d_cams, step=1)
        inb = np.all((Pw >= box[0]) & (Pw <= box[1]), axis=1)
        Pw, Nw = Pw[inb], Nw[inb]
        depth = int(np.clip(np.ceil(np.log2(opts.resolution * 1.1)), 6, 11))
        v, f = SP.poisson_surface(Pw, Nw, work_dir, depth=depth, trim_dist=opts.trim_voxels * voxel)
        if progress:
            progress(ProgressEvent("surface", 1, 1))
    else:
        vol = D.tsdf_fuse(fd, d_cams, box, voxel=voxel, masks=carve, weights=w, trunc_voxels=trunc_vox, device=dev,
                          progress=progress)
        v, f = D.extract_mesh(vol)
    if len(f) == 0:
        from ..errors import MedreconError

        raise MedreconError("dense reconstruction produced no surface (too little texture, or wrong cameras?)")
    removed_faces = 0
    if plane is not None:
        v, f, removed_faces = SP.cut_support(v, f, plane, max(1.5 * voxel, tol))
    v, f, clean_info = clean_mesh(v, f, up=None, keep_all=opts.keep_all)
    support = None
    if plane is not None:
        support = {"found": True, "normal": plane.normal.round(5).tolist(), "point": plane.point.round(6).tolist(),
                   "tilt_from_cameras_up_deg": round(plane.tilt_deg, 2),
                   "inlier_fraction_of_depth_points": round(plane.inlier_fraction, 4),
                   "faces_removed": removed_faces, "removed": "the support plane and everything under it"}
    elif opts.keep_ground:
        support = {"found": None, "removed": "nothing (--keep-ground)"}
    else:
        support = {"found": False, "removed": "nothing (no support plane along the cameras' up)"}
    info = {"method": "plane-sweep NCC + hole filling + geometric consistency + "
            + ("screened Poisson (pycolmap)" if opts.fusion == "poisson" else "TSDF (PyTorch)"),
            "device": str(dev), "depth_size_px": [int(d_images[0].shape[1]), int(d_images[0].shape[0])],
            "planes": int(planes), "scene_box_from": box_source, "scene_box": scene_box.round(6).tolist(),
            "object_box": region.bbox.round(6).tolist(), "voxel_world": voxel, "truncation_world": trunc_vox * voxel,
            "pixels_with_depth": float((fd > 0).mean()),
            "textured_pixels_with_depth": coverage,
            "pixels_filled_between_neighbours": float(((fd > 0) & filled).mean()),
            "separation": region.info, "support": support, "clean": clean_info}
    return v, f, info, {"cams": d_cams, "images": d_images, "masks": carve, "depths": fd}
