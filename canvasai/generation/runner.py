"""Running one request through a backend: the code path shared by the service and the CLI.

Qt-free. `execute` resolves the seed, asks the backend factory for a backend and
runs it; `describe_error` turns any exception into a sentence for the person;
`run_sync` is the headless entry point (CLI, benchmarks, scripts) built on the same
`execute` the `GenerationService` worker uses.

Backend selection (`default_backend_factory`): `canvasai.backends.router.backend_for`,
imported on the worker thread at the first job. torch/diffusers are only imported by a
backend, on first use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from canvasai.backends.api import (
    Backend,
    GenerationRequest,
    GenerationResult,
    JobContext,
    batch_seeds,
    with_seed,
)
from canvasai.core.errors import CanvasAIError, GenerationError, JobCancelled

log = logging.getLogger(__name__)

BackendFactory = Callable[[GenerationRequest], Backend]
ProgressFn = Callable[[int, int], None]
PreviewFn = Callable[[int, np.ndarray], None]
NoteFn = Callable[[str], None]


def default_backend_factory(settings: Any = None) -> BackendFactory:
    """A factory that routes requests to backends (the router creates them lazily).

    `settings`: None (the settings model and THE model registry), or what
    `router.backend_for` accepts. Must be *called* (not just built) on the thread that
    runs jobs: that is where the router (and through it torch/diffusers) gets imported.
    """

    def factory(request: GenerationRequest) -> Backend:
        from canvasai.backends.router import backend_for

        return backend_for(request, settings)

    return factory


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or "out of memory" in text


def describe_error(exc: BaseException) -> str:
    """A complete, human-readable sentence for a failed job (no traceback)."""
    if _is_oom(exc):
        gpu = not isinstance(exc, MemoryError) and (
            "cuda" in str(exc).lower() or "mps" in str(exc).lower() or "gpu" in str(exc).lower()
        )
        where = "GPU memory" if gpu else "memory"
        return (
            f"Out of {where}: this job needs more than is available. Try a smaller region "
            f"or image, a smaller batch or fewer steps, or close other programs using the "
            f"{'GPU' if gpu else 'memory'}."
        )
    if isinstance(exc, CanvasAIError):
        msg = str(exc).strip()
        return msg or type(exc).__name__
    if isinstance(exc, ImportError):
        missing = getattr(exc, "name", None) or str(exc)
        return f"A library this model needs is not installed ({missing})."
    msg = str(exc).strip()
    return f"Generation failed: {type(exc).__name__}{': ' + msg if msg else ''}"


def _check_result(request: GenerationRequest, result: GenerationResult) -> GenerationResult:
    if not isinstance(result, GenerationResult):
        raise GenerationError(f"the backend returned {type(result).__name__}, not a result")
    if not result.images:
        raise GenerationError("the backend returned no images")
    if len(result.seeds) != len(result.images) and request.seed is not None:
        # A backend that does not report seeds gets the documented convention.
        seeds = batch_seeds(request.seed, len(result.images))
        result = GenerationResult(result.images, seeds, result.metadata)
    return result


def execute(
    request: GenerationRequest, ctx: JobContext, get_backend: BackendFactory
) -> tuple[GenerationRequest, GenerationResult]:
    """Run `request` (seed resolved first) on the backend the factory picks.

    Returns the seeded request and the result; exceptions propagate unchanged
    (`JobCancelled` included) so callers decide what they mean.
    """
    request = with_seed(request)
    ctx.check_cancelled()
    backend = get_backend(request)
    ctx.check_cancelled()
    result = backend.run(request, ctx)
    return request, _check_result(request, result)


class SyncContext:
    """A `JobContext` for running a job on the calling thread, with plain callbacks.

    Previews are throttled by `preview_interval` seconds only (there is no consumer
    that could lag behind: the callback runs inline).
    """

    def __init__(
        self,
        job_id: int = 0,
        *,
        on_progress: ProgressFn | None = None,
        on_preview: PreviewFn | None = None,
        on_note: NoteFn | None = None,
        cancel_event: threading.Event | None = None,
        preview_interval: float = 0.0,
        previews: bool = True,
    ) -> None:
        self.job_id = job_id
        self._on_progress = on_progress
        self._on_preview = on_preview
        self._on_note = on_note
        self._cancel = cancel_event or threading.Event()
        self._interval = preview_interval
        self._previews = previews and on_preview is not None
        self._last_preview = -float("inf")
        self.cancel_requested_at_step: int | None = None
        self.last_step = 0

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled("cancelled")

    def progress(self, step: int, total: int) -> None:
        self.last_step = step
        if self._on_progress is not None:
            self._on_progress(step, total)

    def wants_preview(self) -> bool:
        return self._previews and time.monotonic() - self._last_preview >= self._interval

    def preview(self, step: int, rgba: np.ndarray) -> None:
        if not self._previews or self._on_preview is None:
            return
        self._last_preview = time.monotonic()
        self._on_preview(step, rgba)

    def note(self, message: str) -> None:
        if self._on_note is not None:
            self._on_note(message)
        else:
            log.info("%s", message)


def run_sync(
    request: GenerationRequest,
    on_progress: ProgressFn | None = None,
    on_preview: PreviewFn | None = None,
    *,
    on_note: NoteFn | None = None,
    backend_factory: BackendFactory | None = None,
    settings: Any = None,
    cancel_event: threading.Event | None = None,
    preview_interval: float = 0.0,
) -> GenerationResult:
    """Run one request on the calling thread through the same backends as the service.

    Raises `JobCancelled` if `cancel_event` gets set, and `GenerationError` (message
    from `describe_error`) for any other failure.
    """
    factory = backend_factory or default_backend_factory(settings)
    ctx = SyncContext(
        on_progress=on_progress,
        on_preview=on_preview,
        on_note=on_note,
        cancel_event=cancel_event,
        preview_interval=preview_interval,
        previews=request.previews,
    )
    try:
        _, result = execute(request, ctx, factory)
    except JobCancelled:
        raise
    except Exception as e:  # noqa: BLE001 - every failure becomes a readable message
        if cancel_event is not None and cancel_event.is_set():
            raise JobCancelled("cancelled") from e
        if not isinstance(e, CanvasAIError):
            log.debug("job failed", exc_info=True)
        raise GenerationError(describe_error(e)) from e
    if cancel_event is not None and cancel_event.is_set():
        raise JobCancelled("cancelled")
    return result
