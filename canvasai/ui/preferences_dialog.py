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

from PySide6.QtCore import QObject, QPointF, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QAction, QColor, QKeySequence, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
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
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from canvasai.core import settings
from canvasai.core.settings import CHOICES, RANGES, Settings


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


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setObjectName("preferenceNote")
    return label


def _combo(key: str, labels: dict[str, str], name: str) -> QComboBox:
    """A combo box over the settings model's choices for `key` (CHOICES), in its order."""
    combo = QComboBox()
    combo.setObjectName(name)
    for value in CHOICES[key]:
        combo.addItem(labels[value], value)
    return combo


def _set_combo(combo: QComboBox, value: object) -> None:
    i = combo.findData(value)
    combo.setCurrentIndex(max(0, i))


def _spin(key: str, suffix: str, name: str) -> QSpinBox:
    lo, hi = RANGES[key]
    spin = QSpinBox()
    spin.setObjectName(name)
    spin.setRange(int(lo), int(hi))
    spin.setSuffix(suffix)
    return spin


class ModelsPage(PreferencesPage):
    """Where models are found."""

    title = "Models"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelsPage")
        self.folders = QListWidget()
        self.folders.setObjectName("modelsFolders")
        self.folders.setMinimumHeight(120)
        add = QPushButton("Add folder…")
        add.setObjectName("addModelsFolder")
        add.clicked.connect(self._choose)
        remove = QPushButton("Remove")
        remove.setObjectName("removeModelsFolder")
        remove.clicked.connect(self.remove_selected)
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        self.hf_cache = QCheckBox("Also use models in the Hugging Face cache")
        self.hf_cache.setObjectName("includeHfCache")
        self.empty_note = _note("")
        lay = QVBoxLayout(self)
        lay.addWidget(_note(
            "Folders scanned for models: diffusers folders, .safetensors and GGUF files. "
            "ComfyUI, A1111/Forge and InvokeAI models folders work as they are. The model "
            "picker lists what they hold after OK (or ⟳ in the Generate panel)."))
        lay.addWidget(self.folders)
        lay.addLayout(buttons)
        lay.addWidget(self.empty_note)
        lay.addWidget(self.hf_cache)
        lay.addStretch(1)

    def _choose(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a models folder")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        if folder and folder not in self.dirs():
            self.folders.addItem(folder)
        self._sync()

    def remove_selected(self) -> None:
        for item in self.folders.selectedItems():
            self.folders.takeItem(self.folders.row(item))
        self._sync()

    def dirs(self) -> list[str]:
        return [self.folders.item(i).text() for i in range(self.folders.count())]

    def _sync(self) -> None:
        from canvasai.core import paths

        default = paths.data_dir() / "models"
        self.empty_note.setText(
            f"No folder listed: CanvasAI's own folder is used ({default})."
            if not self.dirs() else "")
        self.empty_note.setVisible(not self.dirs())

    def load(self, s: Settings) -> None:
        self.folders.clear()
        self.folders.addItems(list(s.models.models_dirs))
        self.hf_cache.setChecked(s.models.include_hf_cache)
        self._sync()

    def changes(self) -> dict[str, Any]:
        return {"models/models_dirs": self.dirs(),
                "models/include_hf_cache": self.hf_cache.isChecked()}


class DevicePage(PreferencesPage):
    """Which processor runs the models, and in what number format."""

    title = "Device and precision"
    DEVICES = {"": "Automatic (NVIDIA GPU, then Apple GPU, then CPU)",
               "cuda": "NVIDIA GPU (CUDA)", "mps": "Apple GPU (Metal)", "cpu": "CPU (slow)"}
    PRECISIONS = {"": "Automatic (half precision on a GPU, full on the CPU)",
                  "fp32": "Full (fp32): most exact, twice the memory",
                  "fp16": "Half (fp16): GPUs", "bf16": "bfloat16: newer GPUs"}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("devicePage")
        self.device = _combo("models/device", self.DEVICES, "device")
        self.precision = _combo("models/precision", self.PRECISIONS, "precision")
        form = QFormLayout()
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(_note(
            "A device that this computer lacks falls back to the automatic choice. "
            "Changes apply to the next model that loads; a model already loaded keeps "
            "running where it is until it is unloaded."))
        lay.addStretch(1)

    def load(self, s: Settings) -> None:
        _set_combo(self.device, s.models.device)
        _set_combo(self.precision, s.models.precision)

    def changes(self) -> dict[str, Any]:
        return {"models/device": self.device.currentData(),
                "models/precision": self.precision.currentData()}


class GenerationPage(PreferencesPage):
    """Previews and the defaults a new Generate panel starts from."""

    title = "Generation"
    PREVIEWS = {"auto": "Every step (a tiny autoencoder when one is installed)",
                "off": "Off (jobs finish a little sooner)"}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("generationPage")
        self.previews = _combo("generation/preview_quality", self.PREVIEWS, "previewQuality")
        self.grow = _spin("generation/grow_px", " px", "defaultGrow")
        self.feather = _spin("generation/feather_px", " px", "defaultFeather")
        self.clear_mask = QCheckBox("Clear the mask after accepting a result that used it")
        self.clear_mask.setObjectName("clearMaskAfterAccept")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        form.addRow("Live previews", self.previews)
        form.addRow("Default grow mask", self.grow)
        form.addRow("Default feather", self.feather)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(_note(
            "Grow widens the mask before the result is pasted back; feather is the width "
            "of its soft edge. The defaults apply at the next start; the Generate panel "
            "keeps the values set there now."))
        lay.addWidget(self.clear_mask)
        lay.addStretch(1)

    def load(self, s: Settings) -> None:
        _set_combo(self.previews, s.generation.preview_quality)
        self.grow.setValue(s.generation.grow_px)
        self.feather.setValue(s.generation.feather_px)
        self.clear_mask.setChecked(s.ui.clear_mask_after_accept)

    def changes(self) -> dict[str, Any]:
        return {"generation/preview_quality": self.previews.currentData(),
                "generation/grow_px": self.grow.value(),
                "generation/feather_px": self.feather.value(),
                "ui/clear_mask_after_accept": self.clear_mask.isChecked()}


class PressureCurve(QWidget):
    """A small drawing of pressure in (across) against effect out (up) for an exponent."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.exponent = 1.0
        self.setFixedSize(QSize(96, 96))
        self.setToolTip("Pen pressure (across) against brush size or opacity (up)")

    def set_exponent(self, value: float) -> None:
        self.exponent = float(value)
        self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = self.rect().adjusted(4, 4, -4, -4)
        p.setPen(QPen(QColor("#555"), 1))
        p.drawRect(r)
        path = QPainterPath()
        for i in range(33):
            x = i / 32
            point = QPointF(r.left() + x * r.width(), r.bottom() - (x ** self.exponent) * r.height())
            if i == 0:
                path.moveTo(point)
            else:
                path.lineTo(point)
        p.setPen(QPen(QColor("#58a6ff"), 2))
        p.drawPath(path)
        p.end()


class EditingPage(PreferencesPage):
    """Autosave, undo memory and the pen."""

    title = "Editing"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("editingPage")
        lo, hi = RANGES["files/autosave_s"]
        self.autosave = QSpinBox()
        self.autosave.setObjectName("autosaveSeconds")
        self.autosave.setRange(int(lo), int(hi))
        self.autosave.setSuffix(" s")
        self.undo = _spin("editing/undo_mb", " MiB", "undoMemory")
        self.undo.setSingleStep(256)
        self.curve = QDoubleSpinBox()
        self.curve.setObjectName("pressureCurve")
        self.curve.setRange(*RANGES["editing/pressure_curve"])
        self.curve.setSingleStep(0.1)
        self.curve.setDecimals(2)
        self.curve_word = QLabel("")
        self.curve_drawing = PressureCurve()
        self.curve.valueChanged.connect(self._curve_changed)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        form.addRow("Autosave every", self.autosave)
        form.addRow(_note("A recovery copy of the open picture is written this often; after a "
                          "crash CanvasAI offers it at the next start."))
        form.addRow("Undo memory per picture", self.undo)
        form.addRow(_note("The oldest undo steps are dropped when their pixels need more than "
                          "this."))
        curve_row = QHBoxLayout()
        curve_row.addWidget(self.curve)
        curve_row.addWidget(self.curve_word, 1)
        form.addRow("Pen pressure curve", curve_row)
        form.addRow("", self.curve_drawing)
        form.addRow(_note("Below 1 a light touch already gives a large, opaque dab (soft); above "
                          "1 you press harder for the same (firm). 1 is linear."))
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addStretch(1)

    def _curve_changed(self, value: float) -> None:
        self.curve_drawing.set_exponent(value)
        self.curve_word.setText("linear" if abs(value - 1) < 0.05 else
                                "soft" if value < 1 else "firm")

    def load(self, s: Settings) -> None:
        self.autosave.setValue(round(s.files.autosave_s))
        self.undo.setValue(s.editing.undo_mb)
        self.curve.setValue(s.editing.pressure_curve)
        self._curve_changed(self.curve.value())

    def changes(self) -> dict[str, Any]:
        return {"files/autosave_s": float(self.autosave.value()),
                "editing/undo_mb": self.undo.value(),
                "editing/pressure_curve": round(self.curve.value(), 2)}


#: The pages, in the order the dialog lists them (other topics append theirs).
PAGES: list[type[PreferencesPage]] = [ModelsPage, DevicePage, GenerationPage, EditingPage,
                                      CredentialsPage, ServersPage]


class PreferencesDialog(QDialog):
    """The Preferences window: a list of topics and the page of the chosen one."""

    applied = Signal(object)  # the new Settings, after OK or Apply

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
        fresh = settings.update(**self.changes())
        self.applied.emit(fresh)
        return fresh

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
        apply_settings = getattr(window, "apply_settings", None)
        if apply_settings is not None:
            dialog.applied.connect(apply_settings)
        dialog.open()

    action.triggered.connect(lambda _checked=False: show())
    menu = getattr(window, "menu_edit", None) or window.menu_file
    menu.addSeparator()
    menu.addAction(action)
    window.preferences_action = action
    return action
