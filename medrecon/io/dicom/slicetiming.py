"""Slice timing (BIDS ``SliceTiming``, seconds, first slice acquired = 0) where the headers do not
list a time per slice, inferred from the vendor's slice order as dcm2niix infers it, and the
per-frame times of enhanced objects.

* **Siemens** (classic and mosaic without ``MosaicRefAcqTimes``, e.g. VB12): the protocol in the
  CSA series header (``MrProtocol`` / ``MrPhoenixProtocol``, ASCCONV): ``sSliceArray.ucMode``
  1 ascending, 2 descending, 4 interleaved (odd slice count: 1, 3, 5... first; even: 2, 4...
  first, 1-based), ``lDelayTimeInTR`` (us); acquisition time TA = TR - delay spread evenly over
  the slices. Not inferred with several concatenations or multiband.
* **GE**: the protocol data block ``(0025,101B)`` (gzip text): ``SLICEORDER`` 0 sequential,
  1 interleaved (odd slices first, 1-based); the acquisition starts at ``First scan location``
  ``(0019,1019)``; TA = TR (``DELACQ`` must be 0).
* **Enhanced MR** (Siemens XA, ...): each frame's ``FrameAcquisitionDateTime``.
* **Siemens mosaic** ``MosaicRefAcqTimes`` that exceed TR (the first volume of some multiband
  runs) are not times of that TR: the next volume's are used (as dcm2niix).

Times are returned in the output's slice order (ascending along the slice normal).
"""
from __future__ import annotations

import re

import numpy as np

__all__ = ["inferred_slice_timing", "order_times", "siemens_protocol", "ge_protocol", "frame_times"]


def order_times(n: int, order: str, ta: float, interleave_start: int = 0) -> list[float]:
    """Time of each slice (acquisition index order = spatial order from the first acquired end)
    for ``order`` 'ascending' / 'descending' / 'interleaved' over acquisition time ``ta``."""
    if order == "interleaved":
        seq = list(range(interleave_start, n, 2)) + list(range(1 - interleave_start, n, 2))
    elif order == "descending":
        seq = list(range(n - 1, -1, -1))
    else:
        seq = list(range(n))
    t = [0.0] * n
    for rank, s in enumerate(seq):
        t[s] = rank * ta / n
    return t


def siemens_protocol(ds) -> dict:
    """``{'mode', 'n', 'delay', 'conc', 'mb'}`` from the ASCCONV protocol of a Siemens file."""
    text = None
    if hasattr(ds, "has_group") and not ds.has_group(0x0029) and not ds.has_group(0x0021):
        return {}  # read without pydicom and no Siemens private header: nothing to find
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from nibabel.nicom import csareader

            csa = csareader.get_csa_header(ds.full() if hasattr(ds, "full") else ds, "series")
        tags = (csa or {}).get("tags", {})
        for key in ("MrPhoenixProtocol", "MrProtocol"):
            items = tags.get(key, {}).get("items") or []
            if items:
                text = str(items[0])
                break
    except Exception:  # noqa: BLE001 - no or odd CSA header
        text = None
    if text is None:
        el = ds.get((0x0021, 0x1019)) if hasattr(ds, "get") else None  # XA: the protocol itself
        if el is not None and isinstance(el.value, (bytes, bytearray)):
            text = el.value.decode("latin-1", "replace")
    if not text:
        return {}
    out = {}
    for key, name, cast in (("sSliceArray.ucMode", "mode", lambda v: int(v, 0)),
                            ("sSliceArray.lSize", "n", int), ("lDelayTimeInTR", "delay", lambda v: int(v) / 1e6),
                            ("sSliceArray.lConc", "conc", int),
                            ("sSliceAcceleration.lMultiBandFactor", "mb", int)):
        m = re.search(r"^\s*" + re.escape(key) + r"\s*=\s*(\S+)", text, re.M)
        if m:
            try:
                out[name] = cast(m.group(1))
            except ValueError:
                pass
    return out


