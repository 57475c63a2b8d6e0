"""File menu behaviour: open, save, export, clipboard, drag-and-drop, autosave, recovery.

`FileController(main_window)` is created by the MainWindow once its menus exist.
What it uses from the window: `document`, `document_path` (read/write),
`set_document(doc, path)`, `update_title()`, `maybe_save()` (optional),
`menu_file`, `menu_edit` (optional), `statusBar()`. A window with several documents
also offers `add_document(doc, path)` (Open, New from a paste, a restore add a tab),
`open_documents()`, `index_of_path(path)`, `switch_to(index)`, `set_path_of(doc, path)`,
`close_tab(index, ask)` and `has_jobs(doc)` (and `canvasai.ui.main_window.prompts_enabled`
decides whether to ask); it calls `document_closed(doc)` when a tab closes.

Dropped files open in tabs of their own (as File ▸ Open); Shift+drop and Edit ▸ Paste of
copied files add them as layers of the shown document. A file open in a tab is never open
twice: Open switches to its tab, and Save As onto it closes that tab first (asking when
it has unsaved changes or running jobs; with prompts off that save is refused instead).

Each open document has its own recovery file, autosaved while it has changes that are
not on disk, whether its tab is shown or not.

All file I/O runs on a worker thread (`BackgroundRunner`). A save first takes a
copy-on-write snapshot of the document on the GUI thread (tiles are shared and
frozen; a stroke copies a tile before its first write), then encodes and writes
the snapshot while the person keeps painting. Results and errors come back as queued signals.
Errors are shown in a non-blocking message box and leave the open document
and the files on disk as they were.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEventLoop, QObject, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QMessageBox,
    QProgressBar,
    QWidget,
)

from canvasai.core import settings
from canvasai.document.compositing import composite_layers
from canvasai.document.document import Document
from canvasai.formats import export as exp
from canvasai.formats.credentials import (
    ContentCredentials,
    Credentials,
    open_image_with_credentials,
    read_trust_anchors,
)
from canvasai.formats.image_io import IMAGE_SUFFIXES, image_to_layer, open_image_document
from canvasai.formats.ora import load_ora, save_ora
from canvasai.formats.recovery import (
    RecoveryEntry,
    RecoverySession,
    discard,
    list_recoverable,
    restore,
    snapshot_document,
)
from canvasai.ui.background import BackgroundRunner
from canvasai.ui.export_dialog import ExportDialog
from canvasai.ui.images import qimage_from_rgba, rgba_from_qimage

log = logging.getLogger(__name__)

OPEN_FILTER = (
    "Images and projects (*.ora *.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp);;"
    "OpenRaster (*.ora);;All files (*)"
)
ORA_FILTER = "OpenRaster (*.ora)"


def autosave_interval_s() -> float:
    """The `files/autosave_s` setting ($CANVASAI_AUTOSAVE_S overrides it)."""
    return settings.current().files.autosave_s


def last_folder() -> str:
    """Where file dialogs start: the folder used last (``files/last_dir``), else home."""
    folder = settings.current().files.last_dir
    return folder if folder and Path(folder).is_dir() else str(Path.home())


def remember_folder(path: str | os.PathLike[str]) -> None:
    """Remember the folder of `path` (or `path` itself, a folder) for the next dialog."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    if str(folder) and str(folder) != settings.current().files.last_dir:
        settings.update(**{"files/last_dir": str(folder)})


def recent_files() -> list[str]:
    """File ▸ Recent, most recent first; files that no longer exist are dropped (and
    forgotten)."""
    listed = list(settings.current().files.recent)
    present = [p for p in listed if Path(p).is_file()]
    if present != listed:
        settings.update(**{"files/recent": present})
    return present


def add_recent(path: str | os.PathLike[str]) -> None:
    f = settings.current().files
    p = str(Path(path).absolute())
    settings.update(**{"files/recent": ([p] + [r for r in f.recent if r != p])[: f.recent_size]})


STATUS_CHARS = 90  # a status-bar message longer than this is cut (the box has it all)


