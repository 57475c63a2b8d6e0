"""Preferences: one dialog, one page per settings topic, driven by the settings model.

`PreferencesDialog` lists its pages on the left and shows one at a time. A page is a
`PreferencesPage`: it fills its widgets from a `Settings` (`load`) and says what the
person changed as flat ``{"section/field": value}`` items (`changes`); OK and Apply pass
those to `settings.update`, which checks and persists them (QSettings in the app), and
Cancel drops them. Adding a page: subclass `PreferencesPage`, set `title`, and append the
class to `PAGES`.

The dialog is window-modal and opened with `open()`: the GUI never waits on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QStackedWidget,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from canvasai.core import settings
from canvasai.core.settings import Settings


class PreferencesPage(QWidget):
    """One page of the dialog. Subclasses set `title` and implement `load` and `changes`."""

    title = ""

    def load(self, s: Settings) -> None:
        raise NotImplementedError

    def changes(self) -> dict[str, Any]:
        raise NotImplementedError


def _path_row(edit: QLineEdit, caption: str, pick: Callable[[QWidget, str], str]) -> QWidget:
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    browse = QPushButton("Browse…")
    browse.setObjectName(f"browse_{edit.objectName()}")

    def choose() -> None:
        path = pick(row, caption)
        if path:
            edit.setText(path)

    browse.clicked.connect(choose)
    lay.addWidget(browse)
    return row


def _pick_pem(parent: QWidget, caption: str) -> str:
    path, _ = QFileDialog.getOpenFileName(
        parent, caption, "", "PEM files (*.pem *.crt *.cer *.key);;All files (*)"
    )
    return path


class CredentialsPage(PreferencesPage):
    """Content Credentials (C2PA): whether and how exports are signed."""

    title = "Content Credentials"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("credentialsPage")
        intro = QLabel(
            "CanvasAI signs every export with Content Credentials (C2PA): what was created "
            "or edited, by a person or by AI, and with which models. Viewers such as "
            "contentcredentials.org show them."
        )
        intro.setWordWrap(True)
        self.sign = QCheckBox("Sign exported images with Content Credentials")
        self.sign.setObjectName("signExports")

        self.self_issued = QRadioButton("CanvasAI's self-issued certificate")
        self.self_issued.setObjectName("useSelfIssued")
        self.own = QRadioButton("My own certificate")
        self.own.setObjectName("useOwnCertificate")
        group = QButtonGroup(self)
        group.addButton(self.self_issued)
        group.addButton(self.own)
        self.signer_name = QLineEdit()
        self.signer_name.setObjectName("signerName")
        self.signer_name.setPlaceholderText("CanvasAI user")
        honest = QLabel(
            "Made on this computer on first use and kept in CanvasAI's data folder (the key "
            "readable only by you). Validators will show your exports as <b>valid</b> "
            "(intact, signed by this installation) but not <b>trusted</b>: no public trust "
            "list knows a self-issued certificate."
        )
        honest.setWordWrap(True)
        honest.setObjectName("selfIssuedNote")
        self.cert_chain = QLineEdit()
        self.cert_chain.setObjectName("certChain")
        self.cert_chain.setPlaceholderText("signing certificate, then its CA chain (PEM)")
        self.private_key = QLineEdit()
        self.private_key.setObjectName("privateKey")
        self.private_key.setPlaceholderText("unencrypted PEM private key")

        identity = QGroupBox("Signing identity")
        form = QFormLayout(identity)
        form.addRow(self.self_issued)
        form.addRow("Name on the certificate", self.signer_name)
        form.addRow(honest)
        form.addRow(self.own)
        form.addRow("Certificate chain", _path_row(self.cert_chain, "Certificate chain", _pick_pem))
        form.addRow("Private key", _path_row(self.private_key, "Private key", _pick_pem))

        self.tsa_url = QLineEdit()
        self.tsa_url.setObjectName("tsaUrl")
        self.tsa_url.setPlaceholderText("off (signing stays offline)")
        self.trust_anchors = QLineEdit()
        self.trust_anchors.setObjectName("trustAnchors")
        self.trust_anchors.setPlaceholderText("none")
        more = QGroupBox("Time and trust")
        form2 = QFormLayout(more)
        form2.addRow("Timestamp authority URL", self.tsa_url)
        tsa_note = QLabel("A timestamp authority vouches for when an image was signed; "
                          "signing then needs the network.")
        tsa_note.setWordWrap(True)
        form2.addRow(tsa_note)
        form2.addRow("Trusted CA certificates",
                     _path_row(self.trust_anchors, "Trusted CA certificates", _pick_pem))

        self.status = QLabel()
        self.status.setObjectName("identityStatus")
        self.status.setWordWrap(True)
        check = QPushButton("Check identity")
        check.setObjectName("checkIdentity")
        check.clicked.connect(self.check_identity)

        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.sign)
        lay.addWidget(identity)
        lay.addWidget(more)
        row = QHBoxLayout()
        row.addWidget(check)
        row.addWidget(self.status, 1)
        lay.addLayout(row)
        lay.addStretch(1)
        for w in (self.sign, self.self_issued, self.own):
            w.toggled.connect(self._sync)

    def _sync(self) -> None:
        on = self.sign.isChecked()
        for w in (self.self_issued, self.own, self.tsa_url):
            w.setEnabled(on)
        self.signer_name.setEnabled(on and self.self_issued.isChecked())
        for w in (self.cert_chain, self.private_key):
            w.setEnabled(on and self.own.isChecked())
            browse = self.findChild(QPushButton, f"browse_{w.objectName()}")
            if browse is not None:
                browse.setEnabled(w.isEnabled())

    def load(self, s: Settings) -> None:
        c = s.credentials
        self.sign.setChecked(c.sign)
        own = bool(c.cert_chain or c.private_key)
        (self.own if own else self.self_issued).setChecked(True)
        self.signer_name.setText(c.signer_name)
        self.cert_chain.setText(c.cert_chain)
        self.private_key.setText(c.private_key)
        self.tsa_url.setText(c.tsa_url)
        self.trust_anchors.setText(c.trust_anchors)
        self._sync()

    def changes(self) -> dict[str, Any]:
        own = self.own.isChecked()
        return {
            "credentials/sign": self.sign.isChecked(),
            "credentials/signer_name": self.signer_name.text().strip(),
            "credentials/cert_chain": self.cert_chain.text().strip() if own else "",
            "credentials/private_key": self.private_key.text().strip() if own else "",
            "credentials/tsa_url": self.tsa_url.text().strip(),
            "credentials/trust_anchors": self.trust_anchors.text().strip(),
        }

    def check_identity(self) -> str:
        """Load (or make) the identity these fields describe and say what it is."""
        from canvasai.formats.credentials import identity_for
        from canvasai.formats.credentials_identity import CredentialsError

        s = settings.current().copy()
        fields = Settings.from_flat(s.to_flat() | self.changes()).credentials
        if not fields.sign:
            text = "Signing is off: exports carry no Content Credentials."
        else:
            try:
                text = "Signs as " + identity_for(fields).describe()
            except CredentialsError as exc:
                text = f"Cannot sign: {exc} Exports would go out unsigned."
        if fields.trust_anchors and not Path(fields.trust_anchors).expanduser().is_file():
            text += " The trusted-CA file does not exist."
        self.status.setText(text)
        return text


class _ServerCheckSignals(QObject):
    done = Signal(int, object)  # check number, [state sentence per row]


class _ServerCheck(QRunnable):
    """Asks each server for its state on a pool thread (the GUI never waits on a server)."""

    def __init__(self, number: int, rows: list[tuple[str, str]], signals: _ServerCheckSignals):
        super().__init__()
        self.number, self.rows, self.signals = number, rows, signals

    def run(self) -> None:
        from canvasai.backends.remote.pool import ServerPool
        from canvasai.backends.remote.protocol import ServerConfig, ServerError

        out: list[str] = []
        configs: list[tuple[int, ServerConfig]] = []
        for i, (url, token) in enumerate(self.rows):
            out.append("")
            try:
                configs.append((i, ServerConfig(url, token)))
            except ServerError as exc:
                out[i] = str(exc)
        pool = ServerPool([c for _, c in configs], timeout=5.0, connect_timeout=3.0)
        try:
            for (i, _), state in zip(configs, pool.refresh(), strict=True):
                out[i] = state.describe()
        finally:
            pool.close()
        with contextlib.suppress(RuntimeError):  # the dialog was closed meanwhile
            self.signals.done.emit(self.number, out)


class ServersPage(PreferencesPage):
    """ComfyUI servers jobs can run on: address, optional token, and each one's state."""

    title = "Servers"
    URL, TOKEN, STATE = range(3)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("serversPage")
        intro = QLabel(
            "Run jobs on ComfyUI servers: another computer at home or in the studio, or a "
            "rented GPU. Their models appear in the model picker under the server's name; "
            "several servers share the candidates of a batch. Previews, cancel and the "
            "paste-back work as with local models. Tokens are kept in CanvasAI's settings."
        )
        intro.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("serverTable")
        self.table.setHorizontalHeaderLabels(["Address (http:// or https://)", "Token", "State"])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        self.table.setColumnWidth(self.URL, 220)
        self.table.setColumnWidth(self.TOKEN, 110)
        self.table.setMinimumHeight(220)
        add = QPushButton("Add server")
        add.setObjectName("addServer")
        add.clicked.connect(lambda: self.add_row("", ""))
        remove = QPushButton("Remove")
        remove.setObjectName("removeServer")
        remove.clicked.connect(self.remove_selected)
        check = QPushButton("Check now")
        check.setObjectName("checkServers")
        check.clicked.connect(self.check)
        buttons = QHBoxLayout()
        for b in (add, remove, check):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self._signals = _ServerCheckSignals(self)
        self._signals.done.connect(self._checked)
        self._number = 0
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.table)
        lay.addLayout(buttons)
        lay.addStretch(1)

    def add_row(self, url: str, token: str) -> int:
        row = self.table.rowCount()
        self.table.insertRow(row)
        edit = QLineEdit(url)
        edit.setObjectName(f"serverUrl{row}")
        edit.setPlaceholderText("http://192.168.1.20:8188")
        secret = QLineEdit(token)
        secret.setObjectName(f"serverToken{row}")
        secret.setEchoMode(QLineEdit.EchoMode.Password)
        secret.setPlaceholderText("none")
        state = QLabel("not checked yet")
        state.setObjectName(f"serverState{row}")
        state.setWordWrap(True)
        self.table.setCellWidget(row, self.URL, edit)
        self.table.setCellWidget(row, self.TOKEN, secret)
        self.table.setCellWidget(row, self.STATE, state)
        self.table.setRowHeight(row, 60)  # three lines of state: connection, models, GPU
        return row

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        if not rows and self.table.rowCount():
            rows = [self.table.rowCount() - 1]
        for r in rows:
            self.table.removeRow(r)

    def rows(self) -> list[tuple[str, str]]:
        out = []
        for r in range(self.table.rowCount()):
            url = self.table.cellWidget(r, self.URL).text().strip()
            token = self.table.cellWidget(r, self.TOKEN).text().strip()
            out.append((url, token))
        return out

    def state_text(self, row: int) -> str:
        return self.table.cellWidget(row, self.STATE).text()

    def check(self) -> None:
        """Ask every listed server for its state, off the GUI thread."""
        self._number += 1
        rows = self.rows()
        for r, (url, _) in enumerate(rows):
            self.table.cellWidget(r, self.STATE).setText("checking…" if url else "")
        filled = [(r, row) for r, row in enumerate(rows) if row[0]]
        self._rows_checked = [r for r, _ in filled]
        if filled:
            QThreadPool.globalInstance().start(
                _ServerCheck(self._number, [row for _, row in filled], self._signals))

    def _checked(self, number: int, states: list[str]) -> None:
        if number != self._number:
            return  # an older check
        for r, text in zip(self._rows_checked, states, strict=False):
            if r < self.table.rowCount():
                self.table.cellWidget(r, self.STATE).setText(text)

    def load(self, s: Settings) -> None:
        self.table.setRowCount(0)
        tokens = list(s.remote.tokens)
        for i, url in enumerate(s.remote.servers):
            self.add_row(url, tokens[i] if i < len(tokens) else "")
        self.check()

    def changes(self) -> dict[str, Any]:
        rows = [r for r in self.rows() if r[0]]
        return {"remote/servers": [u for u, _ in rows], "remote/tokens": [t for _, t in rows]}


