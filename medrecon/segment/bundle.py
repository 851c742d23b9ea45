"""Read a MONAI bundle from a local folder: network, weights, preprocessing, window settings, labels.

Layout (MONAI bundle specification)::

    BUNDLE/
      configs/metadata.json        label names: network_data_format.outputs.pred.channel_def
      configs/inference.json       (or .yaml/.yml) network_def, preprocessing, inferer
      models/model.pt              state dict for network_def   (or the file named by "modelname")
      models/model.ts              TorchScript (used when there is no model.pt)

Nothing is downloaded. Every problem is a :class:`~medrecon.errors.BundleError` naming the file
that is missing or wrong.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medrecon.errors import BundleError

#: preprocessing steps that read files or add the channel axis: we hand the image over ourselves.
_SKIPPED_TRANSFORMS = {"LoadImage", "LoadImaged", "EnsureChannelFirst", "EnsureChannelFirstd",
                       "AddChannel", "AddChanneld", "SaveImage", "SaveImaged"}
_CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")


@dataclass
class Bundle:
    """A bundle ready to run.

    Attributes
    ----------
    root : bundle folder.
    network : torch module (eval mode, on ``device``) or TorchScript module.
    weights : the weights file that was loaded.
    preprocessing : MONAI transforms to apply to ``{image_key: MetaTensor}`` (file loading and
        channel-first steps removed).
    image_key : dictionary key the transforms use for the image.
    inferer : window settings: roi_size, sw_batch_size, overlap, mode, sigma_scale, padding_mode, cval.
    channel_def : output channel index -> structure name (0 is background).
    in_channels : number of input channels the network expects.
    """

    root: Path
    network: Any
    weights: Path
    preprocessing: list
    image_key: str
    inferer: dict[str, Any]
    channel_def: dict[int, str]
    in_channels: int = 1
    meta: dict[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read bundle metadata: {exc}", path) from exc


def bundle_files(root: str | Path) -> tuple[Path, Path, Path]:
    """Return (metadata, inference config, weights) paths, or raise BundleError naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise BundleError("bundle folder not found (expected a folder with configs/ and models/)", root)
    meta = root / "configs" / "metadata.json"
    if not meta.is_file():
        raise BundleError("bundle has no configs/metadata.json (needed for the label names)", root)
    cfg = next((root / "configs" / n for n in _CONFIG_NAMES if (root / "configs" / n).is_file()), None)
    if cfg is None:
        raise BundleError("bundle has no configs/inference.json (or .yaml): network and preprocessing unknown", root)
    models = root / "models"
    weights = [p for p in (models / "model.pt", models / "model.ts") if p.is_file()]
    if not weights:
        extra = sorted(p.name for p in models.glob("*")) if models.is_dir() else []
        hint = f" (models/ holds: {', '.join(extra)})" if extra else ""
        raise BundleError(f"bundle has no weights: models/model.pt or models/model.ts missing{hint}; "
                          "download the bundle's large files first, medrecon never downloads", root)
    return meta, cfg, weights[0]


def channel_def(meta: dict, meta_path: Path) -> dict[int, str]:
    """Output channel index -> name from ``network_data_format.outputs.pred.channel_def``."""
    try:
        outputs = meta["network_data_format"]["outputs"]
        pred = outputs.get("pred") or next(iter(outputs.values()))
        cdef = pred["channel_def"]
        return {int(k): str(v) for k, v in cdef.items()}
    except (KeyError, TypeError, StopIteration, AttributeError, ValueError) as exc:
        raise BundleError("metadata.json has no network_data_format.outputs.pred.channel_def "
                          "(the label names)", meta_path) from exc


def _flatten(transform: Any) -> list:
    inner = getattr(transform, "transforms", None)
    if inner is not None and type(transform).__name__ == "Compose":
        return [t for x in inner for t in _flatten(x)]
    return [transform]


def _parsed(parser, key: str, cfg_path: Path, what: str) -> Any:
    try:
        return parser.get_parsed_content(key, instantiate=True)
    except Exception as exc:  # noqa: BLE001 - config errors come in many types
        msg = " ".join(str(exc).split())[:300]
        raise BundleError(f"cannot build '{key}' ({what}) from the config: {type(exc).__name__}: {msg}",
                          cfg_path) from exc


