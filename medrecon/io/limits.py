"""Hostile-input safety for every reader: size limits, bounded decompression, header checks
before a codec sees the data, codecs run where a crash cannot take the caller down, and one
guard that turns any stray exception into a one-line :class:`~medrecon.errors.MedreconError`.

Limits are configurable (environment variables, read at call time, or :func:`set_limits`):

=============================== ============================================ ==================
variable                        what                                         default
=============================== ============================================ ==================
``MEDRECON_MAX_BYTES``          largest decompressed file / pixel array       16 GiB
``MEDRECON_MAX_DIM``            largest Rows or Columns of one frame          32768
``MEDRECON_MAX_FRAMES``         largest NumberOfFrames of one object          100000
``MEDRECON_CONTAIN_CODECS``     ``0``: decode compressed DICOM in process     ``1`` (contained)
``MEDRECON_CODEC_TIMEOUT``      seconds one contained decode may take         600
=============================== ============================================ ==================
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import select
import signal
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

from medrecon.errors import DicomError, InputError, MedreconError

__all__ = ["max_bytes", "max_dim", "max_frames", "set_limits", "guard", "gunzip_limited",
           "read_zip_member", "run_contained", "contain_codecs", "check_finite", "is_inside",
           "refuse_overwrite", "OUTPUT_MARKER", "one_line"]

_OVERRIDES: dict[str, int] = {}
#: A folder medrecon created for its outputs holds this (empty) file; discovery never reads such
#: a folder back as input.
OUTPUT_MARKER = ".medrecon-output"


def _env_int(name: str, default: int) -> int:
    if name in _OVERRIDES:
        return _OVERRIDES[name]
    v = os.environ.get(name, "").strip()
    if not v:
        return default
    try:
        return int(float(v))
    except ValueError:
        return default


def max_bytes() -> int:
    """Largest decompressed file or decoded pixel array accepted (bytes)."""
    return _env_int("MEDRECON_MAX_BYTES", 16 << 30)


def max_dim() -> int:
    """Largest Rows / Columns of one DICOM frame accepted."""
    return _env_int("MEDRECON_MAX_DIM", 32768)


def max_frames() -> int:
    """Largest NumberOfFrames of one DICOM object accepted."""
    return _env_int("MEDRECON_MAX_FRAMES", 100_000)


def contain_codecs() -> bool:
    """Decode compressed DICOM in a child process (default) so a codec abort cannot kill us."""
    return (os.environ.get("MEDRECON_CONTAIN_CODECS", "1").strip().lower() not in ("0", "false", "no")
            and hasattr(os, "fork"))


def set_limits(**kw: int | None) -> None:
    """Override limits for this process: ``set_limits(MEDRECON_MAX_BYTES=1 << 30)``; ``None``
    removes an override."""
    for k, v in kw.items():
        if v is None:
            _OVERRIDES.pop(k, None)
        else:
            _OVERRIDES[k] = int(v)


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (bounded length)."""
    msg = str(exc).splitlines()[0] if str(exc) else ""
    msg = msg[:300]
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


_PASS = (KeyboardInterrupt, SystemExit, GeneratorExit)


@contextlib.contextmanager
def guard(name: object, what: str = "cannot read input", error=DicomError) -> Iterator[None]:
    """Turn any exception other than a :class:`MedreconError` into ``error`` naming ``name``.

    Catches ``BaseException`` subclasses that are not interrupts (pyo3's ``PanicException``
    derives from ``BaseException``), ``RecursionError`` (deeply nested sequences), ``MemoryError``
    and every parser error type. ``KeyboardInterrupt`` and ``SystemExit`` pass.
    """
    try:
        yield
    except MedreconError as exc:
        if exc.path is None and name and str(name) not in str(exc):
            raise type(exc)(str(exc), name) from exc  # every message names the file
        raise
    except _PASS:
        raise
    except RecursionError as exc:
        raise error(f"{what}: structure nested too deeply (RecursionError)", name) from None
    except MemoryError as exc:
        raise error(f"{what}: not enough memory (MemoryError; see MEDRECON_MAX_BYTES)", name) from exc
    except BaseException as exc:  # noqa: BLE001 - the point of the guard
        raise error(f"{what} ({one_line(exc)})", name) from exc


