"""GenerationService live jobs: supersede semantics, cancel_live, non-live jobs untouched.

The backend blocks before every step until the test lets it go (a semaphore), so the
order of events is decided by the test, never by timing.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import numpy as np
import pytest

from canvasai.backends.api import GenerationRequest, GenerationResult, Task, batch_seeds
from canvasai.generation.service import SUPERSEDED

WAIT_MS = 10_000


class GatedBackend:
    """Each step waits for one permit from `gate`; the image encodes the request's prompt."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.started: list[int] = []
        self.steps: dict[int, int] = defaultdict(int)
        self.active = 0

    def release(self, n: int = 1) -> None:
        self.gate.release(n)

    def run(self, request: GenerationRequest, ctx) -> GenerationResult:
        with self.lock:
            self.started.append(ctx.job_id)
            self.active += 1
        try:
            for step in range(1, request.steps + 1):
                ctx.check_cancelled()
                if not self.gate.acquire(timeout=WAIT_MS / 1000):
                    raise RuntimeError("the test never released this step")
                with self.lock:
                    self.steps[ctx.job_id] += 1
                ctx.progress(step, request.steps)
            value = int(request.prompt.split()[-1])
            image = np.full((8, 8, 4), value, np.uint8)
            assert request.seed is not None
            return GenerationResult((image,), batch_seeds(request.seed, 1), {"prompt": request.prompt})
        finally:
            with self.lock:
                self.active -= 1


def live(n: int, steps: int = 3) -> GenerationRequest:
    return GenerationRequest(Task.IMG2IMG, prompt=f"stroke {n}", model="fake", steps=steps,
                             seed=7, live=True, image=np.zeros((8, 8, 4), np.uint8))


@pytest.fixture
def gated() -> GatedBackend:
    return GatedBackend()


@pytest.fixture
def svc(make_service, gated):
    service, rec = make_service(backend_factory=lambda request: gated, preview_interval=0.0)
    yield service, rec
    gated.release(10_000)  # nothing left blocked when the service shuts down


def test_ten_submissions_while_one_runs_run_at_most_two_more_jobs(qtbot, svc, gated):
    service, rec = svc
    first = service.submit_live(live(0))
    qtbot.waitUntil(lambda: first in gated.started, timeout=WAIT_MS)
    ids = [service.submit_live(live(n)) for n in range(1, 11)]
    # at most the running job plus the newest waiting one are left
    assert len(service.live_jobs()) <= 2 and service.live_jobs()[-1] == ids[-1]
    gated.release(100)
    qtbot.waitUntil(lambda: rec.ended(ids[-1]), timeout=WAIT_MS)

    more = [j for j in gated.started if j != first]
    assert 1 <= len(more) <= 2 and more[-1] == ids[-1]
    finished = [a[0] for n, a, _ in rec.events if n == "finished"]
    assert finished == [ids[-1]]  # no stale frame arrives, the last one does
    frame = rec.result(ids[-1]).images[0]
    assert int(frame[0, 0, 0]) == 10 and rec.result(ids[-1]).metadata["prompt"] == "stroke 10"
    for j in [first, *ids[:-1]]:
        names = rec.names(j)
        assert names[-1] == "cancelled" and "finished" not in names
        assert ("note", (j, SUPERSEDED)) in rec.of(j)
    assert service.live_jobs() == []


def test_running_stale_live_job_stops_at_its_next_step(qtbot, svc, gated):
    service, rec = svc
    a = service.submit_live(live(1, steps=6))
    gated.release(1)
    qtbot.waitUntil(lambda: gated.steps[a] == 1, timeout=WAIT_MS)
    b = service.submit_live(live(2, steps=2))
    # the stale job is reported at once, before it even reaches its next step
    qtbot.waitUntil(lambda: rec.ended(a), timeout=WAIT_MS)
    assert rec.names(a)[-2:] == ["note", "cancelled"]
    gated.release(10)
    qtbot.waitUntil(lambda: rec.ended(b), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: gated.active == 0, timeout=WAIT_MS)

    assert gated.steps[a] <= 2  # the step it was waiting for, then it stopped
    assert gated.started == [a, b]
    assert rec.names(b)[-1] == "finished" and gated.steps[b] == 2


def test_cancel_live_leaves_no_job_running(qtbot, svc, gated):
    service, rec = svc
    a = service.submit_live(live(1, steps=50))
    qtbot.waitUntil(lambda: a in gated.started, timeout=WAIT_MS)
    b = service.submit_live(live(2))
    assert set(service.cancel_live()) == {b}  # a was superseded by b already
    qtbot.waitUntil(lambda: rec.ended(a) and rec.ended(b), timeout=WAIT_MS)
    c = service.submit_live(live(3, steps=50))
    qtbot.waitUntil(lambda: a not in service.live_jobs(), timeout=WAIT_MS)
    gated.release(1)  # let a reach its next check
    qtbot.waitUntil(lambda: c in gated.started, timeout=WAIT_MS)
    assert service.cancel_live() == [c]
    gated.release(5)
    qtbot.waitUntil(lambda: gated.active == 0, timeout=WAIT_MS)

    assert service.live_jobs() == [] and not service.is_busy()
    assert b not in gated.started
    for j in (a, b, c):
        assert rec.names(j)[-1] == "cancelled" and "finished" not in rec.names(j)
    assert gated.steps[c] <= 1


def test_non_live_job_alongside_is_not_affected(qtbot, svc, gated):
    service, rec = svc
    a = service.submit_live(live(1))
    qtbot.waitUntil(lambda: a in gated.started, timeout=WAIT_MS)
    normal = service.submit(GenerationRequest(Task.TXT2IMG, prompt="apply 42", model="fake",
                                              steps=3, seed=1))
    b = service.submit_live(live(2))
    c = service.submit_live(live(3))
    assert service.live_jobs() == [c]
    assert service.pending_jobs() == [normal, c]
    service.cancel_live()
    d = service.submit_live(live(4))
    gated.release(100)
    qtbot.waitUntil(lambda: rec.ended(normal) and rec.ended(d), timeout=WAIT_MS)

    assert rec.names(normal)[-1] == "finished"
    assert ("note", (normal, SUPERSEDED)) not in rec.of(normal)
    assert gated.steps[normal] == 3 and int(rec.result(normal).images[0][0, 0, 0]) == 42
    assert gated.started == [a, normal, d]  # FIFO: the normal job first, then the newest
    assert all(rec.names(j)[-1] == "cancelled" for j in (a, b, c))
    assert rec.names(d)[-1] == "finished"
