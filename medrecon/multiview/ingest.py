"""Ingest: a folder of photos (PNG, JPEG, TIFF) or a video file -> a folder of upright PNG frames.

Photos are turned upright by their EXIF orientation; a 35 mm-equivalent focal length in the
EXIF gives an initial focal length in pixels. Videos are decoded with PyAV; keyframes are the
sharpest frame (variance of the Laplacian) of each window of frames, and a new keyframe is
only taken once the view has moved enough (median optical flow from the last keyframe).
Optional masks: a folder of images with the same names (non-zero = object), or ``"auto"``:
the object is what differs from the (dark or uniform) border colour.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from medrecon.progress import ProgressEvent, ProgressFn

PHOTO_EXT = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
VIDEO_EXT = {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm"}
Progress = ProgressFn


@dataclass
class Ingested:
    """Frames written to ``image_dir`` (PNG, upright), with what was learned on the way."""

    image_dir: Path
    names: list[str]
    kind: str  # "photos" or "video"
    focal_px: float | None = None
    sources: list[Path] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    keyframe_indices: list[int] = field(default_factory=list)  # video: indices of the decoded frames kept
    frames_decoded: int = 0


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (higher = sharper)."""
    import cv2

    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    return float(cv2.Laplacian(g, cv2.CV_64F).var())


def _exif_focal_px(img, width: int, height: int) -> float | None:
    try:
        exif = img.getexif()
        sub = exif.get_ifd(0x8769)  # Exif IFD
        f35 = sub.get(0xA405) or exif.get(0xA405)  # FocalLengthIn35mmFilm
        if f35:
            return float(f35) / 36.0 * max(width, height)
    except Exception:  # noqa: BLE001 - malformed EXIF is common; the focal is then self-calibrated
        return None
    return None


def _resize(rgb: np.ndarray, max_size: int | None) -> tuple[np.ndarray, float]:
    import cv2

    if not max_size or max(rgb.shape[:2]) <= max_size:
        return rgb, 1.0
    s = max_size / max(rgb.shape[:2])
    out = cv2.resize(rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return out, s


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import PIL.Image

    from medrecon.io.atomic import atomic_path

    with atomic_path(path) as tmp:  # every writer goes through the atomic helper
        PIL.Image.fromarray(rgb).save(tmp)


def ingest_photos(folder: str | Path, out_dir: str | Path, *, max_images: int | None = None,
                  max_size: int | None = 1600, progress: Progress | None = None) -> Ingested:
    """Read every photo in ``folder`` (sorted by name), upright by EXIF, as PNG into ``out_dir``."""
    import PIL.Image
    import PIL.ImageOps

    folder, out_dir = Path(folder), Path(out_dir)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_EXT and p.is_file())
    if not files:
        raise InputError("no photos (PNG, JPEG, TIFF) in the folder", folder)
    if max_images and len(files) > max_images:
        keep = np.unique(np.round(np.linspace(0, len(files) - 1, max_images)).astype(int))
        files = [files[i] for i in keep]
    out_dir.mkdir(parents=True, exist_ok=True)
    names, focals, sh = [], [], []
    for k, f in enumerate(files):
        try:
            with PIL.Image.open(f) as im:
                focal = _exif_focal_px(im, *im.size)
                im = PIL.ImageOps.exif_transpose(im)
                rgb = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read image ({e})", f) from None
        if focal and rgb.shape[1] != (im.size[0]):
            pass
        rgb, s = _resize(rgb, max_size)
        if focal:
            focals.append(focal * s)
        name = f.stem + ".png"
        _write_png(out_dir / name, rgb)
        names.append(name)
        sh.append(sharpness(rgb))
        if progress:
            progress(ProgressEvent("ingest", k + 1, len(files), "photo"))
    focal_px = float(np.median(focals)) if len(focals) == len(files) else None
    return Ingested(out_dir, names, "photos", focal_px, files, sh)