# --------------------------------------------------------------------------------------------
# bounded decompression
# --------------------------------------------------------------------------------------------
def gunzip_limited(data: bytes | None = None, name: object = "", limit: int | None = None,
                   fh=None) -> bytes:
    """Decompress gzip ``data`` (or the open binary file ``fh``) in chunks, refusing more than
    ``limit`` bytes of output (a gzip bomb) and corrupt or truncated streams, with a
    :class:`DicomError` naming ``name``."""
    limit = max_bytes() if limit is None else limit
    src = io.BytesIO(data) if fh is None else fh
    out = bytearray()
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            while chunk:
                piece = d.decompress(chunk, (limit + 1) - len(out))
                out += piece
                if len(out) > limit:
                    raise DicomError(f"gzip data expands beyond the limit of {limit} bytes "
                                     "(MEDRECON_MAX_BYTES): refused", name)
                chunk = d.unconsumed_tail
                if d.eof:
                    rest = d.unused_data
                    if rest[:2] == b"\x1f\x8b":  # concatenated members
                        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                        chunk = rest
                    else:
                        chunk = b""
        out += d.flush()
        if not d.eof:
            raise DicomError("gzip data is truncated", name)
    except zlib.error as exc:
        raise DicomError(f"gzip data is corrupt ({exc})", name) from None
    if len(out) > limit:
        raise DicomError(f"gzip data expands beyond the limit of {limit} bytes (MEDRECON_MAX_BYTES): refused",
                         name)
    return bytes(out)


def read_zip_member(zf, member: str, name: object = "", limit: int | None = None) -> bytes:
    """Read one zip member with the size checked against ``limit`` before and while
    decompressing (a zip bomb declares a small size or a huge one; both are bounded)."""
    import zipfile

    limit = max_bytes() if limit is None else limit
    try:
        info = zf.getinfo(member)
        if info.file_size > limit:
            raise DicomError(f"zip member declares {info.file_size} bytes, over the limit of {limit} "
                             "(MEDRECON_MAX_BYTES): refused", name)
        out = bytearray()
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                out += chunk
                if len(out) > limit:
                    raise DicomError(f"zip member expands beyond the limit of {limit} bytes: refused", name)
    except MedreconError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
            RuntimeError, KeyError) as exc:
        raise DicomError(f"corrupt zip member ({one_line(exc)})", name) from None
    return bytes(out)


# --------------------------------------------------------------------------------------------
# contained execution (codecs that may abort the process)
# --------------------------------------------------------------------------------------------
def _codec_timeout() -> float:
    return float(_env_int("MEDRECON_CODEC_TIMEOUT", 600))


