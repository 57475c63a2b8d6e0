"""Composition root: builds the QApplication and the main window. No logic of its own."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_SIZE = (1920, 1080)


def _run_test_script(path: str, window: object, app: object) -> None:
    """The `ui/test_script` setting ($CANVASAI_TEST_SCRIPT): run a Python file against the
    live window (screenshots, smoke tests)."""
    code = compile(Path(path).read_text(encoding="utf-8"), path, "exec")
    exec(code, {"__name__": "__canvasai_test_script__", "window": window, "app": app})  # noqa: S102


def _attach_generation(window: object) -> None:
    """Add the generation panel, staging strip and history.

    The controller follows the window's document through `document_changed`; its
    service thread and model libraries start only when the person generates.
    """
    from canvasai.ui.generation_controller import GenerationController

    controller = GenerationController(window)
    window.generation = controller  # type: ignore[attr-defined]
    window.document_changed.connect(controller.document_replaced)  # type: ignore[attr-defined]
    controller.document_replaced(window.document)  # type: ignore[attr-defined]
    from canvasai.ui.live_mode import install as install_live

    install_live(window, controller)  # window.live: live painting (Ctrl+L)


def run(argv: Sequence[str] | None = None) -> int:
    """The `canvasai` command: a headless subcommand, or the window (no arguments, or a
    file to open)."""
    from canvasai.cli import entry

    args = list(sys.argv[1:] if argv is None else argv)
    if entry.is_command(args):
        return entry.main(args)
    return int(main(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the desktop app and run its event loop; returns the exit code."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    args = [sys.argv[0] if sys.argv else "canvasai", *(sys.argv[1:] if argv is None else argv)]
    app = QApplication.instance() or QApplication(args)
    app.setApplicationName("CanvasAI")
    app.setOrganizationName("CanvasAI")
    app.setApplicationDisplayName("CanvasAI")
    app.setApplicationVersion(__import__("canvasai").__version__)
    app.setDesktopFileName("canvasai")

    from canvasai.core import settings
    from canvasai.document.document import Document
    from canvasai.ui.icons import icon, stylesheet
    from canvasai.ui.main_window import MainWindow
    from canvasai.ui.settings_store import QSettingsStore

    prefs = settings.use_store(QSettingsStore())  # QSettings behind the one settings model

    app.setWindowIcon(icon("canvasai"))
    app.setStyle("Fusion")
    app.setStyleSheet(stylesheet())
    window = MainWindow()
    window.set_document(Document(*DEFAULT_SIZE))
    window.show()  # before anything heavy: model libraries load only when a job needs them
    _attach_generation(window)

    # `canvasai picture.ora` (the CLI passes its arguments through): open that file.
    given = [a for a in args[1:] if not a.startswith("-") and Path(a).is_file()]
    if given:
        QTimer.singleShot(0, lambda: window.files.open_path(given[0]))

    script = prefs.ui.test_script
    if script:
        QTimer.singleShot(0, lambda: _run_test_script(script, window, app))
    return int(app.exec())
