"""Qt UI tests run offscreen and never wait on a dialog."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CANVASAI_NO_PROMPTS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _empty_clipboard_after_test(qapp):
    """Release clipboard data while Python is alive.

    pytest-qt's QApplication outlives the interpreter; clipboard contents whose
    Python wrappers are destroyed by Qt's exit handlers after finalisation crash
    the process (SIGSEGV in Shiboken::Object::destroy) once every test passed.
    """
    yield
    qapp.clipboard().clear()


@pytest.fixture(autouse=True, scope="session")
def _private_settings(qapp, tmp_path_factory):
    """QSettings (prompt history, autosave interval, …) go to a temp folder, not ~/.config."""
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                      str(tmp_path_factory.mktemp("settings")))
    qapp.setOrganizationName("CanvasAI-tests")
    qapp.setApplicationName("CanvasAI-tests")
