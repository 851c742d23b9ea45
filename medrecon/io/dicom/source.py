"""Where one DICOM file's bytes live (:class:`Source`): a module of its own, so that header
parsing (:mod:`.headers`), discovery (:mod:`.scan`) and decoding (:mod:`.pixels`) can all name it
without importing each other."""
from __future__ import annotations

import gzip
import zipfile
from dataclasses import dataclass

from medrecon.errors import DicomError

__all__ = ["Source"]

_GZ_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Source:
    """Where one DICOM file's bytes live: a plain path, or a member of a zip archive."""

    path: str
    member: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}!{self.member}" if self.member else self.path

    def read_bytes(self) -> bytes:
        if self.member is not None:
            with zipfile.ZipFile(self.path) as zf:
                data = zf.read(self.member)
        else:
            with open(self.path, "rb") as fh:
                data = fh.read()
        if data[:2] == _GZ_MAGIC:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise DicomError(f"gzip data is corrupt or truncated ({exc})", self.name) from exc
        return data
