"""The Content Credentials info panel: what an opened image says about where it came from.

Shows, for the image last opened, the validation state (trusted / valid / invalid /
tampered / unreadable) as a coloured line, who signed and when, the actions in order
(with the models AI actions name) and the ingredients; or that the image carries none.
The credentials are read and validated on the file worker thread while the image opens
(`FileController.credentials_read`); this panel only displays them.

`install_credentials_panel(window)` docks it in the main window (beside History) and
follows the window's documents: each open image's credentials come back when its tab is
shown again; a new document shows none.
"""

from __future__ import annotations

import html
import re
import weakref
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextOption
from PySide6.QtWidgets import QFrame, QLabel, QTextBrowser, QVBoxLayout, QWidget

from canvasai.formats.credentials import Credentials

STATE_COLORS = {
    "trusted": "#2e7d32",
    "valid": "#1565c0",
    "invalid": "#c62828",
    "tampered": "#c62828",
    "unreadable": "#ef6c00",
}
SELF_ISSUED_NOTE = (
    "Self-issued certificate (CanvasAI's default): the record is intact, but no one "
    "vouches for who the signer is."
)


def breakable(name: str) -> str:
    """`name` with invisible break chances after _ . - so a long file name wraps inside a
    narrow dock instead of widening it (and the window past a 1366 px screen)."""
    return re.sub(r"([_.\-])", "\\1\u200b", name)


class CredentialsPanel(QWidget):
    """Displays one image's `Credentials` (or their absence)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("credentialsPanel")
        self.credentials: Credentials | None = None
        self.file_name = ""
        self.state_label = QLabel()
        self.state_label.setObjectName("credentialsState")
        self.state_label.setWordWrap(True)
        # A text browser wraps long words (model names, hashes) inside a narrow dock and
        # scrolls vertically; links in untrusted text are never followed.
        self.body = QTextBrowser()
        self.body.setObjectName("credentialsBody")
        self.body.setOpenLinks(False)
        self.body.setOpenExternalLinks(False)
        self.body.setFrameShape(QFrame.Shape.NoFrame)
        self.body.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.body.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.state_label)
        layout.addWidget(self.body, 1)
        self.clear()

    def clear(self) -> None:
        self.credentials = None
        self.file_name = ""
        self.state_label.setText("No image opened.")
        self.state_label.setStyleSheet("")
        self.body.setHtml(
            "<p>Open a PNG, JPEG, WebP or TIFF file to see its Content Credentials "
            "(C2PA): who signed it, what was done to it and with which AI models.</p>"
        )

    def show_credentials(self, creds: Credentials | None, file_name: str = "") -> None:
        self.credentials = creds
        self.file_name = file_name
        name = html.escape(file_name or "This image")
        if creds is None:
            self.state_label.setText(
                f"{breakable(file_name) or 'This image'}: no Content Credentials")
            self.state_label.setStyleSheet("font-weight: bold;")
            self.body.setHtml(
                "<p>The file carries no C2PA manifest, so nothing says where it came from. "
                "What you export from it will name it as its source.</p>"
            )
            return
        color = STATE_COLORS.get(creds.state, "#555")
        self.state_label.setText(creds.state_text)
        self.state_label.setStyleSheet(f"font-weight: bold; color: {color};")
        self.body.setHtml(self._html(creds, name))

    @staticmethod
    def _html(c: Credentials, name: str) -> str:
        """What happened first (actions, ingredients), then who vouches for it."""
        e = html.escape
        rows = [f"<p><b>{name}</b></p>"]
        if c.actions:
            items = "".join(f"<li>{e(a.text())}</li>" for a in c.actions)
            rows.append(f"<p><b>Actions</b></p><ol>{items}</ol>")
        if c.ingredients:
            items = "".join(f"<li>{e(g.text())}</li>" for g in c.ingredients)
            rows.append(f"<p><b>Ingredients</b></p><ul>{items}</ul>")
        if c.signer or c.issuer:
            rows.append(f"<p><b>Signed by</b> {e(c.signer or '?')}<br/>"
                        f"<b>Issuer</b> {e(c.issuer or '?')}</p>")
            if c.self_issued:
                rows.append(f"<p><i>{e(SELF_ISSUED_NOTE)}</i></p>")
        rows.append(f"<p><b>Signed at</b> {e(c.time) if c.time else 'not timestamped'}</p>")
        if c.generator:
            rows.append(f"<p><b>Made with</b> {e(c.generator)}</p>")
        if c.problems:
            items = "".join(f"<li>{e(p)}</li>" for p in c.problems)
            rows.append(f"<p><b>Problems</b></p><ul>{items}</ul>")
        return "".join(rows)


def install_credentials_panel(window: Any) -> CredentialsPanel:
    """Dock the panel in `window` (tabbed with History) and wire it to the file actions."""
    panel = CredentialsPanel()
    dock = window.add_dock("credentials", "Credentials", panel, Qt.DockWidgetArea.LeftDockWidgetArea)
    history = window.docks.get("history")
    if history is not None:
        window.tabifyDockWidget(history, dock)
        history.raise_()

    def shown(creds: Credentials | None, name: str) -> None:
        panel.show_credentials(creds, name)
        if creds is not None:
            dock.raise_()  # an image that says where it came from: show it

    menu_view = getattr(window, "menu_view", None)
    for action in menu_view.actions() if menu_view is not None else []:
        sub = action.menu()
        if sub is not None and sub.title() == "Panels":
            sub.addAction(dock.toggleViewAction())
    # what each open image said, so its tab shows it again (forgotten with the document)
    seen: weakref.WeakKeyDictionary[Any, tuple[Credentials | None, str]] = (
        weakref.WeakKeyDictionary())

    def read(creds: Credentials | None, name: str) -> None:
        doc = getattr(window, "document", None)
        if doc is not None:
            seen[doc] = (creds, name)
        shown(creds, name)

    def document_shown(doc: Any) -> None:
        known = seen.get(doc) if doc is not None else None
        if known is None:
            panel.clear()
        else:
            panel.show_credentials(*known)

    window.files.credentials_read.connect(read)
    window.document_changed.connect(document_shown)
    window.credentials_panel = panel
    return panel
