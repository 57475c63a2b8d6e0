"""Qt UI tests run offscreen and never wait on a dialog."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CANVASAI_NO_PROMPTS", "1")
