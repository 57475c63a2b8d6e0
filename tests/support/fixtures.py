"""Pytest plugin: tiny models and a recording job context.

Enable with ``pytest_plugins = ["tests.support.fixtures"]`` in the top conftest.
Models are built once per test session under a temp folder and loaded through
the app's own registry -> router -> pipeline manager path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from canvasai.core.errors import JobCancelled
from tests.support.tiny_models import TinyModels, build_tiny_models

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_OFFLINE", "1")


class RecordingContext:
    """A `JobContext` that records everything; optionally cancels after `cancel_after` steps."""

    def __init__(self, job_id: int = 1, cancel_after: int | None = None, previews: bool = True):
        self.job_id = job_id
        self.cancel_after = cancel_after
        self.previews_on = previews
        self.progress_calls: list[tuple[int, int]] = []
        self.previews: list[tuple[int, np.ndarray]] = []
        self.notes: list[str] = []
        self.cancel_checks = 0
        self.cancelled = threading.Event()

    def check_cancelled(self) -> None:
        self.cancel_checks += 1
        if self.cancel_after is not None and len(self.progress_calls) >= self.cancel_after:
            self.cancelled.set()
        if self.cancelled.is_set():
            raise JobCancelled("cancelled")

    def progress(self, step: int, total: int) -> None:
        self.progress_calls.append((step, total))

    def wants_preview(self) -> bool:
        return self.previews_on

    def preview(self, step: int, rgba: np.ndarray) -> None:
        self.previews.append((step, np.array(rgba, copy=True)))

    def note(self, message: str) -> None:
        self.notes.append(message)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Every tiny model (diffusers folders + single files), built once per session.

    Also pins torch to one thread: tiny models gain nothing from more, and on a
    shared 2-core machine two OpenMP threads fighting other processes made a 64 px
    run 30x slower (1.7 s instead of 0.05 s).
    """
    import torch

    torch.set_num_threads(1)
    # a fixed folder under the session's base temp: built once even if this plugin is
    # loaded both by the top conftest and by a directory conftest
    return build_tiny_models(tmp_path_factory.getbasetemp() / "tiny-models")


@pytest.fixture(scope="session")
def tiny_registry(tiny_models: TinyModels) -> Any:
    """A ModelRegistry over the tiny models folder only (no Hugging Face cache)."""
    from canvasai.backends.models import ModelRegistry

    return ModelRegistry([tiny_models.root], include_hf_cache=False)


@pytest.fixture(scope="session")
def tiny_settings(tiny_registry: Any) -> dict[str, Any]:
    """Settings for `canvasai.backends.router.backend_for` that use the tiny registry."""
    return {"registry": tiny_registry}


@pytest.fixture(scope="session")
def tiny_backend(tiny_settings: dict[str, Any]) -> Any:
    """The shared DiffusersBackend over the tiny registry (pipelines stay loaded)."""
    from canvasai.backends.router import diffusers_backend

    return diffusers_backend(tiny_settings)


@pytest.fixture
def job_ctx() -> Iterator[RecordingContext]:
    yield RecordingContext()
