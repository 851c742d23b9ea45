"""Atomic output: write to a temporary file in the destination folder, then rename.

A crash never leaves a half-written file under the final name, and an existing file is only
replaced once the new one is complete: the temporary file (hidden: ``.NAME.XXXX.ext``) is
written in the destination folder, flushed to disk (``fsync``), renamed onto the final name,
and the folder entry is synced too. A folder this module creates for outputs gets an empty
``.medrecon-output`` marker, so it is never read back as input (an output folder inside the
input folder). Stale temporary files of a killed run are hidden; the next run writing into the same
marked output folder removes those older than a minute.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    ``suffix`` defaults to the full suffix of ``path`` (e.g. ``.nii.gz``) so that writers that
    choose a format by extension keep working on the temporary name.
    """
    path = Path(path)
    _make_output_dir(path.parent)
    if suffix is None:
        suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the final file the ordinary permissions (0666 minus umask).
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
        _remove_stale(path, tmp_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _make_output_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) if needed; mark every folder created here as output."""
    missing = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    for d in missing:
        with contextlib.suppress(OSError):
            (d / ".medrecon-output").touch(exist_ok=True)


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_SWEPT: set[str] = set()
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}(\.[^.]+)*$")


def _remove_stale(path: Path, current: Path) -> None:
    """Once per folder and process: in a folder medrecon created for outputs (it holds the
    marker), remove hidden temporaries ``.NAME.XXXXXXXX.ext`` older than a minute, left by a
    killed earlier run (a concurrent writer's temporary is younger and is never touched)."""
    import time

    folder = str(path.parent)
    if folder in _SWEPT:
        return
    _SWEPT.add(folder)
    if not (path.parent / ".medrecon-output").exists():
        return
    now = time.time()
    with contextlib.suppress(OSError):
        for e in os.scandir(folder):
            if e.name.startswith(".") and e.name != ".medrecon-output" and _TEMP.match(e.name) \
                    and e.path != str(current):
                with contextlib.suppress(OSError):
                    if e.is_file(follow_symlinks=False) and now - e.stat().st_mtime > 60:
                        os.unlink(e.path)


def atomic_dir_marker(folder: str | os.PathLike) -> Path:
    """Create ``folder`` as an output folder (with the marker); return it."""
    folder = Path(folder)
    _make_output_dir(folder)
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the final path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; return the final path."""
    return atomic_write_bytes(path, text.encode("utf-8"))