def run_contained(fn: Callable[..., Any], args: tuple, name: object, timeout: float | None = None,
                  what: str = "decoder") -> Any:
    """Run ``fn(*args)`` in a forked child and return its result.

    A child killed by a signal (a codec's ``abort()``, a segfault, the OOM killer) or one that
    runs past ``timeout`` seconds raises :class:`DicomError` naming ``name``; an exception in the
    child (``MedreconError`` or any other, ``BaseException`` included) comes back as a
    ``DicomError`` with its one-line message. Off POSIX the call runs in this process (guarded).
    """
    if not hasattr(os, "fork"):
        with guard(name, f"{what} failed"):
            return fn(*args)
    timeout = _codec_timeout() if timeout is None else timeout
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            try:
                res = ("ok", fn(*args))
            except MedreconError as exc:
                res = ("medrecon", str(exc))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
                res = ("exc", one_line(exc))
            try:
                payload = pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # noqa: BLE001
                payload = pickle.dumps(("exc", one_line(exc)))
            with os.fdopen(w, "wb") as fh:
                fh.write(payload)
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([r], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(r, 1 << 22)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if timed_out:
        raise DicomError(f"{what} ran longer than {timeout:.0f} s (MEDRECON_CODEC_TIMEOUT): stopped", name)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signame = signal.Signals(sig).name
        except ValueError:
            signame = f"signal {sig}"
        raise DicomError(f"{what} crashed ({signame}) on this file; the data or header is invalid "
                         "for its codec", name)
    try:
        kind, value = pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001
        raise DicomError(f"{what} ended without a result (exit status {os.WEXITSTATUS(status)})", name) from None
    if kind == "ok":
        return value
    if kind == "medrecon":
        raise DicomError(value)
    raise DicomError(f"{what} failed ({value})", name)


# --------------------------------------------------------------------------------------------
# geometry and paths
# --------------------------------------------------------------------------------------------
def check_finite(values, what: str, name: object, positive: bool = False) -> None:
    """Refuse NaN / inf (and, with ``positive``, zero or negative) ``values`` with a
    :class:`DicomError` naming the file."""
    import numpy as np

    if values is None:
        return
    a = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise DicomError(f"{what} is not finite ({_fmt(a)})", name)
    if positive and np.any(a <= 0):
        raise DicomError(f"{what} must be positive ({_fmt(a)})", name)


def _fmt(a) -> str:
    return ", ".join(f"{x:g}" for x in list(a.reshape(-1))[:6])


def check_orientation(iop, name: object) -> None:
    """ImageOrientationPatient: finite, both directions of non-zero length, not parallel."""
    import numpy as np

    if iop is None:
        return
    check_finite(iop, "ImageOrientationPatient", name)
    a = np.asarray(iop, dtype=np.float64).reshape(-1)
    r, c = a[:3], a[3:6]
    nr, nc = np.linalg.norm(r), np.linalg.norm(c)
    if nr < 1e-3 or nc < 1e-3:
        raise DicomError(f"ImageOrientationPatient has a zero direction ({_fmt(a)})", name)
    if np.linalg.norm(np.cross(r / nr, c / nc)) < 1e-3:
        raise DicomError(f"ImageOrientationPatient row and column directions are parallel ({_fmt(a)})", name)


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when ``path`` (symbolic links resolved) lies inside ``root`` (resolved)."""
    try:
        p = Path(os.path.realpath(path))
        rt = Path(os.path.realpath(root))
    except (OSError, ValueError):
        return False
    return p == rt or rt in p.parents


def refuse_overwrite(output: str | os.PathLike, inputs) -> None:
    """Raise :class:`InputError` when ``output`` is one of the input files (or the input file a
    folder input contains); outputs never overwrite inputs."""
    out = os.path.realpath(output)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    for i in inputs or []:
        ip = os.path.realpath(i)
        if out == ip:
            raise InputError("output would overwrite the input; choose another output path", output)


def mark_output_dir(folder: str | os.PathLike) -> None:
    """Put the output marker in a folder medrecon created for its outputs."""
    with contextlib.suppress(OSError):
        p = Path(folder) / OUTPUT_MARKER
        if not p.exists():
            p.write_bytes(b"")  # an empty marker: nothing to be partial


def is_output_dir(folder: str | os.PathLike) -> bool:
    return os.path.exists(os.path.join(folder, OUTPUT_MARKER))


def log_safe(text: object) -> str:
    """``text`` with control characters escaped (file names with newlines or ESC in messages)."""
    out = []
    for ch in str(text):
        o = ord(ch)
        out.append(repr(ch)[1:-1] if (o < 32 or 127 <= o < 160) else ch)
    return "".join(out)


if sys.platform == "win32":  # pragma: no cover
    def run_contained(fn, args, name, timeout=None, what="decoder"):  # noqa: F811
        with guard(name, f"{what} failed"):
            return fn(*args)
