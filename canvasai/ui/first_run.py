"""First-run setup: what Classic and AI models are, and the two ways to get models.

Shown once at the first start (skippable; again from Models → First-run setup…). Page one
explains; "Use the models I already have" shows the installs found on disk
(`InstallsWidget`), "Download a starter set" the catalogue (`CatalogWidget`). Closing it in
any way marks the setup as done, so it does not come back at the next start.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from canvasai.core import settings
from canvasai.ui.models_window import INDICATORS, CatalogWidget, InstallsWidget

INTRO = """<h2>Welcome to CanvasAI</h2>
<p><b>Classic</b> works right away, with no model: it fills a masked area from its
surroundings, extends the canvas and upscales with classic image processing (OpenCV).
Quick and predictable, but it does not invent anything new.</p>
<p><b>AI models</b> (Stable Diffusion, SDXL, FLUX, Z-Image, Qwen-Image…) paint new content
from a prompt: inpaint, outpaint, render a sketch, edit by instruction, upscale with detail.
They are files of 2–35 GB and run best on a graphics card with 8 GB of memory or more.</p>
<p>How would you like to get AI models?</p>"""


class FirstRunDialog(QDialog):
    """The setup dialog; `home` is where installs are looked for (tests use a fake one)."""

    def __init__(self, parent: QWidget | None = None, home: Path | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("firstRunDialog")
        self.setWindowTitle("Set up models")
        self.setStyleSheet(INDICATORS)
        self.resize(920, 620)
        lay = QVBoxLayout(self)
        self.pages = QStackedWidget()
        lay.addWidget(self.pages, 1)

        intro = QWidget()
        il = QVBoxLayout(intro)
        text = QLabel(INTRO)
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        il.addWidget(text)
        self.have_button = QPushButton("Use the models I already have\n"
                                       "ComfyUI, A1111 / Forge, InvokeAI, Hugging Face cache")
        self.download_button = QPushButton("Download a starter set\n"
                                           "a short list by use, with sizes and licences")
        self.classic_button = QPushButton("Continue with Classic only\n"
                                          "models can be added later from the Models menu")
        for b in (self.have_button, self.download_button, self.classic_button):
            b.setMinimumHeight(56)
            il.addWidget(b)
        il.addStretch(1)
        self.pages.addWidget(intro)

        self.installs = InstallsWidget(home=home)
        self.installs.applied.connect(lambda _c: self._after_install())
        self.pages.addWidget(self._page("Use the models I already have", self.installs))
        self.catalog = CatalogWidget()
        self.pages.addWidget(self._page("Download a starter set", self.catalog))

        self.have_button.clicked.connect(self.show_installs)
        self.download_button.clicked.connect(self.show_catalog)
        self.classic_button.clicked.connect(self.skip)

    def _page(self, title: str, body: QWidget) -> QWidget:
        page = QWidget()
        pl = QVBoxLayout(page)
        head = QLabel(f"<h3>{title}</h3>")
        pl.addWidget(head)
        pl.addWidget(body, 1)
        row = QHBoxLayout()
        back = QPushButton("Back")
        back.clicked.connect(lambda: self.pages.setCurrentIndex(0))
        done = QPushButton("Done")
        done.clicked.connect(self.accept)
        row.addWidget(back)
        row.addStretch(1)
        row.addWidget(done)
        pl.addLayout(row)
        return page

    def show_installs(self) -> None:
        self.pages.setCurrentIndex(1)
        if not self.installs.found:
            self.installs.search()

    def show_catalog(self) -> None:
        self.pages.setCurrentIndex(2)

    def _after_install(self) -> None:
        self.installs.status.setText(self.installs.status.text() +
                                     " The models appear in the generation panel's picker.")

    def skip(self) -> None:
        self.reject()

    def done(self, result: int) -> None:  # noqa: D401 - Qt API
        if self.catalog.busy():
            self.catalog.cancel()
        settings.update(**{"models/setup_done": True})
        super().done(result)


def maybe_show_first_run(window: QWidget) -> FirstRunDialog | None:
    """Show the setup once (not when prompts are off, e.g. in tests and scripts)."""
    s = settings.current()
    if s.models.setup_done or not s.ui.confirm_dialogs:
        return None
    dlg = FirstRunDialog(window)
    window._first_run = dlg  # type: ignore[attr-defined]
    QTimer.singleShot(0, dlg, dlg.show)  # dropped if the dialog is gone by then
    return dlg
