"""The history panel: every undo step; clicking one undoes or redoes to that point."""

from __future__ import annotations

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from canvasai.document.history import History

ORIGIN_TEXT = "Original"


class HistoryPanel(QWidget):
    """Row 0 is the state before any recorded step; row i is after the i-th step.

    Steps that can be redone are shown greyed below the current one.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("historyPanel")
        self.list = QListWidget()
        self.list.setObjectName("historyList")
        self.list.itemClicked.connect(self._clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        self._history: History | None = None

    def set_history(self, history: History | None) -> None:
        if self._history is not None:
            self._history.changed.disconnect(self.refresh)
        self._history = history
        if history is not None:
            history.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        h = self._history
        if h is not None:
            done, undone = h.entries, h.redo_entries
            self.list.addItem(QListWidgetItem(ORIGIN_TEXT))
            for text in done:
                self.list.addItem(QListWidgetItem(text))
            grey = QBrush(QColor(130, 130, 130))
            for text in undone:
                item = QListWidgetItem(text)
                item.setForeground(grey)
                font = item.font()
                font.setItalic(True)
                item.setFont(font)
                self.list.addItem(item)
            current = self.list.item(len(done))
            self.list.setCurrentItem(current)
            self.list.scrollToItem(current)
        self.list.blockSignals(False)

    @property
    def current_row(self) -> int:
        return self.list.currentRow()

    def go_to(self, row: int) -> None:
        """Undo or redo until exactly `row` steps are applied."""
        h = self._history
        if h is None:
            return
        with h.changed.blocked():
            while len(h.entries) > row and h.undo():
                pass
            while len(h.entries) < row and h.redo():
                pass
        h.changed.emit()  # once, for the panel and everyone else

    def _clicked(self, item: QListWidgetItem) -> None:
        self.go_to(self.list.row(item))

