"""Optional learned depth (monocular relative depth) from LOCAL model files only; never a download.

Two formats:

* an **ONNX file** (run with onnxruntime on the CPU). Preprocessing follows the model family:
  by default Depth Anything V2's rules (RGB/255, ImageNet mean and std, short side resized to
  518 keeping the aspect ratio, both sides a multiple of 14, bicubic). A JSON file next to the
  model (``model.json`` for ``model.onnx``) may override ``size``, ``multiple``, ``mean``,
  ``std``, ``keep_aspect`` and ``output`` (``"disparity"``, larger = nearer, the default;
  or ``"depth"``). When the graph has a fixed input size, the picture is resized to exactly that
  size. Exported graphs often return their export-time output size whatever the input, so the
  output is always resized back to the picture's size.
* a **Hugging Face folder** (``config.json`` + weights + ``preprocessor_config.json``), run through
  transformers' ``AutoImageProcessor`` / ``AutoModelForDepthEstimation`` with
  ``local_files_only=True`` and ``HF_HUB_OFFLINE=1`` (its own resize and normalisation rules).

Both return a relative map at the picture's size; :func:`fuse_detail` adds its fine detail to
the inflated silhouette (the network's global scale and shift are unknown, so only detail is
taken from it, scaled to a fraction of the inflated height).
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from medrecon.errors import MedreconError

__all__ = ["DepthModelError", "DepthModel", "load_depth_model", "fuse_detail", "DAV2_PRESET"]

#: Depth Anything V2 preprocessing (original repository rules)
DAV2_PRESET = {"size": 518, "multiple": 14, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
               "keep_aspect": True, "output": "disparity"}


class DepthModelError(MedreconError):
    """A depth model is missing, not local, or not a usable depth-estimation model."""


@dataclass
class DepthModel:
    """A loaded local depth model. ``predict(rgb) -> (H, W) float32`` relative map, larger = nearer."""

    path: Path
    kind: str  # "onnx" or "hf"
    preset: dict = field(default_factory=dict)
    _session: Any = None
    _model: Any = None
    _processor: Any = None

    # -- ONNX --------------------------------------------------------------------------------
    def input_size(self, h: int, w: int) -> tuple[int, int]:
        """(height, width) fed to the network for an ``h x w`` picture (ONNX path)."""
        shape = self._session.get_inputs()[0].shape if self._session is not None else None
        if shape is not None and len(shape) == 4 and all(isinstance(s, int) and s > 0 for s in shape[2:]):
            return int(shape[2]), int(shape[3])
        p = self.preset
        size, mult = int(p.get("size", 518)), int(p.get("multiple", 14))
        if p.get("keep_aspect", True):
            s = size / min(h, w)  # short side to `size` (lower bound), as the original repository
            th, tw = h * s, w * s
        else:
            th = tw = size
        th = max(mult, int(np.ceil(th / mult - 1e-9)) * mult)
        tw = max(mult, int(np.ceil(tw / mult - 1e-9)) * mult)
        return th, tw

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """(1, 3, h, w) float32 network input (ONNX path)."""
        import cv2

        h, w = rgb.shape[:2]
        th, tw = self.input_size(h, w)
        x = cv2.resize(np.asarray(rgb, np.uint8), (tw, th), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
        mean = np.asarray(self.preset.get("mean", DAV2_PRESET["mean"]), np.float32)
        std = np.asarray(self.preset.get("std", DAV2_PRESET["std"]), np.float32)
        x = (x - mean) / std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def run_raw(self, pixel_values: np.ndarray) -> np.ndarray:
        """The network's raw output for a prepared input, squeezed to 2-D (ONNX path)."""
        name = self._session.get_inputs()[0].name
        out = self._session.run(None, {name: np.asarray(pixel_values, np.float32)})[0]
        out = np.asarray(out, np.float32)
        while out.ndim > 2:
            out = out[0]
        return out

    # -- both ----------------------------------------------------------------------------------
    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """Relative disparity (larger = nearer) at the picture's size, (H, W) float32."""
        import cv2

        h, w = rgb.shape[:2]
        if self.kind == "onnx":
            out = self.run_raw(self.preprocess(rgb))
        else:
            out = self._hf_predict(rgb)
        if out.ndim != 2 or out.size == 0 or not np.all(np.isfinite(out)):
            raise DepthModelError(f"model output is not a finite 2-D map (shape {out.shape})", path=self.path)
        if out.shape != (h, w):  # fixed-size graphs: always back to the picture's size
            out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
        if str(self.preset.get("output", "disparity")) == "depth":
            out = -out
        return out.astype(np.float32)

    def _hf_predict(self, rgb: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        inputs = self._processor(images=Image.fromarray(np.asarray(rgb, np.uint8)), return_tensors="pt")
        with torch.no_grad():
            out = self._model(**inputs)
        pred = out.predicted_depth
        pred = torch.nn.functional.interpolate(pred.unsqueeze(1) if pred.ndim == 3 else pred,
                                               size=rgb.shape[:2], mode="bicubic", align_corners=False)
        return pred[0, 0].float().numpy()


@contextlib.contextmanager
def _offline():
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ[k] = "1"
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _load_preset(path: Path) -> dict:
    preset = dict(DAV2_PRESET)
    side = path.with_suffix(".json")
    if side.is_file():
        try:
            user = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DepthModelError(f"cannot read the model's preprocessing file ({exc})", path=side) from None
        if not isinstance(user, dict):
            raise DepthModelError("preprocessing file must hold a JSON object", path=side)
        preset.update({k: v for k, v in user.items() if k in DAV2_PRESET})
    return preset


def load_depth_model(path: str | os.PathLike) -> DepthModel:
    """Load a local ONNX file or Hugging Face folder. Never downloads.

    Raises
    ------
    DepthModelError
        Missing path (including hub names such as ``depth-anything/...``: only local files are
        used), a file that is not ONNX, a folder without ``config.json``, a model that is not a
        depth-estimation model, or a missing runtime (onnxruntime / transformers).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DepthModelError("depth model not found (only local ONNX files or Hugging Face folders are used; "
                              "nothing is downloaded)", path=p)
    if p.is_file():
        if p.suffix.lower() != ".onnx":
            raise DepthModelError("depth model file must be an .onnx file (or give a Hugging Face model folder)", path=p)
        try:
            import onnxruntime as ort
        except ImportError:
            raise DepthModelError("onnxruntime is not installed: pip install 'medrecon[photo]'", path=p) from None
        try:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            sess = ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DepthModelError(f"not a loadable ONNX model ({type(exc).__name__}: {str(exc)[:200]})", path=p) from None
        ins = sess.get_inputs()
        if len(ins) != 1 or len(ins[0].shape) != 4:
            raise DepthModelError(f"expected one image input (N, 3, H, W); the model has "
                                  f"{[(i.name, i.shape) for i in ins]}", path=p)
        ch = ins[0].shape[1]
        if isinstance(ch, int) and ch != 3:
            raise DepthModelError(f"expected a 3-channel image input, the model takes {ch} channels", path=p)
        return DepthModel(p, "onnx", _load_preset(p), _session=sess)
    # a folder: Hugging Face layout
    if not (p / "config.json").is_file():
        raise DepthModelError("folder is not a Hugging Face model (no config.json)", path=p)
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise DepthModelError("transformers is not installed: pip install 'medrecon[photo]'", path=p) from None
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForDepthEstimation

    def first_line(exc: Exception) -> str:
        text = str(exc).strip()
        return (text.splitlines()[0] if text else type(exc).__name__)[:200]

    with _offline():
        try:
            cfg = AutoConfig.from_pretrained(str(p), local_files_only=True)
        except Exception as exc:
            raise DepthModelError(f"cannot read config.json ({type(exc).__name__}: {first_line(exc)})", path=p) from None
        try:
            model = AutoModelForDepthEstimation.from_pretrained(str(p), local_files_only=True)
        except ValueError as exc:
            raise DepthModelError(f"not a depth-estimation model (model_type {getattr(cfg, 'model_type', '?')!r}): "
                                  f"{first_line(exc)}", path=p) from None
        except Exception as exc:
            raise DepthModelError(f"cannot load the model ({type(exc).__name__}: {first_line(exc)})", path=p) from None
        try:
            proc = AutoImageProcessor.from_pretrained(str(p), local_files_only=True)
        except Exception as exc:
            raise DepthModelError(f"cannot load preprocessor_config.json ({type(exc).__name__}: {first_line(exc)})",
                                  path=p) from None
    model.eval()
    return DepthModel(p, "hf", {"output": "disparity"}, _model=model, _processor=proc)


def fuse_detail(base: np.ndarray, learned: np.ndarray, mask: np.ndarray, strength: float = 0.15,
                sigma_frac: float = 0.05) -> np.ndarray:
    """Inflated height plus the learned map's detail (its high-pass part), on one grid.

    The learned map is normalised to 0..1 inside the mask, its low-pass part (Gaussian of
    ``sigma_frac`` of the mask's size) removed, and the remainder added with an amplitude of
    ``strength`` times the tallest inflated point. The detail fades out toward the outline, so
    the height stays 0 there and the mesh stays closed. Heights never go below 30% of the base.
    """
    m = np.asarray(mask, bool)
    if not m.any():
        return base
    d = np.asarray(learned, np.float64)
    lo, hi = np.percentile(d[m], [1, 99])
    d = np.clip((d - lo) / max(hi - lo, 1e-12), 0, 1)
    ys, xs = np.nonzero(m)
    size = max(int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1)
    sigma = max(1.0, sigma_frac * size)
    w = ndi.gaussian_filter(m.astype(float), sigma)
    low = ndi.gaussian_filter(np.where(m, d, 0.0), sigma) / np.maximum(w, 1e-6)
    detail = np.where(m, d - low, 0.0)
    hmax = float(base[m].max())
    edge = np.clip(base / max(0.25 * hmax, 1e-9), 0, 1)  # fade toward the outline
    out = base + strength * hmax * detail * edge
    return np.where(m, np.maximum(out, 0.3 * base), 0.0)
