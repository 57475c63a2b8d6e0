"""Autosave recovery files: where they live, writing them, finding and restoring them.

Each running window has a `RecoverySession` with two files in the recovery
folder (`<data dir>/recovery`, the data dir being `$CANVASAI_DATA_DIR` or
platformdirs' user data dir for "CanvasAI"):

    <id>.ora    the document as of the last autosave (a normal .ora, saved atomically)
    <id>.json   original path, time, pid, revision, clean-exit flag

A normal close removes both. A pair left behind whose process is gone is a
document that was not closed normally: `list_recoverable` finds it and
`restore` opens it. Layers, masks, selection, metadata and generation history
come back fully; the undo stack does not (it holds live command objects), so
it starts empty after a restore.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from canvasai.core.errors import FileFormatError
from canvasai.core.paths import data_dir
from canvasai.document.document import Document, snapshot_document
from canvasai.formats.atomic import atomic_write_bytes, pid_alive
from canvasai.formats.ora import Progress, load_ora, save_ora

STALE_TMP_S = 3600


def recovery_dir() -> Path:
    return data_dir() / "recovery"


@dataclass(frozen=True)
class RecoveryEntry:
    """A recovery file found on disk."""

    ora_path: Path
    info_path: Path
    original_path: str | None
    saved_at: float
    pid: int
    clean_exit: bool
    revision: int
    title: str

    @property
    def time_text(self) -> str:
        return datetime.fromtimestamp(self.saved_at).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def display_name(self) -> str:
        if self.original_path:
            return Path(self.original_path).name
        return self.title or "Untitled"


class RecoverySession:
    """The recovery files of one open document window."""

    def __init__(self, directory: Path | None = None, session_id: str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else recovery_dir()
        self.id = session_id or f"{os.getpid()}-{uuid.uuid4().hex[:10]}"

    @property
    def ora_path(self) -> Path:
        return self.directory / f"{self.id}.ora"

    @property
    def info_path(self) -> Path:
        return self.directory / f"{self.id}.json"

    def write(
        self,
        doc: Document,
        original_path: str | os.PathLike[str] | None = None,
        revision: int = 0,
        title: str = "",
        progress: Progress | None = None,
    ) -> None:
        """Save `doc` (a snapshot, when called off the GUI thread) as this session's recovery."""
        self.directory.mkdir(parents=True, exist_ok=True)
        save_ora(doc, self.ora_path, progress)
        info = {
            "format": "canvasai-recovery",
            "version": 1,
            "original_path": str(original_path) if original_path else None,
            "saved_at": time.time(),
            "pid": os.getpid(),
            "clean_exit": False,
            "revision": int(revision),
            "title": title,
            "width": doc.width,
            "height": doc.height,
            "layers": len(doc.layers),
        }
        atomic_write_bytes(self.info_path, json.dumps(info, indent=1).encode("utf-8"))

    def exists(self) -> bool:
        return self.ora_path.exists()

    def remove(self) -> None:
        """Forget this session's recovery files (normal close, or after a clean save)."""
        for p in (self.info_path, self.ora_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def adopt(self, entry: RecoveryEntry) -> None:
        """Take over a restored entry's files, so they stay until this session replaces them."""
        self.directory.mkdir(parents=True, exist_ok=True)
        os.replace(entry.ora_path, self.ora_path)
        with contextlib.suppress(FileNotFoundError):
            entry.info_path.unlink()
        info = {
            "format": "canvasai-recovery",
            "version": 1,
            "original_path": entry.original_path,
            "saved_at": entry.saved_at,
            "pid": os.getpid(),
            "clean_exit": False,
            "revision": 0,
            "title": entry.title,
        }
        atomic_write_bytes(self.info_path, json.dumps(info, indent=1).encode("utf-8"))


def _read_entry(info_path: Path) -> RecoveryEntry | None:
    try:
        raw = json.loads(info_path.read_text("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(raw, dict):
        return None
    ora = info_path.with_suffix(".ora")
    if not ora.is_file():
        return None
    try:
        return RecoveryEntry(
            ora_path=ora,
            info_path=info_path,
            original_path=raw.get("original_path")
            if isinstance(raw.get("original_path"), str)
            else None,
            saved_at=float(raw.get("saved_at", ora.stat().st_mtime)),
            pid=int(raw.get("pid", 0)),
            clean_exit=bool(raw.get("clean_exit", False)),
            revision=int(raw.get("revision", 0)),
            title=str(raw.get("title", "")),
        )
    except (TypeError, ValueError, OSError):
        return None


def list_recoverable(
    directory: Path | None = None, exclude: RecoverySession | None = None
) -> list[RecoveryEntry]:
    """Recovery files of documents not closed normally whose process is gone, newest first."""
    folder = Path(directory) if directory is not None else recovery_dir()
    if not folder.is_dir():
        return []
    _remove_stale_temporaries(folder)
    found = []
    for info_path in folder.glob("*.json"):
        if exclude is not None and info_path == exclude.info_path:
            continue
        entry = _read_entry(info_path)
        # a process we cannot see counts as gone: offer recovery rather than lose work
        if entry is None or entry.clean_exit or pid_alive(entry.pid, unknown=False):
            continue
        found.append(entry)
    found.sort(key=lambda e: e.saved_at, reverse=True)
    return found


def restore(entry: RecoveryEntry, progress: Progress | None = None) -> Document:
    """The document saved in a recovery file (empty undo history). Raises FileFormatError."""
    return load_ora(entry.ora_path, progress=progress)


def discard(entry: RecoveryEntry) -> None:
    for p in (entry.info_path, entry.ora_path):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _remove_stale_temporaries(folder: Path) -> None:
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()


def describe(entry: RecoveryEntry) -> dict[str, Any]:
    return {"name": entry.display_name, "time": entry.time_text, "path": str(entry.ora_path)}


__all__ = [
    "FileFormatError",
    "RecoveryEntry",
    "RecoverySession",
    "data_dir",
    "discard",
    "list_recoverable",
    "pid_alive",
    "recovery_dir",
    "restore",
    "snapshot_document",
]
