"""A real HTTP server on the loopback address that answers like the Hugging Face hub.

Enough of the hub for huggingface_hub's `HfApi.list_repo_tree` and `hf_hub_download`:
``GET /api/models/{repo}/tree/{rev}`` (files with their git blob id and, for LFS files, the
SHA-256) and ``HEAD`` / ``GET /{repo}/resolve/{rev}/{path}`` (X-Repo-Commit, ETag, sizes,
HTTP Range). Test knobs: a file whose content does not match its declared hash, a transfer
cut in the middle once (the client must resume with a Range request), gated repositories
(401 without a token, 403 with a wrong one), and `stop()` for a server that is down.
Point HF_ENDPOINT at `url`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "c0ffee" + "0" * 34
GOOD_TOKEN = "hf_good_token"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class FakeFile:
    data: bytes
    lfs: bool = True
    declared_sha256: str | None = None  # a lie about the content, for the hash-mismatch test

    @functools.cached_property
    def sha256(self) -> str:
        return self.declared_sha256 or hashlib.sha256(self.data).hexdigest()

    @functools.cached_property
    def blob_id(self) -> str:
        return git_blob_id(self.data)


@dataclass
class FakeRepo:
    files: dict[str, FakeFile]
    gated: bool = False


@dataclass
class FakeHub:
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    cut_once: set[str] = field(default_factory=set)  # "repo/path": first GET stops halfway
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Range)
    chunk: int = 1 << 20
    delay: float = 0.0  # seconds to wait after each chunk (a slow line, for screenshots)

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port_url() -> str:
    """A loopback URL where nothing listens (a server that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    # -- helpers -------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              head: bool = False) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, data: object) -> None:
        self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def _denied(self, repo: FakeRepo, head: bool) -> bool:
        if not repo.gated:
            return False
        auth = self.headers.get("Authorization", "")
        if auth == f"Bearer {GOOD_TOKEN}":
            return False
        status = 403 if auth else 401
        msg = "Access to model is restricted. You must have access to it and be authenticated."
        self._send(status, json.dumps({"error": msg}).encode(),
                   {"X-Error-Code": "GatedRepo", "X-Error-Message": msg,
                    "Content-Type": "application/json"}, head=head)
        return True

    def _repo(self, parts: list[str]) -> tuple[str, FakeRepo | None]:
        repo_id = "/".join(parts[:2])
        return repo_id, self.hub.repos.get(repo_id)

    # -- routes ---------------------------------------------------------------------------
    def do_HEAD(self) -> None:  # noqa: N802 - http.server API
        self._route(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._route(head=False)

    def do_POST(self) -> None:  # noqa: N802 - paths-info
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append(("POST", path, ""))
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "models"] and len(parts) >= 5 and parts[4] == "paths-info":
            _repo_id, repo = self._repo(parts[2:4])
            if repo is None:
                return self._not_found(False)
            if self._denied(repo, False):
                return None
            return self._json([])
        return self._not_found(False)

    def _route(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append((self.command, path, self.headers.get("Range", "")))
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "tree":
            repo_id, repo = self._repo(parts[2:4])
            if repo is None:
                return self._not_found(head)
            if self._denied(repo, head):
                return None
            rows = []
            for name, f in sorted(repo.files.items()):
                row = {"type": "file", "oid": f.blob_id, "size": len(f.data), "path": name}
                if f.lfs:
                    row["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}
                rows.append(row)
            return self._json(rows)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id, repo = self._repo(parts[:2])
            name = "/".join(parts[4:])
            if repo is None:
                return self._not_found(head)
            if self._denied(repo, head):
                return None
            f = repo.files.get(name)
            if f is None:
                return self._send(404, b"", {"X-Error-Code": "EntryNotFound",
                                             "X-Error-Message": "Entry not found"}, head=head)
            return self._file(repo_id, name, f, head)
        return self._not_found(head)

    def _not_found(self, head: bool) -> None:
        self._send(404, b'{"error":"Repository not found"}',
                   {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                   head=head)

    def _file(self, repo_id: str, name: str, f: FakeFile, head: bool) -> None:
        etag = f.sha256 if f.lfs else f.blob_id
        data = f.data
        start = 0
        rng = self.headers.get("Range", "")
        status = 200
        if rng.startswith("bytes=") and not head:
            start = int(rng[6:].split("-")[0] or 0)
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if head:
            return
        key = f"{repo_id}/{name}"
        if key in self.hub.cut_once and start == 0:
            self.hub.cut_once.discard(key)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        view = memoryview(body)
        for i in range(0, len(body), self.hub.chunk):
            self.wfile.write(view[i: i + self.hub.chunk])
            if self.hub.delay:
                time.sleep(self.hub.delay)


def tiny_repo(size: int = 300_000, seed: int = 1) -> FakeRepo:
    """A small model repository: a config (plain git file) and a weights file (LFS)."""
    data = bytes((i * 7 + seed) % 251 for i in range(size))
    return FakeRepo({
        "config.json": FakeFile(b'{"_class_name": "AutoencoderTiny"}', lfs=False),
        "diffusion_pytorch_model.safetensors": FakeFile(data),
    })
