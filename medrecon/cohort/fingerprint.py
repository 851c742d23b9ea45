"""Cheap input fingerprints for the cohort manifest (no file is read, only names, sizes, mtimes)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable


def stat_fingerprint(paths: Iterable[str | os.PathLike]) -> str:
    """SHA-256 (hex, 16 chars) over the relative name, size and mtime of every file under ``paths``.

    Cheap (no file is read): a changed, added, removed or touched file changes it. File names
    enter only through the hash.
    """
    h = hashlib.sha256()
    for top in paths:
        top = Path(top)
        if top.is_file():
            st = top.stat()
            h.update(f"F|{top.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            continue
        if not top.is_dir():
            h.update(f"missing|{top.name}\n".encode())
            continue
        for root, dirs, files in os.walk(top):
            dirs.sort()
            rel = os.path.relpath(root, top)
            for f in sorted(files):
                try:
                    st = os.stat(os.path.join(root, f))
                except OSError:
                    continue
                h.update(f"{rel}/{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]
