"""The generation history panel: past jobs of this document, to run again with the same settings."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from canvasai.document.document import Document
from canvasai.generation.history import entries, params_from
from canvasai.ui.images import thumbnail


class GenerationHistoryPanel(QWidget):
    reuse_requested = Signal(object, str)  # FlowParams, flow

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._doc: Document | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.list = QListWidget()
        self.list.setIconSize(thumbnail(np.zeros((1, 1, 4), np.uint8), 48).size().expandedTo(
            self.list.iconSize()))
        self.list.itemDoubleClicked.connect(lambda _it: self._reuse())
        lay.addWidget(self.list)
        self.reuse_button = QPushButton("Use these settings again")
        self.reuse_button.clicked.connect(self._reuse)
        lay.addWidget(self.reuse_button)

    def set_document(self, doc: Document | None) -> None:
        self._doc = doc
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        for i, entry in reversed(list(enumerate(entries(self._doc)))):
            p = entry.get("params") or {}
            prompt = (p.get("prompt") or "").strip() or "(no prompt)"
            text = f"{entry.get('flow', '?')} · seed {entry.get('seed')}\n{prompt[:48]}"
            thumb = entry.get("thumbnail")
            item = QListWidgetItem(text)
            if isinstance(thumb, np.ndarray) and thumb.size:
                item.setIcon(QIcon(thumbnail(thumb, 48)))
            item.setData(Qt.ItemDataRole.UserRole, i)
            self.list.addItem(item)
        self.reuse_button.setEnabled(self.list.count() > 0)

    def _reuse(self) -> None:
        item = self.list.currentItem() or (self.list.item(0) if self.list.count() else None)
        if item is None or self._doc is None:
            return
        entry = entries(self._doc)[item.data(Qt.ItemDataRole.UserRole)]
        self.reuse_requested.emit(params_from(entry), str(entry.get("flow", "auto")))
