"""Downloading models through huggingface_hub into the shared Hugging Face cache.

Everything hub-related goes through huggingface_hub: the file list and each file's hash
(`HfApi.list_repo_tree`: the SHA-256 of LFS files, the git blob id of small ones), the
download itself (`hf_hub_download`, which writes into the cache other tools share, resumes a
transfer cut in the middle with an HTTP Range request, and keeps nothing half-written:
an interrupted file is deleted), authentication (a token, or the one `hf auth login` saved).

What this module adds:

* a plan before anything downloads: which files, how many bytes are still missing, and a
  disk-space check against the cache's free space;
* progress for a whole model (bytes, speed, time left) through a plain callback;
* cancel (a `threading.Event`, checked on every chunk: the file being written is removed,
  files already complete stay in the cache, so downloading again resumes at that file);
* verification of every downloaded file against the hub's metadata: a mismatch deletes the
  file from the cache and says so;
* plain messages for the person: no network, a gated repository (log in, accept the licence,
  token), a full disk, a repository that does not exist.

Runs on whatever thread calls it (the app calls it from a worker thread). No Qt, no torch.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canvasai.backends.models import hf_cache_dir
from canvasai.core.errors import CanvasAIError

#: hash each file while it downloads (a second thread reading behind the writer) instead of
#: reading it again afterwards
HASH_WHILE_DOWNLOADING = True
#: seconds between progress callbacks
PROGRESS_INTERVAL = 0.1
#: free space kept on top of the download (the cache's own files, temp files of other tools)
DISK_MARGIN = 256 << 20


class DownloadError(CanvasAIError):
    """A download that could not be done; `kind` tells which (for the UI), str() says it plainly."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # offline | network | gated | auth | not_found | hash | disk | cancelled | failed


@dataclass(frozen=True)
class RemoteFile:
    path: str  # inside the repository
    size: int
    sha256: str | None  # LFS files: the hub's SHA-256 of the content
    blob_id: str  # git blob id (SHA-1 of "blob <size>\0" + content)


@dataclass(frozen=True)
class Plan:
    repo: str
    revision: str
    files: tuple[RemoteFile, ...]
    missing: tuple[RemoteFile, ...]  # not yet in the cache

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def missing_bytes(self) -> int:
        return sum(f.size for f in self.missing)


@dataclass(frozen=True)
class Progress:
    repo: str
    filename: str
    file_index: int  # 1-based, among the files that download
    file_count: int
    done: int  # bytes of the whole download so far
    total: int
    speed: float  # bytes per second (smoothed)
    eta_s: float | None  # seconds left, None while unknown

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressFn = Callable[[Progress], None]


def endpoint() -> str | None:
    """HF_ENDPOINT as it is now (huggingface_hub reads it only when imported)."""
    value = os.environ.get("HF_ENDPOINT", "").strip()
    return value.rstrip("/") or None


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def matches(path: str, allow: Sequence[str], ignore: Sequence[str]) -> bool:
    if allow and not any(fnmatch.fnmatch(path, pat) for pat in allow):
        return False
    return not any(fnmatch.fnmatch(path, pat) for pat in ignore)


# ------------------------------------------------------------------------------- errors


