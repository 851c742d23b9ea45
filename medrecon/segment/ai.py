"""AI segmentation: a :class:`~medrecon.volume.Volume` segmented by a MONAI bundle from a local folder.

(Named ``ai`` rather than ``monai`` so that it never shadows the ``monai`` package.)

Steps:

1. :func:`medrecon.segment.bundle.load_bundle` reads network, weights, preprocessing, window
   settings and label names (nothing is downloaded);
2. the Volume becomes a channel-first MONAI ``MetaTensor`` carrying its **RAS** affine (MONAI's
   convention), and the bundle's own preprocessing runs on it (orientation, spacing, intensity
   window...; the file-loading steps are skipped);
3. :func:`medrecon.segment.inference.sliding_window_labels` turns the network's logits into a
   label map on the preprocessed grid (bf16 on GPU, no full-size C-channel buffer);
4. the label map is resampled **nearest-neighbour** back onto the input's own grid: output affine
   and shape equal the input's exactly.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medrecon.errors import BundleError, SegmentationError
from medrecon.io.label_tables import load_label_table, write_slicer_ctbl
from medrecon.labelmap import LabelInfo, default_color, present_labels, resample_labels_to
from medrecon.orientation import lps_ras_affine
from medrecon.progress import ProgressFn
from medrecon.volume import Volume

__all__ = ["segment_volume", "segment_to_file", "labels_from_channel_def", "to_metatensor", "SegmentFileResult"]


def _known_colors() -> dict[str, tuple[float, float, float]]:
    """Structure name -> colour of the built-in TotalSegmentator table."""
    return {li.name.lower(): tuple(li.color) for li in load_label_table("totalsegmentator").values()}


def labels_from_channel_def(cdef: dict[int, str]) -> dict[int, LabelInfo]:
    """LabelInfo for every non-background channel (index 0 and any 'background' are dropped)."""
    colors = _known_colors()
    out: dict[int, LabelInfo] = {}
    for idx in sorted(cdef):
        name = str(cdef[idx]).strip()
        if idx == 0 or name.lower() in ("background", "bg", "_background_"):
            continue
        key = name.lower().replace(" ", "_")
        out[idx] = LabelInfo(idx, name.replace(" ", "_"), colors.get(key) or default_color(key, idx))
    return out


def to_metatensor(volume: Volume):
    """Channel-first float32 ``MetaTensor`` with the Volume's RAS affine (MONAI's convention)."""
    import torch
    from monai.data import MetaTensor

    arr = np.asarray(volume.array, dtype=np.float32)
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(arr))[None],
                      affine=torch.as_tensor(volume.ras_affine, dtype=torch.float64),
                      meta={"space": "RAS", "filename_or_obj": "volume"})


def _preprocess(bundle, image, raise_errors: bool = False) -> dict:
    """Run the bundle's preprocessing on ``{image_key: image}``."""
    data = {bundle.image_key: image}
    for step in bundle.preprocessing:
        try:
            data = step(data)
        except Exception as exc:  # noqa: BLE001
            if not raise_errors:
                raise
            raise BundleError(f"preprocessing step {type(step).__name__} failed: {type(exc).__name__}: {exc}",
                              bundle.root / "configs") from exc
    return data