def short_status(title: str, message: str) -> str:
    """One line for the status bar: the title and the message's first sentence, cut short."""
    first = message.split(". ")[0].rstrip(".")
    text = f"{title}: {first}"
    return text if len(text) <= STATUS_CHARS else text[: STATUS_CHARS - 1].rstrip() + "…"


def read_any(path: str | os.PathLike[str]) -> Document:
    """Open a project (.ora) or an image as a document (worker thread)."""
    if Path(path).suffix.lower() == ".ora":
        return load_ora(path)
    return open_image_document(path)


def read_any_with_credentials(path: str | os.PathLike[str]) -> tuple[Document, Credentials | None]:
    """Open a project or image (worker thread); an image's Content Credentials are read and
    validated from the same bytes, and the image becomes the parent ingredient of exports."""
    if Path(path).suffix.lower() == ".ora":
        return load_ora(path), None
    trust = read_trust_anchors(settings.current().credentials.trust_anchors)
    return open_image_with_credentials(path, trust)


def model_path(name: str) -> Path | None:
    """The file or folder of a registry model, whose header the export's manifest hashes."""
    from canvasai.backends.models import registry

    info = registry().get(name)
    return info.path if info is not None else None


class _DocFiles:
    """What the controller keeps per open document: its recovery file and the revision
    that is on disk (saved or autosaved)."""

    def __init__(self, doc: Document, directory: Path | None = None) -> None:
        self.doc = doc  # held, so id(doc) stays this document's while it is tracked
        self.recovery = RecoverySession(directory)
        self.on_disk: int | None = None


