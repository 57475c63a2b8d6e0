"""Tiny-model fixtures for the backend tests (also provided suite-wide once the top
conftest lists ``tests.support.fixtures`` in ``pytest_plugins``)."""

from tests.support.fixtures import (  # noqa: F401
    job_ctx,
    tiny_backend,
    tiny_models,
    tiny_registry,
    tiny_settings,
)
