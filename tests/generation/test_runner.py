"""The headless runner shared by the service and the CLI."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from canvasai.backends.api import SEED_MODULUS, GenerationRequest, Task, batch_seeds
from canvasai.core.errors import GenerationError, JobCancelled, ModelError
from canvasai.generation.runner import default_backend_factory, describe_error, run_sync


def req(**kw) -> GenerationRequest:
    kw.setdefault("model", "fake")
    kw.setdefault("steps", 5)
    return GenerationRequest(Task.TXT2IMG, **kw)


def test_run_sync_reports_progress_previews_and_seeds(fake_backend):
    steps, frames = [], []
    res = run_sync(
        req(seed=3, batch_size=2),
        on_progress=lambda s, t: steps.append((s, t)),
        on_preview=lambda s, f: frames.append(s),
        backend_factory=lambda r: fake_backend,
    )
    assert steps == [(i, 5) for i in range(1, 6)]
    assert frames == [1, 2, 3, 4, 5]  # no interval, nothing throttled
    assert res.seeds == (3, 4)
    np.testing.assert_array_equal(res.images[1], fake_backend.image_for(4))


def test_run_sync_without_preview_callback_does_no_preview_work(fake_backend):
    run_sync(req(), backend_factory=lambda r: fake_backend)
    assert fake_backend.previews_offered == 0


def test_run_sync_cancel_event_stops_the_job(fake_backend):
    ev = threading.Event()

    def progress(step: int, total: int) -> None:
        if step == 2:
            ev.set()

    with pytest.raises(JobCancelled):
        run_sync(
            req(steps=50),
            on_progress=progress,
            backend_factory=lambda r: fake_backend,
            cancel_event=ev,
        )
    assert sum(fake_backend.steps_run.values()) == 2


def test_run_sync_failure_becomes_generation_error(fake_backend):
    fake_backend.fail_with = ZeroDivisionError("division by zero")
    with pytest.raises(GenerationError, match="ZeroDivisionError: division by zero"):
        run_sync(req(), backend_factory=lambda r: fake_backend)


def test_default_factory_classic_and_unknown_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CANVASAI_MODELS_DIR", str(tmp_path))
    factory = default_backend_factory()
    assert factory(GenerationRequest(Task.TXT2IMG)).name == "classic"
    with pytest.raises(ModelError):
        factory(GenerationRequest(Task.TXT2IMG, model="definitely-not-installed"))


def test_describe_error_messages():
    assert describe_error(GenerationError("plain words")) == "plain words"
    assert describe_error(MemoryError()).startswith("Out of memory")
    gpu = describe_error(RuntimeError("CUDA out of memory. Tried to allocate 20 GiB"))
    assert gpu.startswith("Out of GPU memory")
    assert describe_error(ValueError("")) == "Generation failed: ValueError"


def test_batch_seeds_wrap_around():
    assert batch_seeds(SEED_MODULUS - 1, 3) == (SEED_MODULUS - 1, 0, 1)
