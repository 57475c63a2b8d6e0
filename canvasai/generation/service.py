"""`GenerationService`: a job queue on one background QThread, talking to the GUI by signals.

Threading model
- The service object itself stays on the thread that created it (the GUI thread) and
  owns a QThread plus a private worker QObject moved onto that thread. Every signal
  of the service is emitted on the service's own thread, after a queued hop, so any
  slot, lambda or function connected to it runs on the GUI thread.
- `submit`, `cancel` and `cancel_all` are thread-safe and never block.
- A service lives until `shutdown()` (called automatically when the QCoreApplication
  is about to quit, and at interpreter exit).
- Jobs run one at a time in FIFO order. Backends are created by the backend factory
  on the worker thread, so torch/diffusers are never imported by building the service
  or by importing `canvasai.generation`.

Seeds: a request without a seed gets a random one; batch item i uses seed + i
(see `canvasai.backends.api`); the result reports them.

Previews: `JobContext.wants_preview()` is False while the previous frame has not been
delivered to the GUI yet or less than `preview_interval` seconds have passed, so a
busy GUI never makes the worker queue frames; the worker skips the decode instead.

Cancellation: a cancelled job is reported `cancelled` at once, from `cancel()` itself,
whatever the worker is doing (loading a model, importing torch, a denoising step); after
that nothing more of that job is delivered (no progress, preview, `finished` or
`failed`). A queued job is removed and never starts. A running job sees the flag at its
next `ctx.check_cancelled()` (once per denoising step; a model load waits cancellably, see
`PipelineManager.load`) and the worker moves on to the next job; a result the backend
returns after the flag was set is dropped.

Live painting (`submit_live`, `cancel_live`): only the newest live job matters. A new
live job replaces the live job still waiting (it is posted `note(id, "superseded")` then
`cancelled`, and never starts) and stops a running live job at its next denoising step
(posted the same way at once; its later events are dropped). So at most the running live
job plus the newest waiting one exist at any time. Jobs submitted with `submit` are never
touched by live jobs; all share one FIFO queue. `cancel_live()` cancels every live job.

Warm-up: `warm_up()` asks the worker to do the first-job work that needs no request
(the heavy imports) while the person is idle; it queues like a job, never delays one
that is already queued, and reports nothing.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from canvasai.backends.api import GenerationRequest, with_seed
from canvasai.core.errors import CanvasAIError, JobCancelled
from canvasai.core.threads import background_priority
from canvasai.generation.runner import BackendFactory, default_backend_factory, describe_error
from canvasai.generation.runner import execute as execute_job

log = logging.getLogger(__name__)

DEFAULT_PREVIEW_INTERVAL = 1.0 / 30.0

#: the `note` posted just before `cancelled` for a live job replaced by a newer one
SUPERSEDED = "superseded"

# Services stay referenced until shut down: a QThread destroyed while running aborts the
# process, so a service must not be garbage-collected from under its own thread.
_ALIVE: set[GenerationService] = set()


@atexit.register
def _shutdown_all() -> None:
    for svc in list(_ALIVE):
        svc.shutdown(2000)


@dataclass(eq=False)
class _Job:
    id: int
    request: GenerationRequest | None  # None: a warm-up, not a person's job
    cancel: threading.Event = field(default_factory=threading.Event)
    reported: bool = False  # its end (finished/failed/cancelled) has been posted
    live: bool = False  # submitted by `submit_live`: superseded by the next live job


class _ServiceContext:
    """The `JobContext` a backend gets when run by the service (worker thread)."""

    def __init__(self, service: GenerationService, job: _Job) -> None:
        self.job_id = job.id
        self._service = service
        self._job = job
        self._previews = job.request.previews

    def check_cancelled(self) -> None:
        if self._job.cancel.is_set():
            raise JobCancelled("cancelled")

    def progress(self, step: int, total: int) -> None:
        self._service._post("progress", self.job_id, int(step), int(total))

    def wants_preview(self) -> bool:
        return self._previews and self._service._preview_slot_free()

    def preview(self, step: int, rgba: np.ndarray) -> None:
        if self._previews:
            self._service._offer_preview(self.job_id, int(step), rgba)

    def note(self, message: str) -> None:
        self._service._post("note", self.job_id, str(message))


class _Worker(QObject):
    """Lives on the service's QThread; runs queued jobs one per wake-up."""

    def __init__(self, service: GenerationService, factory: BackendFactory | None, settings: Any):
        super().__init__()
        self._service = service
        self._factory_arg = factory
        self._settings = settings
        self._factory: BackendFactory | None = None
        self._backends: dict[int, Any] = {}

    def _get_backend(self, request: GenerationRequest) -> Any:
        if self._factory is None:
            self._factory = self._factory_arg or default_backend_factory(self._settings)
        backend = self._factory(request)
        self._backends.setdefault(id(backend), backend)
        return backend

    @Slot()
    def run_next(self) -> None:
        background_priority()
        job = self._service._take_next()
        if job is None:
            return
        svc = self._service
        try:
            if job.request is None:
                self._warm_up()
                return
            if job.cancel.is_set():
                svc._end(job, "cancelled")
                return
            svc._post("started", job.id)
            ctx = _ServiceContext(svc, job)
            try:
                _, result = execute_job(job.request, ctx, self._get_backend)
            except JobCancelled:
                svc._end(job, "cancelled")
                return
            except Exception as e:  # noqa: BLE001 - a job failure must not kill the worker
                if job.cancel.is_set():
                    svc._end(job, "cancelled")
                    return
                if not isinstance(e, CanvasAIError):
                    log.exception("generation job %d failed", job.id)
                svc._end(job, "failed", describe_error(e))
                return
            if job.cancel.is_set():
                svc._end(job, "cancelled")
            else:
                svc._end(job, "finished", result)
        finally:
            svc._job_done(job)

    def _warm_up(self) -> None:
        """The heavy imports of the first job, done ahead (on this thread, as a job would)."""
        try:
            from canvasai.backends.diffusion.pipelines import warm_imports

            warm_imports()
        except Exception:  # noqa: BLE001 - the first real job will say what is wrong
            log.debug("warm-up failed", exc_info=True)

    @Slot()
    def release(self) -> None:
        """Drop (and close, if they can) the backends, on the thread that made them."""
        for backend in self._backends.values():
            close = getattr(backend, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001
                    log.exception("closing backend %r failed", backend)
        self._backends.clear()
        self._factory = None


GIL_SWITCH_INTERVAL = 0.001  # seconds; CPython's default is 0.005


def share_gil_with_gui() -> None:
    """Hand the GIL over to a waiting thread after 1 ms instead of CPython's 5 ms.

    Why: while a job imports torch or builds a model, its threads run Python almost
    without pause, and the GUI thread needs the GIL back after every Qt call it makes;
    at 5 ms per hand-over one repaint or timer tick waited 100-140 ms on the cold first
    job (`benchmarks/editing.py`, 2 cores), at 1 ms 40-50 ms. The extra switching costs
    the generation threads nothing measurable (their heavy work runs in torch, outside
    the GIL). Process-wide, so only ever lowered, never raised.
    """
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)


