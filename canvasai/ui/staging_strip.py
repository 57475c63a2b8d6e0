"""The staging strip: candidates of a batch as they finish; show, accept, discard, re-run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from canvasai.ui.images import thumbnail


@dataclass
class Candidate:
    image: np.ndarray
    seed: int
    job: Any  # canvasai.generation.flows.FlowJob
    metadata: dict[str, Any]
    alpha: np.ndarray | None = None  # where it shows on the canvas (flows.preview_alpha)


class StagingStrip(QWidget):
    """Thumbnails of finished candidates. The controller owns what accepting means."""

    selected = Signal(int)  # index of the candidate to show in place
    accept_requested = Signal(int)
    accept_all_requested = Signal()
    discard_requested = Signal(int)
    rerun_requested = Signal(bool)  # True: same seed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.candidates: list[Candidate] = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.list = QListWidget()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(False)
        self.list.setIconSize(QSize(96, 96))
        self.list.setFixedHeight(138)
        self.list.setMovement(QListView.Movement.Static)
        self.list.currentRowChanged.connect(self._row_changed)
        self.list.itemDoubleClicked.connect(lambda _it: self._accept())
        lay.addWidget(self.list)
        row = QHBoxLayout()
        self.accept_button = QPushButton("Accept")
        self.accept_button.setToolTip("Add the shown candidate as a new layer (Enter)")
        self.accept_all_button = QPushButton("Accept all")
        self.discard_button = QPushButton("Discard")
        self.rerun_same = QPushButton("Re-run")
        self.rerun_same.setToolTip("Run the same job again with the same seed")
        self.rerun_new = QPushButton("New seed")
        self.rerun_new.setToolTip("Run the same job again with a new random seed")
        self.accept_button.clicked.connect(self._accept)
        self.accept_all_button.clicked.connect(self.accept_all_requested)
        self.discard_button.clicked.connect(self._discard)
        self.rerun_same.clicked.connect(lambda: self.rerun_requested.emit(True))
        self.rerun_new.clicked.connect(lambda: self.rerun_requested.emit(False))
        for b in (self.accept_button, self.accept_all_button, self.discard_button,
                  self.rerun_same, self.rerun_new):
            row.addWidget(b)
        lay.addLayout(row)
        self._update_buttons()

    def add(self, candidate: Candidate) -> int:
        self.candidates.append(candidate)
        item = QListWidgetItem(QIcon(thumbnail(candidate.image, 96)), f"seed {candidate.seed}")
        item.setToolTip(f"{candidate.job.flow} · seed {candidate.seed}")
        self.list.addItem(item)
        if self.list.currentRow() < 0:
            self.list.setCurrentRow(0)
        self._update_buttons()
        return len(self.candidates) - 1

    def remove(self, index: int) -> None:
        if 0 <= index < len(self.candidates):
            self.candidates.pop(index)
            self.list.takeItem(index)
        self._update_buttons()

    def clear(self) -> None:
        self.candidates.clear()
        self.list.clear()
        self._update_buttons()

    def current_index(self) -> int:
        return self.list.currentRow()

    def _row_changed(self, row: int) -> None:
        if 0 <= row < len(self.candidates):
            self.selected.emit(row)
        self._update_buttons()

    def _accept(self) -> None:
        i = self.current_index()
        if 0 <= i < len(self.candidates):
            self.accept_requested.emit(i)

    def _discard(self) -> None:
        i = self.current_index()
        if 0 <= i < len(self.candidates):
            self.discard_requested.emit(i)

    def _update_buttons(self) -> None:
        has = bool(self.candidates)
        for b in (self.accept_button, self.accept_all_button, self.discard_button):
            b.setEnabled(has)