def ge_protocol(ds) -> dict[str, str]:
    """Key/value pairs of the GE protocol data block (0025,101B) (gzip-compressed text)."""
    import gzip

    el = ds.get((0x0025, 0x101B)) if hasattr(ds, "get") else None
    if el is None or not isinstance(el.value, (bytes, bytearray)):
        return {}
    blob = bytes(el.value)
    start = blob.find(b"\x1f\x8b")
    if start < 0:
        return {}
    try:
        text = gzip.decompress(blob[start:]).decode("latin-1", "replace")
    except (OSError, EOFError):
        return {}
    return {m.group(1): m.group(2) for m in re.finditer(r'^\s*(\w+)\s+"([^"]*)"', text, re.M)}


def _dt_seconds(v) -> float | None:
    """DICOM DT ``YYYYMMDDHHMMSS.frac`` as seconds of the day (same-day frames)."""
    t = str(v or "").strip()
    if len(t) < 14:
        return None
    try:
        return int(t[8:10]) * 3600 + int(t[10:12]) * 60 + float(t[12:])
    except ValueError:
        return None


def frame_times(ds, frame_indices: list[int]) -> list[float] | None:
    """FrameAcquisitionDateTime of the given frames of an enhanced object, relative to the first
    acquired (s); None when missing or all equal."""
    pf = ds.get("PerFrameFunctionalGroupsSequence") if hasattr(ds, "get") else None
    if not pf:
        return None
    t = []
    for i in frame_indices:
        if i is None or i >= len(pf):
            return None
        fc = pf[i].get("FrameContentSequence")
        v = _dt_seconds(fc[0].get("FrameAcquisitionDateTime")) if fc else None
        if v is None:
            return None
        t.append(v)
    if len(t) < 2 or max(t) - min(t) <= 0:
        return None
    return [x - min(t) for x in t]


def _tr_seconds(ds) -> float | None:
    try:
        v = ds.get("RepetitionTime")
        return float(v) / 1000.0 if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def inferred_slice_timing(series, ds, man: str) -> list[float] | None:
    """SliceTiming of ``series`` (output slice order) from the vendor's protocol; ``ds`` is the
    dataset of its first file. None where dcm2niix would not infer it either."""
    n = series.size()[2] if series.mosaic is not None else len(series.slices)
    tr = _tr_seconds(ds)
    if n < 2 or not tr:
        return None
    if man == "Siemens":
        p = siemens_protocol(ds)
        if p.get("n") != n or p.get("conc", 1) != 1 or p.get("mb", 1) not in (0, 1) or p.get("mode") not in (1, 2, 4):
            return None
        ta = tr - float(p.get("delay") or 0.0)
        order = {1: "ascending", 2: "descending", 4: "interleaved"}[p["mode"]]
        t = order_times(n, order, ta, interleave_start=0 if n % 2 else 1)
        # Siemens numbers slices in the mosaic's tile order (a mosaic) or along the normal
        return t
    if man == "GE":
        p = ge_protocol(ds)
        if p.get("SLICEORDER") not in ("0", "1") or p.get("DELACQ", "0") not in ("0", ""):
            return None
        t = order_times(n, "interleaved" if p["SLICEORDER"] == "1" else "ascending", tr)
        if series.geometry is not None and _ge_starts_at_top(series, ds):
            t = t[::-1]
        return t
    return None


def _ge_starts_at_top(series, ds) -> bool:
    """Whether GE's first scan location (0019,1019, RAS along the slice axis) is our last slice."""
    el = ds.get((0x0019, 0x1019)) if hasattr(ds, "get") else None
    try:
        loc = float(el.value)
    except (AttributeError, TypeError, ValueError):
        return False
    geo = series.geometry
    axis = int(np.argmax(np.abs(geo.n)))
    ras = np.array([-1.0, -1.0, 1.0])[axis]
    first, last = geo.positions[0][axis] * ras, geo.positions[-1][axis] * ras
    return abs(loc - last) < abs(loc - first)