def segment_volume(volume: Volume, bundle_dir: str | Path, device: str = "auto", progress: ProgressFn | None = None,
                   *, sw_batch_size: int | None = None, compile: bool = False) -> tuple[Volume, dict[int, LabelInfo]]:
    """Run a local MONAI bundle on ``volume``.

    Parameters
    ----------
    volume : 3D Volume (CT in HU, MR in scanner units), affine index -> LPS mm.
    bundle_dir : bundle folder (configs/metadata.json, configs/inference.json, models/model.pt|ts).
    device : ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    progress : ``progress(ProgressEvent)`` (:mod:`medrecon.progress`), optional.
    sw_batch_size : windows per network call; default: the bundle's, at least 4 on GPU.
    compile : ``torch.compile`` the network (GPU: about twice as fast per volume, but the first
        call of a process pays ~30 s of compilation; worth it for batches of large scans).

    Returns
    -------
    (Volume, dict[int, LabelInfo])
        Integer label map on **the input's own grid** (same shape, same affine), and the label
        table from the bundle's ``channel_def`` (background excluded).

    Raises
    ------
    BundleError : incomplete or inconsistent bundle.
    SegmentationError : 4D input, unusable device, or inference failure.
    """
    import torch

    from medrecon.segment.bundle import load_bundle
    from medrecon.segment.inference import prepare_network, resolve_device, sliding_window_labels

    if volume.array.ndim != 3:
        raise SegmentationError(f"segmentation needs a 3D volume, got shape {volume.shape}")
    try:
        dev = resolve_device(device)
    except (RuntimeError, ValueError) as exc:
        raise SegmentationError(str(exc)) from exc
    bundle = load_bundle(bundle_dir, dev)
    if bundle.in_channels != 1:
        raise BundleError(f"bundle expects {bundle.in_channels} input channels; medrecon feeds one volume",
                          bundle.root / "configs" / "metadata.json")
    t0 = time.perf_counter()
    data = None
    if dev.type == "cuda":  # MONAI's spatial/intensity transforms run on GPU tensors too
        try:
            data = _preprocess(bundle, to_metatensor(volume).to(dev))
        except Exception:  # noqa: BLE001 - a transform that needs host data: redo it all on the CPU
            data = None
    if data is None:
        data = _preprocess(bundle, to_metatensor(volume), raise_errors=True)
    img = data[bundle.image_key]
    pre_affine = np.asarray(img.affine.detach().cpu().numpy() if hasattr(img, "affine") else volume.ras_affine,
                            dtype=np.float64)
    if str(getattr(img, "meta", {}).get("space", "RAS")).upper() == "LPS":
        pre_affine = lps_ras_affine(pre_affine)
    img = torch.as_tensor(img).as_subclass(torch.Tensor)
    t_pre = time.perf_counter() - t0

    inf = bundle.inferer
    roi = inf["roi_size"] or tuple(int(s) for s in img.shape[1:])
    bs = sw_batch_size or max(int(inf["sw_batch_size"] or 1), 4 if dev.type == "cuda" else 1)
    t1 = time.perf_counter()
    try:
        predictor, engine_kw = prepare_network(bundle.network, dev, precision="auto", compile=compile)
        lab = sliding_window_labels(
            img, predictor, roi, **engine_kw, overlap=inf["overlap"], mode=str(inf["mode"]),
            sigma_scale=inf["sigma_scale"], sw_batch_size=bs, device=dev,
            padding_mode=str(inf["padding_mode"]), cval=float(inf["cval"] or 0.0),
            progress=progress,
        )
    except RuntimeError as exc:
        raise SegmentationError(f"inference failed on {dev}: {' '.join(str(exc).split())[:300]}") from exc
    t_inf = time.perf_counter() - t1
    lab_np = lab.cpu().numpy()
    n_ch = len(bundle.channel_def)
    if lab_np.size and int(lab_np.max()) >= max(n_ch, 1):
        raise BundleError(f"network gave channel {int(lab_np.max())} but metadata channel_def names only {n_ch}",
                          bundle.root / "configs" / "metadata.json")
    out = resample_labels_to(lab_np, lps_ras_affine(pre_affine), volume.shape, volume.affine)
    dtype = np.uint8 if n_ch <= 256 else np.uint16
    labels = labels_from_channel_def(bundle.channel_def)
    result = volume.with_array(
        out.astype(dtype, copy=False), kind="labelmap", units=None,
        label_names={int(k): v.name for k, v in labels.items()},
        label_colors={int(k): list(v.color) for k, v in labels.items()},
        source=f"MONAI bundle {bundle.meta.get('name') or bundle.root.name}",
        description=(f"preprocessing {t_pre:.2f} s, inference {t_inf:.2f} s on {dev}, "
                     f"grid {tuple(lab_np.shape)} -> {tuple(out.shape)}"),
    )
    return result, labels


@dataclass
class SegmentFileResult:
    """What :func:`segment_to_file` wrote: the label map file, its colour table, and the result."""

    path: Path
    table_path: Path
    labelmap: Volume
    labels: dict[int, LabelInfo]

    @property
    def found(self) -> list[int]:
        """Label values present in the label map."""
        return present_labels(self.labelmap.array)


def segment_to_file(input: str, output: str, bundle: str, device: str = "auto", series: str | None = None,
                    progress: ProgressFn | None = None) -> SegmentFileResult:
    """Load ``input``, segment with ``bundle``, write the label map to ``output`` (.nii.gz/.nrrd, on
    the input's grid) and a Slicer colour table ``<output stem>.ctbl`` beside it naming every label
    (use it with ``medrecon mesh --labels OUT --label-table OUT.ctbl``).

    ``progress(ProgressEvent)`` is called as sliding windows finish.
    """
    from medrecon.io.loader import load
    from medrecon.io.volumes import save_volume

    out = Path(output)
    vol = load(str(input), series=series)
    labelmap, labels = segment_volume(vol, bundle, device=device, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_volume(labelmap, out)
    name = out.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".seg.nrrd"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    table = write_slicer_ctbl(labels, out.with_name(name + ".ctbl"))
    return SegmentFileResult(out, Path(table), labelmap, labels)
