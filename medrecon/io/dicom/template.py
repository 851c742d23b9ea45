"""Headers of a series' files from the previous file's, when only per-image values differ.

The files of one series written by one scanner share their header layout byte for byte: the
same elements at the same offsets with the same lengths, only a few values differ (instance
number, SOP Instance UID, position, temporal index...). :class:`SeriesTemplate` keeps the last
file read in full (by :func:`medrecon.io.dicom.scan.read_headers`); the next file's header bytes
are compared with it in one vectorised step, and when every differing byte lies inside the value
of an element whose meaning for a :class:`~medrecon.io.dicom.headers.FrameHeader` is known
(:data:`MAPPED`) or that the header reader never reads (a public element outside
:data:`~medrecon.io.dicom.fastparse.KEYWORDS`), the frame header is the template's with those
values replaced. Anything else (another size, another layout, a private element, an element the
reader uses in any other way) is read in full. ``tests/io/dicom_breadth`` checks that both give
equal headers.
"""
from __future__ import annotations

import math
import os

import numpy as np

from medrecon.io.dicom.fastparse import KEYWORDS, _convert

__all__ = ["SeriesTemplate", "MAPPED"]


def _k(name: str) -> int:
    return KEYWORDS[name][0]


def _as_int(v):
    return int(v) if v not in ("", None) and not isinstance(v, list) else None


def _as_float(v):
    return float(v) if v not in ("", None) and not isinstance(v, list) else None


def _ipp(v):
    if not isinstance(v, list) or len(v) != 3 or "" in v or not all(math.isfinite(x) for x in v):
        raise ValueError("position")
    return np.array(v, dtype=np.float64)


#: tag -> (FrameHeader field, decoder) of the per-image values taken from the new file.
MAPPED = {
    _k("SOPInstanceUID"): ("sop_instance", lambda v: v if isinstance(v, str) else None),
    _k("InstanceNumber"): ("instance", _as_int),
    _k("AcquisitionNumber"): ("acquisition", _as_int),
    _k("ImagePositionPatient"): ("ipp", _ipp),
    _k("TemporalPositionIdentifier"): ("temporal", _as_float),
    _k("TriggerTime"): ("trigger_time", _as_float),
}
#: elements the frame header reader uses (the keywords it reads, less a few kept only for the
#: sidecar or the file meta).
_READ_TAGS = {t for k, (t, _) in KEYWORDS.items() if k not in (
    "MediaStorageSOPInstanceUID", "ImplementationClassUID", "WindowCenter", "WindowWidth", "StudyInstanceUID",
    "FrameOfReferenceUID", "AcquisitionTime", "AcquisitionDuration", "FrameAcquisitionDateTime")}


class SeriesTemplate:
    """The last fully read file of a series and what may differ in the next one."""

    def __init__(self):
        self._by_size: dict[int, dict] = {}  # the last template of each file size (UIDs of two lengths)

    def learn(self, src, frames, status, ds) -> None:
        """Remember a file read in full (only a plain single-frame image read without pydicom)."""
        if status != "image" or len(frames) != 1 or frames[0].frame is not None or not hasattr(ds, "has_group"):
            return
        head = ds.__dict__.get("_medrecon_head")
        pixhead = ds.__dict__.get("_medrecon_pixhead")
        if head is None or pixhead is None or src.member is not None:
            return
        starts, ends, tags, vrs = [], [], [], []
        meta = ds.file_meta._dict if ds.file_meta is not None else {}
        for tag, e in list(meta.items()) + list(ds._dict.items()):
            starts.append(e.value_tell)
            ends.append(e.value_tell + e.length)
            tags.append(tag)
            vrs.append(e.VR or KEYWORDS.get(tag, (0, None))[1])
        order = np.argsort(starts)
        t = dict(
            size=os.path.getsize(src.path), head=np.frombuffer(head + pixhead, dtype=np.uint8), n=len(head) + len(pixhead),
            starts=np.asarray(starts, dtype=np.int64)[order], ends=np.asarray(ends, dtype=np.int64)[order],
            tags=[tags[i] for i in order], vrs=[vrs[i] for i in order], frame=frames[0])
        t["raw"] = bytes(head + pixhead)
        t["starts_l"], t["ends_l"] = t["starts"].tolist(), t["ends"].tolist()
        if len(self._by_size) > 8:
            self._by_size.clear()
        self._by_size[t["size"]] = t

    def headers(self, src):
        """The frame headers of ``src`` from the template, or None (read it in full).

        One ``os.read`` of the header bytes. When the elements that differed from the template
        in the previous file are known, the rest is compared as plain byte ranges (no array is
        made); otherwise, or when a byte outside them differs, the differing bytes are located
        with numpy and checked element by element."""
        if not self._by_size or src.member is not None:
            return None
        try:
            fd = os.open(src.path, os.O_RDONLY)
            try:
                t = self._by_size.get(os.fstat(fd).st_size)
                if t is None:
                    return None
                buf = os.read(fd, t["n"])
            finally:
                os.close(fd)
        except OSError:
            return None
        if len(buf) != t["n"]:
            return None
        head, starts, ends = t["raw"], t["starts_l"], t["ends_l"]
        known = t.get("known")  # (element indices that differed last time, the byte ranges between them)
        if known is not None and all(buf[a:b] == head[a:b] for a, b in known[1]):
            idx = [i for i in known[0] if buf[starts[i]:ends[i]] != head[starts[i]:ends[i]]]
        else:
            idx = self._differing(t, buf)
            if idx is None:
                return None
            spans, a = [], 0
            for i in idx:
                spans.append((a, starts[i]))
                a = ends[i]
            spans.append((a, t["n"]))
            t["known"] = (idx, spans)
        base = t["frame"]
        fr = object.__new__(type(base))
        fr.__dict__.update(base.__dict__)
        fr.source = src
        fr.extra = dict(fr.extra)
        for i in idx:
            m = MAPPED.get(t["tags"][i])
            if m is None:
                continue  # a value the header reader never reads
            name, dec = m
            try:
                setattr(fr, name, dec(_convert(t["vrs"][i], buf[starts[i]:ends[i]])))
            except (TypeError, ValueError):
                return None
        return [fr], "image", None

    @staticmethod
    def _differing(t, buf) -> list[int] | None:
        """Indices of the elements whose values differ from the template's (all of them per-image
        values of :data:`MAPPED` or values the header reader never reads), or None."""
        diff = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) != t["head"])
        if not diff.size:
            return []
        idx = np.searchsorted(t["starts"], diff, side="right") - 1
        if (idx < 0).any() or (diff >= t["ends"][np.maximum(idx, 0)]).any():
            return None  # a difference outside every value: another layout
        out = []
        for i in sorted(set(idx.tolist())):
            tag, vr = t["tags"][i], t["vrs"][i]
            if tag in MAPPED:
                if vr is None or vr == "SQ":
                    return None
            elif tag in _READ_TAGS or (tag >> 16) % 2 == 1 or vr == "SQ":
                return None  # a value the header reader uses (or may use): read in full
            out.append(i)
        return out
