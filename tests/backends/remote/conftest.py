"""Loopback ComfyUI servers and a recording job context for the remote-engine tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from canvasai.backends.remote import pool as pool_module
from canvasai.backends.remote.backend import RemoteBackend
from canvasai.backends.remote.pool import ServerPool
from canvasai.backends.remote.protocol import ServerConfig
from canvasai.core.errors import JobCancelled
from tests.support.fake_comfyui import FakeComfyUI, Knobs


class Ctx:
    """A JobContext that records everything and can cancel itself on a condition."""

    job_id = 1

    def __init__(self, cancel_when: Callable[[Ctx], bool] | None = None) -> None:
        self.progress_calls: list[tuple[int, int]] = []
        self.frames: list[tuple[int, np.ndarray]] = []
        self.notes: list[str] = []
        self.cancel_when = cancel_when
        self.cancelled_at: float | None = None
        self.thread = threading.get_ident()
        self.foreign_calls = 0

    def _here(self) -> None:
        if threading.get_ident() != self.thread:
            self.foreign_calls += 1

    def check_cancelled(self) -> None:
        self._here()
        if self.cancelled_at is None and self.cancel_when is not None and self.cancel_when(self):
            self.cancelled_at = time.perf_counter()
        if self.cancelled_at is not None:
            raise JobCancelled("cancelled")

    def progress(self, step: int, total: int) -> None:
        self._here()
        self.progress_calls.append((step, total))

    def wants_preview(self) -> bool:
        return True

    def preview(self, step: int, rgba: np.ndarray) -> None:
        self._here()
        self.frames.append((step, rgba.copy()))  # as the service does: backends may reuse buffers

    def note(self, message: str) -> None:
        self._here()
        self.notes.append(message)


@pytest.fixture
def make_server() -> Iterator[Callable[..., FakeComfyUI]]:
    made: list[FakeComfyUI] = []

    def make(**kw) -> FakeComfyUI:
        knobs = kw.pop("knobs", None) or Knobs()
        srv = FakeComfyUI(knobs=knobs, **kw)
        srv.start()
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


@pytest.fixture
def server(make_server) -> FakeComfyUI:
    return make_server()


_pools: list[ServerPool] = []


def backend_for(*servers: FakeComfyUI, token: str = "") -> RemoteBackend:
    pool = ServerPool([ServerConfig(s.url, token) for s in servers], timeout=5.0,
                      connect_timeout=1.0)
    _pools.append(pool)
    return RemoteBackend(pool)


@pytest.fixture(autouse=True)
def _fresh_pool() -> Iterator[None]:
    pool_module.reset()
    yield
    pool_module.reset()
    while _pools:
        _pools.pop().close()