class GenerationService(QObject):
    """Runs `GenerationRequest`s on a background thread; see the module docstring."""

    queued = Signal(int)
    started = Signal(int)
    progress = Signal(int, int, int)  # job_id, step, total
    preview = Signal(int, int, object)  # job_id, step, H x W x 4 uint8
    finished = Signal(int, object)  # job_id, GenerationResult
    failed = Signal(int, str)  # job_id, message
    cancelled = Signal(int)
    note = Signal(int, str)

    _event = Signal(object)  # (signal name, args), posted from any thread
    _wake = Signal()
    _release = Signal()

    def __init__(
        self,
        backend_factory: BackendFactory | None = None,
        *,
        settings: Any = None,
        preview_interval: float = DEFAULT_PREVIEW_INTERVAL,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.preview_interval = float(preview_interval)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._queue: collections.deque[_Job] = collections.deque()
        self._running: _Job | None = None
        self._ended: set[int] = set()  # jobs whose end was delivered: later events are dropped
        self._closed = False
        self._frame: tuple[int, int, np.ndarray] | None = None
        self._frame_pending = False
        self._last_frame_time = -float("inf")

        share_gil_with_gui()
        self._thread = QThread()
        self._thread.setObjectName("canvasai-generation")
        self._worker = _Worker(self, backend_factory, settings)
        self._worker.moveToThread(self._thread)
        self._wake.connect(self._worker.run_next, Qt.ConnectionType.QueuedConnection)
        self._release.connect(self._worker.release, Qt.ConnectionType.QueuedConnection)
        self._event.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._thread.start()
        _ALIVE.add(self)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_about_to_quit)

    # ------------------------------------------------------------------ public API

    def submit(self, request: GenerationRequest) -> int:
        """Queue `request`; returns its job id at once (ids start at 1 and increase)."""
        return self.submit_job(request)[0]

    def submit_job(self, request: GenerationRequest) -> tuple[int, GenerationRequest]:
        """Queue `request`; returns its job id and the request as it will run (seed chosen)."""
        if not isinstance(request, GenerationRequest):
            raise TypeError("submit() needs a GenerationRequest")
        request = with_seed(request)
        with self._lock:
            self._check_open_locked()
            job = self._enqueue_locked(request, live=False)
        return job.id, request

    def _check_open_locked(self) -> None:
        if self._closed:
            raise RuntimeError("the generation service has been shut down")

    def _enqueue_locked(self, request: GenerationRequest, live: bool) -> _Job:
        job = _Job(next(self._ids), request, live=live)
        self._queue.append(job)
        # Post 'queued' before waking the worker so it is delivered before 'started'.
        self._post("queued", job.id)
        self._wake.emit()
        return job

    def submit_live(self, request: GenerationRequest) -> int:
        """Queue a live-painting job that supersedes every earlier live job; returns its id.

        A live job still waiting is dropped (`note(id, SUPERSEDED)` then `cancelled`); a
        running live job is posted the same way at once and stops at its next step. Jobs
        from `submit` are not affected. The request should have `live=True` (not forced:
        the flag only changes how the backend runs it).
        """
        if not isinstance(request, GenerationRequest):
            raise TypeError("submit_live() needs a GenerationRequest")
        request = with_seed(request)
        with self._lock:
            self._check_open_locked()
            for old in [j for j in self._queue if j.live]:
                self._queue.remove(old)
                self._supersede_locked(old)
            running = self._running
            if running is not None and running.live:
                self._supersede_locked(running)
            job = self._enqueue_locked(request, live=True)
        return job.id

    def cancel_live(self) -> list[int]:
        """Cancel every live job, waiting or running (Live turned off); returns their ids.
        Each gets `cancelled` at once; jobs from `submit` go on."""
        ended = []
        with self._lock:
            for job in [j for j in self._queue if j.live]:
                self._queue.remove(job)
                job.cancel.set()
                self._end_locked(job, "cancelled")
                ended.append(job.id)
            running = self._running
            if running is not None and running.live and not running.reported:
                running.cancel.set()
                self._end_locked(running, "cancelled")
                ended.append(running.id)
        return ended

    def live_jobs(self) -> list[int]:
        """Ids of the live jobs not over yet: the running one (first, if any), then waiting."""
        with self._lock:
            run = self._running
            ids = [run.id] if run is not None and run.live and not run.reported else []
            return ids + [j.id for j in self._queue if j.live]

    def _supersede_locked(self, job: _Job) -> None:
        job.cancel.set()
        if not job.reported:
            self._post("note", job.id, SUPERSEDED)
            self._end_locked(job, "cancelled")

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job; `cancelled` is posted at once (the worker
        stops at its next check). Returns False if it is unknown or already over."""
        with self._lock:
            running = self._running
            if running is not None and running.id == job_id and running.request is not None:
                if running.reported:
                    return False
                running.cancel.set()
                self._end_locked(running, "cancelled")
                return True
            for job in self._queue:
                if job.id == job_id and job.request is not None:
                    self._queue.remove(job)
                    job.cancel.set()
                    self._end_locked(job, "cancelled")
                    return True
        return False

    def warm_up(self) -> None:
        """Let the worker do the first job's heavy imports now (after anything queued)."""
        with self._lock:
            if self._closed or any(j.request is None for j in self._queue):
                return
            self._queue.append(_Job(0, None))
            self._wake.emit()

    def move(self, job_id: int, delta: int) -> bool:
        """Move a queued (not running) job `delta` places earlier (-) or later (+) in the
        queue. Returns False if it is not queued or cannot move that way."""
        with self._lock:
            order = list(self._queue)
            index = next((i for i, j in enumerate(order) if j.id == job_id), None)
            if index is None:
                return False
            new = max(0, min(len(order) - 1, index + int(delta)))
            if new == index:
                return False
            order.insert(new, order.pop(index))
            self._queue.clear()
            self._queue.extend(order)
            return True

    def cancel_all(self) -> None:
        """Cancel the running job and drop every queued one (each gets `cancelled`)."""
        with self._lock:
            dropped = list(self._queue)
            self._queue.clear()
            for job in dropped:
                job.cancel.set()
                if job.request is not None:
                    self._end_locked(job, "cancelled")
            running = self._running
            if running is not None:
                running.cancel.set()
                if running.request is not None and not running.reported:
                    self._end_locked(running, "cancelled")

    def pending_jobs(self) -> list[int]:
        """Ids of the running job (first, if any) and the queued ones, in order."""
        with self._lock:
            run = self._running
            ids = [run.id] if run is not None and run.request is not None and not run.reported else []
            return ids + [j.id for j in self._queue if j.request is not None]

    def is_busy(self) -> bool:
        """A job of the person's is running or queued (a cancelled one still winding down
        on the worker, or a warm-up, does not count)."""
        return bool(self.pending_jobs())

    def shutdown(self, wait_ms: int = 5000) -> bool:
        """Cancel everything, release the backends and stop the thread.

        Returns True if the thread stopped within `wait_ms` (a backend stuck in one long
        native call can outlast it). Submitting afterwards raises RuntimeError.
        """
        with self._lock:
            already = self._closed
            self._closed = True
        if already:
            stopped = self._thread.wait(max(0, int(wait_ms)))
            if stopped:
                _ALIVE.discard(self)
            return stopped
        self.cancel_all()
        self._release.emit()
        self._thread.quit()
        stopped = self._thread.wait(max(0, int(wait_ms)))
        if stopped:
            _ALIVE.discard(self)
        return stopped

    # ------------------------------------------------------------------ worker side

    def _post(self, name: str, *args: Any) -> None:
        self._event.emit((name, args))

    def _end(self, job: _Job, name: str, *args: Any) -> None:
        """Post the job's end (`finished`, `failed` or `cancelled`) unless already posted."""
        with self._lock:
            self._end_locked(job, name, *args)

    def _end_locked(self, job: _Job, name: str, *args: Any) -> None:
        if not job.reported:
            job.reported = True
            self._post(name, job.id, *args)

    def _take_next(self) -> _Job | None:
        with self._lock:
            if not self._queue:
                return None
            self._running = self._queue.popleft()
            return self._running

    def _job_done(self, job: _Job) -> None:
        with self._lock:
            if self._running is job:
                self._running = None

    def _preview_slot_free(self) -> bool:
        with self._lock:
            return (
                not self._frame_pending
                and time.monotonic() - self._last_frame_time >= self.preview_interval
            )

    def _offer_preview(self, job_id: int, step: int, rgba: np.ndarray) -> None:
        """Keep the latest frame; post a delivery only if none is pending already."""
        frame = np.array(rgba, dtype=np.uint8, copy=True)  # the backend may reuse its buffer
        frame.setflags(write=False)
        with self._lock:
            self._frame = (job_id, step, frame)
            self._last_frame_time = time.monotonic()
            if self._frame_pending:
                return
            self._frame_pending = True
        self._post("preview")

    # ------------------------------------------------------------------ GUI side

    @Slot(object)
    def _deliver(self, event: tuple[str, tuple[Any, ...]]) -> None:
        name, args = event
        if name == "preview":
            with self._lock:
                frame, self._frame = self._frame, None
                if frame is not None and frame[0] in self._ended:
                    frame = None
            try:
                if frame is not None:
                    self.preview.emit(*frame)
            finally:
                with self._lock:
                    self._frame_pending = False
            return
        with self._lock:
            if args[0] in self._ended:
                return  # its end was delivered (cancelled while the worker ran on)
            if name in ("finished", "failed", "cancelled"):
                self._ended.add(args[0])
        getattr(self, name).emit(*args)

    @Slot()
    def _on_about_to_quit(self) -> None:
        self.shutdown(2000)
