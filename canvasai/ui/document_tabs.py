"""Several open documents: one tab per document above the canvas.

`OpenDocument` is what the window keeps of each open document besides the document itself:
its file path, its compositor (the display cache is dropped while the tab is hidden), the
canvas view (zoom and position), the outpaint frame and the result it had selected in the
Results strip (drawn over the canvas again when the tab shows) when it was last shown. The
undo history, the selection, the mask and the results live in the document, so they
follow it by themselves.

`DocumentTabBar` is the strip of tabs: the file name with "•" while there are unsaved
changes, the path as tooltip, a close button on each tab, middle-click closes, tabs can be
dragged into another order. Long names are cut in the middle; when the tabs do not fit,
the bar scrolls (arrows at its end) rather than shrinking every name to a letter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QTabBar, QWidget

from canvasai.document.compositing import Compositor
from canvasai.document.document import Document

MODIFIED_MARK = "•"
UNTITLED = "Untitled"
MAX_TAB_CHARS = 40  # a longer name is cut in the middle (the tooltip has all of it)


def short_name(name: str, limit: int = MAX_TAB_CHARS) -> str:
    """`name` cut in the middle to at most `limit` characters, keeping its end (the
    extension and any version suffix), so many tabs stay readable and scroll instead."""
    if len(name) <= limit:
        return name
    tail = max(6, limit // 2 - 1)
    head = limit - tail - 1
    return f"{name[:head]}…{name[-tail:]}"


@dataclass(eq=False)
class OpenDocument:
    """One open document and what the window remembers of it while another one shows."""

    document: Document
    path: str | None = None
    untitled_number: int = 1  # "Untitled", "Untitled 2", ... for documents never saved
    compositor: Compositor | None = None
    view: tuple[float, float, float] | None = None  # zoom, offset x, offset y; None: fit
    frame: tuple[int, int, int, int] = (0, 0, 0, 0)  # outpaint margins
    #: the stored result (canvasai.generation.results entry) selected in the Results strip
    #: when another tab was shown; None: none was
    shown_result: dict[str, Any] | None = None
    on_history: Callable[[], None] | None = None  # the window's hook on its history

    @property
    def name(self) -> str:
        """The file name, or "Untitled" (numbered when there are several)."""
        if self.path:
            return Path(self.path).name
        return UNTITLED if self.untitled_number <= 1 else f"{UNTITLED} {self.untitled_number}"

    @property
    def modified(self) -> bool:
        return not self.document.history.is_clean

    @property
    def tab_text(self) -> str:
        name = short_name(self.name)
        return f"{name} {MODIFIED_MARK}" if self.modified else name

    @property
    def tooltip(self) -> str:
        where = self.path or f"{self.name} (not saved yet)"
        size = f"{self.document.width} × {self.document.height} px"
        state = "unsaved changes" if self.modified else "saved"
        return f"{where}\n{size} · {state}"

    @property
    def pristine(self) -> bool:
        """A new, untouched, never saved document (the blank one a start shows): opening a
        file takes its place instead of adding a tab beside it."""
        h = self.document.history
        return (self.path is None and h.is_clean and not h.can_undo() and not h.can_redo()
                and h.revision == 0 and not self.document.metadata)


def next_untitled_number(open_docs: list[OpenDocument]) -> int:
    """The smallest number no open untitled document uses."""
    used = {d.untitled_number for d in open_docs if not d.path}
    n = 1
    while n in used:
        n += 1
    return n


class DocumentTabBar(QTabBar):
    """The open documents as tabs. `close_requested(index)` for a tab's close button and a
    middle-click; `currentChanged` and `tabMoved` as QTabBar has them."""

    close_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("documentTabs")
        self.setTabsClosable(True)
        self.setMovable(True)
        self.setDocumentMode(True)
        self.setExpanding(False)
        self.setUsesScrollButtons(True)
        # names are cut to a readable length beforehand; past the bar's width it scrolls
        self.setElideMode(Qt.TextElideMode.ElideNone)
        self.setSelectionBehaviorOnRemove(QTabBar.SelectionBehavior.SelectPreviousTab)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the canvas
        self.setDrawBase(False)
        self.tabCloseRequested.connect(self.close_requested)

    def show_document(self, index: int, record: OpenDocument) -> None:
        """Refresh tab `index`'s title and tooltip from `record`."""
        if 0 <= index < self.count():
            if self.tabText(index) != record.tab_text:
                self.setTabText(index, record.tab_text)
            self.setTabToolTip(index, record.tooltip)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.MiddleButton:
            index = self.tabAt(event.position().toPoint())
            if index >= 0:
                self.close_requested.emit(index)
                event.accept()
                return
        super().mouseReleaseEvent(event)

    def tab_center(self, index: int) -> QPoint:
        """Where tab `index` is on the bar (tests click there)."""
        return self.tabRect(index).center()
