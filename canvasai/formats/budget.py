"""One memory budget per opened file, checked before anything is decoded.

A reader first lists everything the file will decode (each layer image, counted
per occurrence even when several layers reuse one member; the CanvasAI extras'
images, arrays and blobs; masks), charges each against one `MemoryBudget`, and
only then decodes. A file whose total is over the budget is refused with a
`FileFormatError`, before a single pixel is inflated.

The default budget is a fraction of the memory available now (MemAvailable in
/proc/meminfo, else physical pages from `os.sysconf`), clamped between a floor
(so small machines still open ordinary files) and a ceiling (so one file never
claims a whole workstation). Tests pass a small explicit budget.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from canvasai.core.errors import FileFormatError

BUDGET_FRACTION = 0.75
BUDGET_FLOOR = 1 << 30  # 1 GiB
BUDGET_CEILING = 48 << 30  # 48 GiB
FALLBACK_AVAILABLE = 4 << 30  # when the platform cannot tell


def available_memory() -> int:
    """Bytes of memory the system can give us now (an estimate; never raises)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        page = os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and page > 0:
            return int(pages) * int(page)
    except (AttributeError, ValueError, OSError):
        pass
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - optional, and any failure means "unknown"
        return FALLBACK_AVAILABLE


def default_budget_bytes() -> int:
    """The decode budget for one file: a fraction of available memory, clamped."""
    return int(min(BUDGET_CEILING, max(BUDGET_FLOOR, available_memory() * BUDGET_FRACTION)))


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n < 10 << 30 else f"{n / 2**30:,.1f} GiB"


@dataclass
class MemoryBudget:
    """Bytes a file may make us allocate; `charge` every decode before doing it."""

    limit: int
    label: str = "file"
    used: int = 0
    peak_item: int = 0  # the largest single decode: its transient copies are counted once
    items: list[tuple[str, int]] = field(default_factory=list)

    @classmethod
    def for_file(cls, label: str, limit: int | None = None) -> MemoryBudget:
        return cls(default_budget_bytes() if limit is None else int(limit), label)

    @classmethod
    def already_charged(cls) -> MemoryBudget:
        """For a decode whose cost the caller has already charged to its own budget."""
        return cls(1 << 62, "already charged")

    @property
    def total(self) -> int:
        """What the file needs in all: every charge, plus the working copies of the largest."""
        return self.used + 2 * self.peak_item

    def charge(self, what: str, nbytes: int, decode: bool = True) -> None:
        """Count `nbytes` for `what`; raise FileFormatError once the total is over the limit.

        `decode` marks an image decode, whose temporary copies (decoder buffer,
        conversion) are counted for the largest one.
        """
        nbytes = max(0, int(nbytes))
        self.used += nbytes
        self.items.append((what, nbytes))
        if decode:
            self.peak_item = max(self.peak_item, nbytes)
        if self.total > self.limit:
            raise FileFormatError(
                f"“{self.label}” would need about {_mib(self.total)} of memory to open "
                f"({what} alone needs {_mib(nbytes)}), more than the {_mib(self.limit)} "
                "CanvasAI allows for one file. It may be damaged or built to exhaust memory."
            )

    def remaining(self) -> int:
        return max(0, self.limit - self.total)