def select_keyframes(frames: list[np.ndarray], *, window: int = 3, min_flow_frac: float = 0.0) -> list[int]:
    """Indices of keyframes: the sharpest frame of each window of ``window`` frames.

    With ``min_flow_frac > 0`` a window's pick is dropped when the median optical-flow motion of
    tracked corners since the last keyframe is below that fraction of the image width (no
    parallax yet: the camera was standing still).
    """
    import cv2

    sh = np.array([sharpness(f) for f in frames])
    picks = []
    for s in range(0, len(frames), window):
        idx = s + int(np.argmax(sh[s:s + window]))
        picks.append(idx)
    if min_flow_frac <= 0 or len(picks) < 2:
        return picks
    kept = [picks[0]]
    for idx in picks[1:]:
        a = cv2.cvtColor(frames[kept[-1]], cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor(frames[idx], cv2.COLOR_RGB2GRAY)
        pts = cv2.goodFeaturesToTrack(a, 400, 0.01, 5)
        if pts is None:
            kept.append(idx)
            continue
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(a, b, pts, None)
        ok = st.ravel() == 1
        if ok.mean() < 0.7:
            kept.append(idx)
            continue
        flow = np.median(np.linalg.norm((nxt - pts).reshape(-1, 2)[ok], axis=1))
        if flow >= min_flow_frac * a.shape[1]:
            kept.append(idx)
    return kept


def ingest_video(path: str | Path, out_dir: str | Path, *, max_images: int | None = None, window: int | None = None,
                 min_flow_frac: float = 0.01, max_size: int | None = 1600, progress: Progress | None = None) -> Ingested:
    """Decode ``path`` with PyAV (display rotation applied) and keep sharp keyframes as PNG."""
    import av

    path, out_dir = Path(path), Path(out_dir)
    frames = []
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            for fr in c.decode(stream):
                rgb = fr.to_ndarray(format="rgb24")
                rot = getattr(fr, "rotation", 0) or 0
                if rot:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k=int(round(rot / 90)) % 4))
                frames.append(_resize(rgb, max_size)[0])
    except (av.error.FFmpegError, OSError, IndexError) as e:
        raise InputError(f"cannot decode video ({e})", path) from None
    if len(frames) < 3:
        raise InputError("video has fewer than 3 frames", path)
    if window is None:
        target = max_images or 60
        window = max(1, int(np.ceil(len(frames) / target)))
    picks = select_keyframes(frames, window=window, min_flow_frac=min_flow_frac)
    if max_images and len(picks) > max_images:
        picks = [picks[i] for i in np.unique(np.round(np.linspace(0, len(picks) - 1, max_images)).astype(int))]
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for k, i in enumerate(picks):
        name = f"frame_{i:05d}.png"
        _write_png(out_dir / name, frames[i])
        names.append(name)
        if progress:
            progress(ProgressEvent("keyframes", k + 1, len(picks), "frame"))
    return Ingested(out_dir, names, "video", None, [path], [sharpness(frames[i]) for i in picks], picks, len(frames))


def ingest(path: str | Path, out_dir: str | Path, **kw) -> Ingested:
    """Photos folder or video file -> :class:`Ingested` (dispatch on the path)."""
    path = Path(path)
    if not path.exists():
        raise InputError("input not found", path)
    if path.is_dir():
        kw.pop("window", None); kw.pop("min_flow_frac", None)
        return ingest_photos(path, out_dir, **kw)
    if path.suffix.lower() in VIDEO_EXT:
        return ingest_video(path, out_dir, **kw)
    raise InputError("expected a folder of photos or a video file (.mp4, .mov, ...)", path)


def auto_mask(rgb: np.ndarray, thresh: float = 10.0) -> np.ndarray:
    """Object mask: pixels that differ from the median border colour (dark/uniform backdrop).

    Holes are filled and only components touching the largest one are kept.
    """
    import cv2
    from scipy import ndimage

    b = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(float)
    bg = np.median(b, axis=0)
    d = np.linalg.norm(rgb.astype(float) - bg, axis=2)
    m = d > thresh
    m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    lab, n = ndimage.label(m)
    if n > 1:
        sizes = ndimage.sum(m, lab, range(1, n + 1))
        m = np.isin(lab, 1 + np.flatnonzero(sizes >= 0.02 * sizes.max()))
    m = ndimage.binary_fill_holes(m)
    return cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 24) -> Path:
    """Encode RGB frames as H.264 MP4 with PyAV (used by tests and the example)."""
    import av

    from medrecon.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp, av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height = frames[0].shape[1], frames[0].shape[0]
        s.pix_fmt = "yuv420p"
        s.options = {"crf": "16"}
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path
