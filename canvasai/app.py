"""Composition root: builds the QApplication and the main window. No logic of its own."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_SIZE = (1920, 1080)


def _run_test_script(path: str, window: object, app: object) -> None:
    """CANVASAI_TEST_SCRIPT: run a Python file against the live window (screenshots, smoke tests)."""
    code = compile(Path(path).read_text(encoding="utf-8"), path, "exec")
    exec(code, {"__name__": "__canvasai_test_script__", "window": window, "app": app})  # noqa: S102


def _attach_generation(window: object) -> None:
    """Add the generation panel, staging strip and history when this build has them.

    The controller follows the window's document through `document_changed`; its
    service thread and model libraries start only when the person generates.
    """
    try:
        from canvasai.ui.generation_controller import GenerationController
    except ImportError:
        return
    controller = GenerationController(window)
    window.generation = controller  # type: ignore[attr-defined]
    window.document_changed.connect(controller.document_replaced)  # type: ignore[attr-defined]
    controller.document_replaced(window.document)  # type: ignore[attr-defined]


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

    from canvasai.document.document import Document
    from canvasai.ui.icons import icon, stylesheet
    from canvasai.ui.main_window import MainWindow

    app.setWindowIcon(icon("canvasai"))
    app.setStyle("Fusion")
    app.setStyleSheet(stylesheet())
    window = MainWindow()
    window.set_document(Document(*DEFAULT_SIZE))
    autosave = os.environ.get("CANVASAI_AUTOSAVE_S")
    if autosave and window.files is not None and hasattr(window.files, "set_autosave_interval"):
        window.files.set_autosave_interval(float(autosave))
    window.show()  # before anything heavy: model libraries load only when a job needs them
    _attach_generation(window)

    # `canvasai picture.ora` (the CLI passes its arguments through): open that file.
    open_path = getattr(window.files, "open_path", None)
    given = [a for a in args[1:] if not a.startswith("-") and Path(a).is_file()]
    if given and open_path is not None:
        QTimer.singleShot(0, lambda: open_path(given[0]))

    script = os.environ.get("CANVASAI_TEST_SCRIPT")
    if script:
        QTimer.singleShot(0, lambda: _run_test_script(script, window, app))
    return int(app.exec())
