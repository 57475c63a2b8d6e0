"""Suite-wide settings: no screen, no network, no user data touched."""

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("CANVASAI_NO_PROMPTS", "1")
# Never read or write the person's real data folder from tests.
os.environ.setdefault("CANVASAI_DATA_DIR", tempfile.mkdtemp(prefix="canvasai-test-data-"))

# Tiny random-weight diffusers models for every test that asks for them.
pytest_plugins = ["tests.support.fixtures"]


import pytest  # noqa: E402

from canvasai.core import settings  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Each test starts from default settings in memory plus its environment (monkeypatched
    variables included: settings are read on first use inside the test)."""
    settings.reset(settings.MemoryStore())
    yield
    settings.reset(settings.MemoryStore())
