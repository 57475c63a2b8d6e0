"""The CanvasAI main window: canvas, docked panels, menus, shortcuts and status bar.

Public contract other parts of the app code against: `document`, `compositor`,
`document_path`, `set_document(doc, path)`, `canvas`, `menu_file`, `menu_edit`,
`menu_select`, `menu_layer`, `menu_view`, `statusBar()`, and `files` (the file
controller, when that module is present).

Several documents can be open, one tab each (`canvasai.ui.document_tabs`): `document` is
the one shown. `add_document(doc, path)` opens another tab, `set_document(doc, path)`
shows `doc` in the current tab (or switches to its tab when it is open already),
`close_tab(index)` asks about unsaved changes and closes one, `open_documents()` lists
them all. Every panel follows the shown document through `document_changed`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import (
    QByteArray,
    QPoint,
    QPointF,
    QSignalBlocker,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QDialog,
    QDockWidget,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from canvasai import __version__
from canvasai.core import settings
from canvasai.document import selection as sel
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.tools.base import BrushSettings, Tool, ToolContext
from canvasai.tools.registry import TOOL_CLASSES, make_tools
from canvasai.ui import painting_state
from canvasai.ui.canvas_widget import CanvasWidget
from canvasai.ui.color_panel import ColorPanel
from canvasai.ui.dialogs import LayerPropertiesDialog, ask_pixels
from canvasai.ui.document_tabs import DocumentTabBar, OpenDocument, next_untitled_number
from canvasai.ui.history_panel import HistoryPanel
from canvasai.ui.icons import icon
from canvasai.ui.layers_panel import LayersPanel
from canvasai.ui.new_document_dialog import NewDocumentDialog
from canvasai.ui.tools_panel import MAX_BRUSH_SIZE, ToolsPanel

APP_NAME = "CanvasAI"
STATUS_TIMEOUT_MS = 5000
BRUSH_STEP = 1.15  # [ and ] scale the brush size by this factor


CLEAR_MASK_KEY = "Ctrl+Shift+X"
DROP_HINT = "Drop to open in new tabs · hold Shift while dropping to add as layers"
MIB = 1024 * 1024


def prompts_enabled() -> bool:
    """The `ui/confirm_dialogs` setting (tests set CANVASAI_NO_PROMPTS=1 to turn it off, so
    closing never waits on a dialog)."""
    return settings.current().ui.confirm_dialogs



def initial_size(available: QSize) -> tuple[int, int]:
    """1400 x 900, or the screen's available area when smaller (a 1366 x 768 laptop): a
    window larger than the screen clips its right-hand panels."""
    w, h = available.width(), available.height()
    if w <= 0 or h <= 0:
        return 1400, 900
    return min(1400, w), min(900, h)

def _same_file_key(path: str | Path) -> str:
    """How two paths to the same file compare equal (symlinks and case rules resolved)."""
    try:
        return os.path.normcase(str(Path(path).resolve()))
    except OSError:
        return os.path.normcase(os.path.abspath(str(path)))


@contextmanager
def _blocked(widget: QWidget) -> Iterator[None]:
    """No signals from `widget` meanwhile (the window changes the tabs itself)."""
    blocker = QSignalBlocker(widget)
    try:
        yield
    finally:
        blocker.unblock()


class MainWindow(QMainWindow):
    """The application window. `document_changed(doc)` fires after `set_document` rewired everything
    (the generation controller and others follow the current document through it)."""

    document_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowIcon(icon("canvasai"))
        self.resize(*initial_size(self.screen().availableGeometry().size()))
        self.setAcceptDrops(True)
        self.document: Document | None = None
        self.compositor: Compositor | None = None
        self.brush = BrushSettings(pressure_curve=settings.current().editing.pressure_curve)
        self.tools: dict[str, Tool] = {}
        self.tool_context: ToolContext | None = None
        self.current_tool_name = "brush"
        self._hidden_docks: list[QDockWidget] = []
        self._model_settings = settings.current().models

        self.documents: list[OpenDocument] = []  # in tab order
        self._current: OpenDocument | None = None
        self.canvas = CanvasWidget()
        self.tab_bar = DocumentTabBar()
        self.tab_bar.currentChanged.connect(self._tab_selected)
        self.tab_bar.tabMoved.connect(self._tab_moved)
        self.tab_bar.close_requested.connect(self.close_tab)
        self.tab_bar.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tab_bar.customContextMenuRequested.connect(self._tab_menu_at)
        self.tab_bar.hide()
        central = QWidget()
        central.setObjectName("documentArea")
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.tab_bar)
        column.addWidget(self.canvas, 1)
        self.setCentralWidget(central)
        self.tools_panel = ToolsPanel(TOOL_CLASSES, self.brush)
        self.color_panel = ColorPanel()
        self.layers_panel = LayersPanel()
        self.history_panel = HistoryPanel()
        self.docks: dict[str, QDockWidget] = {}
        # Left column: tools, colours, history. Right column: layers (and whatever
        # other controllers, e.g. generation, add there).
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        # Side columns run the full height; bottom docks (e.g. results) sit under the canvas.
        self.setCorner(Qt.Corner.BottomLeftCorner, left)
        self.setCorner(Qt.Corner.BottomRightCorner, right)
        self.add_dock("tools", "Tools", self.tools_panel, left)
        self.add_dock("colors", "Colour", self.color_panel, left)
        self.add_dock("history", "History", self.history_panel, left)
        self.add_dock("layers", "Layers", self.layers_panel, right)
        self.resizeDocks([self.docks["tools"], self.docks["layers"]], [250, 290],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["tools"], self.docks["colors"], self.docks["history"]],
                         [380, 100, 260], Qt.Orientation.Vertical)

        self._build_status_bar()
        self._connect_panels()
        painting_state.restore(self.brush, self.color_panel, self.tools_panel)
        self._build_menus()
        from canvasai.ui.file_actions import FileController

        self.files = FileController(self)
        from canvasai.ui.credentials_panel import install_credentials_panel
        from canvasai.ui.preferences_dialog import install_preferences_action

        install_credentials_panel(self)  # Content Credentials of opened images
        install_preferences_action(self)  # Edit > Preferences…
        from canvasai.ui.models_window import install_models_menu

        install_models_menu(self)  # Models: the Models window, downloads, setup
        self._finish_file_menu()
        self.select_tool(self.current_tool_name)
        self._update_title()
        self._restore_geometry()

    # -- construction --------------------------------------------------------------------------
    def add_dock(self, name: str, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        """Add a panel as a dock (also used by the generation controller); Tab hides it too."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        self.docks[name] = dock
        return dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.zoom_label = QLabel()
        self.position_label = QLabel()
        self.size_label = QLabel()
        for label, width in ((self.position_label, 110), (self.zoom_label, 90),
                             (self.size_label, 120)):
            label.setMinimumWidth(width)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            bar.addPermanentWidget(label)
        self.canvas.zoom_changed.connect(self._show_zoom)
        self.canvas.cursor_moved.connect(self._show_position)
        self.canvas.cursor_left.connect(lambda: self.position_label.setText(""))
        self._show_zoom(self.canvas.zoom)

    def _connect_panels(self) -> None:
        self.tools_panel.tool_selected.connect(self.select_tool)
        self.tools_panel.brush_changed.connect(self.canvas.refresh_brush_outline)
        self.tools_panel.tolerance_changed.connect(self._set_tolerance)
        self.color_panel.colors_changed.connect(self._colors_changed)

    def _action(self, menu: QMenu | None, text: str, slot: Callable[[], object],
                shortcuts: str | list[str] | None = None, name: str | None = None) -> QAction:
        action = QAction(text, self)
        if shortcuts:
            keys = [shortcuts] if isinstance(shortcuts, str) else shortcuts
            action.setShortcuts([QKeySequence(k) for k in keys])
        action.triggered.connect(lambda _checked=False: slot())
        if name:
            action.setObjectName(name)
            self.actions_by_name[name] = action
        if menu is not None:
            menu.addAction(action)
        else:
            self.addAction(action)
        return action

    def _build_menus(self) -> None:
        self.actions_by_name: dict[str, QAction] = {}
        mb = self.menuBar()
        self.menu_file = mb.addMenu("&File")
        self.menu_edit = mb.addMenu("&Edit")
        self.menu_select = mb.addMenu("&Select")
        self.menu_layer = mb.addMenu("&Layer")
        self.menu_tools = mb.addMenu("&Tools")
        self.menu_view = mb.addMenu("&View")
        self.menu_help = mb.addMenu("&Help")

        a = self._action
        a(self.menu_file, "&New…", self.new_document, "Ctrl+N", "new")
        self.menu_file.addSeparator()

        self.undo_action = a(self.menu_edit, "&Undo", self.undo, "Ctrl+Z", "undo")
        self.redo_action = a(self.menu_edit, "&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "redo")
        self.menu_edit.addSeparator()
        a(self.menu_edit, "Clear &mask", self._doc_op(sel.clear_mask), CLEAR_MASK_KEY, "clear_mask")
        self.clear_mask_on_accept_action = a(
            self.menu_edit, "Clear mask after &Accept", lambda: None, None, "clear_mask_on_accept")
        self.clear_mask_on_accept_action.setCheckable(True)
        self.clear_mask_on_accept_action.setChecked(settings.current().ui.clear_mask_after_accept)
        self.clear_mask_on_accept_action.setToolTip(
            "Accepting an inpaint, edit or sketch result clears the mask it used (one undo step)")
        self.clear_mask_on_accept_action.toggled.connect(
            lambda on: settings.update(**{"ui/clear_mask_after_accept": bool(on)}))
        self.menu_edit.aboutToShow.connect(  # Preferences may have changed it
            lambda: self.clear_mask_on_accept_action.setChecked(
                settings.current().ui.clear_mask_after_accept))

        m = self.menu_select
        a(m, "Select &all", self._doc_op(sel.select_all), "Ctrl+A", "select_all")
        a(m, "Select &none", self._doc_op(sel.select_none), "Ctrl+Shift+A", "select_none")
        a(m, "&Invert selection", self._doc_op(sel.invert_selection), "Ctrl+I", "invert_selection")
        m.addSeparator()
        a(m, "&Grow…", lambda: self._morph("Grow selection", sel.grow_selection), None, "grow")
        a(m, "&Shrink…", lambda: self._morph("Shrink selection", sel.shrink_selection), None,
          "shrink")
        a(m, "&Feather…", lambda: self._morph("Feather selection", sel.feather_selection), None,
          "feather")
        m.addSeparator()
        a(m, "Selection to mas&k", self._doc_op(sel.selection_to_mask), None, "selection_to_mask")
        a(m, "Mask to se&lection", self._doc_op(sel.mask_to_selection), None, "mask_to_selection")

        lp = self.layers_panel
        m = self.menu_layer
        a(m, "&New layer", lp.add_layer, "Ctrl+Shift+N", "new_layer")
        a(m, "&Duplicate layer", lp.duplicate_layer, "Ctrl+J", "duplicate_layer")
        a(m, "De&lete layer", lp.delete_layer, None, "delete_layer")
        m.addSeparator()
        a(m, "Move layer &up", lambda: lp.move_active(+1), "Ctrl+]", "layer_up")
        a(m, "Move layer do&wn", lambda: lp.move_active(-1), "Ctrl+[", "layer_down")
        m.addSeparator()
        a(m, "&Merge down", lp.merge_down, "Ctrl+E", "merge_down")
        a(m, "&Flatten image", lp.flatten, None, "flatten")
        m.addSeparator()
        a(m, "Layer &properties…", self.edit_layer_properties, None, "layer_properties")

        m = self.menu_tools
        for cls in TOOL_CLASSES:
            act = a(m, cls.label, lambda n=cls.name: self.select_tool(n), cls.shortcut or None,
                    f"tool_{cls.name}")
            act.setIcon(self.tools_panel.buttons[cls.name].icon())
        m.addSeparator()
        a(m, "Smaller brush", lambda: self.scale_brush(1 / BRUSH_STEP), "[", "brush_smaller")
        a(m, "Larger brush", lambda: self.scale_brush(BRUSH_STEP), "]", "brush_larger")
        a(m, "Swap colours", self.color_panel.swap, "X", "swap_colors")
        a(m, "Default colours", self.color_panel.reset, "D", "reset_colors")

        c = self.canvas
        m = self.menu_view
        a(m, "Zoom &in", c.zoom_in, ["Ctrl++", "Ctrl+="], "zoom_in")
        a(m, "Zoom &out", c.zoom_out, "Ctrl+-", "zoom_out")
        a(m, "&Fit in window", c.fit_to_view, "Ctrl+0", "zoom_fit")
        a(m, "&Actual pixels (100 %)", c.actual_pixels, "Ctrl+1", "zoom_100")
        m.addSeparator()
        self.mask_tint_action = a(m, "Show &mask tint", lambda: None, "Ctrl+Shift+H", "mask_tint")
        self.mask_tint_action.setCheckable(True)
        self.mask_tint_action.setChecked(True)
        self.mask_tint_action.toggled.connect(self.canvas.set_mask_visible)
        a(m, "Show/hide &panels", self.toggle_panels, "Tab", "toggle_panels")
        panels = m.addMenu("Panels")
        for dock in self.docks.values():
            panels.addAction(dock.toggleViewAction())

        m.addSeparator()
        a(m, "&Next document", lambda: self.step_document(+1),
          ["Ctrl+Tab", "Ctrl+PgDown"], "next_document")
        a(m, "&Previous document", lambda: self.step_document(-1),
          ["Ctrl+Shift+Tab", "Ctrl+Shift+Backtab", "Ctrl+PgUp"], "previous_document")

        a(self.menu_help, "&About CanvasAI", self.show_about, None, "about")

    def _finish_file_menu(self) -> None:
        self.menu_file.addSeparator()
        self._action(self.menu_file, "&Quit", self.close, "Ctrl+Q", "quit")

    # -- documents -----------------------------------------------------------------------------
    @property
    def document_path(self) -> str | None:
        return self._current.path if self._current is not None else None

    @document_path.setter
    def document_path(self, path: str | None) -> None:
        if self._current is not None:
            self._current.path = path
        self.update_title()

    def open_documents(self) -> list[tuple[Document, str | None]]:
        """Every open document with its file path, in tab order."""
        return [(r.document, r.path) for r in self.documents]

    @property
    def current_index(self) -> int:
        """The shown document's tab (-1 when none is open)."""
        return self.documents.index(self._current) if self._current is not None else -1

    def index_of(self, doc: Document) -> int:
        return next((i for i, r in enumerate(self.documents) if r.document is doc), -1)

    def index_of_path(self, path: str | Path) -> int:
        """The tab of the file at `path` (-1 if it is not open)."""
        want = _same_file_key(path)
        return next((i for i, r in enumerate(self.documents)
                     if r.path and _same_file_key(r.path) == want), -1)

    def document_name(self, doc: Document) -> str:
        """What `doc`'s tab calls it ("a.ora", "Untitled 2")."""
        i = self.index_of(doc)
        return self.documents[i].name if i >= 0 else "a closed document"

    def set_path_of(self, doc: Document, path: str | None) -> None:
        """`doc` is now the file at `path` (after Save as, also while another tab shows)."""
        i = self.index_of(doc)
        if i >= 0:
            self.documents[i].path = path
            self._refresh_tab(i)
            self._update_title()

    def set_document(self, doc: Document | None, path: str | None = None) -> None:
        """Show `doc` in the current tab (a first tab when none is open): the canvas, panels
        and tools follow it. A document open in another tab is switched to instead; None
        closes the current tab without asking."""
        if doc is None:
            if self._current is not None:
                self._remove_tab(self.current_index)
            return
        i = self.index_of(doc)
        if i >= 0:
            self.documents[i].path = path
            self.switch_to(i)
            self._refresh_tab(i)
            self._update_title()
            return
        if self._current is None:
            self.add_document(doc, path)
            return
        old = self._current
        self._closing(old.document)
        self._forget(old)
        record = self._record(doc, path)
        record.untitled_number = old.untitled_number if not path else 1
        i = self.documents.index(old)
        self.documents[i] = record
        self._current = None  # nothing to remember of the replaced document
        self._show(record)
        self._refresh_tab(i)

    def add_document(self, doc: Document, path: str | None = None,
                     replace_blank: bool = True) -> None:
        """Open `doc` in a tab of its own and show it. With `replace_blank` (opening a file),
        a blank document nobody touched yet (the one a start shows) gives its tab up."""
        i = self.index_of(doc)
        if i >= 0:
            self.switch_to(i)
            return
        if (replace_blank and self._current is not None and self._current.pristine
                and not self.has_jobs(self._current.document)):
            self.set_document(doc, path)
            return
        record = self._record(doc, path)
        self.documents.append(record)
        with _blocked(self.tab_bar):
            self.tab_bar.addTab(record.tab_text)
        self.tab_bar.show()
        self.switch_to(len(self.documents) - 1)

    def switch_to(self, index: int) -> None:
        """Show the document of tab `index` (its view, frame, panels and results)."""
        if not 0 <= index < len(self.documents):
            return
        record = self.documents[index]
        if record is not self._current:
            self._remember_view()
            self._show(record)
        if self.tab_bar.currentIndex() != index:
            with _blocked(self.tab_bar):
                self.tab_bar.setCurrentIndex(index)
        self._refresh_tab(index)

    def step_document(self, delta: int) -> None:
        """Ctrl+Tab / Ctrl+Shift+Tab: the next or previous tab, round the end."""
        n = len(self.documents)
        if n > 1:
            self.switch_to((self.current_index + delta) % n)

    def close_tab(self, index: int | None = None, ask: bool = True) -> bool:
        """Close tab `index` (default: the shown one), offering to save unsaved changes
        first (not with `ask` False: the caller asked already). False when the person
        cancelled."""
        index = self.current_index if index is None else index
        if not 0 <= index < len(self.documents):
            return True
        record = self.documents[index]
        if ask and record.modified and prompts_enabled():
            self.switch_to(index)  # they see what they are asked about
            if not self.maybe_save():
                return False
        self._remove_tab(self.documents.index(record))
        return True

    def close_all(self) -> bool:
        """Offer to save each modified document (the window closes); False if cancelled."""
        for record in list(self.documents):
            if record not in self.documents:  # closed meanwhile (saved over by another)
                continue
            if record.modified and prompts_enabled():
                self.switch_to(self.documents.index(record))
                if not self.maybe_save():
                    return False
        return True

    def _remove_tab(self, index: int) -> None:
        record = self.documents[index]
        self._closing(record.document)
        shown = record is self._current
        self._forget(record)
        del self.documents[index]
        with _blocked(self.tab_bar):
            self.tab_bar.removeTab(index)
        if not shown:
            return
        self._current = None
        if self.documents:
            self.switch_to(min(index, len(self.documents) - 1))  # the tab that took its place
        else:
            self.tab_bar.hide()
            self._show(None)

    def _record(self, doc: Document, path: str | None) -> OpenDocument:
        record = OpenDocument(doc, path, next_untitled_number(self.documents))
        doc.history.budget = settings.current().editing.undo_mb * MIB

        def changed(r: OpenDocument = record) -> None:
            if r in self.documents:
                self._refresh_tab(self.documents.index(r))

        record.on_history = changed
        doc.history.changed.connect(changed)
        return record

    def _forget(self, record: OpenDocument) -> None:
        """`record` is no longer open: drop what ties it to the window."""
        if record.on_history is not None:
            record.document.history.changed.disconnect(record.on_history)
            record.on_history = None
        record.compositor = None

    def _remember_view(self) -> None:
        """Keep the shown document's view and outpaint frame; drop its display cache."""
        record = self._current
        if record is None:
            return
        v = self.canvas.view
        record.view = (v.zoom, v.offset.x(), v.offset.y())
        gen = getattr(self, "generation", None)
        frame = getattr(gen, "frame", None)
        if frame is not None:
            record.frame = tuple(frame.margins)  # type: ignore[assignment]
        strip = getattr(gen, "strip", None)
        record.shown_result = None
        if strip is not None and 0 <= strip.current_index() < len(strip.candidates):
            record.shown_result = strip.candidates[strip.current_index()].entry
        if record.compositor is not None:
            record.compositor.invalidate()  # a hidden document keeps no composite tiles

    def _show(self, record: OpenDocument | None) -> None:
        """Rewire the canvas, panels and tools to `record`'s document (None: no document)."""
        old = self.document
        if old is not None:
            old.history.changed.disconnect(self._history_changed)
            old.size_changed.disconnect(self._show_size)
        self._current = record
        doc = record.document if record is not None else None
        self.document = doc
        if record is None or doc is None:
            self.compositor = None
            self.tool_context = None
            self.tools = {}
        else:
            if record.compositor is None:
                record.compositor = Compositor(doc)
            self.compositor = record.compositor
            self.tool_context = ToolContext(
                doc, self.compositor, brush=self.brush,
                foreground=self.color_panel.foreground, background=self.color_panel.background,
                fill_tolerance=self.tools_panel.tolerance.value(), status=self.show_status,
                on_color_picked=self.color_panel.set_foreground)
            self.tools = make_tools(self.tool_context)
            doc.history.changed.connect(self._history_changed)
            doc.size_changed.connect(self._show_size)
        self.canvas.set_document(doc, self.compositor)
        self.canvas.set_tool(self.tools.get(self.current_tool_name))
        self.canvas.eraser_for = self._eraser_for
        self.layers_panel.set_document(doc)
        self.history_panel.set_history(doc.history if doc is not None else None)
        self._show_size()
        self._history_changed()
        self.document_changed.emit(doc)
        if record is not None:
            self._restore_view(record)

    def _restore_view(self, record: OpenDocument) -> None:
        """The outpaint frame, view and selected result `record` had when it was last
        shown (the selected result is drawn over the canvas again, as the strip shows it)."""
        gen = getattr(self, "generation", None)
        frame = getattr(gen, "frame", None)
        if frame is not None and any(record.frame):
            frame.set(*record.frame)
        shown, record.shown_result = record.shown_result, None
        strip = getattr(gen, "strip", None)
        if shown is not None and strip is not None:
            index = next((i for i, c in enumerate(strip.candidates) if c.entry is shown), -1)
            if index >= 0:  # gone if it was accepted or discarded meanwhile
                strip.select(index)  # the controller shows it (strip.selected)
        if record.view is not None and self.canvas.isVisible():
            zoom, x, y = record.view
            self.canvas.view.zoom = zoom
            self.canvas.view.offset = QPointF(x, y)
            self.canvas.pan_by(0, 0)  # repaint, and the zoom label follows

    def tab_menu(self, index: int) -> QMenu:
        """A tab's right-click menu: Close, Close other tabs, Copy file path."""
        menu = QMenu(self)
        menu.setObjectName("tabMenu")
        record = self.documents[index]
        menu.addAction("Close", lambda: self.close_tab(self.documents.index(record)))
        others = menu.addAction("Close other tabs", lambda: self.close_others(record))
        others.setEnabled(len(self.documents) > 1)
        copy = menu.addAction("Copy file path",
                              lambda: QApplication.clipboard().setText(record.path or ""))
        copy.setEnabled(bool(record.path))
        return menu

    def close_others(self, keep: OpenDocument) -> bool:
        """Close every tab but `keep`'s (each modified one asks); False if cancelled."""
        for record in [r for r in self.documents if r is not keep]:
            if record in self.documents and not self.close_tab(self.documents.index(record)):
                return False
        return True

    def _tab_menu_at(self, pos: QPoint) -> None:
        index = self.tab_bar.tabAt(pos)
        if index >= 0:
            self.tab_menu(index).exec(self.tab_bar.mapToGlobal(pos))

    def _tab_selected(self, index: int) -> None:
        self.switch_to(index)

    def _tab_moved(self, old: int, new: int) -> None:
        self.documents.insert(new, self.documents.pop(old))

    def _refresh_tab(self, index: int) -> None:
        if 0 <= index < len(self.documents):
            self.tab_bar.show_document(index, self.documents[index])

    def has_jobs(self, doc: Document) -> bool:
        """Whether a generation job of `doc` is being prepared, running or waiting."""
        has_jobs = getattr(getattr(self, "generation", None), "has_jobs", None)
        return bool(has_jobs is not None and has_jobs(doc))

    def _closing(self, doc: Document) -> None:
        """`doc` leaves the window: its recovery file goes, its jobs are cancelled."""
        files = getattr(self, "files", None)
        if files is not None:
            files.document_closed(doc)
        closed = getattr(getattr(self, "generation", None), "document_closed", None)
        if closed is not None:
            closed(doc)

    def apply_settings(self, s: settings.Settings | None = None) -> None:
        """Put changed preferences to work at once (Preferences ▸ OK or Apply)."""
        s = s or settings.current()
        self.brush.pressure_curve = s.editing.pressure_curve
        for record in self.documents:
            record.document.history.budget = s.editing.undo_mb * MIB
        self.files.set_autosave_interval(s.files.autosave_s)
        self.clear_mask_on_accept_action.setChecked(s.ui.clear_mask_after_accept)
        gen = getattr(self, "generation", None)
        if gen is not None and s.models != self._model_settings:
            gen.refresh_models()  # other folders: the picker lists what they hold
        self._model_settings = s.models

    def is_modified(self) -> bool:
        return self.document is not None and not self.document.history.is_clean

    def _update_title(self) -> None:
        if self.document is None:
            self.setWindowTitle(APP_NAME)
            return
        name = self._current.name if self._current is not None else "Untitled"
        star = "*" if self.is_modified() else ""
        self.setWindowTitle(f"{name}{star} — {APP_NAME}")
        self._refresh_tab(self.current_index)

    def update_title(self) -> None:
        """Refresh the title and tabs (e.g. after the file controller saved and marked
        history clean)."""
        for i in range(len(self.documents)):
            self._refresh_tab(i)
        self._update_title()

    def _history_changed(self) -> None:
        h = self.document.history if self.document is not None else None
        self.undo_action.setEnabled(bool(h and h.can_undo()))
        self.redo_action.setEnabled(bool(h and h.can_redo()))
        self.undo_action.setText(f"&Undo {h.undo_text()}" if h and h.can_undo() else "&Undo")
        self.redo_action.setText(f"&Redo {h.redo_text()}" if h and h.can_redo() else "&Redo")
        self._update_title()

    def new_document(self) -> None:
        dialog = NewDocumentDialog(self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.add_document(dialog.create_document(), replace_blank=False)  # a tab of its own

    def maybe_save(self) -> bool:
        """Offer to save the shown document's unsaved changes. False means the person
        cancelled."""
        if not self.is_modified() or not prompts_enabled():
            return True
        buttons = (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                   | QMessageBox.StandardButton.Cancel)
        name = self._current.name if self._current is not None else "Untitled"
        # with several open, say which (not every window manager shows a dialog's title)
        text = (f"“{name}” has unsaved changes." if len(self.documents) > 1
                else "The document has unsaved changes.")
        answer = QMessageBox.question(self, f"Save changes to “{name}”? — {APP_NAME}", text,
                                      buttons, QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Cancel:
            return False
        if answer == QMessageBox.StandardButton.Save:
            return self.files.save() is not False and not self.is_modified()
        return True

    # -- actions -------------------------------------------------------------------------------
    def _doc_op(self, op: Callable[[Document], object]) -> Callable[[], None]:
        def run() -> None:
            if self.document is not None:
                op(self.document)
        return run

    def _morph(self, title: str, op: Callable[[Document, int], object]) -> None:
        doc = self.document
        if doc is None:
            return
        if doc.selection is None:
            self.show_status("Nothing is selected.")
            return
        amount = ask_pixels(self, title, "Amount in pixels:")
        if amount is not None:
            op(doc, amount)

    def undo(self) -> None:
        if self.document is not None:
            if self.canvas.cancel_transform():  # a pending transform: Undo cancels it, no more
                return
            self.canvas.cancel_stroke()  # a half-done stroke is not in the history yet
            self.document.undo()

    def redo(self) -> None:
        if self.document is not None:
            self.canvas.cancel_stroke()
            self.document.redo()

    def select_tool(self, name: str) -> None:
        if name not in {cls.name for cls in TOOL_CLASSES}:
            raise ValueError(f"unknown tool {name!r}")
        self.current_tool_name = name
        self.tools_panel.set_current_tool(name)
        self.canvas.set_tool(self.tools.get(name))
        label = next(cls.label for cls in TOOL_CLASSES if cls.name == name)
        self.show_status(label)

    def _eraser_for(self, tool: Tool) -> Tool | None:
        """The pen's eraser end erases paint with paint tools and the mask with mask tools."""
        if tool.name in ("mask_brush", "mask_eraser"):
            return self.tools.get("mask_eraser")
        if tool.name in ("brush", "eraser"):
            return self.tools.get("eraser")
        return None

    @property
    def current_tool(self) -> Tool | None:
        return self.tools.get(self.current_tool_name)

    def scale_brush(self, factor: float) -> None:
        old = self.brush.size
        new = old * factor
        # always move by at least one pixel so small brushes still change
        new = max(old + 1, round(new)) if factor > 1 else min(old - 1, round(new))
        self.brush.size = float(max(1, min(MAX_BRUSH_SIZE, new)))
        self.tools_panel.sync_from_brush()
        self.canvas.refresh_brush_outline()
        self.show_status(f"Brush size {self.brush.size:g} px")

    def _colors_changed(self, fg: tuple, bg: tuple) -> None:
        if self.tool_context is not None:
            self.tool_context.foreground = tuple(fg)  # type: ignore[assignment]
            self.tool_context.background = tuple(bg)  # type: ignore[assignment]

    def _set_tolerance(self, value: int) -> None:
        if self.tool_context is not None:
            self.tool_context.fill_tolerance = int(value)

    def edit_layer_properties(self) -> None:
        doc = self.document
        layer = doc.active_layer if doc is not None else None
        if doc is None or layer is None:
            return
        dialog = LayerPropertiesDialog(layer, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            changes = dialog.changes()
            if changes:
                doc.set_layer_properties(layer, **changes)

    def toggle_panels(self) -> None:
        """Tab: hide every visible panel, or bring back the ones hidden that way.

        While the person is typing in a field, Tab keeps its usual meaning (next field).
        """
        focused = QApplication.focusWidget()
        if isinstance(focused, (QLineEdit, QAbstractSpinBox, QPlainTextEdit, QTextEdit)):
            self.focusNextChild()
            return
        if self._hidden_docks:
            for dock in self._hidden_docks:
                dock.show()
            self._hidden_docks = []
            return
        self._hidden_docks = [d for d in self.docks.values() if d.isVisible()]
        for dock in self._hidden_docks:
            dock.hide()
        self.canvas.setFocus()

    @property
    def panels_hidden(self) -> bool:
        return bool(self._hidden_docks)

    def show_about(self) -> None:
        QMessageBox.about(
            self, f"About {APP_NAME}",
            f"<h3>{APP_NAME} {__version__}</h3>"
            "<p>Painting and iterative AI editing on a layered canvas.</p>"
            "<p>Without any installed model, generation uses the classic OpenCV backend "
            "(Telea/Navier–Stokes inpainting, infill, Lanczos upscaling): it works offline "
            "and is honest about being no diffusion model.</p>")

    # -- status bar ----------------------------------------------------------------------------
    def show_status(self, message: str) -> None:
        self.statusBar().showMessage(message, STATUS_TIMEOUT_MS)

    def _show_zoom(self, zoom: float) -> None:
        self.zoom_label.setText(f"{zoom * 100:.0f} %" if zoom >= 0.1 else f"{zoom * 100:.1f} %")

    def _show_position(self, x: float, y: float) -> None:
        self.position_label.setText(f"{int(x // 1)}, {int(y // 1)}")

    def _show_size(self) -> None:
        doc = self.document
        self.size_label.setText(f"{doc.width} × {doc.height} px" if doc is not None else "")

    # -- window events -------------------------------------------------------------------------
    # -- layout kept between sessions ----------------------------------------------------------
    def _restore_geometry(self) -> None:
        """The size and place the window had when it was last closed."""
        saved = settings.current().ui.window_geometry
        if saved:
            self.restoreGeometry(QByteArray.fromBase64(saved.encode("ascii")))

    def restore_layout(self) -> bool:
        """The docks as they were at the last close (run once every dock exists: the
        generation panels are added after the window is shown)."""
        saved = settings.current().ui.window_state
        return bool(saved) and self.restoreState(QByteArray.fromBase64(saved.encode("ascii")))

    def save_layout(self) -> None:
        """Remember the window's size, place and docks (and the brush and colours) for the
        next start."""
        painting_state.remember(self.brush, self.color_panel)
        settings.update(**{
            "ui/window_geometry": bytes(self.saveGeometry().toBase64().data()).decode("ascii"),
            "ui/window_state": bytes(self.saveState().toBase64().data()).decode("ascii"),
        })

    def showEvent(self, event: object) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)  # type: ignore[arg-type]
        if not getattr(self, "_recovery_checked", False):
            # after the docks added once the window shows, and after their own first
            # arrangement (also a zero-delay timer): hence two turns of the event loop
            QTimer.singleShot(0, lambda: QTimer.singleShot(0, self.restore_layout))
            self._recovery_checked = True
            QTimer.singleShot(0, self.files.check_recovery)
            from canvasai.ui.first_run import maybe_show_first_run

            QTimer.singleShot(0, lambda: maybe_show_first_run(self))  # once; skippable

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.setDropAction(Qt.DropAction.CopyAction)  # never a move: the file stays
            event.accept()
            self.show_status(DROP_HINT)
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        """Dropped image and .ora files open in tabs of their own, as File ▸ Open does (a
        file open already is switched to); with Shift held they are added as layers of
        the shown document instead, as Edit ▸ Paste does. Read in the background."""
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            event.ignore()
            return
        # a copy, whatever the keys held: a move would let the file manager delete the file
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        as_layers = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        self.files.handle_drop(paths, as_layers=as_layers)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self.close_all():
            event.ignore()
            return
        for dock in self._hidden_docks:  # keep the docks, not the Tab-hidden view
            dock.show()
        self._hidden_docks = []
        self.save_layout()
        self.files.on_close()
        event.accept()
