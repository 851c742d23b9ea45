"""Header cache: ``medrecon info`` then ``medrecon convert`` on the same folder reads each
header once.

The parsed headers of every file (what :func:`medrecon.io.dicom.scan.read_headers` returns) are
kept per input, keyed by the file's path and its ``(size, mtime_ns, inode)``; a file whose stat
changed is read again, a file that disappeared is dropped. Two layers:

* in memory, for the life of the process (``load_series`` then ``load`` in one script);
* on disk, one pickle per input under ``$MEDRECON_CACHE_DIR`` (default
  ``$XDG_CACHE_HOME/medrecon/dicom-headers``, i.e. ``~/.cache/medrecon/dicom-headers``), written
  atomically with mode 0600. It holds the header facts the loader keeps (sizes, geometry,
  descriptions, UIDs used for grouping), so it stays in the user's own cache folder and is never
  an output. ``MEDRECON_NO_CACHE=1`` turns both layers off; deleting the folder is always safe.

A cache file is only trusted when its format version, the medrecon version and the header-reading
code (a hash of its source files) all match.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["HeaderCache", "cache_dir", "cache_enabled", "clear_memory_cache", "CACHE_FORMAT"]

CACHE_FORMAT = 1
_MEMORY: dict[str, dict[str, tuple[tuple, Any]]] = {}


def cache_enabled() -> bool:
    return os.environ.get("MEDRECON_NO_CACHE", "").strip().lower() not in ("1", "true", "yes")


def cache_dir() -> Path:
    d = os.environ.get("MEDRECON_CACHE_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "medrecon" / "dicom-headers"


def clear_memory_cache() -> None:
    _MEMORY.clear()


def _stat_key(src) -> tuple | None:
    """(size, mtime_ns, inode) of a plain file, of the zip for a member; None if unreadable."""
    try:
        st = os.stat(src.path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, src.member or "")


_CODE_HASH: list[str] = []


def _version() -> str:
    """medrecon's version plus a hash of the header-reading code: a cache written by other code
    (an upgrade, a development checkout) is never trusted."""
    if not _CODE_HASH:
        from medrecon.version import __version__

        h = hashlib.sha1(str(__version__).encode())
        here = Path(__file__).resolve().parent
        for name in ("scan.py", "headers.py", "fastparse.py", "rawvalues.py", "vendor.py", "sop_classes.py",
                     "source.py", "cache.py"):
            try:
                h.update((here / name).read_bytes())
            except OSError:
                h.update(name.encode())
        _CODE_HASH.append(h.hexdigest()[:16])
    return _CODE_HASH[0]


class HeaderCache:
    """Per-input cache of per-file header results.

    >>> cache = HeaderCache(key_for("study/"))
    >>> results = cache.read_all(files, reader)   # reader(list_of_sources) -> list of results
    """

    def __init__(self, key: str, directory: Path | None = None):
        self.key = key
        self.enabled = cache_enabled()
        self.path = (directory or cache_dir()) / f"{key}.pkl"
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key_for(source) -> str:
        """A stable key for an input (folder, zip, file or list of them)."""
        if isinstance(source, (list, tuple)):
            parts = sorted(str(Path(s).resolve()) for s in source)
        else:
            parts = [str(Path(source).resolve())]
        return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:20]

    def _load(self) -> dict[str, tuple[tuple, Any]]:
        if self.key in _MEMORY:
            return _MEMORY[self.key]
        try:
            with open(self.path, "rb") as fh:
                blob = pickle.load(fh)
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError,
                ValueError, IndexError):
            return {}
        if not isinstance(blob, dict) or blob.get("format") != CACHE_FORMAT or blob.get("medrecon") != _version():
            return {}
        entries = blob.get("entries")
        return entries if isinstance(entries, dict) else {}

    def _save(self, entries: dict[str, tuple[tuple, Any]]) -> None:
        _MEMORY[self.key] = entries
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".hdr.", suffix=".pkl", dir=self.path.parent)
            with os.fdopen(fd, "wb") as fh:
                pickle.dump({"format": CACHE_FORMAT, "medrecon": _version(), "entries": entries}, fh,
                            protocol=pickle.HIGHEST_PROTOCOL)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError:  # a read-only home is no reason to fail a conversion
            try:
                os.unlink(tmp)  # type: ignore[possibly-undefined]
            except (OSError, NameError):
                pass

    def read_all(self, files: Sequence, reader: Callable[[list], list],
                 keep: Callable[[Any], bool] | None = None) -> list:
        """Results for ``files`` (in order): cached where the file's stat is unchanged, the rest
        from ``reader(missing_files)`` (which must return one result per file, in order).
        ``keep(result)`` False leaves a result out of the cache (e.g. "cannot open": a permission
        change does not change the file's stat)."""
        if not self.enabled:
            return list(reader(list(files)))
        entries = self._load()
        stats = [_stat_key(f) for f in files]
        out: list = [None] * len(files)
        missing: list[int] = []
        for i, (f, st) in enumerate(zip(files, stats)):
            hit = entries.get(f.name)
            if st is not None and hit is not None and hit[0] == st:
                out[i] = hit[1]
            else:
                missing.append(i)
        self.hits = len(files) - len(missing)
        self.misses = len(missing)
        if missing:
            fresh = list(reader([files[i] for i in missing]))
            for i, res in zip(missing, fresh):
                out[i] = res
        if missing or len(entries) != len(files):
            new = {f.name: (st, res) for f, st, res in zip(files, stats, out)
                   if st is not None and (keep is None or keep(res))}
            self._save(new)
        return out
