"""Fixtures for the generation service tests: a fake backend and an event recorder."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import threading  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from canvasai.backends.api import (  # noqa: E402
    GenerationRequest,
    GenerationResult,
    batch_seeds,  # noqa: E402
)


class FakeBackend:
    """A deterministic backend: `request.steps` steps of `step_s` seconds each.

    The image for seed s is a pure function of s, so determinism can be checked.
    `fail_with` makes run() raise that exception at step `fail_at`.
    """

    name = "fake"

    def __init__(self, step_s: float = 0.005, frame_size: int = 32) -> None:
        self.step_s = step_s
        self.frame_size = frame_size
        self.fail_with: BaseException | None = None
        self.fail_at = 1
        self.lock = threading.Lock()
        self.steps_run: dict[int, int] = defaultdict(int)
        self.jobs_seen: list[int] = []
        self.previews_offered = 0
        self.threads: set[int] = set()
        self.ignore_cancel = False

    @staticmethod
    def image_for(seed: int, size: int = 16) -> np.ndarray:
        return np.random.default_rng(seed).integers(0, 256, (size, size, 4), dtype=np.uint8)

    def run(self, request: GenerationRequest, ctx) -> GenerationResult:
        with self.lock:
            self.jobs_seen.append(ctx.job_id)
            self.threads.add(threading.get_ident())
        frame = np.zeros((self.frame_size, self.frame_size, 4), np.uint8)
        for step in range(1, request.steps + 1):
            if not self.ignore_cancel:
                ctx.check_cancelled()
            if self.fail_with is not None and step == self.fail_at:
                raise self.fail_with
            time.sleep(self.step_s)
            with self.lock:
                self.steps_run[ctx.job_id] += 1
            ctx.progress(step, request.steps)
            if ctx.wants_preview():
                with self.lock:
                    self.previews_offered += 1
                frame[...] = step
                ctx.preview(step, frame)
        assert request.seed is not None, "the service must resolve the seed"
        seeds = batch_seeds(request.seed, request.batch_size)
        return GenerationResult(
            images=tuple(self.image_for(s) for s in seeds), seeds=seeds, metadata={"b": "fake"}
        )


class Recorder:
    """Records every service signal as (name, args, thread id), in delivery order."""

    NAMES = ("queued", "started", "progress", "preview", "finished", "failed", "cancelled", "note")

    def __init__(self, service) -> None:
        self.events: list[tuple[str, tuple, int]] = []
        for name in self.NAMES:
            getattr(service, name).connect(
                lambda *args, name=name: self.events.append((name, args, threading.get_ident()))
            )

    def of(self, job_id: int) -> list[tuple[str, tuple]]:
        return [(n, a) for n, a, _ in self.events if a[0] == job_id]

    def names(self, job_id: int) -> list[str]:
        return [n for n, _ in self.of(job_id)]

    def ended(self, job_id: int) -> bool:
        return any(n in ("finished", "failed", "cancelled") for n in self.names(job_id))

    def result(self, job_id: int) -> GenerationResult:
        (res,) = [a[1] for n, a in self.of(job_id) if n == "finished"]
        return res


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def make_service(qapp):
    """Build extra services (kwargs go to GenerationService); all are shut down after."""
    from canvasai.generation.service import GenerationService

    made = []

    def make(**kwargs):
        svc = GenerationService(**kwargs)
        made.append(svc)
        return svc, Recorder(svc)

    yield make
    for svc in made:
        assert svc.shutdown(5000)


@pytest.fixture
def service(qapp, fake_backend):
    from canvasai.generation.service import GenerationService

    svc = GenerationService(backend_factory=lambda request: fake_backend, preview_interval=0.0)
    yield svc
    assert svc.shutdown(5000)


@pytest.fixture
def recorder(service) -> Recorder:
    return Recorder(service)
