"""Running file work (save, open, export, autosave) off the GUI thread.

`BackgroundRunner` owns a one-thread QThreadPool, so file jobs run in the order
they were started and a save never races an autosave of the same files. A job
is a plain function `fn(progress) -> result`; its result, error message and
progress come back to the GUI thread through queued signals to the runner (a
QObject living on the GUI thread), which then calls the job's handlers there.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

from canvasai.core.errors import CanvasAIError
from canvasai.core.threads import background_priority

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


class _Signals(QObject):
    progress = Signal(int, int, int)  # job id, done, total
    done = Signal(int, object)
    failed = Signal(int, str)


class _Job(QRunnable):
    def __init__(self, job_id: int, fn: Callable[[ProgressFn], Any], signals: _Signals) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.job_id = job_id
        self.fn = fn
        self.signals = signals

    def run(self) -> None:  # worker thread: touches nothing but its own inputs
        background_priority()
        jid = self.job_id
        try:
            result = self.fn(lambda done, total: self.signals.progress.emit(jid, done, total))
        except CanvasAIError as exc:
            self.signals.failed.emit(jid, str(exc))
        except MemoryError:
            self.signals.failed.emit(jid, "There was not enough memory to finish.")
        except Exception as exc:  # noqa: BLE001 - a worker must report, never die silently
            log.exception("background file job failed")
            self.signals.failed.emit(jid, f"Unexpected error: {type(exc).__name__}: {exc}")
        else:
            self.signals.done.emit(jid, result)


@dataclass
class _Handlers:
    on_done: Callable[[Any], None]
    on_error: Callable[[str], None]
    on_progress: Callable[[int, int], None] | None


class BackgroundRunner(QObject):
    """Starts jobs on a worker thread and calls their handlers on the GUI thread."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._signals = _Signals(self)
        self._signals.progress.connect(self._on_progress)
        self._signals.done.connect(self._on_done)
        self._signals.failed.connect(self._on_failed)
        self._ids = itertools.count(1)
        self._handlers: dict[int, _Handlers] = {}

    @property
    def busy(self) -> bool:
        return bool(self._handlers)

    def start(
        self,
        fn: Callable[[ProgressFn], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[str], None],
        on_progress: Callable[[int, int], None] | None = None,
    ) -> int:
        job_id = next(self._ids)
        was_busy = self.busy
        self._handlers[job_id] = _Handlers(on_done, on_error, on_progress)
        self.pool.start(_Job(job_id, fn, self._signals))
        if not was_busy:
            self.busy_changed.emit(True)
        return job_id

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until the worker is idle (used on close only). Handlers run later."""
        return self.pool.waitForDone(timeout_ms)

    def _finish(self, job_id: int) -> _Handlers | None:
        handlers = self._handlers.pop(job_id, None)
        if not self._handlers:
            self.busy_changed.emit(False)
        return handlers

    @Slot(int, int, int)
    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        h = self._handlers.get(job_id)
        if h is not None and h.on_progress is not None:
            h.on_progress(done, total)

    @Slot(int, object)
    def _on_done(self, job_id: int, result: object) -> None:
        h = self._finish(job_id)
        if h is not None:
            h.on_done(result)

    @Slot(int, str)
    def _on_failed(self, job_id: int, message: str) -> None:
        h = self._finish(job_id)
        if h is not None:
            h.on_error(message)


# ----------------------------------------------------------- one-off work on Qt's pool
class _Relay(QObject):
    """Lives on the caller's thread: a pool thread's outcome reaches the handlers there.

    The handlers are this object's own slots, and it stays referenced (`_IN_FLIGHT`)
    until one has run: a relay whose Python side was collected while its queued signal
    was on the way (the pool job held the last reference) lost the outcome now and then.
    """

    done = Signal(object)
    failed = Signal(object)  # the exception

    def __init__(self, owner: QObject, on_done: Callable[[Any], None],
                 on_failed: Callable[[BaseException], None]) -> None:
        super().__init__(owner)
        self._on_done, self._on_failed = on_done, on_failed
        queued = Qt.ConnectionType.QueuedConnection
        self.done.connect(self._deliver_done, queued)
        self.failed.connect(self._deliver_failed, queued)
        _IN_FLIGHT.add(self)

    @Slot(object)
    def _deliver_done(self, result: Any) -> None:
        self._end()
        self._on_done(result)

    @Slot(object)
    def _deliver_failed(self, exc: Any) -> None:
        self._end()
        self._on_failed(exc)

    def _end(self) -> None:
        _IN_FLIGHT.discard(self)
        self.deleteLater()


_IN_FLIGHT: set[_Relay] = set()


class _PoolJob(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.fn, self.relay = fn, relay

    def run(self) -> None:
        background_priority()
        try:
            result = self.fn()
        except Exception as exc:  # noqa: BLE001 - handed to the caller, never lost
            signal, value = self.relay.failed, exc
        else:
            signal, value = self.relay.done, result
        try:
            signal.emit(value)
        except RuntimeError:  # the owner (and so the relay) was deleted: nobody waits
            _IN_FLIGHT.discard(self.relay)


def run_in_pool(owner: QObject, fn: Callable[[], Any], on_done: Callable[[Any], None],
                on_failed: Callable[[BaseException], None]) -> None:
    """Run `fn()` on Qt's global thread pool (CPU work that may run beside other jobs,
    unlike the ordered file jobs of `BackgroundRunner`); `on_done(result)` or
    `on_failed(exception)` then runs on the thread `owner` lives on (not at all once
    `owner` is deleted)."""
    QThreadPool.globalInstance().start(_PoolJob(fn, _Relay(owner, on_done, on_failed)))
