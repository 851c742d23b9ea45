"""Where one DICOM file's bytes live (:class:`Source`): a module of its own, so that header
parsing (:mod:`.headers`), discovery (:mod:`.scan`) and decoding (:mod:`.pixels`) can all name it
without importing each other."""
from __future__ import annotations

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
        from medrecon.io.limits import gunzip_limited, max_bytes, read_zip_member

        if self.member is not None:
            try:
                with zipfile.ZipFile(self.path) as zf:
                    data = read_zip_member(zf, self.member, self.name)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DicomError(f"corrupt zip file ({exc})", self.name) from None
        else:
            with open(self.path, "rb") as fh:
                if fh.read(2) == _GZ_MAGIC:  # gzip: decompressed in chunks, bounded (no bombs)
                    fh.seek(0)
                    return gunzip_limited(name=self.name, fh=fh)
                fh.seek(0)
                data = fh.read(max_bytes() + 1)
                if len(data) > max_bytes():
                    raise DicomError(f"file larger than the limit of {max_bytes()} bytes (MEDRECON_MAX_BYTES)",
                                     self.name)
        if data[:2] == _GZ_MAGIC:
            data = gunzip_limited(data, self.name)
        return data