class FileController(QObject):
    """Owns the file actions of one main window."""

    opened = Signal(object)  # Document
    saved = Signal(str)  # path
    autosaved = Signal(int)  # document revision written
    exported = Signal(object)  # list[Path]
    credentials_read = Signal(object, str)  # Credentials | None, file name (after `opened`)
    error = Signal(str)  # a message already shown to the person

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.runner = BackgroundRunner(self)
        self._spare = RecoverySession()  # `recovery` while no document is open
        self._docs: dict[int, _DocFiles] = {}  # id(doc) -> its files
        self._opening: set[str] = set()  # paths being read
        self.last_error: str | None = None
        self.last_credentials: ContentCredentials | None = None  # of the last export
        self.message_box: QMessageBox | None = None
        self._autosave_running = False
        self._saving = False
        self._closing = False
        self._build_progress()
        self._build_actions()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.autosave_now)
        self.set_autosave_interval(autosave_interval_s())

    # -- construction -------------------------------------------------------------------
    def _build_progress(self) -> None:
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.window.statusBar().addPermanentWidget(self.progress)

    def _action(
        self, menu: Any, text: str, slot: Callable[[], object], keys: str | None, name: str
    ) -> QAction:
        action = QAction(text, self.window)
        action.setObjectName(f"file_{name}")
        if keys:
            action.setShortcut(QKeySequence(keys))
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        self.actions[name] = action
        return action

    def _build_actions(self) -> None:
        self.actions: dict[str, QAction] = {}
        m = self.window.menu_file
        a = self._action
        a(m, "&Open…", self.open_dialog, "Ctrl+O", "open")
        self.recent_menu = m.addMenu("Open &Recent")
        self.recent_menu.setObjectName("recentMenu")
        self.recent_menu.aboutToShow.connect(self.fill_recent_menu)
        self.fill_recent_menu()
        a(m, "&Save", self.save_in_background, "Ctrl+S", "save")
        a(m, "Save &As…", self.save_as_dialog, "Ctrl+Shift+S", "save_as")
        a(m, "&Close", self.close_document, "Ctrl+W", "close")
        m.addSeparator()
        # Ctrl+E is the MainWindow's Merge down (as in Krita); export takes Ctrl+Shift+E.
        a(m, "&Export…", lambda: self.export_dialog("flattened"), "Ctrl+Shift+E", "export")
        a(m, "Export &Layers…", lambda: self.export_dialog("layers"), None, "export_layers")
        a(
            m,
            "Export Se&lection…",
            lambda: self.export_dialog("selection"),
            None,
            "export_selection",
        )
        edit = getattr(self.window, "menu_edit", None) or m
        edit.addSeparator()
        a(edit, "&Copy", self.copy, "Ctrl+C", "copy")
        a(edit, "&Paste as new layer", self.paste, "Ctrl+V", "paste")

    # -- helpers ------------------------------------------------------------------------------
    @property
    def document(self) -> Document | None:
        return self.window.document

    @property
    def busy(self) -> bool:
        return self.runner.busy

    def _files_of(self, doc: Document) -> _DocFiles:
        state = self._docs.get(id(doc))
        if state is None or state.doc is not doc:
            state = self._docs[id(doc)] = _DocFiles(doc, self._spare.directory)
        return state

    @property
    def recovery(self) -> RecoverySession:
        """The shown document's recovery file."""
        doc = self.document
        return self._files_of(doc).recovery if doc is not None else self._spare

    @property
    def _autosaved(self) -> tuple[int, int] | None:
        """(id(doc), revision on disk) of the shown document (None: nothing on disk)."""
        doc = self.document
        state = self._docs.get(id(doc)) if doc is not None else None
        if state is None or state.doc is not doc or state.on_disk is None:
            return None
        return id(doc), state.on_disk

    @_autosaved.setter
    def _autosaved(self, value: tuple[int, int] | None) -> None:
        doc = self.document
        if doc is None:
            return
        if value is None or value[0] != id(doc):
            self._files_of(doc).on_disk = None
        else:
            self._files_of(doc).on_disk = int(value[1])

    def _open_documents(self) -> list[tuple[Document, str | None]]:
        listed = getattr(self.window, "open_documents", None)
        if callable(listed):
            return list(listed())
        doc = self.document
        return [] if doc is None else [(doc, getattr(self.window, "document_path", None))]

    def _is_open(self, doc: Document) -> bool:
        return any(d is doc for d, _p in self._open_documents())

    def document_closed(self, doc: Document) -> None:
        """`doc`'s tab closed on purpose: its recovery file goes (after a save or autosave
        of it in flight)."""
        state = self._docs.pop(id(doc), None)
        if state is not None and state.doc is doc:
            self.runner.wait(60_000)
            state.recovery.remove()

    def _status(self, text: str, ms: int = 5000) -> None:
        self.window.statusBar().showMessage(text, ms)

    def _show_progress(self, label: str) -> Callable[[int, int], None]:
        self.progress.setFormat(f"{label} %p%")
        self.progress.setRange(0, 0)
        self.progress.show()

        def update(done: int, total: int) -> None:
            self.progress.setRange(0, max(1, total))
            self.progress.setValue(done)

        return update

    def _hide_progress(self) -> None:
        if not self.runner.busy:
            self.progress.hide()

    def _fail(self, title: str, message: str) -> None:
        """Tell the person, without blocking the GUI thread (the box is window-modal)."""
        self._hide_progress()
        self.last_error = message
        log.warning("%s: %s", title, message)
        self._status(short_status(title, message), 10000)  # the whole text is in the box
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            title,
            message,
            QMessageBox.StandardButton.Ok,
            self._parent_widget(),
        )
        box.setObjectName("fileErrorBox")
        self.message_box = box
        box.open()
        self.error.emit(message)

    def _parent_widget(self) -> QWidget | None:
        return self.window if isinstance(self.window, QWidget) else None

    # -- open ---------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._parent_widget(), "Open", last_folder(),
                                              OPEN_FILTER)
        if path:
            remember_folder(path)
            self.open_path(path)

    def fill_recent_menu(self) -> None:
        """The recent files (missing ones pruned), then Clear; rebuilt each time it opens."""
        menu = self.recent_menu
        menu.clear()
        paths = recent_files()
        for i, p in enumerate(paths, 1):
            label = f"&{i} {Path(p).name}" if i < 10 else Path(p).name
            action = menu.addAction(f"{label}  —  {Path(p).parent}")
            action.setToolTip(p)
            action.triggered.connect(lambda _checked=False, p=p: self.open_path(p))
        if not paths:
            menu.addAction("No recent files").setEnabled(False)
        menu.addSeparator()
        clear = menu.addAction("Clear recent files")
        clear.setEnabled(bool(paths))
        clear.triggered.connect(lambda _checked=False: settings.update(**{"files/recent": []}))

    def close_document(self) -> bool:
        """File ▸ Close: offer to save, then close the shown document (the next tab shows,
        or none: New or Open start another). False when the person cancelled."""
        if self.document is None:
            return True
        close_tab = getattr(self.window, "close_tab", None)
        if close_tab is not None:
            if not close_tab():
                return False
            if self.document is None:
                self._status("Closed. File ▸ New or Open to go on.")
            return True
        maybe_save = getattr(self.window, "maybe_save", None)
        if maybe_save is not None and not maybe_save():
            return False
        self.document_closed(self.document)  # closed on purpose: nothing to recover
        self.window.set_document(None)
        self._status("Closed. File ▸ New or Open to go on.")
        return True

    def open_path(self, path: str | os.PathLike[str]) -> None:
        """Open a project or image in the background, in a tab of its own (a file open
        already is switched to); the shown document stays until it loads."""
        path = str(path)
        tabs = getattr(self.window, "add_document", None) is not None
        find = getattr(self.window, "index_of_path", None)
        index = find(path) if find is not None else -1
        if index >= 0:
            self.window.switch_to(index)
            add_recent(path)
            self._status(f"{Path(path).name} is open already.")
            return
        if tabs and os.path.abspath(path) in self._opening:
            return  # already on its way
        maybe_save = getattr(self.window, "maybe_save", None)
        if (not tabs and self.document is not None and maybe_save is not None
                and not maybe_save()):
            return
        update = self._show_progress("Opening")
        self._opening.add(os.path.abspath(path))

        def done(result: tuple[Document, Credentials | None]) -> None:
            self._opening.discard(os.path.abspath(path))
            doc, creds = result
            self._hide_progress()
            index = find(path) if find is not None else -1
            if index >= 0:  # saved there from another tab while it was being read
                self.window.switch_to(index)
                self._status(f"{Path(path).name} is open already.")
                return
            is_project = Path(path).suffix.lower() == ".ora"
            self._adopt_document(doc, path if is_project else None)
            add_recent(path)
            note = f" — Content Credentials: {creds.state}" if creds is not None else ""
            self._status(f"Opened {Path(path).name}{note}")
            self.opened.emit(doc)
            self.credentials_read.emit(creds, Path(path).name)

        def failed(msg: str) -> None:
            self._opening.discard(os.path.abspath(path))
            self._fail("Could not open", msg)

        self.runner.start(
            lambda progress: read_any_with_credentials(path), done, failed, update)

    def _show_new(self, doc: Document, path: str | None) -> None:
        """Show a document just read or made: a tab of its own where the window has tabs."""
        add = getattr(self.window, "add_document", None)
        if add is not None:
            add(doc, path)
        else:
            self.window.set_document(doc, path)

    def _adopt_document(self, doc: Document, path: str | None) -> None:
        self._show_new(doc, path)
        self._files_of(doc).on_disk = doc.history.revision

    # -- save ----------------------------------------------------------------------------------
    def save(self) -> bool:
        """Save to the current path (asking for one if needed) and wait for the result while
        the event loop keeps running. Used by the window's unsaved-changes prompt."""
        result: list[bool] = []
        loop = QEventLoop()

        def finished(ok: bool) -> None:
            result.append(ok)
            loop.quit()

        if not self.save_in_background(on_finished=finished):
            return False
        if not result:
            loop.exec()
        return bool(result and result[0])

    def save_in_background(
        self, path: str | None = None, on_finished: Callable[[bool], None] | None = None
    ) -> bool:
        """Start saving; False if there is nothing to save or the person cancelled."""
        doc = self.document
        if doc is None:
            return False
        path = path or getattr(self.window, "document_path", None)
        if not path:
            path = self._ask_save_path()
            if not path:
                return False
        return self._start_save(doc, path, on_finished)

    def save_as_dialog(self) -> bool:
        if self.document is None:
            return False
        path = self._ask_save_path()
        return bool(path) and self._start_save(self.document, path, None)

    def _ask_save_path(self) -> str | None:
        current = getattr(self.window, "document_path", None) or str(
            Path(last_folder()) / "Untitled.ora")
        path, _ = QFileDialog.getSaveFileName(self._parent_widget(), "Save as", current, ORA_FILTER)
        if not path:
            return None
        remember_folder(path)
        return path if path.lower().endswith(".ora") else path + ".ora"

    def _free_path_for(self, doc: Document, path: str) -> bool:
        """Before `doc` is saved to `path`: another tab showing that file closes (it would
        show what is no longer on disk, and two tabs would save to one file). Without
        unsaved changes or jobs it closes at once (the file dialog asked about replacing the
        file); otherwise the person is asked, and with prompts off the save is refused.
        False: `doc` is not saved."""
        find = getattr(self.window, "index_of_path", None)
        if find is not None and os.path.abspath(path) in self._opening:
            self._fail("Could not save", (
                f"“{Path(path).name}” is being opened in a tab of its own. Wait until it "
                "shows, or save this document under another name."))
            return False
        index = find(path) if find is not None else -1
        docs = self._open_documents()
        if not 0 <= index < len(docs) or docs[index][0] is doc:
            return True
        other = docs[index][0]
        name = Path(path).name
        has_jobs = getattr(self.window, "has_jobs", None)
        busy = bool(has_jobs is not None and has_jobs(other))
        if not other.history.is_clean or busy:
            what = ("unsaved changes and generation jobs" if busy and not other.history.is_clean
                    else "generation jobs" if busy else "unsaved changes")
            from canvasai.ui.main_window import prompts_enabled

            if not prompts_enabled():
                self._fail("Could not save", (
                    f"“{name}” is open in another tab with {what}. Save or close that tab "
                    "first, or save this document under another name."))
                return False
            answer = QMessageBox.question(
                self._parent_widget(), f"Replace “{name}”?",
                f"“{name}” is open in another tab with {what}. Save this document as "
                f"“{name}” and close that tab? Its {what} will be lost.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel)
            if answer != QMessageBox.StandardButton.Yes:
                self._status(f"Not saved: “{name}” stays open in its tab.")
                return False
        self.window.close_tab(index, ask=False)
        self._status(f"Closed the other tab of “{name}”: this document is saved there now.")
        return True

    def _start_save(
        self, doc: Document, path: str, on_finished: Callable[[bool], None] | None
    ) -> bool:
        if not self._free_path_for(doc, path):
            return False
        t0 = time.perf_counter()
        snap = snapshot_document(doc)
        revision = doc.history.revision
        log.info("save snapshot took %.3f s", time.perf_counter() - t0)
        update = self._show_progress("Saving")
        self._saving = True

        def done(_result: object) -> None:
            self._saving = False
            self._hide_progress()
            if self._is_open(doc):  # shown or in another tab
                if doc.history.revision == revision:
                    doc.history.mark_clean()
                    state = self._files_of(doc)
                    state.on_disk = revision
                    state.recovery.remove()
                set_path = getattr(self.window, "set_path_of", None)
                if set_path is not None:
                    set_path(doc, path)
                elif self.document is doc:
                    self.window.document_path = path
                with contextlib.suppress(AttributeError):
                    self.window.update_title()
            self._status(f"Saved {Path(path).name}")
            add_recent(path)
            self.saved.emit(path)
            if on_finished is not None:
                on_finished(True)

        def failed(msg: str) -> None:
            self._saving = False
            self._fail("Could not save", msg)
            if on_finished is not None:
                on_finished(False)

        self.runner.start(lambda progress: save_ora(snap, path, progress), done, failed, update)
        return True

    # -- export --------------------------------------------------------------------------------
    def export_dialog(self, kind: str) -> None:
        doc = self.document
        if doc is None:
            return
        if kind == "selection" and exp.selection_rect(doc).is_empty():
            self._fail("Nothing to export", "There is no selection to export.")
            return
        dialog = ExportDialog(
            {
                "flattened": "Export image",
                "layers": "Export layers",
                "selection": "Export selection",
            }[kind],
            self._parent_widget(),
        )
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        opts = dialog.options()
        if kind == "layers":
            target = QFileDialog.getExistingDirectory(
                self._parent_widget(), "Export layers to", last_folder())
        else:
            base = Path(getattr(self.window, "document_path", None) or "Untitled").stem
            ext = exp.EXTENSION[opts.validated().format]
            target, _ = QFileDialog.getSaveFileName(
                self._parent_widget(), "Export", str(Path(last_folder()) / (base + ext)),
                f"Image (*{ext})"
            )
        if target:
            remember_folder(target)
            self.export_to(kind, target, opts)

    def export_to(self, kind: str, target: str, options: exp.ExportOptions | None = None) -> None:
        """Export in the background: kind is 'flattened', 'layers' (target = folder) or 'selection'."""
        doc = self.document
        if doc is None:
            return
        snap = snapshot_document(doc)
        opts = options or exp.ExportOptions(format=exp.format_for_path(target))
        cred_settings = settings.current().credentials
        creds: list[ContentCredentials] = []

        def work(_progress: object) -> list[Path]:
            # The identity is loaded (or made on first use) here, off the GUI thread.
            c = ContentCredentials.from_settings(cred_settings, resolve_model=model_path)
            creds.append(c)
            if kind == "layers":
                return exp.export_layers(snap, target, opts, c)
            if kind == "selection":
                return [exp.export_selection(snap, target, opts, c)]
            return [exp.export_flattened(snap, target, opts, c)]

        def done(paths: list[Path]) -> None:
            self._hide_progress()
            self.last_credentials = creds[0] if creds else None
            signed = self.last_credentials.summary() if self.last_credentials else ""
            msg = f"Exported {len(paths)} file(s) to {Path(target).name}"
            # Unsigned exports say why; the status stays up longer then.
            unsigned = self.last_credentials is not None and any(
                not o.signed for o in self.last_credentials.outcomes)
            self._status(f"{msg}. {signed}" if signed else msg, 15000 if unsigned else 5000)
            self.exported.emit(paths)

        self._show_progress("Exporting")
        self.runner.start(work, done, lambda msg: self._fail("Could not export", msg))

    # -- clipboard -----------------------------------------------------------------------------
    def copy_pixels(self) -> np.ndarray | None:
        """The selected part of the active layer, or the whole painted active layer."""
        doc = self.document
        layer = doc.active_layer if doc is not None else None
        if doc is None or layer is None:
            return None
        if not exp.selection_rect(doc).is_empty():
            return exp.selection_pixels(doc, layer)
        rect = doc.rect if layer.surface.fill[-1] else layer.surface.bounds().intersect(doc.rect)
        if rect.is_empty():
            return None
        return layer.surface.read(rect)

    def copy(self) -> bool:
        pixels = self.copy_pixels()
        if pixels is None:
            self._status("Nothing to copy.")
            return False
        QGuiApplication.clipboard().setImage(qimage_from_rgba(pixels))
        self._status(f"Copied {pixels.shape[1]} × {pixels.shape[0]} px")
        return True

    def paste(self) -> bool:
        """Paste the clipboard image as a new layer (or open/add dropped files it lists)."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is not None and mime.hasImage():
            image = QGuiApplication.clipboard().image()
            if not image.isNull():
                return self.add_image_layer(rgba_from_qimage(image), "Pasted")
        if mime is not None and mime.hasUrls():
            paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if paths:
                self.handle_drop(paths, as_layers=True)  # Paste adds layers, as its name says
                return True
        self._status("The clipboard holds no image.")
        return False

    def add_image_layer(self, pixels: np.ndarray, name: str) -> bool:
        """Add pixels as a new layer, centred on the canvas; a new document if none is open."""
        doc = self.document
        if doc is None:
            from canvasai.formats.image_io import document_from_layers

            h, w = pixels.shape[:2]
            try:
                new = document_from_layers(w, h, [image_to_layer(pixels, name)], 0)
            except Exception as exc:  # noqa: BLE001 - size errors become a message
                self._fail("Could not paste", str(exc))
                return False
            self._adopt_document(new, None)
            return True
        h, w = pixels.shape[:2]
        x, y = (doc.width - w) // 2, (doc.height - h) // 2
        layer = image_to_layer(
            pixels, name, max(x, 0) if w <= doc.width else x, max(y, 0) if h <= doc.height else y
        )
        doc.add_layer(layer=layer)
        self._status(f"Added layer “{layer.name}”")
        return True

    # -- drag and drop -------------------------------------------------------------------------
    def handle_drop(self, paths: list[str], as_layers: bool = False) -> None:
        """Dropped (or pasted) image and .ora files, each read on the worker thread.

        A drop opens each file in a tab of its own, as File ▸ Open does (a file open
        already is switched to; the untouched blank document a start shows gives its tab
        up). With `as_layers` (Shift held while dropping, or Edit ▸ Paste of copied files)
        they become new layers of the shown document, each flattened and centred; with no
        document open the first one is opened and the rest are added to it. A window
        without tabs does the same as `as_layers`.
        """
        paths = [p for p in paths if Path(p).suffix.lower() in IMAGE_SUFFIXES | {".ora"}]
        if not paths:
            self._status("Drop PNG, JPEG, WebP, TIFF, BMP or .ora files.")
            return
        if not as_layers and getattr(self.window, "add_document", None) is not None:
            for p in paths:
                self.open_path(p)
            if self.busy:  # the Opening… progress shows; say how to get layers instead
                n = len(paths)
                self._status(f"Opening {n} file{'s' if n != 1 else ''} in new tabs (hold "
                             "Shift while dropping to add them as layers)")
            return
        if self.document is None:
            first, rest = paths[0], paths[1:]

            def opened(_doc: object) -> None:
                self.opened.disconnect(opened)
                for p in rest:
                    self._add_file_as_layer(p)

            if rest:
                self.opened.connect(opened)
            self.open_path(first)
            return
        for p in paths:
            self._add_file_as_layer(p)

    def _add_file_as_layer(self, path: str) -> None:
        def work(_progress: object) -> np.ndarray:
            d = read_any(path)
            return composite_layers(d.layers, d.rect)

        def done(pixels: np.ndarray) -> None:
            self._hide_progress()
            self.add_image_layer(pixels, Path(path).stem)

        self._show_progress("Loading")
        self.runner.start(work, done, lambda msg: self._fail("Could not add the file", msg))

    # -- autosave and recovery ---------------------------------------------------------------
    def set_autosave_interval(self, seconds: float) -> None:
        self.autosave_s = max(1.0, float(seconds))
        self.timer.start(int(self.autosave_s * 1000))

    def needs_autosave(self, doc: Document | None = None) -> bool:
        """Whether `doc` (default: the shown one) changed since it was last written."""
        doc = doc if doc is not None else self.document
        if doc is None:
            return False
        return self._files_of(doc).on_disk != doc.history.revision

    def _recovery_snapshot(self, doc: Document) -> Document:
        """What `doc`'s recovery file holds: the document as it is, except a layer that a
        pending transform lifted a piece out of, which is written as it was before the
        lift (the piece is not applied yet; a crash now must not leave a hole)."""
        snap = snapshot_document(doc)
        canvas = getattr(self.window, "canvas", None)
        before = canvas.unsettled_layers() if doc is self.document and canvas is not None else {}
        for layer in snap.layers:
            if layer.id in before:
                layer.surface = before[layer.id].snapshot()
        return snap

    def autosave_now(self) -> bool:
        """Write the recovery file of every open document that changed since its last
        autosave or save (each tab's, shown or not), in one background job."""
        if self._autosave_running or self._closing:
            return False
        due = [(doc, path) for doc, path in self._open_documents() if self.needs_autosave(doc)]
        if not due:
            return False
        jobs = []
        for doc, path in due:
            state = self._files_of(doc)
            title = Path(path).name if path else "Untitled"
            jobs.append((state, self._recovery_snapshot(doc), path, doc.history.revision,
                         title))
        self._autosave_running = True

        def work(_progress: object) -> None:
            for _state, snap, path, revision, title in jobs:
                _state.recovery.write(snap, path, revision, title)

        def done(_result: object) -> None:
            self._autosave_running = False
            for state, _snap, _path, revision, _title in jobs:
                state.on_disk = revision
            for _state, _snap, _path, revision, _title in jobs:
                self.autosaved.emit(revision)

        def failed(msg: str) -> None:
            self._autosave_running = False
            log.warning("autosave failed: %s", msg)
            self._status(f"Autosave failed: {msg}", 10000)

        self.runner.start(work, done, failed)
        return True

    def recoverable(self) -> list[RecoveryEntry]:
        return list_recoverable(self.recovery.directory, exclude=self.recovery)

    def check_recovery(self) -> QMessageBox | None:
        """After the window shows: offer to restore a document that was not closed normally.

        Non-blocking (a window-modal box); returns it, or None when there is nothing to offer.
        """
        entries = self.recoverable()
        if not entries:
            return None
        entry = entries[0]
        more = len(entries) - 1
        text = (
            f"CanvasAI did not close normally. An autosaved copy of “{entry.display_name}” "
            f"from {entry.time_text} can be restored."
        )
        if more:
            text += f"\n\n{more} other autosaved document(s) will be offered next."
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Restore autosaved work?",
            text,
            QMessageBox.StandardButton.NoButton,
            self._parent_widget(),
        )
        box.setObjectName("recoveryDialog")
        restore_btn = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        discard_btn = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        later_btn = box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        restore_btn.setObjectName("restoreButton")
        discard_btn.setObjectName("discardButton")
        later_btn.setObjectName("laterButton")
        box.setDefaultButton(restore_btn)

        def answered(_code: int) -> None:
            clicked = box.clickedButton()
            if clicked is restore_btn:
                # each restored document gets a tab of its own; then the next is offered
                self.restore_entry(entry, self.check_recovery if more else None)
            elif clicked is discard_btn:
                discard(entry)
                if more:
                    QTimer.singleShot(0, self.check_recovery)

        box.finished.connect(answered)
        self.message_box = box
        box.open()
        return box

    def restore_entry(self, entry: RecoveryEntry,
                      then: Callable[[], object] | None = None) -> None:
        """Load a recovery file in the background and show it as a modified document
        (`then` runs once it is shown)."""
        update = self._show_progress("Restoring")

        def done(doc: Document) -> None:
            self._hide_progress()
            doc.history.clean_index = -1  # restored work is unsaved until the person saves it
            self._show_new(doc, entry.original_path)
            with contextlib.suppress(AttributeError):
                self.window.update_title()
            state = self._files_of(doc)
            try:
                state.recovery.adopt(entry)  # keep the files until our own autosave replaces them
            except OSError as exc:
                log.warning("could not adopt recovery file: %s", exc)
            state.on_disk = doc.history.revision
            self._status(f"Restored “{entry.display_name}” from {entry.time_text}")
            self.opened.emit(doc)
            if then is not None:
                QTimer.singleShot(0, then)

        self.runner.start(
            lambda progress: restore(entry, progress),
            done,
            lambda msg: self._fail("Could not restore", msg),
            update,
        )

    def on_close(self) -> None:
        """Normal close: stop autosaving, let a running save finish, remove the recovery file."""
        self._closing = True
        self.timer.stop()
        self.runner.wait(60_000)
        for state in self._docs.values():
            state.recovery.remove()
        self._docs.clear()
        self._spare.remove()
