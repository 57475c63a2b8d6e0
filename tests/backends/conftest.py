"""Tiny-model fixtures for the backend tests (also provided suite-wide once the top
conftest lists ``tests.support.fixtures`` in ``pytest_plugins``)."""

from pathlib import Path

import pytest

from canvasai.core import settings
from tests.support.fixtures import (  # noqa: F401
    job_ctx,
    tiny_backend,
    tiny_models,
    tiny_registry,
    tiny_settings,
)


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty models folder that the settings (and so THE registry) point at."""
    root = tmp_path / "models"
    root.mkdir()
    monkeypatch.setenv("CANVASAI_MODELS_DIR", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    settings.reset(settings.MemoryStore())
    return root
