"""Find DICOM files and read their headers fast (no pixel data).

Inputs: a folder (searched recursively), a ``.zip`` file, a single file, or a list of files.
Files without extension, without the 128-byte preamble / file meta header, and gzip-wrapped
``.dcm.gz`` files are read; anything that is not DICOM is skipped and counted.

Each image *frame* becomes one :class:`~medrecon.io.dicom.headers.FrameHeader` (see
:mod:`medrecon.io.dicom.headers`).
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


from medrecon.errors import DicomError, InputError
from medrecon.io.dicom.headers import FrameHeader, headers_from_dataset
from medrecon.io.dicom.rawvalues import get_int, get_str
from medrecon.io.dicom.sop_classes import NonImageObject, non_image_kind, sop_class_name, sop_class_of
from medrecon.io.dicom.source import _GZ_MAGIC, Source
from medrecon.progress import ProgressEvent

__all__ = ["Source", "FrameHeader", "ScanResult", "discover", "scan", "read_dataset"]

_SKIP_NAMES = {"DICOMDIR"}
_IMAGE_TAGS = (0x00280010, 0x7FE00010, 0x00080016, 0x0020000E)


@dataclass
class ScanResult:
    frames: list[FrameHeader]
    n_files: int
    skipped: list[str]          # non-DICOM files
    non_image: list[str]        # DICOM files without pixel data (reports, DICOMDIR, ...)
    objects: list = field(default_factory=list)     # NonImageObject: non-image DICOM and unreadable files
    cache_hits: int = 0                              # headers taken from the header cache

    @property
    def unreadable(self) -> list:
        return [o for o in self.objects if o.kind == "unreadable file"]

    @property
    def non_image_objects(self) -> list:
        return [o for o in self.objects if o.kind != "unreadable file"]


# --------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------
def _is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip" and path.is_file() and zipfile.is_zipfile(path)


class _Found(list):
    """Discovered sources, with the symbolic links pointing out of the input (not followed)."""

    def __init__(self, *a):
        super().__init__(*a)
        self.refused: list[str] = []


def _walk(folder: str, top: Path, files: "_Found") -> None:
    """The files under ``folder`` in ``os.walk`` order (its files by name, then each sub-folder by
    name), from directory entries (no stat call per file): hidden names, DICOMDIR and folders
    medrecon wrote its outputs to are left out, symbolic links to folders are not followed and
    symbolic links to files outside ``top`` are refused."""
    from medrecon.io.limits import is_inside, is_output_dir

    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    dirs = []
    for e in entries:
        n = e.name
        try:
            is_dir = e.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if not n.startswith(".") and not e.is_symlink() and not is_output_dir(e.path):
                dirs.append(e.path)
            continue
        if n.startswith(".") or n.upper() in _SKIP_NAMES:
            continue
        p = e.path
        if e.is_symlink() and os.path.exists(p) and not is_inside(Path(p), top):
            files.refused.append(p)  # symbolic links are not followed out of the input folder
            continue
        if n.lower().endswith(".zip") and _is_zip(Path(p)):
            files.extend(discover(p))
        else:
            files.append(Source(p))
    for d in dirs:
        _walk(d, top, files)


def discover(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Source]:
    """List candidate files (not yet checked to be DICOM) under ``source``.

    Raises :class:`InputError` if the path does not exist or holds no files at all.
    """
    if isinstance(source, (list, tuple)):
        out: list[Source] = []
        for s in source:
            out.extend(discover(s))
        if not out:
            raise InputError("no files given")
        return out
    path = Path(source)
    if not path.exists():
        if os.path.islink(path):
            raise InputError("dangling symbolic link (no such file)", path)
        raise InputError("no such file or folder", path)
    if path.is_dir():
        from medrecon.io.limits import is_inside, is_output_dir

        files = _Found()
        _walk(str(path), path, files)
        if not files and not files.refused:
            raise InputError("folder is empty (no files found)", path)
        return files
    if _is_zip(path):
        try:
            with zipfile.ZipFile(path) as zf:
                members = [i.filename for i in zf.infolist()
                           if not i.is_dir() and not Path(i.filename).name.startswith(".")
                           and "__MACOSX" not in i.filename]
        except zipfile.BadZipFile as exc:
            raise InputError(f"corrupt zip file ({exc})", path) from exc
        if not members:
            raise InputError("zip file holds no files", path)
        return [Source(str(path), m) for m in sorted(members)]
    return [Source(str(path))]


# --------------------------------------------------------------------------------------------
# header reading
# --------------------------------------------------------------------------------------------
#: Read plain little-endian files with :mod:`medrecon.io.dicom.fastparse` (pydicom otherwise).
FAST_HEADERS = True
#: Take a file's header from the previous file of its series when only per-image values differ
#: (:mod:`medrecon.io.dicom.template`).
SERIES_TEMPLATE = True


def _looks_like_image_dataset(ds: Dataset) -> bool:
    return any(t in ds for t in _IMAGE_TAGS)


def _parse(fp, force: bool, stop_before_pixels: bool) -> Dataset:
    import pydicom  # only for files the fast reader leaves to pydicom (its import is costly)

    ds = pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels, force=force)
    # touch the tags we need so that lazily raised parsing errors surface here
    for t in (0x00280010, 0x0020000E):
        if t in ds:
            ds[t].value  # noqa: B018
    return ds


def read_dataset(src: Source, stop_before_pixels: bool = True) -> tuple[Dataset, int | None] | None:
    """Read one file's dataset. Returns ``(dataset, pixel_offset)`` or ``None`` if not DICOM.

    ``pixel_offset`` is the file offset of the Pixel Data element tag for plain files read with
    ``stop_before_pixels`` (else ``None``). Corrupt DICOM (a ``DICM`` preamble that cannot be
    parsed) raises :class:`DicomError` naming the file.
    """
    name = src.name
    if src.member is None:
        try:
            fh = open(src.path, "rb")
        except OSError as exc:
            raise InputError(f"cannot read file ({exc.strerror})", name) from exc
        with fh:
            head = fh.read(132)
            if head[:2] != _GZ_MAGIC:  # plain file: parse in place, one open per file
                has_preamble = head[128:132] == b"DICM"
                if not has_preamble and not _plausible_headerless(head):
                    return None  # not DICOM: rejected from its first bytes, without a parse
                fh.seek(0)
                if stop_before_pixels and has_preamble and FAST_HEADERS:
                    from medrecon.io.dicom.fastparse import fast_read_header

                    fast = fast_read_header(fh, 0)
                    if fast is not None:
                        return fast
                    fh.seek(0)
                from pydicom.errors import InvalidDicomError

                try:
                    ds = _parse(fh, force=not has_preamble, stop_before_pixels=stop_before_pixels)
                    offset = fh.tell() if stop_before_pixels else None
                    if offset is not None:
                        ds._medrecon_pixhead = fh.read(12)  # the Pixel Data element header, if any
                except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError,
                        OverflowError, NotImplementedError, AttributeError, IndexError) as exc:
                    if has_preamble:
                        raise DicomError(f"corrupt or truncated DICOM file ({type(exc).__name__}: {exc})",
                                         name) from exc
                    fh.seek(0)
                    return _try_headerless(fh.read(), name, stop_before_pixels)
                if not has_preamble and not _looks_like_image_dataset(ds):
                    fh.seek(0)
                    return _try_headerless(fh.read(), name, stop_before_pixels)
                return ds, offset
    data = src.read_bytes()
    has_preamble = data[128:132] == b"DICM"
    from pydicom.errors import InvalidDicomError

    try:
        ds = _parse(io.BytesIO(data), force=not has_preamble, stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError,
            OverflowError, NotImplementedError, AttributeError, IndexError) as exc:
        if has_preamble:
            raise DicomError(f"corrupt or truncated DICOM file ({type(exc).__name__}: {exc})", name) from exc
        return _try_headerless(data, name, stop_before_pixels)
    if not has_preamble and not _looks_like_image_dataset(ds):
        return _try_headerless(data, name, stop_before_pixels)
    return ds, None


def _plausible_headerless(head: bytes) -> bool:
    """Could a file without preamble starting with ``head`` be DICOM? Its first element (after
    up to 3 stray bytes) must be in group 0x0002, 0x0008 (or 0x0000/0x0018/0x0020, either byte
    order); anything else is rejected without parsing (10,000 text files in a folder)."""
    for skip in range(0, 4):
        g = head[skip:skip + 2]
        if g in (b"\x08\x00", b"\x02\x00", b"\x00\x08", b"\x00\x02", b"\x00\x00", b"\x18\x00", b"\x20\x00"):
            return True
    return False


def _try_headerless(data: bytes, name: str, stop_before_pixels: bool):
    """A file without preamble/meta: accept it only if it parses into an image dataset.

    Some writers leave a stray byte or two in front of the first element; up to 3 leading bytes
    are tolerated, as long as what follows starts with a group 0x0008 element.
    """
    for skip in range(0, 4):
        chunk = data[skip:]
        if len(chunk) < 8 or chunk[:2] not in (b"\x08\x00", b"\x02\x00"):
            continue
        try:
            ds = _parse(io.BytesIO(chunk), force=True, stop_before_pixels=stop_before_pixels)
        except Exception:  # noqa: BLE001 - anything unparsable is simply not DICOM
            continue
        if _looks_like_image_dataset(ds) and "Rows" in ds:
            ds._medrecon_skip = skip  # remembered for pixel reading
            _set_transfer_syntax(ds)
            return ds, None
    return None


def _set_transfer_syntax(ds: Dataset) -> None:
    """Give a dataset read without file meta the transfer syntax it was parsed with."""
    from pydicom.dataset import FileMetaDataset

    implicit, little = getattr(ds, "original_encoding", (True, True))
    fm = getattr(ds, "file_meta", None)
    if fm is None:
        fm = FileMetaDataset()
        ds.file_meta = fm
    if "TransferSyntaxUID" not in fm:
        fm.TransferSyntaxUID = ("1.2.840.10008.1.2" if implicit else
                                "1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")


#: File name endings that are never DICOM: skipped without opening (a big ``.nii.gz`` next to a
#: series would otherwise be decompressed just to be rejected).
NOT_DICOM_SUFFIXES = (
    ".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".raw.gz", ".json", ".txt", ".md", ".csv",
    ".tsv", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".pdf", ".html", ".htm", ".xml",
    ".yaml", ".yml", ".py", ".sh", ".stl", ".obj", ".ply", ".vtp", ".vtk", ".glb", ".gltf", ".3mf",
    ".mrml", ".bval", ".bvec", ".log",
)


def read_headers(src: Source, keep: list | None = None) -> tuple[list[FrameHeader], str, object]:
    """Headers of one candidate file (any parser failure, ``BaseException`` subclasses from
    compiled parsers included, becomes a one-line :class:`DicomError` naming the file). The
    dataset read is appended to ``keep`` when given."""
    from medrecon.io.limits import guard

    with guard(src.name, "corrupt or truncated DICOM file"):
        return _read_headers(src, keep)


def _read_headers(src: Source, keep: list | None = None) -> tuple[list[FrameHeader], str, object]:
    """Headers of one candidate file. Returns ``(frames, status, info)`` with status 'image',
    'non-image' (a DICOM object that is not an image, identified by SOP Class UID; ``info`` is a
    :class:`~medrecon.io.dicom.sop_classes.NonImageObject`), 'unreadable' (cannot be opened:
    dangling link, permissions...; ``info`` likewise) or 'not-dicom'."""
    if (src.member or src.path).lower().endswith(NOT_DICOM_SUFFIXES):
        return [], "not-dicom", None
    try:
        res = read_dataset(src, stop_before_pixels=True)
    except InputError as exc:
        if src.member is None and not os.access(src.path, os.R_OK) or "cannot read file" in str(exc):
            reason = str(exc).split(": ", 1)[-1]
            if os.path.islink(src.path) and not os.path.exists(src.path):
                reason = "dangling symbolic link (no such file)"
            return [], "unreadable", NonImageObject(src.name, "unreadable file", reason=reason)
        raise
    if res is None:
        return [], "not-dicom", None
    ds, offset = res
    if keep is not None:
        keep.append(ds)
    sop = sop_class_of(ds)
    kind = non_image_kind(sop, has_pixels="Rows" in ds)
    if kind is not None:
        return [], "non-image", NonImageObject(src.name, kind, sop, get_str(ds, "Modality"),
                                               get_int(ds, "SeriesNumber"))
    size = os.path.getsize(src.path) if src.member is None else None
    _check_claims(ds, src, offset, size)
    frames = headers_from_dataset(ds, src, offset, size)
    _check_frames(ds, frames, src.name)
    if not frames and _expects_pixels(ds):
        raise DicomError("corrupt or truncated DICOM file: an image object without image attributes "
                         "(Rows/Columns) or pixel data", src.name)
    if frames and frames[0].is_native and offset is not None and size is not None and offset >= size:
        raise DicomError("file truncated: the header ends before the pixel data", src.name)
    if not frames:
        return [], "non-image", NonImageObject(src.name, sop_class_name(sop).replace(" Storage", "") or
                                               "DICOM without image", sop, get_str(ds, "Modality"),
                                               get_int(ds, "SeriesNumber"))
    return frames, "image", None


def _check_claims(ds: Dataset, src: Source, offset: int | None, size: int | None) -> None:
    """Check what the header claims (frames, rows, columns, bits) against the bytes present and
    the limits before anything is allocated per frame (a NumberOfFrames of 10^6 on a 39 kB file)."""
    from medrecon.io.limits import max_bytes, max_dim, max_frames

    if "Rows" not in ds or "Columns" not in ds:
        return
    name = src.name
    n = get_int(ds, "NumberOfFrames")
    if n is None and "NumberOfFrames" in ds:
        from medrecon.io.dicom.rawvalues import raw_get

        try:
            txt = str(raw_get(ds, "NumberOfFrames", "") or "")
        except Exception:  # noqa: BLE001 - unreadable is as bad as not a number
            txt = "?"
        if txt.strip():
            raise DicomError(f"NumberOfFrames is not a number ({txt[:40]!r})", name)
    n = 1 if n is None else n
    rows, cols = get_int(ds, "Rows", 0) or 0, get_int(ds, "Columns", 0) or 0
    ba = get_int(ds, "BitsAllocated", 16)
    spp = get_int(ds, "SamplesPerPixel", 1)
    if n < 1 or n > max_frames():
        raise DicomError(f"NumberOfFrames {n} out of range (1..{max_frames()}, MEDRECON_MAX_FRAMES)", name)
    if not (0 < rows <= max_dim() and 0 < cols <= max_dim()):
        raise DicomError(f"Rows x Columns {rows} x {cols} out of range (1..{max_dim()}, MEDRECON_MAX_DIM)", name)
    if ba not in (1, 8, 16, 32, 64):
        raise DicomError(f"BitsAllocated {ba} is not 1, 8, 16, 32 or 64", name)
    if spp not in (1, 3, 4):
        raise DicomError(f"SamplesPerPixel {spp} is not 1 or 3", name)
    need = n * rows * cols * spp * max(ba, 8) // 8
    if need > max_bytes():
        raise DicomError(f"{n} frame(s) of {rows} x {cols} would need {need} bytes, over the limit of "
                         f"{max_bytes()} (MEDRECON_MAX_BYTES)", name)
    if src.member is not None:
        size = _zip_sizes(src.path).get(src.member)
    if size is None or (src.member is None and _is_gz(src.path)):
        return
    fm = getattr(ds, "file_meta", None)
    ts = get_str(fm, "TransferSyntaxUID") if fm is not None else ""
    from medrecon.io.dicom.headers import NATIVE_LE

    if ts in NATIVE_LE or not ts:
        have = size - (offset or 0)
        if ba >= 8 and need > have * 1.0 + 16 and n > 1:
            raise DicomError(f"NumberOfFrames {n} claims {need} bytes of pixel data; the file holds "
                             f"{max(0, have)}", name)
    elif n * 8 > size:  # every encapsulated frame needs at least one 8-byte item
        raise DicomError(f"NumberOfFrames {n} cannot fit in a file of {size} bytes", name)


_ZIP_SIZES: dict[tuple, dict[str, int]] = {}


def _zip_sizes(path: str) -> dict[str, int]:
    """Declared member sizes of a zip (read once per zip file and modification time)."""
    try:
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        if key not in _ZIP_SIZES:
            with zipfile.ZipFile(path) as zf:
                _ZIP_SIZES.clear()
                _ZIP_SIZES[key] = {i.filename: i.file_size for i in zf.infolist()}
        return _ZIP_SIZES[key]
    except (OSError, zipfile.BadZipFile):
        return {}


def _is_gz(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == _GZ_MAGIC
    except OSError:
        return False


#: Geometry/rescale values already checked (files of one series repeat them).
_CHECKED: set = set()


def _check_frames(ds: Dataset, frames: list, name: str) -> None:
    """Refuse geometry and rescale values that would propagate NaN/inf or a singular grid, and
    a RescaleSlope of 0 (every voxel would be the intercept)."""
    from medrecon.io.limits import check_finite, check_orientation
    from medrecon.io.dicom.rawvalues import get_float

    if not frames:
        return
    seen = set()
    for f in frames:
        key = (None if f.iop is None else tuple(f.iop), None if f.ipp is None else tuple(f.ipp), f.pixel_spacing,
               f.slope, f.intercept, f.spacing_between)
        if key in seen:
            continue
        seen.add(key)
        if key in _CHECKED:  # the same values passed in another file of this run
            continue
        check_orientation(f.iop, name)
        check_finite(f.ipp, "ImagePositionPatient", name)
        check_finite(f.pixel_spacing, "PixelSpacing", name, positive=True)
        if f.spacing_between is not None:
            check_finite(f.spacing_between, "SpacingBetweenSlices", name)
        if f.slice_thickness is not None:
            check_finite(f.slice_thickness, "SliceThickness", name)
        check_finite([f.slope, f.intercept], "RescaleSlope/RescaleIntercept", name)
        if len(_CHECKED) > 4096:
            _CHECKED.clear()
        _CHECKED.add(key)
        if len(seen) > 64:
            break
    if get_float(ds, "RescaleSlope") == 0:
        raise DicomError("RescaleSlope is 0 (every voxel would equal the intercept): refused", name)
    f0 = frames[0]
    if f0.photometric.upper().startswith("PALETTE"):
        f0.extra["palette"] = True


def _expects_pixels(ds: Dataset) -> bool:
    """True when the SOP class (dataset or file meta) is an image storage class."""
    fm = getattr(ds, "file_meta", None)
    sop = ds.get("SOPClassUID") or (getattr(fm, "MediaStorageSOPClassUID", None) if fm is not None else None)
    if not sop:
        return False
    try:
        from pydicom.uid import UID

        name = UID(str(sop)).name
    except Exception:  # noqa: BLE001
        return False
    return "Image Storage" in name and "Presentation" not in name


#: From this many files on, headers are read by a process pool (fork, Linux).
PARALLEL_SCAN_MIN_FILES = 256


def _read_series(srcs) -> "Iterator":
    """``read_headers`` over ``srcs`` in order; a file laid out like the previous one of its series
    takes its header from it (:mod:`medrecon.io.dicom.template`), the others are read in full."""
    from medrecon.io.dicom.template import SeriesTemplate

    tmpl = SeriesTemplate() if FAST_HEADERS and SERIES_TEMPLATE else None
    for src in srcs:
        res = tmpl.headers(src) if tmpl is not None else None
        if res is None:
            keep: list = []
            res = read_headers(src, keep)
            if tmpl is not None:
                tmpl.learn(src, res[0], res[1], keep[0] if keep else None)
        yield res


def _read_chunk(srcs: list[Source]) -> list[tuple[list[FrameHeader], str, object]]:
    return list(_read_series(srcs))


def _read_all(files: list[Source], progress, workers: int | None):
    """``read_headers`` over ``files`` (in order), in parallel for large folders."""
    import sys

    if workers is None:
        try:
            workers = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover
            workers = os.cpu_count() or 1
        # header parsing is cheap per file: extra processes only pay off on idle cores (on a
        # saturated machine the pool's fork and result pickling cost more than they save)
        try:
            idle = workers - os.getloadavg()[0]
        except OSError:  # pragma: no cover
            idle = workers
        workers = max(1, min(workers, int(idle) + 1))
    parallel = workers > 1 and len(files) >= PARALLEL_SCAN_MIN_FILES and sys.platform.startswith("linux")
    if parallel:  # multiprocessing is imported only where a pool may start (its import is not free)
        import multiprocessing as mp

        parallel = "fork" in mp.get_all_start_methods() and not mp.current_process().daemon
    if not parallel:
        for i, res in enumerate(_read_series(files)):
            yield res
            if progress is not None:
                progress(ProgressEvent("reading headers", i + 1, len(files), "file"))
        return
    from concurrent.futures import ProcessPoolExecutor

    n_chunks = workers * 4
    size = -(-len(files) // n_chunks)
    chunks = [files[i:i + size] for i in range(0, len(files), size)]
    done = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
        for chunk, results in zip(chunks, pool.map(_read_chunk, chunks)):
            yield from results
            done += len(chunk)
            if progress is not None:
                progress(ProgressEvent("reading headers", done, len(files), "file"))


def scan(source, progress=None, workers: int | None = None) -> ScanResult:
    """Discover files under ``source`` and read every header (no pixel data).

    Large folders (``PARALLEL_SCAN_MIN_FILES`` files or more) are read by ``workers`` processes
    (default: all cores). Headers already read for an unchanged file come from the header cache
    (:mod:`medrecon.io.dicom.cache`). Non-image DICOM objects (by SOP Class UID) and files that
    cannot be opened are skipped and listed in ``objects``. Raises :class:`InputError` when
    nothing readable is there (empty folder, only non-DICOM or non-image objects) and
    :class:`DicomError` for a corrupt or truncated DICOM file.
    """
    from medrecon.io.dicom.cache import HeaderCache

    files = discover(source)
    frames: list[FrameHeader] = []
    skipped: list[str] = []
    non_image: list[str] = []
    objects: list = [NonImageObject(p, "unreadable file", reason="symbolic link out of the input folder: not followed")
                     for p in getattr(files, "refused", [])]
    cache = HeaderCache(HeaderCache.key_for(source))
    results = cache.read_all(files, lambda fs: list(_read_all(fs, progress, workers)),
                             keep=lambda r: r[1] != "unreadable")
    for src, (fr, status, info) in zip(files, results):
        if status == "not-dicom":
            skipped.append(src.name)
        elif status in ("non-image", "unreadable"):
            non_image.append(src.name)
            objects.append(info)
        frames.extend(fr)
    if not frames:
        where = source if not isinstance(source, (list, tuple)) else f"{len(files)} given files"
        if objects:
            kinds = sorted({o.kind for o in objects})
            raise InputError(f"DICOM files found but none holds an image ({len(objects)} files: "
                             f"{', '.join(kinds)})", where)
        raise InputError(f"no DICOM image files found ({len(files)} files, none readable as DICOM)", where)
    return ScanResult(frames=frames, n_files=len(files), skipped=skipped, non_image=non_image,
                      objects=objects, cache_hits=cache.hits)
