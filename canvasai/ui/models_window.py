"""The Models window: every model found, the installs people already have, and downloads.

Three tabs:

* **Models found**: THE registry's models grouped by kind and family, with size, format,
  folder, SHA-256 (computed in the background, cached in the scan index), the flows each
  serves, and for the ones that cannot be used the problem and its fix. Rescan, reveal in
  the file manager, hide from the lists, and the default model per task.
* **Use models I have**: ComfyUI / A1111 / Forge / InvokeAI installs and the Hugging Face
  cache found on disk (or in a folder the person points at); the ticked ones join the
  models folders setting. Nothing is copied.
* **Download**: the starter catalogue; downloads run on a worker thread into the shared
  Hugging Face cache with progress, cancel, hash checks and plain error messages.

The GUI thread never scans, hashes or downloads: each of those runs in a `_Task` on the
global thread pool and reports back through queued signals. No torch here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from canvasai.backends import catalog, downloads, installs, model_roles
from canvasai.backends import models as registry
from canvasai.core import settings

#: tick boxes that show on the dark theme (an unticked box was nearly invisible there)
INDICATORS = """
QTreeView::indicator, QListView::indicator, QCheckBox::indicator {
    width: 13px; height: 13px; border: 1px solid #9aa0aa; border-radius: 2px; background: #1d1f23;
}
QTreeView::indicator:checked, QListView::indicator:checked, QCheckBox::indicator:checked {
    background: #eef3ff; border: 3px solid #4f7fc4;
}
QTreeView::indicator:disabled, QCheckBox::indicator:disabled { border-color: #555a63; }
"""
PROBLEM_COLOUR = "#ff8a80"
LINK = "color: #8ab4f8"  # links readable on the dark theme


def _gb(n: int | float) -> str:
    return downloads.humanize_bytes(n) if n else "—"


# ------------------------------------------------------------------------------ background


class _Relay(QObject):
    """Lives on the GUI thread; a worker's signals arrive here queued."""

    progress = Signal(object)
    done = Signal(object)
    failed = Signal(str, str)  # kind, message


class _Task(QRunnable):
    """Runs ``fn(report, cancel)`` on a pool thread; `report(x)` sends progress."""

    def __init__(self, fn: Callable[[Callable[[Any], None], threading.Event], Any],
                 relay: _Relay, cancel: threading.Event) -> None:
        super().__init__()
        self.fn, self.relay, self.cancel = fn, relay, cancel

    def run(self) -> None:
        try:
            result = self.fn(self.relay.progress.emit, self.cancel)
        except downloads.DownloadError as exc:
            self.relay.failed.emit(exc.kind, str(exc))
        except Exception as exc:  # noqa: BLE001 - a worker reports, never dies silently
            self.relay.failed.emit("failed", f"{type(exc).__name__}: {exc}")
        else:
            self.relay.done.emit(result)


def run_task(owner: QObject, fn: Callable[..., Any], on_done: Callable[[Any], None],
             on_failed: Callable[[str, str], None] | None = None,
             on_progress: Callable[[Any], None] | None = None) -> threading.Event:
    """Start `fn` off the GUI thread; handlers run on the GUI thread. Returns its cancel flag."""
    relay = _Relay(owner)
    cancel = threading.Event()
    relay.done.connect(on_done)
    if on_failed is not None:
        relay.failed.connect(on_failed)
    if on_progress is not None:
        relay.progress.connect(on_progress)
    relay.done.connect(relay.deleteLater)
    relay.failed.connect(relay.deleteLater)
    QThreadPool.globalInstance().start(_Task(fn, relay, cancel))
    return cancel


def _refresh_app_models(widget: QWidget) -> None:
    """Ask the main window's generation panel to rescan (if there is one)."""
    w = widget.window().parent() if widget.window() is not None else None
    while w is not None:
        gen = getattr(w, "generation", None)
        if gen is not None and hasattr(gen, "refresh_models"):
            gen.refresh_models()
            return
        w = w.parent()


# ------------------------------------------------------------------------------ installs


class InstallsWidget(QWidget):
    """Existing installs found on disk, ticked to be used. `applied` fires after the
    ticked ones were added to the models folders setting."""

    applied = Signal(list)

    def __init__(self, parent: QWidget | None = None, home: Path | None = None) -> None:
        super().__init__(parent)
        self.home = home
        self.extra: list[str] = []
        self.found: list[installs.Install] = []
        lay = QVBoxLayout(self)
        intro = QLabel(
            "CanvasAI can use the models of ComfyUI, Stable Diffusion web UI (A1111 / Forge), "
            "InvokeAI and the Hugging Face cache where they are: tick the ones to use. "
            "Nothing is copied or moved."
        )
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.list = QListWidget()
        self.list.setObjectName("installsList")
        lay.addWidget(self.list, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        row = QHBoxLayout()
        self.search_button = QPushButton("Search again")
        self.search_button.clicked.connect(self.search)
        self.add_button = QPushButton("Add a folder…")
        self.add_button.setToolTip("A ComfyUI / A1111 / InvokeAI install, or any folder of models")
        self.add_button.clicked.connect(self._choose_folder)
        self.use_button = QPushButton("Use the ticked folders")
        self.use_button.setDefault(True)
        self.use_button.clicked.connect(self.apply)
        row.addWidget(self.search_button)
        row.addWidget(self.add_button)
        row.addStretch(1)
        row.addWidget(self.use_button)
        lay.addLayout(row)
        self._searching = False

    def search(self) -> None:
        if self._searching:
            return
        self._searching = True
        self.status.setText("Looking for installs…")
        self.search_button.setEnabled(False)
        extra, home = list(self.extra), self.home
        run_task(self, lambda _r, _c: installs.find_installs(extra, home=home),
                 self._found, self._failed)

    def add_folder(self, folder: str) -> None:
        if folder and folder not in self.extra:
            self.extra.append(folder)
        self._searching = False
        self.search()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose an install or a models folder")
        if folder:
            self.add_folder(folder)

    @Slot(object)
    def _found(self, found: list[installs.Install]) -> None:
        self._searching = False
        self.search_button.setEnabled(True)
        self.found = found
        self.list.clear()
        ms = settings.current().models
        used = {os.path.realpath(os.path.expanduser(d)) for d in ms.models_dirs}
        for inst in found:
            in_use = (inst.kind == installs.HF_CACHE and ms.include_hf_cache) or (
                os.path.realpath(inst.models_dir) in used)
            text = (f"{inst.label}: {inst.root}\n    {inst.files} model file(s), "
                    f"{_gb(inst.size_bytes)}" + ("  ·  already used" if in_use else ""))
            if inst.problems:
                text += f"\n    {len(inst.problems)} folder(s) could not be read"
            item = QListWidgetItem(text)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if inst.files and not in_use
                               else Qt.CheckState.Unchecked)
            item.setData(Qt.ItemDataRole.UserRole, inst)
            item.setToolTip(str(inst.models_dir))
            self.list.addItem(item)
        self.status.setText(
            f"Found {len(found)} install(s)." if found else
            "No ComfyUI, A1111, Forge or InvokeAI install was found in the usual places. "
            "Use “Add a folder…” to point at one.")

    @Slot(str, str)
    def _failed(self, _kind: str, message: str) -> None:
        self._searching = False
        self.search_button.setEnabled(True)
        self.status.setText(f"The search stopped: {message}")

    def ticked(self) -> list[installs.Install]:
        out = []
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(item.data(Qt.ItemDataRole.UserRole))
        return out

    def apply(self) -> list[installs.Install]:
        chosen = self.ticked()
        if not chosen:
            self.status.setText("Nothing is ticked.")
            return []
        installs.add_to_settings(chosen)
        self.status.setText(f"Added {len(chosen)} folder(s) to the models folders; scanning…")
        self.applied.emit(chosen)
        _refresh_app_models(self)
        self._found(self.found)
        return chosen


# ------------------------------------------------------------------------------ catalogue


class CatalogWidget(QWidget):
    """The starter catalogue with downloads. `downloaded` fires after each finished model."""

    downloaded = Signal(str)  # repository id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cancel: threading.Event | None = None
        lay = QVBoxLayout(self)
        intro = QLabel(
            "Models by what they are for. Tick what you want: nothing downloads until you "
            "press Download. Files go to the Hugging Face cache "
            f"({registry.hf_cache_dir()}), shared with other tools."
        )
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.tree = QTreeWidget()
        self.tree.setObjectName("catalogTree")
        self.tree.setHeaderLabels(["Model", "Download", "GPU memory", "Licence", "Repository"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        hdr = self.tree.header()
        hdr.setStretchLastSection(False)
        for c in (0, 1, 2, 4):
            hdr.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)  # long licence names elide
        self.items: dict[str, QTreeWidgetItem] = {}
        for label, entries in catalog.by_use():
            top = QTreeWidgetItem([label])
            top.setFlags(Qt.ItemFlag.ItemIsEnabled)
            f = top.font(0)
            f.setBold(True)
            top.setFont(0, f)
            self.tree.addTopLevelItem(top)
            for e in entries:
                lic = e.licence + (" · gated" if e.gated else "")
                item = QTreeWidgetItem(
                    [e.title, f"≈ {e.size_gb:g} GB" if e.size_gb >= 0.1 else "< 100 MB",
                     f"≈ {e.memory_gb:g} GB" if e.memory_gb >= 1 else "< 1 GB", lic, e.repo])
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(0, Qt.CheckState.Unchecked)
                item.setData(0, Qt.ItemDataRole.UserRole, e.id)
                item.setToolTip(0, e.summary)
                item.setToolTip(3, f"{e.licence}\n{e.licence_url}")
                item.setToolTip(4, e.url)
                self.items[e.id] = item
                self.tree.addTopLevelItem(item)
        self.tree.itemChanged.connect(lambda *_: self._update())
        self.tree.currentItemChanged.connect(lambda *_: self._show_details())
        lay.addWidget(self.tree, 1)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setOpenExternalLinks(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.details)
        self.accept_box = QCheckBox(
            "I have read and accept the licences of the ticked models (non-commercial or gated)")
        self.accept_box.toggled.connect(lambda *_: self._update())
        lay.addWidget(self.accept_box)
        token_row = QHBoxLayout()
        token_row.addWidget(QLabel("Hugging Face token (gated models):"))
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("hf_… (optional; a token saved by `hf auth login` is used too)")
        token_row.addWidget(self.token, 1)
        lay.addLayout(token_row)
        prog = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        prog.addWidget(self.progress, 1)
        self.download_button = QPushButton("Download")
        self.download_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        prog.addWidget(self.download_button)
        prog.addWidget(self.cancel_button)
        lay.addLayout(prog)
        self.status = QLabel("")
        self.status.setObjectName("downloadStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        self._queue: list[catalog.CatalogEntry] = []
        self.refresh_installed()
        self._update()

    # -- state --------------------------------------------------------------------------
    def refresh_installed(self) -> None:
        """Mark catalogue entries already in the cache (a few stat calls, off the GUI thread)."""
        entries = list(catalog.CATALOG)
        run_task(self, lambda _r, _c: {e.id for e in entries if downloads.installed(e)},
                 self._mark_installed)

    @Slot(object)
    def _mark_installed(self, ids: set[str]) -> None:
        for eid, item in self.items.items():
            e = catalog.get(eid)
            assert e is not None
            size = f"≈ {e.size_gb:g} GB" if e.size_gb >= 0.1 else "< 100 MB"
            item.setText(1, "✓ in the cache" if eid in ids else size)

    def ticked(self) -> list[catalog.CatalogEntry]:
        out = []
        for eid, item in self.items.items():
            if item.checkState(0) == Qt.CheckState.Checked:
                e = catalog.get(eid)
                if e is not None:
                    out.append(e)
        return out

    def set_ticked(self, ids: list[str]) -> None:
        for eid, item in self.items.items():
            item.setCheckState(0, Qt.CheckState.Checked if eid in ids else Qt.CheckState.Unchecked)

    def _update(self, keep_status: bool = False) -> None:
        chosen = self.ticked()
        needs = [e for e in chosen if e.needs_acceptance]
        self.accept_box.setVisible(bool(needs))
        busy = self._cancel is not None
        ok = bool(chosen) and (not needs or self.accept_box.isChecked())
        self.download_button.setEnabled(ok and not busy)
        if not busy and not keep_status:
            total = sum(e.size_gb for e in chosen)
            self.status.setText(
                f"{len(chosen)} model(s), about {total:.1f} GB." if chosen else
                "Tick the models to download.")

    def _show_details(self) -> None:
        item = self.tree.currentItem()
        eid = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        e = catalog.get(eid) if eid else None
        if e is None:
            self.details.setText("")
            return
        flags = []
        if e.gated:
            flags.append("gated: log in on the hub and accept its licence there, then give a token")
        if e.non_commercial:
            flags.append("non-commercial use only")
        extra = f" <b>{'; '.join(flags)}.</b>" if flags else ""
        self.details.setText(
            f"<b>{e.title}</b> — {e.summary}{extra}<br>Repository: "
            f"<a style='{LINK}' href='{e.url}'>{e.repo}</a> · Licence: "
            f"<a style='{LINK}' href='{e.licence_url}'>{e.licence}</a>")

    # -- downloading --------------------------------------------------------------------
    def start(self) -> None:
        if self._cancel is not None:
            return
        chosen = self.ticked()
        if not chosen:
            return
        if any(e.needs_acceptance for e in chosen) and not self.accept_box.isChecked():
            self.status.setText("Accept the licences of the ticked models first.")
            return
        self._queue = list(chosen)
        self._next()

    def _next(self) -> None:
        if not self._queue:
            self._cancel = None
            self.cancel_button.setEnabled(False)
            self._update(keep_status=True)
            return
        e = self._queue.pop(0)
        token = self.token.text().strip() or None
        self.status.setText(f"{e.title}: reading the file list from the hub…")
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        self.download_button.setEnabled(False)
        self._current = e

        def work(report: Callable[[Any], None], cancel: threading.Event) -> str:
            snap = downloads.download_entry(e, token=token, progress=report, cancel=cancel)
            return str(snap)

        self._cancel = threading.Event()  # replaced by run_task's below
        self._cancel = run_task(self, work, self._done, self._failed, self._progress)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self._queue.clear()
            self.status.setText("Cancelling…")

    @Slot(object)
    def _progress(self, p: downloads.Progress) -> None:
        self.progress.setValue(int(1000 * p.fraction))
        self.status.setText(f"{self._current.title}: {downloads.describe_progress(p)}")

    @Slot(object)
    def _done(self, snapshot: str) -> None:
        e = self._current
        self.progress.setValue(1000)
        self.status.setText(f"{e.title} downloaded and verified ({snapshot}).")
        settings.update(**{"models/include_hf_cache": True})
        self.downloaded.emit(e.repo)
        _refresh_app_models(self)
        self.refresh_installed()
        self._cancel = None
        self._next()

    @Slot(str, str)
    def _failed(self, kind: str, message: str) -> None:
        self._cancel = None
        self._queue.clear()
        self.cancel_button.setEnabled(False)
        self.progress.setValue(0)
        self._update(keep_status=True)
        self.status.setText(message)
        if kind == "gated":
            self.token.setFocus()

    def busy(self) -> bool:
        return self._cancel is not None


# ------------------------------------------------------------------------------ models found


class ModelsWindow(QDialog):
    """Non-modal window: models found, installs, downloads."""

    def __init__(self, parent: QWidget | None = None, home: Path | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelsWindow")
        self.setWindowTitle("Models")
        self.setStyleSheet(INDICATORS)
        self.resize(1000, 640)
        self.models: list[registry.ModelInfo] = []
        self.errors: list[str] = []
        self._hash_cancel: threading.Event | None = None
        self._hashes: dict[str, str] = {}
        lay = QVBoxLayout(self)
        self.tabs = QTabWidget()
        lay.addWidget(self.tabs)

        found = QWidget()
        fl = QVBoxLayout(found)
        bar = QHBoxLayout()
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.clicked.connect(self.rescan)
        self.reveal_button = QPushButton("Show in file manager")
        self.reveal_button.clicked.connect(self.reveal)
        self.hide_button = QPushButton("Hide from the list")
        self.hide_button.clicked.connect(self.toggle_hidden)
        self.allow_button = QPushButton("Allow this pickle…")
        self.allow_button.setToolTip("Pickle files can run code when opened: allow only a file "
                                     "from a source you trust")
        self.allow_button.clicked.connect(lambda: self.allow_pickle())
        self.allow_button.setVisible(False)
        self.show_hidden = QCheckBox("Show hidden")
        self.show_hidden.toggled.connect(lambda *_: self._fill())
        for w in (self.rescan_button, self.reveal_button, self.hide_button, self.allow_button):
            bar.addWidget(w)
        bar.addWidget(self.show_hidden)
        bar.addStretch(1)
        self.summary = QLabel("")
        bar.addWidget(self.summary)
        fl.addLayout(bar)
        self.tree = QTreeWidget()
        self.tree.setObjectName("modelsTree")
        self.tree.setHeaderLabels(["Model", "Format", "Size", "Serves", "SHA-256", "Folder"])
        self.tree.setUniformRowHeights(True)
        hdr = self.tree.header()
        hdr.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for c, w in enumerate((280, 110, 80, 200, 130, 300)):
            hdr.resizeSection(c, w)
        self.tree.currentItemChanged.connect(lambda *_: self._show_details())
        fl.addWidget(self.tree, 1)
        self.details = QLabel("Scanning…")
        self.details.setObjectName("modelDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setMinimumHeight(110)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        fl.addWidget(self.details)
        box = QGroupBox("Default model per task (the picker starts from these)")
        grid = QGridLayout(box)  # two columns: the window stays short enough for a laptop
        self.default_combos: dict[str, QComboBox] = {}
        for n, (key, label, _kinds) in enumerate(model_roles.TASKS):
            combo = QComboBox()
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(20)
            combo.currentIndexChanged.connect(lambda _i, k=key: self._default_changed(k))
            self.default_combos[key] = combo
            row, col = divmod(n, 2)
            grid.addWidget(QLabel(label), row, col * 2)
            grid.addWidget(combo, row, col * 2 + 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        fl.addWidget(box)
        self.tabs.addTab(found, "Models found")

        self.installs = InstallsWidget(home=home)
        self.installs.applied.connect(lambda _c: self.rescan())
        self.tabs.addTab(self.installs, "Use models I have")
        self.catalog = CatalogWidget()
        self.catalog.downloaded.connect(lambda _r: self.rescan())
        self.tabs.addTab(self.catalog, "Download")
        self._searched = False
        self.tabs.currentChanged.connect(self._tab_changed)
        self._filling = False
        self.rescan()

    # -- scanning -----------------------------------------------------------------------
    def rescan(self) -> None:
        self.rescan_button.setEnabled(False)
        self.summary.setText("Scanning…")
        if self._hash_cancel is not None:
            self._hash_cancel.set()

        def work(_r: Callable[[Any], None], _c: threading.Event) -> tuple[list, list, dict]:
            found = registry.rescan()
            reg = registry.registry()
            index = reg.index
            hashes: dict[str, str] = {}
            if index is not None:
                for m in found:
                    if m.format != "diffusers":
                        h = index.sha256(m.path)
                        if h:
                            hashes[str(m.path)] = h
            return found, list(reg.errors), hashes

        run_task(self, work, self._scanned, self._scan_failed)

    @Slot(object)
    def _scanned(self, result: tuple[list, list, dict]) -> None:
        self.models, self.errors, hashes = result
        self._hashes.update(hashes)
        self.rescan_button.setEnabled(True)
        self._fill()
        self._fill_defaults()
        self._hash_missing()

    @Slot(str, str)
    def _scan_failed(self, _kind: str, message: str) -> None:
        self.rescan_button.setEnabled(True)
        self.summary.setText("")
        self.details.setText(f"The models folders could not be scanned: {message}")

    def _hidden(self) -> set[str]:
        return set(settings.current().models.hidden)

    def _fill(self) -> None:
        hidden = self._hidden()
        show_hidden = self.show_hidden.isChecked()
        current = self._current_path()
        self.tree.clear()
        groups: dict[str, dict[str, list[registry.ModelInfo]]] = {}
        shown = 0
        for m in self.models:
            if str(m.path) in hidden and not show_hidden:
                continue
            fam = _family_label(m.family)
            groups.setdefault(model_roles.group_of(m), {}).setdefault(fam, []).append(m)
            shown += 1
        select: QTreeWidgetItem | None = None
        for key, label in model_roles.GROUPS:
            fams = groups.get(key)
            if not fams:
                continue
            n = sum(len(v) for v in fams.values())
            top = QTreeWidgetItem([f"{label} ({n})"])
            f = top.font(0)
            f.setBold(True)
            top.setFont(0, f)
            self.tree.addTopLevelItem(top)
            for fam in sorted(fams):
                sub = QTreeWidgetItem([fam])
                top.addChild(sub)
                for m in sorted(fams[fam], key=lambda x: x.name.lower()):
                    item = self._item(m, str(m.path) in hidden)
                    sub.addChild(item)
                    if str(m.path) == current:
                        select = item
                sub.setExpanded(True)
            top.setExpanded(True)
        n_hidden = sum(1 for m in self.models if str(m.path) in hidden)
        usable = sum(1 for m in self.models if m.usable)
        self.summary.setText(
            f"{usable} usable, {len(self.models) - usable} cannot be used"
            + (f", {n_hidden} hidden" if n_hidden else ""))
        if select is not None:
            self.tree.setCurrentItem(select)
        elif not self.models:
            dirs = ", ".join(str(d) for d in registry.registry().models_dirs)
            self.details.setText(
                f"No models found in {dirs}. Use “Use models I have” to add an existing "
                "install, or “Download” for a starter set; Classic (no model) always works.")
        else:
            dirs = ", ".join(str(d) for d in registry.registry().models_dirs)
            hf = " and the Hugging Face cache" if settings.current().models.include_hf_cache else ""
            self.details.setText(f"Select a model to see where it is and what it serves.\n"
                                 f"Scanned: {dirs}{hf}.")
        self._shown = shown

    def _item(self, m: registry.ModelInfo, hidden: bool) -> QTreeWidgetItem:
        sha = self._hashes.get(str(m.path), "")
        if m.format == "diffusers":
            sha_text = "(folder)"
        else:
            sha_text = sha[:12] + "…" if sha else "computing…" if m.usable else ""
        serves = ", ".join(model_roles.flows_for(m)) or (m.note if not m.usable else "")
        item = QTreeWidgetItem([
            m.name + ("  (hidden)" if hidden else ""), model_roles.format_label(m),
            _gb(m.size_bytes), serves, sha_text, str(m.path.parent),
        ])
        item.setData(0, Qt.ItemDataRole.UserRole, str(m.path))
        item.setToolTip(0, str(m.path))
        item.setToolTip(3, serves)
        if sha:
            item.setToolTip(4, sha)
        if not m.usable:
            from PySide6.QtGui import QColor

            item.setForeground(0, QColor(PROBLEM_COLOUR))
        return item

    def _current_path(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None

    def current_model(self) -> registry.ModelInfo | None:
        path = self._current_path()
        return next((m for m in self.models if str(m.path) == path), None)

    def _show_details(self) -> None:
        m = self.current_model()
        if m is None:
            return
        lines = [f"<b>{m.name}</b> — {_family_label(m.family)}"
                 f"{' ' + m.variant if m.variant else ''}, {m.kind}, "
                 f"{model_roles.format_label(m)}, {_gb(m.size_bytes)}"]
        lines.append(f"Path: {m.path}")
        for role, p in m.parts:
            lines.append(f"{role}: {p}")
        sha = self._hashes.get(str(m.path))
        if sha:
            lines.append(f"SHA-256: {sha}")
        if m.usable:
            flows = model_roles.flows_for(m)
            if flows:
                lines.append("Serves: " + ", ".join(flows))
            if m.kind in registry.MAIN_KINDS:
                lines.append(f"GPU memory: about {registry.memory_estimate(m) / 1e9:.0f} GB "
                             "(less with offloading)")
            if m.note:
                lines.append(f"Note: {m.note}")
        else:
            lines.append(f"\0Problem:\1 {m.note}")
            lines.append(f"\0Fix:\1 {model_roles.fix_for(m)}")
        html = [x if i == 0 else _esc(x).replace("\0", "<b>").replace("\1", "</b>")
                for i, x in enumerate(lines)]
        self.details.setText("<br>".join(html))
        hidden = str(m.path) in self._hidden()
        self.hide_button.setText("Show in the list again" if hidden else "Hide from the list")
        self.allow_button.setVisible(m.format == "pickle" and not m.usable)

    # -- actions ------------------------------------------------------------------------
    def reveal(self) -> None:
        m = self.current_model()
        if m is None:
            return
        folder = m.path if m.format == "diffusers" and m.path.is_dir() else m.path.parent
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def toggle_hidden(self) -> None:
        m = self.current_model()
        if m is None:
            return
        hidden = list(settings.current().models.hidden)
        key = str(m.path)
        if key in hidden:
            hidden.remove(key)
        else:
            hidden.append(key)
        settings.update(**{"models/hidden": hidden})
        self._fill()
        self._show_details()
        _refresh_app_models(self)

    def allow_pickle(self, confirm: bool | None = None) -> bool:
        """Allow the selected refused pickle file (after a warning), then rescan."""
        m = self.current_model()
        if m is None or m.format != "pickle":
            return False
        if confirm is None:
            confirm = settings.current().ui.confirm_dialogs
        if confirm:
            from PySide6.QtWidgets import QMessageBox

            answer = QMessageBox.warning(
                self, "Allow a pickle file",
                f"{m.path.name} is a Python pickle: a crafted one can run code on this computer "
                "when it is opened. CanvasAI reads allowed files with torch's weights-only loader, "
                "which refuses code, but only allow a file from a source you trust.\n\nAllow it?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return False
        allowed = list(settings.current().models.allow_pickle)
        if str(m.path) not in allowed:
            allowed.append(str(m.path))
            settings.update(**{"models/allow_pickle": allowed})
        self.rescan()
        _refresh_app_models(self)
        return True

    def _fill_defaults(self) -> None:
        self._filling = True
        chosen = model_roles.task_map(settings.current().models.defaults)
        hidden = self._hidden()
        for key, _label, kinds in model_roles.TASKS:
            combo = self.default_combos[key]
            combo.clear()
            combo.addItem("Classic (no model)" if key != "sketch" else "(none)", "")
            for m in self.models:
                if m.usable and m.kind in kinds and str(m.path) not in hidden:
                    combo.addItem(f"{m.name} ({_gb(m.size_bytes)})", m.name)
            want = chosen.get(key, "")
            i = combo.findData(want)
            if i < 0 and want:
                combo.addItem(f"{want} (not found)", want)
                i = combo.count() - 1
            combo.setCurrentIndex(max(i, 0))
        self._filling = False

    def _default_changed(self, task: str) -> None:
        if self._filling:
            return
        name = self.default_combos[task].currentData() or ""
        values = model_roles.with_choice(settings.current().models.defaults, task, name)
        settings.update(**{"models/defaults": values})

    # -- hashes -------------------------------------------------------------------------
    def _hash_missing(self) -> None:
        """SHA-256 of each single-file model that has none cached, one after another."""
        todo = [m.path for m in self.models
                if m.usable and m.format != "diffusers" and str(m.path) not in self._hashes]
        if not todo:
            return
        index = registry.registry().index

        def work(report: Callable[[Any], None], cancel: threading.Event) -> int:
            from canvasai.backends.scan_index import hash_file

            n = 0
            for p in todo:
                if cancel.is_set():
                    break
                try:
                    digest = hash_file(p, cancelled=cancel.is_set)
                except (OSError, InterruptedError):
                    continue
                if index is not None:
                    index.set_sha256(p, digest)
                report((str(p), digest))
                n += 1
            if index is not None:
                index.save()
            return n

        self._hash_cancel = run_task(self, work, lambda _n: None, None, self._hashed)

    @Slot(object)
    def _hashed(self, result: tuple[str, str]) -> None:
        path, digest = result
        self._hashes[path] = digest
        for item in self._walk():
            if item.data(0, Qt.ItemDataRole.UserRole) == path:
                item.setText(4, digest[:12] + "…")
                item.setToolTip(4, digest)
        if self._current_path() == path:
            self._show_details()

    def _walk(self) -> list[QTreeWidgetItem]:
        out = []
        stack = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            it = stack.pop()
            out.append(it)
            stack.extend(it.child(i) for i in range(it.childCount()))
        return out

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.installs and not self._searched:
            self._searched = True
            self.installs.search()

    def done(self, result: int) -> None:  # noqa: D401 - Qt API
        if self._hash_cancel is not None:
            self._hash_cancel.set()
        super().done(result)


def _short_name(name: str) -> str:
    """A model's registry name, or a path's last part."""
    return os.path.basename(name.rstrip("/")) if os.sep in name else name


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _family_label(family: str) -> str:
    from canvasai.backends.diffusion import families

    fam = families.find(family)
    if fam is not None:
        return fam.label
    return {"unknown": "Other", "sd2": "Stable Diffusion 2"}.get(family, family)


def open_models_window(window: QWidget, tab: str = "") -> ModelsWindow:
    """Show the window's Models window (one per main window), on `tab` ("download", "installs")."""
    w = getattr(window, "_models_window", None)
    if w is None:
        w = ModelsWindow(window)
        window._models_window = w  # type: ignore[attr-defined]
    if tab == "download":
        w.tabs.setCurrentWidget(w.catalog)
    elif tab == "installs":
        w.tabs.setCurrentWidget(w.installs)
    w.show()
    w.raise_()
    w.activateWindow()
    return w


def install_models_menu(window: Any) -> None:
    """A Models menu on the main window: the Models window, setup, rescan."""
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QMenu

    menu = QMenu("&Models", window)
    help_menu = getattr(window, "menu_help", None)
    if help_menu is not None:
        window.menuBar().insertMenu(help_menu.menuAction(), menu)
    else:
        window.menuBar().addMenu(menu)
    window.menu_models = menu
    a = QAction("&Models…", window)
    a.setShortcut("Ctrl+Shift+M")
    a.triggered.connect(lambda: open_models_window(window))
    menu.addAction(a)
    a = QAction("Use models I &already have…", window)
    a.triggered.connect(lambda: open_models_window(window, "installs"))
    menu.addAction(a)
    a = QAction("&Download models…", window)
    a.triggered.connect(lambda: open_models_window(window, "download"))
    menu.addAction(a)
    menu.addSeparator()
    a = QAction("First-run &setup…", window)

    def setup() -> None:
        from canvasai.ui.first_run import FirstRunDialog

        FirstRunDialog(window).show()

    a.triggered.connect(setup)
    menu.addAction(a)
    a = QAction("&Rescan models folders", window)

    def rescan() -> None:
        gen = getattr(window, "generation", None)
        if gen is not None:
            gen.refresh_models()

    a.triggered.connect(rescan)
    menu.addAction(a)


# ------------------------------------------------------------------------------ the picker


class PickerMemory(QObject):
    """The generation panel's model picker remembers the last model per task (kept in the
    ``models/last_used`` setting, so across launches) and starts from the default model per
    task (``models/defaults``, set in the Models window). Also says "Loading NAME (x.x GB)…"
    for the first job on a model in this session."""

    def __init__(self, panel: Any) -> None:
        super().__init__(panel)
        self.panel = panel
        self._quiet = 0
        self.loaded: set[str] = set()
        self.last_run = ""  # the model of the last job (the one the service has loaded)
        panel.model.currentIndexChanged.connect(self._remember)
        panel.task.currentIndexChanged.connect(lambda _i: self.restore())

    class _Quiet:
        def __init__(self, owner: PickerMemory) -> None:
            self.owner = owner

        def __enter__(self) -> None:
            self.owner._quiet += 1

        def __exit__(self, *exc: object) -> None:
            self.owner._quiet -= 1

    def filling(self) -> PickerMemory._Quiet:
        """While the picker is refilled, its changes are not choices of the person."""
        return PickerMemory._Quiet(self)

    def _remember(self, _index: int = 0) -> None:
        if self._quiet:
            return
        value = self.panel.model.currentData()
        if not value:
            return
        ms = settings.current().models
        values = model_roles.with_choice(ms.last_used, self.panel.flow(), str(value))
        if tuple(values) != tuple(ms.last_used):
            settings.update(**{"models/last_used": values})

    def wanted(self) -> str | None:
        """The model the current task should start with: the last one used for it, else the
        task's default."""
        ms = settings.current().models
        flow = self.panel.flow()
        return (model_roles.task_map(ms.last_used).get(flow)
                or model_roles.task_map(ms.defaults).get(model_roles.task_of_flow(flow)))

    def restore(self) -> None:
        want = self.wanted()
        if not want:
            return
        i = self.panel.model.findData(want)
        if i >= 0 and i != self.panel.model.currentIndex():
            with self.filling():
                self.panel.model.setCurrentIndex(i)

    def starting_text(self, job: Any) -> str:
        """"Loading NAME (x.x GB)…" when a job runs a model other than the last one (the
        service keeps one pipeline loaded and unloads it for another, which the text then
        says), else "Starting…" (the loaded model is reused)."""
        name = str(getattr(getattr(job, "request", None), "model", "") or "")
        if not name or name == "classic":
            return "Starting…"
        previous, self.last_run = self.last_run, name
        if name == previous:
            return "Starting…"
        self.loaded.add(name)
        info = getattr(self.panel, "_model_info", {}).get(name)
        size = info[3] if info is not None and len(info) > 3 else 0
        if not size:
            found = registry.peek(name)
            size = found.size_bytes if found is not None else 0
        text = f"Loading {_short_name(name)}" + (f" ({size / 1e9:.1f} GB)…" if size else "…")
        if previous:
            text += f" {_short_name(previous)} is unloaded to make room."
        return text
