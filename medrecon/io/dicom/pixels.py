"""Pixel decoding: native data straight from disk, compressed data with pydicom's plugins.

* Native little-endian data in plain files are read with one ``numpy.fromfile`` per file at the
  offset found while scanning headers (no second header parse).
* Everything else (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE, deflated, big
  endian, gzip/zip-wrapped files) goes through :func:`pydicom.pixels.pixel_array` with the
  pylibjpeg / openjpeg / GDCM plugins; when there are many such frames they are decoded in
  parallel across CPU cores with a process pool (the codecs hold the GIL, threads do not help).
* Stored values are masked to ``BitsStored`` and sign-extended when ``PixelRepresentation`` is 1,
  whatever junk sits in the unused high bits.
* Rescale slope/intercept (per frame for enhanced objects) is applied by :func:`rescale`.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np

from medrecon.errors import DicomError
from medrecon.io.dicom.headers import FrameHeader
from medrecon.io.dicom.scan import read_dataset
from medrecon.io.dicom.source import Source
from medrecon.progress import ProgressEvent, ProgressFn

__all__ = ["read_frames", "rescale", "fix_bits", "default_workers", "TRANSFER_SYNTAX_NAMES"]

TRANSFER_SYNTAX_NAMES = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.4.201": "HTJ2K Lossless",
    "1.2.840.10008.1.2.4.202": "HTJ2K Lossless RPCL",
    "1.2.840.10008.1.2.4.203": "HTJ2K",
    "1.2.840.10008.1.2.5": "RLE Lossless",
}

#: Below this many frames needing a codec, decoding stays in this process.
PARALLEL_MIN_FRAMES = 8


def default_workers() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _stored_dtype(fh: FrameHeader) -> np.dtype:
    ba = fh.bits_allocated
    if ba not in (8, 16, 32):
        raise DicomError(f"unsupported BitsAllocated={ba} for native pixel data", fh.source.name)
    kind = "i" if fh.pixel_representation == 1 else "u"
    return np.dtype(f"<{kind}{ba // 8}")


def fix_bits(arr: np.ndarray, bits_stored: int, high_bit: int, signed: bool) -> np.ndarray:
    """Keep only the ``bits_stored`` bits ending at ``high_bit``; sign-extend if ``signed``.

    Works in place where possible and returns the (possibly new) array.
    """
    nbits = arr.dtype.itemsize * 8
    if arr.dtype.kind not in "iu" or bits_stored >= nbits:
        return arr
    low = high_bit + 1 - bits_stored
    u = arr.view(np.dtype(f"u{arr.dtype.itemsize}"))
    if low > 0:
        u >>= low
    u &= (1 << bits_stored) - 1
    if signed:
        s = u.view(np.dtype(f"i{arr.dtype.itemsize}"))
        shift = nbits - bits_stored
        s <<= shift
        s >>= shift  # arithmetic shift: sign extension
        return s
    return u


def _read_native(fh: FrameHeader, frames: Sequence[FrameHeader]) -> np.ndarray:
    """All requested frames of one plain native file, straight from disk."""
    dtype = _stored_dtype(fh)
    per_frame = fh.frame_bytes
    need = per_frame * fh.n_frames_in_file
    if fh.pixel_length is not None and fh.pixel_length < need:
        raise DicomError(f"pixel data shorter than the header says ({fh.pixel_length} of {need} bytes)",
                         fh.source.name)
    try:
        size = os.path.getsize(fh.source.path)
    except OSError as exc:
        raise DicomError(f"cannot read file ({exc.strerror})", fh.source.name) from exc
    if fh.pixel_offset + need > size:
        raise DicomError(f"file truncated: pixel data shorter than the header says "
                         f"({max(0, size - fh.pixel_offset)} of {need} bytes)", fh.source.name)
    count = need // dtype.itemsize
    arr = np.fromfile(fh.source.path, dtype=dtype, count=count, offset=fh.pixel_offset)
    if fh.samples_per_pixel == 1:
        arr = arr.reshape(fh.n_frames_in_file, fh.rows, fh.cols)
    else:
        arr = arr.reshape(fh.n_frames_in_file, fh.rows, fh.cols, fh.samples_per_pixel)
    arr = fix_bits(arr, fh.bits_stored, fh.high_bit, fh.pixel_representation == 1)
    idx = [f.frame or 0 for f in frames]
    return arr[idx] if len(idx) != arr.shape[0] or idx != list(range(arr.shape[0])) else arr


_PREADV = hasattr(os, "preadv")


def _read_singles_into(frames, singles, shape, place) -> np.ndarray | None:
    """Native single-frame files read with ``readinto`` into one array (same checks and errors
    as :func:`_read_native`), BitsStored fixed once, then placed. When the files are all the
    frames, in order, they are read straight into the result (one array, no copy: peak memory
    is the final array) and it is returned."""
    f0 = frames[singles[0][1][0]]
    dtype = _stored_dtype(f0)
    direct = len(singles) == len(frames) and all(p[0] == k for k, (_, p) in enumerate(singles))
    buf = np.empty((len(singles),) + shape, dtype=dtype)
    need = f0.frame_bytes
    for k, (src, positions) in enumerate(singles):
        fh = frames[positions[0]]
        if fh.frame_bytes != need:
            raise DicomError(f"frame size differs from the series ({fh.rows}x{fh.cols})", fh.source.name)
        if fh.pixel_length is not None and fh.pixel_length < need:
            raise DicomError(f"pixel data shorter than the header says ({fh.pixel_length} of {need} bytes)",
                             fh.source.name)
        try:
            if _PREADV:  # one system call, no Python file object (thousands of small files)
                fd = os.open(fh.source.path, os.O_RDONLY)
                try:
                    got = os.preadv(fd, [memoryview(buf[k]).cast("B")], fh.pixel_offset)
                finally:
                    os.close(fd)
            else:  # pragma: no cover - platforms without preadv
                with open(fh.source.path, "rb") as f:
                    f.seek(fh.pixel_offset)
                    got = f.readinto(memoryview(buf[k]).cast("B"))
        except OSError as exc:
            raise DicomError(f"cannot read file ({exc.strerror})", fh.source.name) from exc
        if got < need:
            raise DicomError(f"file truncated: pixel data shorter than the header says ({got} of {need} bytes)",
                             fh.source.name)
    buf = fix_bits(buf, f0.bits_stored, f0.high_bit, f0.pixel_representation == 1)
    if direct:
        return buf
    place([positions[0] for _, positions in singles], buf)
    return None


def _decode_with_pydicom(src: Source, frame_idx: Sequence[int | None], ts: str) -> np.ndarray:
    """Decode the given frames of one file with pydicom (any transfer syntax it supports)."""
    from pydicom.pixels import pixel_array

    name = src.name
    res = read_dataset(src, stop_before_pixels=False)
    if res is None:
        raise DicomError("not readable as DICOM any more", name)
    ds, _ = res
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DicomError("no pixel data in file: the object has image attributes but no PixelData (cut "
                         "short, or exported without pixels); loadable from a complete copy", name)
    tsname = TRANSFER_SYNTAX_NAMES.get(ts, ts)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    out = []
    try:
        if n == 1 or len(frame_idx) * 2 > n:
            allf = ds.pixel_array
            if n == 1:
                allf = allf[None]
            out = [allf[i or 0] for i in frame_idx]
        else:
            out = [pixel_array(ds, index=int(i or 0)) for i in frame_idx]
    except DicomError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except MemoryError:
        raise DicomError(f"cannot decode pixel data ({tsname}): not enough memory", name) from None
    except BaseException as exc:  # noqa: BLE001 - every codec/plugin error (pyo3 PanicException
        # derives from BaseException) becomes one clear line
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "shorter" in msg or "doesn't match the expected length" in msg or "expected length" in msg:
            raise DicomError(f"pixel data shorter than the header says ({msg})", name) from exc
        raise DicomError(f"cannot decode pixel data ({tsname}): {msg}", name) from exc
    arr = np.stack(out)
    if arr.dtype.kind in "iu":
        bs = int(ds.get("BitsStored", arr.dtype.itemsize * 8) or 0)
        hb = int(ds.get("HighBit", bs - 1))
        if hb + 1 - bs == 0:  # pydicom already shifted; make sure of masking and sign
            arr = fix_bits(np.ascontiguousarray(arr), bs, bs - 1, int(ds.get("PixelRepresentation", 0)) == 1)
    return arr


def _decode_job(job: tuple[Source, list[int | None], str, int]) -> tuple[int, np.ndarray]:
    from medrecon.io.limits import guard

    src, frame_idx, ts, pos = job
    with guard(src.name, "cannot decode pixel data"):  # only picklable MedreconErrors leave a worker
        return pos, _decode_with_pydicom(src, frame_idx, ts)


def _decode_here(src: Source, frame_idx, ts: str) -> np.ndarray:
    """Decode in this process's stead: in a forked child (``MEDRECON_CONTAIN_CODECS``, default),
    where a codec that aborts (GDCM's SIGABRT) or panics cannot take the caller down."""
    from medrecon.io.limits import contain_codecs, guard, run_contained

    if contain_codecs():
        return run_contained(_decode_with_pydicom, (src, frame_idx, ts), src.name, what="pixel decoder")
    with guard(src.name, "cannot decode pixel data"):
        return _decode_with_pydicom(src, frame_idx, ts)


#: Photometric interpretations a greyscale volume may have.
_GREY = ("MONOCHROME1", "MONOCHROME2")
_JPEG_16 = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
            "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}


def check_codec_header(fh: FrameHeader) -> None:
    """Header facts a codec relies on, checked before it sees the data (codecs abort the
    process on some impossible combinations): photometric interpretation against samples per
    pixel, Rows/Columns limits, BitsAllocated/BitsStored/HighBit."""
    from medrecon.io.limits import max_dim

    name = fh.source.name
    pi = (fh.photometric or "").upper().strip()
    if fh.samples_per_pixel == 1 and pi not in _GREY:
        if pi.startswith("PALETTE"):
            raise DicomError("PALETTE COLOR image (indices into a colour table, not intensities): "
                             "not a greyscale volume", name)
        raise DicomError(f"PhotometricInterpretation {pi or '(empty)'} does not fit 1 sample per pixel", name)
    if not (0 < fh.rows <= max_dim() and 0 < fh.cols <= max_dim()):
        raise DicomError(f"Rows x Columns {fh.rows} x {fh.cols} out of range (MEDRECON_MAX_DIM {max_dim()})", name)
    ba = fh.bits_allocated
    if (ba not in (1, 8, 16, 32, 64) or (fh.transfer_syntax in _JPEG_16 and ba not in (8, 16))
            or (not fh.is_native and fh.transfer_syntax not in _JPEG_16 and ba not in (1, 8, 16, 32))):
        raise DicomError(f"BitsAllocated {fh.bits_allocated} not supported for "
                         f"{TRANSFER_SYNTAX_NAMES.get(fh.transfer_syntax, fh.transfer_syntax)}", name)
    if not (0 < fh.bits_stored <= fh.bits_allocated) or not (fh.bits_stored - 1 <= fh.high_bit < fh.bits_allocated):
        raise DicomError(f"BitsStored {fh.bits_stored} / HighBit {fh.high_bit} do not fit BitsAllocated "
                         f"{fh.bits_allocated}", name)


def _fork_ok() -> bool:
    """Process pools only on Linux (fork) and never inside a daemonic worker process, which
    may not have children (e.g. when medrecon itself runs in a multiprocessing pool)."""
    import multiprocessing as mp  # imported only where a pool may start (its import is not free)

    return (sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()
            and not mp.current_process().daemon)


def read_frames(frames: Sequence[FrameHeader], workers: int | None = None,
                progress: ProgressFn | None = None) -> np.ndarray:
    """Decode ``frames`` (in the given order) into one array of stored values.

    Returns an array shaped ``(n, rows, cols)`` (``(n, rows, cols, samples)`` for colour) holding
    the stored values after BitsStored masking and sign extension (no rescale yet).
    ``workers`` caps the number of processes for compressed data (default: all cores).
    """
    if not frames:
        raise DicomError("no frames to decode")
    checked = set()
    for fr in frames:  # every distinct header checked: nothing impossible reaches a codec or an allocation
        key = (fr.photometric, fr.samples_per_pixel, fr.rows, fr.cols, fr.bits_allocated, fr.bits_stored,
               fr.high_bit, fr.transfer_syntax)
        if key not in checked:
            checked.add(key)
            check_codec_header(fr)
    f0 = frames[0]
    shape = (f0.rows, f0.cols) + ((f0.samples_per_pixel,) if f0.samples_per_pixel > 1 else ())
    # group frames by file, remembering output positions
    by_src: dict[Source, list[int]] = {}
    for pos, fr in enumerate(frames):
        by_src.setdefault(fr.source, []).append(pos)
    native_jobs, codec_jobs = [], []
    for src, positions in by_src.items():
        fr = frames[positions[0]]
        if fr.pixel_offset is not None and fr.is_native and fr.bits_allocated in (8, 16, 32):
            native_jobs.append((src, positions))
        else:
            codec_jobs.append((src, positions))
    out = None
    done = 0
    total = len(frames)

    def place(positions, arr):
        nonlocal out, done
        if out is None:
            out = np.empty((total,) + shape, dtype=arr.dtype)
        elif arr.dtype != out.dtype:
            out = out.astype(np.result_type(out.dtype, arr.dtype))
        if arr.shape[1:] != shape:
            raise DicomError(f"frame size {arr.shape[1:]} differs from the series ({shape})",
                             frames[positions[0]].source.name)
        out[positions] = arr
        done += len(positions)
        if progress is not None:
            progress(ProgressEvent("decoding", done, total, "frame"))

    singles = [(src, pos) for src, pos in native_jobs
               if len(pos) == 1 and frames[pos[0]].n_frames_in_file == 1 and frames[pos[0]].samples_per_pixel == 1]
    if len(singles) > 1 and len({(_stored_dtype(frames[p[0]]), frames[p[0]].bits_stored, frames[p[0]].high_bit)
                                 for _, p in singles}) == 1:
        # many single-frame files (the many-small-files case): read every file straight into one
        # array, then mask/sign-extend all of it at once (no per-file array round trip)
        whole = _read_singles_into(frames, singles, shape, place)
        if whole is not None:
            if progress is not None:
                progress(ProgressEvent("decoding", total, total, "frame"))
            return whole
        done_src = {src for src, _ in singles}
        native_jobs = [j for j in native_jobs if j[0] not in done_src]
    for src, positions in native_jobs:
        place(positions, _read_native(frames[positions[0]], [frames[p] for p in positions]))

    if codec_jobs:
        n_codec = sum(len(p) for _, p in codec_jobs)
        workers = default_workers() if workers is None else max(1, int(workers))
        # split big multi-frame files into per-worker chunks of frames
        jobs = []
        for src, positions in codec_jobs:
            step = max(1, -(-len(positions) // (workers * 2))) if len(codec_jobs) < workers else len(positions)
            for s in range(0, len(positions), step):
                chunk = positions[s:s + step]
                jobs.append((src, [frames[p].frame for p in chunk], frames[chunk[0]].transfer_syntax, chunk))
        if workers > 1 and n_codec >= PARALLEL_MIN_FRAMES and len(jobs) > 1 and _fork_ok():
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor
            from concurrent.futures.process import BrokenProcessPool

            ctx = mp.get_context("fork")
            try:
                with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
                    chunksize = max(1, len(jobs) // (workers * 8))
                    for i, arr in pool.map(_decode_job, [(j[0], j[1], j[2], i) for i, j in enumerate(jobs)],
                                           chunksize=chunksize):
                        place(jobs[i][3], arr)
                        jobs[i] = None  # done
            except BrokenProcessPool:  # a worker died (killed for memory, a codec abort): finish the
                pass                   # rest one by one, each contained, so the culprit is named
            jobs = [j for j in jobs if j is not None]
        for src, fidx, ts, chunk in jobs:
            place(chunk, _decode_here(src, fidx, ts))
    return out


def rescale(stored: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    """Apply per-frame ``value = stored * slope + intercept`` (frames on axis 0).

    ``stored`` may be reused for the result (int16 results of 16-bit data are computed in place,
    so loading a CT series peaks at one array, not two).

    Integer data with slope 1 and integer intercepts stay integer (int16 when the values fit,
    else int32); anything else becomes float32.
    """
    slopes = np.asarray(slopes, dtype=np.float64).reshape(-1)
    intercepts = np.asarray(intercepts, dtype=np.float64).reshape(-1)
    n = stored.shape[0]
    if slopes.size == 1:
        slopes = np.full(n, slopes[0])
    if intercepts.size == 1:
        intercepts = np.full(n, intercepts[0])
    integral = (stored.dtype.kind in "iu" and np.all(slopes == 1.0)
                and np.all(intercepts == np.round(intercepts)) and np.all(np.abs(intercepts) < 2 ** 30))
    if integral:
        if np.all(intercepts == 0) and stored.dtype in (np.int16, np.int32, np.uint8, np.int8):
            return stored
        lo = int(stored.min()) + int(intercepts.min())
        hi = int(stored.max()) + int(intercepts.max())
        dtype = np.int16 if (-32768 <= lo and hi <= 32767) else np.int32
        if not (-2 ** 31 <= lo and hi < 2 ** 31):
            return (stored.astype(np.float64) + intercepts.reshape((n,) + (1,) * (stored.ndim - 1))).astype(np.float32)
        if np.all(intercepts == 0) and stored.dtype == np.uint16 and dtype == np.int32 and hi <= 65535:
            return stored
        if (dtype == np.int16 and stored.dtype in (np.int16, np.uint16) and int(stored.max()) <= 32767
                and stored.flags.writeable and stored.flags.c_contiguous):
            out = stored.view(np.int16)  # in place: the stored values are not needed afterwards
        else:
            out = stored.astype(dtype, copy=True)
        if np.any(intercepts != 0):
            if np.all(intercepts == intercepts[0]):
                out += dtype(intercepts[0])
            else:
                out += intercepts.astype(dtype).reshape((n,) + (1,) * (out.ndim - 1))
        return out
    out = stored.astype(np.float32)
    shp = (n,) + (1,) * (out.ndim - 1)
    if not np.all(slopes == 1.0):
        out *= slopes.astype(np.float32).reshape(shp)
    if np.any(intercepts != 0):
        out += intercepts.astype(np.float32).reshape(shp)
    return out