def _load_state_dict(net, weights: Path, device) -> None:
    import torch

    try:
        state = torch.load(weights, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise BundleError(f"cannot read the weights: {type(exc).__name__}: {exc}", weights) from exc
    if isinstance(state, dict):
        for key in ("model", "state_dict", "network"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise BundleError("weights file does not hold a state dict", weights)
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es), e.g. {'; '.join(wrong[:3])}")
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {', '.join(unexpected[:3])}")
        raise BundleError(f"weights do not fit the bundle's network_def ({type(net).__name__}): "
                          + "; ".join(parts), weights)
    net.load_state_dict(state, strict=True)


def _inferer_settings(parser, cfg_path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"roi_size": None, "sw_batch_size": 1, "overlap": 0.25, "mode": "constant",
                           "sigma_scale": 0.125, "padding_mode": "constant", "cval": 0.0}
    if "inferer" not in parser.config:
        return out
    inf = _parsed(parser, "inferer", cfg_path, "sliding-window inferer")
    for k in out:
        v = getattr(inf, k, None)
        if v is not None:
            out[k] = v.value if hasattr(v, "value") else v
    if out["roi_size"] is not None:
        out["roi_size"] = tuple(int(r) for r in out["roi_size"])
    return out


def load_bundle(root: str | Path, device: Any = "cpu") -> Bundle:
    """Load a bundle folder for inference on ``device`` (a torch device or its name).

    Raises
    ------
    BundleError
        folder, metadata, config or weights missing; label names absent; weights that do not
        fit the network (missing/unexpected keys or shape mismatches, all named).
    """
    import torch
    from monai.bundle import ConfigParser

    root = Path(root).resolve()
    meta_path, cfg_path, weights = bundle_files(root)
    meta = _read_json(meta_path)
    cdef = channel_def(meta, meta_path)
    parser = ConfigParser()
    try:
        parser.read_config(str(cfg_path))
        parser.read_meta(str(meta_path))
    except Exception as exc:  # noqa: BLE001
        raise BundleError(f"cannot parse the config: {type(exc).__name__}: {exc}", cfg_path) from exc
    parser["bundle_root"] = str(root)
    dev = torch.device(device)

    # weights: the file the config names (modelname), else model.pt, else model.ts
    pt = root / "models" / "model.pt"
    if "modelname" in parser.config:
        try:
            name = parser.get_parsed_content("modelname")
            if (root / "models" / str(name)).is_file():
                pt = root / "models" / str(name)
        except Exception:  # noqa: BLE001 - fall back to model.pt
            pass
    if pt.is_file() and "network_def" in parser.config:
        net = _parsed(parser, "network_def", cfg_path, "the network")
        _load_state_dict(net, pt, dev)
        weights = pt
    elif (root / "models" / "model.ts").is_file():
        weights = root / "models" / "model.ts"
        try:
            net = torch.jit.load(str(weights), map_location=dev)
        except Exception as exc:  # noqa: BLE001
            raise BundleError(f"cannot load the TorchScript model: {type(exc).__name__}: {exc}", weights) from exc
    else:
        raise BundleError("config has no network_def for models/model.pt, and there is no models/model.ts", cfg_path)
    net = net.to(dev).eval()

    # preprocessing, minus file loading
    image_key = "image"
    if "image_key" in parser.config:
        try:
            image_key = str(parser.get_parsed_content("image_key"))
        except Exception:  # noqa: BLE001
            pass
    steps: list = []
    if "preprocessing" in parser.config:
        steps = _flatten(_parsed(parser, "preprocessing", cfg_path, "the preprocessing"))
    kept = []
    for t in steps:
        if type(t).__name__ in _SKIPPED_TRANSFORMS:
            keys = getattr(t, "keys", None)
            if type(t).__name__.startswith("LoadImage") and keys:
                image_key = str(keys[0])
            continue
        kept.append(t)
    # sigmoid (multi-label) outputs cannot be written as one label map
    post = json.dumps(parser.config.get("postprocessing", {}))
    if '"sigmoid": true' in post.replace("True", "true"):
        raise BundleError("bundle postprocessing uses sigmoid (overlapping multi-label outputs); "
                          "only softmax/argmax bundles can be written as one label map", cfg_path)
    inferer = _inferer_settings(parser, cfg_path)
    in_ch = 1
    try:
        in_ch = int(next(iter(meta["network_data_format"]["inputs"].values())).get("num_channels", 1))
    except (KeyError, TypeError, StopIteration, AttributeError, ValueError):
        pass
    return Bundle(root=root, network=net, weights=weights, preprocessing=kept, image_key=image_key,
                  inferer=inferer, channel_def=cdef, in_channels=in_ch,
                  meta={k: meta.get(k) for k in ("name", "version", "task", "description") if k in meta})
