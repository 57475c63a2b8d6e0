"""Atomic file replacement: a crash or kill mid-write leaves the previous file intact.

The new content goes to a temporary file in the target's own folder (so the
final rename never crosses file systems), is flushed and fsynced, and is then
renamed over the target with `os.replace`, which is atomic on POSIX and Windows.
The folder is fsynced afterwards where the platform allows it, so the rename
itself survives a power cut.

- A symlink is written through: the file it points to is replaced (the
  temporary file goes beside that file) and the link stays a link.
- A read-only target is refused with `ReadOnlyFileError` (a FileFormatError and
  a PermissionError): replacing it by rename would silently defeat the
  protection its owner set.
- Temporary files are named ``.<name>.<pid>-<random>.tmp``. A save that was
  killed leaves one behind (possibly hundreds of MB); the next save or open of
  the same file removes that file's temporaries whose process is gone (or,
  for names without a pid, that are over an hour old). Nothing else is touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from canvasai.core.errors import FileFormatError

STALE_TMP_S = 3600  # temporaries without a pid in their name: stale after an hour
_NAME_MAX = 255  # bytes in one path component on common file systems
_SUFFIX_ROOM = 40  # ".<pid>-<random>.tmp"

_active: set[str] = set()  # temporaries this process is writing now
_active_lock = threading.Lock()


class ReadOnlyFileError(FileFormatError, PermissionError):
    """The file to be replaced is read-only."""


def resolve_target(path: str | os.PathLike[str]) -> Path:
    """The file a write to `path` must replace: a symlink's final target."""
    target = Path(path)
    if target.is_symlink():
        return Path(os.path.realpath(target))
    return target


def _tmp_prefix(name: str) -> str:
    """``.<name>.`` or, for a name too long to extend, a shortened name plus a hash."""
    prefix = f".{name}."
    if len(prefix.encode("utf-8", "surrogateescape")) + _SUFFIX_ROOM <= _NAME_MAX:
        return prefix
    digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    raw = name.encode("utf-8", "surrogateescape")[: _NAME_MAX - _SUFFIX_ROOM - 14]
    short = raw.decode("utf-8", "ignore")
    return f".{short}~{digest}."


def _tmp_pattern(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(_tmp_prefix(name)) + r"(?:(?P<pid>\d+)-)?[A-Za-z0-9_]{6,16}\.tmp\Z")


def pid_alive(pid: int, unknown: bool = True) -> bool:
    """Whether a process with this id runs now; `unknown` when that cannot be told (no
    signal-0 probe and no psutil). Our own crashed predecessors are not alive."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if os.name == "posix":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists, under another user
        except OSError:
            return unknown
        return True
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return unknown
    return bool(psutil.pid_exists(pid))


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove temporaries that an interrupted save of `path` left beside it.

    Only files matching this module's own naming for that very file name are
    considered; a temporary of a live save (this process or another) is kept.
    Returns the files removed. Never raises.
    """
    removed: list[Path] = []
    try:
        target = resolve_target(path)
        folder = target.parent if str(target.parent) else Path(".")
        pattern = _tmp_pattern(target.name)
        now = time.time()
        with os.scandir(folder) as entries:
            candidates = [e for e in entries if pattern.match(e.name)]
        for entry in candidates:
            p = folder / entry.name
            with contextlib.suppress(OSError):
                with _active_lock:
                    if str(p) in _active:
                        continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                pid = pattern.match(entry.name).group("pid")  # type: ignore[union-attr]
                if pid is not None:
                    stale = int(pid) != os.getpid() and not pid_alive(int(pid))
                    stale = stale or int(pid) == os.getpid()  # ours, but not active: left over
                else:
                    stale = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TMP_S
                if stale:
                    p.unlink()
                    removed.append(p)
    except OSError:
        pass
    return removed


def check_writable(target: Path) -> None:
    """Refuse to replace a read-only file (also when running as an administrator)."""
    try:
        st = target.stat()
    except FileNotFoundError:
        return
    except OSError:
        return  # the write itself reports what is wrong
    if not stat.S_ISREG(st.st_mode):
        raise FileFormatError(f"“{target}” is not a regular file; CanvasAI will not replace it.")
    if not (st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) or not os.access(
        target, os.W_OK
    ):
        raise ReadOnlyFileError(
            f"“{target.name}” is read-only, so CanvasAI did not replace it. Save under another "
            "name, or make the file writable first."
        )


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file object; on a clean exit it replaces `path` atomically.

    On an exception the temporary file is removed and `path` is not touched.
    Raises ReadOnlyFileError before writing anything when `path` is read-only.
    """
    target = resolve_target(path)
    check_writable(target)
    folder = target.parent if str(target.parent) else Path(".")
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f"{_tmp_prefix(target.name)}{os.getpid()}-", suffix=".tmp", dir=folder
    )
    tmp = Path(tmp_name)
    with _active_lock:
        _active.add(str(tmp))
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():
            # Keep the permissions of the file being replaced (mkstemp makes 0600).
            with contextlib.suppress(OSError):
                os.chmod(tmp, target.stat().st_mode & 0o777)
        else:
            with contextlib.suppress(OSError):
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        with _active_lock:
            _active.discard(str(tmp))
    _fsync_dir(folder)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    with atomic_writer(path) as fh:
        write(fh)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