#: The pages, in the order the dialog lists them (other topics append theirs).
PAGES: list[type[PreferencesPage]] = [CredentialsPage, ServersPage]


class PreferencesDialog(QDialog):
    """The Preferences window: a list of topics and the page of the chosen one."""

    def __init__(self, parent: QWidget | None = None, pages: list[type[PreferencesPage]] | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("preferencesDialog")
        self.setWindowTitle("Preferences")
        self.resize(780, 640)
        self.list = QListWidget()
        self.list.setObjectName("preferencesTopics")
        self.list.setMaximumWidth(190)
        self.stack = QStackedWidget()
        self.pages: list[PreferencesPage] = []
        current = settings.current()
        for cls in pages if pages is not None else PAGES:
            page = cls()
            page.load(current)
            self.pages.append(page)
            scroll = QScrollArea()  # a long page still fits a small screen
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QScrollArea.Shape.NoFrame)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            scroll.setWidget(page)
            self.stack.addWidget(scroll)
            self.list.addItem(cls.title)
        self.list.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.list.setCurrentRow(0)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.Apply
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        self.buttons = buttons
        body = QHBoxLayout()
        body.addWidget(self.list)
        body.addWidget(self.stack, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(body, 1)
        lay.addWidget(buttons)

    def page(self, title: str) -> PreferencesPage | None:
        return next((p for p in self.pages if p.title == title), None)

    def show_page(self, title: str) -> None:
        for i, p in enumerate(self.pages):
            if p.title == title:
                self.list.setCurrentRow(i)

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for page in self.pages:
            out |= page.changes()
        return out

    def apply(self) -> Settings:
        """Persist every page's changes through the settings model."""
        return settings.update(**self.changes())

    def accept(self) -> None:
        self.apply()
        super().accept()


def install_preferences_action(window: Any) -> QAction:
    """Edit ▸ Preferences… (Ctrl+, where the platform has no own shortcut)."""
    action = QAction("&Preferences…", window)
    action.setObjectName("file_preferences")
    action.setMenuRole(QAction.MenuRole.PreferencesRole)
    keys = QKeySequence.keyBindings(QKeySequence.StandardKey.Preferences) or [QKeySequence("Ctrl+,")]
    action.setShortcuts(keys)

    def show() -> None:
        dialog = PreferencesDialog(window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.preferences_dialog = dialog
        dialog.open()

    action.triggered.connect(lambda _checked=False: show())
    menu = getattr(window, "menu_edit", None) or window.menu_file
    menu.addSeparator()
    menu.addAction(action)
    window.preferences_action = action
    return action