def explain(exc: BaseException, repo: str) -> DownloadError:
    """A huggingface_hub / network / disk exception as a message for the person."""
    if isinstance(exc, DownloadError):
        return exc
    from huggingface_hub import errors as hf

    url = f"https://huggingface.co/{repo}"
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return DownloadError(
            "offline", "Downloads are switched off (HF_HUB_OFFLINE is set). Unset it to download."
        )
    if isinstance(exc, hf.GatedRepoError):
        return DownloadError(
            "gated",
            f"{repo} is a gated model: log in at {url} with your Hugging Face account, accept its "
            "licence there, then paste an access token (huggingface.co/settings/tokens, “read” is "
            "enough) into the token field and download again.",
        )
    if isinstance(exc, hf.RepositoryNotFoundError):
        return DownloadError(
            "not_found",
            f"{repo} was not found on the hub, or it is private and needs a token with access to it.",
        )
    if isinstance(exc, (hf.EntryNotFoundError, hf.RevisionNotFoundError)):
        return DownloadError("not_found", f"{repo}: {str(exc).splitlines()[0]}")
    if isinstance(exc, hf.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return DownloadError(
                "auth", f"The hub refused access to {repo} (HTTP {status}): check the access token."
            )
        return DownloadError(
            "network", f"The hub answered with an error (HTTP {status}) for {repo}. Try again later."
        )
    if isinstance(exc, hf.LocalEntryNotFoundError) or _is_connection_error(exc):
        return DownloadError(
            "network",
            "Cannot reach the Hugging Face hub: check the internet connection (or a proxy / "
            "firewall) and try again. Models already on disk keep working.",
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(
            "disk", "The disk is full: the download stopped and its partial file was removed. "
            f"Free some space on {hf_cache_dir()} and download again.",
        )
    if isinstance(exc, OSError):
        return DownloadError("failed", f"Download of {repo} failed: {exc.strerror or exc}")
    return DownloadError("failed", f"Download of {repo} failed: {type(exc).__name__}: {exc}")


def _is_connection_error(exc: BaseException) -> bool:
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 8:
        name = type(e).__name__
        if name in ("ConnectError", "ConnectTimeout", "ConnectionError", "ReadTimeout",
                    "RemoteProtocolError", "TimeoutException", "NetworkError"):
            return True
        if isinstance(e, (ConnectionError, TimeoutError)):
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


# ------------------------------------------------------------------------------- planning


def list_files(
    repo: str,
    *,
    revision: str = "main",
    token: str | None = None,
    allow: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> list[RemoteFile]:
    """The repository's files (filtered by the glob patterns) with their sizes and hashes."""
    if _offline():
        raise explain(_offline_error(), repo)
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=endpoint(), token=token or None)
    try:
        # one request without retries first: no network, a gated or unknown repository are
        # told at once (the tree listing below retries for ~20 s on connection errors)
        api.get_paths_info(repo, ["model_index.json"], revision=revision)
        entries = list(api.list_repo_tree(repo, recursive=True, revision=revision))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message
        raise explain(exc, repo) from exc
    out = []
    for e in entries:
        if not isinstance(e, RepoFile) or not matches(e.path, allow, ignore):
            continue
        sha = e.lfs.sha256 if e.lfs is not None else None
        out.append(RemoteFile(e.path, int(e.size), sha, e.blob_id))
    return out


def _offline_error() -> BaseException:
    from huggingface_hub import errors as hf

    return hf.OfflineModeIsEnabled("offline")


def cached_path(repo: str, filename: str, revision: str = "main", cache_dir: Path | None = None) -> Path | None:
    """The file in the cache, if a complete copy is there (no network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=str(cache_dir or hf_cache_dir()),
                                   revision=revision)
    return Path(found) if isinstance(found, str) else None


def plan(
    repo: str,
    *,
    revision: str = "main",
    token: str | None = None,
    allow: Sequence[str] = (),
    ignore: Sequence[str] = (),
    cache_dir: Path | None = None,
) -> Plan:
    files = list_files(repo, revision=revision, token=token, allow=allow, ignore=ignore)
    if not files:
        raise DownloadError("not_found", f"{repo} has no files matching what CanvasAI needs.")
    missing = [f for f in files if cached_path(repo, f.path, revision, cache_dir) is None]
    return Plan(repo, revision, tuple(files), tuple(missing))


def check_disk_space(
    needed: int, cache_dir: Path, disk_usage: Callable[[str], Any] = shutil.disk_usage
) -> None:
    """Raise DownloadError('disk') when the cache's disk has less than `needed` + a margin free."""
    probe = cache_dir
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    free = disk_usage(str(probe)).free
    if free < needed + DISK_MARGIN:
        raise DownloadError(
            "disk",
            f"Not enough disk space: this download needs {needed / 1e9:.1f} GB and {probe} has "
            f"{free / 1e9:.1f} GB free. Free some space (or point HF_HOME at a bigger disk) and "
            "try again.",
        )


# ------------------------------------------------------------------------------- downloading


class _Cancelled(Exception):
    pass


class _Meter:
    """Bytes over the whole download, speed (smoothed) and time left."""

    def __init__(self, repo: str, total: int, count: int, fn: ProgressFn | None,
                 cancel: threading.Event | None) -> None:
        self.repo, self.total, self.count, self.fn, self.cancel = repo, total, count, fn, cancel
        self.base = 0  # bytes of the files finished before the current one
        self.current = 0
        self.index = 0
        self.filename = ""
        self.speed = 0.0
        self._t = time.monotonic()
        self._b = 0
        self._last_emit = 0.0

    def start_file(self, index: int, name: str) -> None:
        self.index, self.filename, self.current = index, name, 0
        self.emit(force=True)

    def end_file(self, size: int) -> None:
        self.base += size
        self.current = 0
        self.emit(force=True)

    def add(self, n: int) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled()
        self.current += n
        self.emit()

    def emit(self, force: bool = False) -> None:
        now = time.monotonic()
        done = self.base + self.current
        dt = now - self._t
        if dt >= 0.25:
            inst = (done - self._b) / dt
            self.speed = inst if self.speed == 0 else 0.7 * self.speed + 0.3 * inst
            self._t, self._b = now, done
        if self.fn is None or (not force and now - self._last_emit < PROGRESS_INTERVAL):
            return
        self._last_emit = now
        left = max(0, self.total - done)
        eta = left / self.speed if self.speed > 0 else None
        self.fn(Progress(self.repo, self.filename, self.index, self.count, done, self.total,
                         self.speed, eta))

    def bar_class(self) -> type:
        meter = self

        class _Bar:
            """What huggingface_hub's `tqdm_class` needs: a context manager with update()."""

            def __init__(self, *args: Any, initial: int = 0, **kwargs: Any) -> None:
                self.n = initial
                if initial:
                    meter.add(initial)

            def update(self, n: int = 1) -> None:
                self.n += n
                meter.add(n)

            def close(self) -> None:
                pass

            def __enter__(self) -> _Bar:
                return self

            def __exit__(self, *exc: object) -> None:
                self.close()

            def set_description(self, *args: Any, **kwargs: Any) -> None:
                pass

        return _Bar


def _git_blob_id(path: Path) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sha256(path: Path, cancel: threading.Event | None = None) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            h.update(block)
    return h.hexdigest()


class _TailHasher(threading.Thread):
    """Hashes the download's temporary file while huggingface_hub appends to it, so the hash
    is ready (nearly) when the transfer ends instead of costing a second pass over the file.

    The file is found by the name huggingface_hub gives it (``<etag>.<random>.incomplete`` in
    the repository's blobs folder). Anything unexpected (no such file, the file shrinking
    because a server ignored a Range request) marks the result unusable; `verify` then reads
    the finished file again, so this is only ever a shortcut.
    """

    def __init__(self, folder: Path, remote: RemoteFile) -> None:
        super().__init__(daemon=True, name="download-hash")
        self.folder = folder
        self.pattern = f"{remote.sha256 or remote.blob_id}.*.incomplete"
        self.git = not remote.sha256
        self.h = hashlib.sha1(usedforsecurity=False) if self.git else hashlib.sha256()
        if self.git:
            self.h.update(b"blob %d\0" % remote.size)
        self.size = remote.size
        self.finished = threading.Event()
        self.digest: str | None = None
        self._since = time.time() - 2

    def _open(self) -> Any:
        while not self.finished.is_set():
            try:
                found = [(p.stat().st_mtime, p) for p in self.folder.glob(self.pattern)]
            except OSError:
                found = []
            found = [x for x in found if x[0] >= self._since]
            if found:
                try:
                    return max(found)[1].open("rb")
                except OSError:
                    pass
            time.sleep(0.005)
        return None

    def run(self) -> None:
        f = self._open()
        if f is None:
            return
        pos = 0
        with f:
            while True:
                done = self.finished.is_set()
                try:
                    size = os.fstat(f.fileno()).st_size
                except OSError:
                    return
                if size < pos:
                    return  # rewritten from the start: not this shortcut's business
                while pos < size:
                    block = f.read(min(8 << 20, size - pos))
                    if not block:
                        break
                    self.h.update(block)
                    pos += len(block)
                if done:
                    for block in iter(lambda: f.read(8 << 20), b""):
                        self.h.update(block)
                        pos += len(block)
                    break
                self.finished.wait(0.01)
        if pos == self.size:
            self.digest = self.h.hexdigest()

    def result(self) -> str | None:
        self.finished.set()
        self.join()
        return self.digest


def verify(local: Path, remote: RemoteFile, cancel: threading.Event | None = None,
           digest: str | None = None) -> None:
    """Check a downloaded file against the hub's hash; on a mismatch remove it from the cache
    (the snapshot link and the blob) and raise DownloadError('hash'). `digest`: the hash
    computed while downloading, if any (a mismatch there is checked again on the file)."""
    want = (remote.sha256 or remote.blob_id).lower()
    if digest is not None and digest.lower() == want:
        return
    if remote.sha256:
        got, what = _sha256(local, cancel), "SHA-256"
    else:
        got, what = _git_blob_id(local), "git blob id"
    if got.lower() == want:
        return
    blob = Path(os.path.realpath(local))
    for p in (local, blob):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    raise DownloadError(
        "hash",
        f"{remote.path} does not match the hub's {what} (expected {want[:16]}…, got {got[:16]}…): "
        "the file was damaged in transfer and has been deleted. Download it again.",
    )


def download(
    repo: str,
    *,
    revision: str = "main",
    token: str | None = None,
    allow: Sequence[str] = (),
    ignore: Sequence[str] = (),
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    planned: Plan | None = None,
    disk_usage: Callable[[str], Any] = shutil.disk_usage,
) -> Path:
    """Download `repo` (the files matching `allow` / `ignore`) into the HF cache; returns the
    snapshot folder. Raises DownloadError with a message for the person."""
    from huggingface_hub import hf_hub_download

    cache = Path(cache_dir) if cache_dir is not None else hf_cache_dir()
    p = planned or plan(repo, revision=revision, token=token, allow=allow, ignore=ignore,
                        cache_dir=cache)
    check_disk_space(p.missing_bytes, cache, disk_usage)
    meter = _Meter(repo, p.missing_bytes, len(p.missing), progress, cancel)
    bar = meter.bar_class()
    snapshot: Path | None = None
    for i, f in enumerate(p.files):
        if cancel is not None and cancel.is_set():
            raise DownloadError("cancelled", "Download cancelled.")
        fresh = f in p.missing
        tail: _TailHasher | None = None
        if fresh:
            meter.start_file(p.missing.index(f) + 1, f.path)
        if fresh and HASH_WHILE_DOWNLOADING:
            tail = _TailHasher(cache / ("models--" + repo.replace("/", "--")) / "blobs", f)
            tail.start()
        try:
            local = Path(hf_hub_download(
                repo, f.path, revision=revision, cache_dir=str(cache), token=token or None,
                endpoint=endpoint(), tqdm_class=bar,
            ))
        except _Cancelled:
            raise DownloadError(
                "cancelled",
                "Download cancelled; the file in progress was removed. Files already complete are "
                "kept: downloading again continues from there.",
            ) from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message
            raise explain(exc, repo) from exc
        finally:
            digest = tail.result() if tail is not None else None
        if fresh:
            try:
                verify(local, f, cancel, digest)
            except _Cancelled:
                raise DownloadError("cancelled", "Download cancelled.") from None
            meter.end_file(f.size)
        if i == 0:
            snapshot = local.parents[len(Path(f.path).parts) - 1]
    assert snapshot is not None
    return snapshot


def download_entry(entry: Any, **kwargs: Any) -> Path:
    """`download` for a catalogue entry (its repository and file patterns)."""
    return download(entry.repo, allow=entry.allow, ignore=entry.ignore, **kwargs)


def installed(entry: Any, cache_dir: Path | None = None) -> bool:
    """True when the cache holds weights of the entry's repository (a .safetensors / .gguf
    file it would download; a config alone, left by a cancelled download, does not count).
    No network."""
    cache = Path(cache_dir) if cache_dir is not None else hf_cache_dir()
    folder = cache / ("models--" + entry.repo.replace("/", "--")) / "snapshots"
    try:
        snaps = [d for d in folder.iterdir() if d.is_dir()]
        for snap in snaps:
            for p in snap.rglob("*"):
                rel = p.relative_to(snap).as_posix()
                if (p.suffix in (".safetensors", ".gguf") and p.exists()
                        and matches(rel, entry.allow, entry.ignore)):
                    return True
    except OSError:
        return False
    return False


def humanize_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def describe_progress(p: Progress) -> str:
    """"1.2 GB of 6.9 GB · 45.0 MB/s · 2 min left (file 1 of 3)"."""
    text = f"{humanize_bytes(p.done)} of {humanize_bytes(p.total)}"
    if p.speed > 0:
        text += f" · {humanize_bytes(p.speed)}/s"
    if p.eta_s is not None:
        s = int(p.eta_s)
        text += f" · {s // 60} min {s % 60:02d} s left" if s >= 60 else f" · {s} s left"
    if p.file_count > 1:
        text += f" (file {p.file_index} of {p.file_count})"
    return text
