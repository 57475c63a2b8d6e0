"""Zip archives as untrusted input: names, sizes and counts checked before inflating.

`ArchiveReader` holds the archive in memory and never writes a member to disk.
At open it refuses, from the central directory alone:
- unsafe member names (zip slip): absolute paths, drive letters, backslashes,
  ``..`` parts, NUL or other control characters;
- duplicate names (two members that normalise to the same path: which one a
  reader picks differs between programs, a classic way to smuggle content);
- encrypted members and compression methods other than stored and deflate;
- declared sizes that are impossible: a stored member whose sizes differ, a
  deflated member claiming more than deflate's maximum ratio (1032:1), data
  lying past the end of the archive;
- more members, a larger member, or a larger uncompressed total than allowed.
While inflating, a member that produces more than it declared is refused, and
the running total is capped again.
"""

from __future__ import annotations

import io
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from canvasai.core.errors import FileFormatError

DEFLATE_MAX_RATIO = 1032  # a 258-byte match coded in 2 bits: deflate's hard limit
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    UnicodeDecodeError,
)


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 20_000
    max_member_bytes: int = 1 << 30
    max_total_bytes: int = 6 << 30
    max_name_bytes: int = 1024


def normalise_member_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def safe_member_name(name: str) -> bool:
    """Whether a member name stays inside the archive's own tree."""
    if not name or name.startswith("/") or "\\" in name:
        return False
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return False
    if len(name) > 1 and name[1] == ":":
        return False
    return all(part != ".." for part in PurePosixPath(name).parts)


class ArchiveReader:
    """In-memory zip access with name and size checks; nothing is written to disk."""

    def __init__(self, data: bytes, label: str, limits: ArchiveLimits | None = None) -> None:
        self.label = label
        self.limits = limits or ArchiveLimits()
        limits = self.limits
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zf.infolist()
        except _ZIP_ERRORS as exc:
            raise FileFormatError(
                f"“{label}” is not an OpenRaster file: it is not a valid zip archive ({exc})."
            ) from exc
        if len(infos) > limits.max_members:
            raise FileFormatError(
                f"“{label}” has {len(infos)} members, more than the {limits.max_members} "
                "CanvasAI accepts."
            )
        self.infos: dict[str, zipfile.ZipInfo] = {}
        declared = 0
        for info in infos:
            self._check_member(info, len(data))
            key = normalise_member_name(info.filename)
            if key in self.infos:
                raise FileFormatError(
                    f"“{label}” holds two members named {key!r}; such an archive is ambiguous "
                    "and was refused."
                )
            declared += info.file_size
            self.infos[key] = info
        if declared > limits.max_total_bytes:
            raise FileFormatError(
                f"“{label}” would inflate to {declared / 2**30:.1f} GiB in all, more than CanvasAI "
                "accepts (zip bomb?)."
            )
        self.declared_total = declared
        self.inflated = 0

    def _check_member(self, info: zipfile.ZipInfo, archive_bytes: int) -> None:
        label, name = self.label, info.filename
        if len(name.encode("utf-8", "surrogatepass")) > self.limits.max_name_bytes or (
            not safe_member_name(name)
        ):
            raise FileFormatError(
                f"“{label}” contains a member with an unsafe name ({name[:200]!r}); "
                "it was refused and nothing was extracted."
            )
        if info.flag_bits & 0x1:
            raise FileFormatError(f"“{label}”: member {name!r} is encrypted, which is refused.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise FileFormatError(
                f"“{label}”: member {name!r} uses a compression method CanvasAI does not read "
                f"(method {info.compress_type}; stored and deflate are supported)."
            )
        if info.file_size > self.limits.max_member_bytes:
            raise FileFormatError(
                f"“{label}”: member {name!r} would inflate to "
                f"{info.file_size / 2**20:.0f} MiB, more than CanvasAI accepts (zip bomb?)."
            )
        if info.header_offset + info.compress_size > archive_bytes:
            raise FileFormatError(
                f"“{label}”: member {name!r} claims data past the end of the file (truncated?)."
            )
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise FileFormatError(
                f"“{label}”: stored member {name!r} declares inconsistent sizes (damaged?)."
            )
        if info.file_size > info.compress_size * DEFLATE_MAX_RATIO + 64:
            raise FileFormatError(
                f"“{label}”: member {name!r} claims to inflate {info.compress_size} bytes into "
                f"{info.file_size}, more than deflate can (zip bomb or damaged file)."
            )

    def has(self, name: str) -> bool:
        return normalise_member_name(name) in self.infos

    def info(self, name: str) -> zipfile.ZipInfo:
        info = self.infos.get(normalise_member_name(name))
        if info is None:
            raise FileFormatError(
                f"“{self.label}” refers to {name[:200]!r}, which is missing from the file."
            )
        return info

    def size(self, name: str) -> int:
        """The declared uncompressed size of a member (checked again while inflating)."""
        return self.info(name).file_size

    def read_head(self, name: str, n: int) -> bytes:
        """The first `n` bytes of a member, inflating no more than needed."""
        info = self.info(name)
        try:
            with self.zf.open(info) as fh:
                return fh.read(min(n, info.file_size))
        except _ZIP_ERRORS as exc:
            raise FileFormatError(f"“{self.label}”: {name!r} is damaged ({exc}).") from exc

    def read(self, name: str, cap: int | None = None) -> bytes:
        info = self.info(name)
        cap = min(cap or self.limits.max_member_bytes, self.limits.max_member_bytes)
        if info.file_size > cap:
            raise FileFormatError(f"“{self.label}”: {name!r} is larger than CanvasAI accepts.")
        out = bytearray()
        try:
            with self.zf.open(info) as fh:
                while chunk := fh.read(1 << 20):
                    out += chunk
                    if len(out) > info.file_size or len(out) > cap:
                        raise FileFormatError(
                            f"“{self.label}”: {name!r} inflates past its declared size (zip bomb?)."
                        )
                    if self.inflated + len(out) > self.limits.max_total_bytes:
                        raise FileFormatError(
                            f"“{self.label}” inflates past {self.limits.max_total_bytes / 2**30:.1f} "
                            "GiB in all (zip bomb?)."
                        )
        except FileFormatError:
            raise
        except _ZIP_ERRORS as exc:
            raise FileFormatError(f"“{self.label}”: {name!r} is damaged ({exc}).") from exc
        self.inflated += len(out)
        return bytes(out)
