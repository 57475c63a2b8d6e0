"""Completion of ``<lora:name:weight>`` tags (A1111's convention) in a prompt box.

Typing ``<lora:`` opens a list of the LoRAs that fit the chosen model; typing filters
it, and Enter, Tab or a click writes the full tag with weight 1 (edit the number to
change it). The list of names comes from a callable, so it follows the model picker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QObject, QStringListModel, Qt
from PySide6.QtGui import QKeyEvent, QTextCursor
from PySide6.QtWidgets import QCompleter, QPlainTextEdit

#: the unfinished tag just before the cursor: "<lora:" and part of a name
_OPEN_TAG = re.compile(r"<lora:([^:<>\s]*)$", re.IGNORECASE)
_KEYS_FOR_POPUP = {Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Tab, Qt.Key.Key_Backtab,
                   Qt.Key.Key_Escape}


def open_tag(text_before_cursor: str) -> str | None:
    """The partial LoRA name being typed, or None when the cursor is not in a ``<lora:`` tag."""
    m = _OPEN_TAG.search(text_before_cursor)
    return m.group(1) if m else None


class LoraCompleter(QObject):
    """Offers LoRA names inside ``<lora:`` in `editor`."""

    def __init__(self, editor: QPlainTextEdit, names: Callable[[], Sequence[str]]) -> None:
        super().__init__(editor)
        self.editor = editor
        self._names = names
        self.model = QStringListModel(self)
        self.completer = QCompleter(self.model, self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer.setWidget(editor)
        self.completer.activated.connect(self.insert)
        editor.textChanged.connect(self._update)
        editor.installEventFilter(self)
        # our filter on the list runs before the completer's, which would hand Enter on to
        # the editor through event() (past any filter) and add a new line after the tag
        self.completer.popup().installEventFilter(self)

    def _prefix(self) -> str | None:
        cursor = self.editor.textCursor()
        block = cursor.block().text()[: cursor.positionInBlock()]
        return open_tag(block)

    def _update(self) -> None:
        prefix = self._prefix()
        popup = self.completer.popup()
        if prefix is None or not self.editor.isVisible():
            popup.hide()
            return
        names = sorted(set(self._names()), key=str.lower)
        if not names:
            popup.hide()
            return
        self.model.setStringList(names)
        self.completer.setCompletionPrefix(prefix)
        if self.completer.completionCount() == 0:
            popup.hide()
            return
        rect = self.editor.cursorRect()
        rect.setWidth(max(220, popup.sizeHintForColumn(0) + 30))
        self.completer.complete(rect)
        popup.setCurrentIndex(self.completer.completionModel().index(0, 0))

    def insert(self, name: str) -> None:
        """Replace the partial tag before the cursor with ``<lora:name:1>``."""
        prefix = self._prefix()
        if prefix is None:
            return
        cursor = self.editor.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor,
                            len(prefix))
        rest = cursor.block().text()[cursor.positionInBlock() + len(prefix):]
        closed = re.match(r"[^<>\s]*>", rest) is not None  # the tag was already closed
        cursor.insertText(name if closed else f"{name}:1>")
        self.editor.setTextCursor(cursor)
        self.completer.popup().hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        # while the list shows, Enter/Tab/Esc choose or close it and go no further
        popup = self.completer.popup()
        if ((watched is self.editor or watched is popup) and event.type() == QEvent.Type.KeyPress
                and self.completer.popup().isVisible()
                and isinstance(event, QKeyEvent) and event.key() in _KEYS_FOR_POPUP):
            if event.key() == Qt.Key.Key_Escape:
                self.completer.popup().hide()
            else:
                index = self.completer.popup().currentIndex()
                if index.isValid():
                    self.insert(str(index.data()))
            return True
        return super().eventFilter(watched, event)
