"""A persistent index of what the model scan found: path + size + mtime -> classification, hash.

Reading a checkpoint's header (or a diffusers folder's configs) is the slow part of a scan;
listing folders and stat-ing files is cheap. The index remembers, for each file or model
folder, its fingerprint (size, modification time in ns, inode; for a folder: the total size,
newest modification time and file count of everything under it) and what the scan made of
it. A later scan reuses the classification while the fingerprint is unchanged, so a folder
of thousands of files rescans in a fraction of a second; a changed file is read again.

The SHA-256 of a model (computed in the background for the Models window) is kept in the
same entry and dropped with it when the file changes.

The index is one JSON file in the data folder, written atomically (temporary file, then
rename), and is only a cache: a missing, unreadable or foreign file reads as empty. No Qt,
no torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

VERSION = 2  # 2: transformers depth / pose estimators are models (were skipped)
_FIELDS = ("family", "kind", "format", "control_type", "size_bytes", "note", "variant")


def default_index_path() -> Path:
    from canvasai.core.paths import data_dir

    return data_dir() / "cache" / "scan-index.json"


def file_fingerprint(st: os.stat_result) -> list[int]:
    return [int(st.st_size), int(st.st_mtime_ns), int(st.st_ino)]


def folder_fingerprint(folder: Path) -> list[int]:
    """Total size, newest mtime (ns) and number of files under `folder` (the folder's own
    mtime included, so a file added or removed at its top changes it)."""
    total = count = 0
    newest = 0
    with contextlib.suppress(OSError):
        newest = folder.stat().st_mtime_ns
    for root, dirs, files in os.walk(folder):
        with contextlib.suppress(OSError):
            newest = max(newest, os.stat(root).st_mtime_ns)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            try:
                st = os.stat(os.path.join(root, f))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                count += 1
                newest = max(newest, st.st_mtime_ns)
    return [total, newest, count]


class ScanIndex:
    """``{real path: {"fp": fingerprint, "allow": bool, "info": {...}, "error": str, "sha256": str}}``.

    Thread-safe. `lookup` / `store` during a scan, `save` at its end (only when something
    changed), `sha256` / `set_sha256` for the Models window's hashes.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_index_path()
        self._lock = threading.RLock()
        self._entries: dict[str, dict[str, Any]] | None = None
        self._dirty = False
        self.hits = 0
        self.misses = 0

    # -- persistence ------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            entries: dict[str, dict[str, Any]] = {}
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("version") == VERSION:
                    raw = data.get("entries")
                    if isinstance(raw, dict):
                        entries = {str(k): v for k, v in raw.items() if isinstance(v, dict)}
            except (OSError, ValueError, RecursionError):
                pass
            self._entries = entries
        return self._entries

    def save(self) -> None:
        """Write the index if it changed (atomically; a failure leaves the old file)."""
        with self._lock:
            if not self._dirty or self._entries is None:
                return
            payload = json.dumps({"version": VERSION, "entries": self._entries}, separators=(",", ":"))
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".scan-index-", dir=self.path.parent)
                try:
                    with os.fdopen(fd, "w", encoding="utf-8") as f:
                        f.write(payload)
                    os.replace(tmp, self.path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            except OSError:
                return  # only a cache: the next scan reads the files again
            self._dirty = False

    def prune(self, keep: Callable[[str], bool]) -> None:
        """Drop entries for which `keep(path)` is False."""
        with self._lock:
            entries = self._load()
            gone = [k for k in entries if not keep(k)]
            for k in gone:
                del entries[k]
            if gone:
                self._dirty = True

    def __len__(self) -> int:
        with self._lock:
            return len(self._load())

    # -- classification ---------------------------------------------------------------------
    def lookup(self, key: str, fp: list[int], allow: bool) -> dict[str, Any] | None:
        """The stored entry when `fp` (and the pickle permission) still match, else None."""
        with self._lock:
            e = self._load().get(key)
            if e is not None and e.get("fp") == fp and bool(e.get("allow")) == allow:
                self.hits += 1
                return e
            self.misses += 1
            return None

    def store(self, key: str, fp: list[int], allow: bool, info: Any | None, error: str = "") -> None:
        """Remember what `key` was: a ModelInfo-like object (its classification fields), None
        (not a model) or an `error` (a refused entry's reason)."""
        entry: dict[str, Any] = {"fp": fp, "allow": allow}
        if info is not None:
            entry["info"] = {f: getattr(info, f) for f in _FIELDS}
        if error:
            entry["error"] = error
        with self._lock:
            old = self._load().get(key)
            if old is not None and old.get("fp") == fp and old.get("sha256"):
                entry["sha256"] = old["sha256"]
            self._load()[key] = entry
            self._dirty = True

    # -- hashes -----------------------------------------------------------------------------
    def sha256(self, path: str | os.PathLike[str]) -> str | None:
        """The cached SHA-256 of `path` if the file has not changed since it was computed."""
        key, fp = _key_fp(Path(path))
        if key is None:
            return None
        with self._lock:
            e = self._load().get(key)
            if e is not None and e.get("fp") == fp:
                value = e.get("sha256")
                return str(value) if value else None
        return None

    def set_sha256(self, path: str | os.PathLike[str], digest: str) -> None:
        key, fp = _key_fp(Path(path))
        if key is None:
            return
        with self._lock:
            e = self._load().get(key)
            if e is None or e.get("fp") != fp:
                e = {"fp": fp, "allow": False, "unclassified": True}
                self._load()[key] = e
            e["sha256"] = digest
            self._dirty = True


def _key_fp(p: Path) -> tuple[str | None, list[int]]:
    try:
        key = os.path.realpath(p)
        st = os.stat(key)
    except OSError:
        return None, []
    if stat.S_ISDIR(st.st_mode):
        return key, folder_fingerprint(Path(key))
    return key, file_fingerprint(st)


def hash_file(
    path: str | os.PathLike[str],
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    chunk: int = 8 << 20,
) -> str:
    """SHA-256 of a file, read in chunks (progress(done, total) after each). Raises
    InterruptedError when `cancelled()` turns true."""
    h = hashlib.sha256()
    p = Path(path)
    total = p.stat().st_size
    done = 0
    with p.open("rb") as f:
        while True:
            if cancelled is not None and cancelled():
                raise InterruptedError("hashing cancelled")
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
    return h.hexdigest()


_shared: dict[str, ScanIndex] = {}
_shared_lock = threading.Lock()


def shared_index() -> ScanIndex:
    """The index for the current data folder (one instance per path per process)."""
    path = str(default_index_path())
    with _shared_lock:
        idx = _shared.get(path)
        if idx is None:
            idx = _shared[path] = ScanIndex(path)
        return idx
