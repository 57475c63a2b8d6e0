"""The Results strip: every result of the document until accepted or discarded; show,
step through, compare, accept, discard, re-run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QToolButton,
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
    alpha: Any = None  # where it shows on the canvas (generation_controller.preview_mask)
    alpha_known: bool = True  # False: not worked out yet (a result reopened from a file)
    entry: dict[str, Any] | None = None  # its stored result (canvasai.generation.results)


class StagingStrip(QWidget):
    """Thumbnails of the document's results, oldest first, kept until accepted or discarded.

    ◀ / ▶ step through them; "Compare" (held down, or the C key held over the canvas)
    shows the canvas without the candidate. The controller owns what accepting means.
    """

    selected = Signal(int)  # index of the candidate to show in place
    accept_requested = Signal(int)
    accept_all_requested = Signal()
    discard_requested = Signal(int)
    rerun_requested = Signal(bool)  # True: same seed
    compare_requested = Signal(bool)  # True: hide the candidate while held

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
        # ◀ [thumbnails] ▶: stepping costs no width in the button row (it must fit 1366 px)
        top = QHBoxLayout()
        self.prev_button = QToolButton()
        self.prev_button.setArrowType(Qt.ArrowType.LeftArrow)
        self.prev_button.setToolTip("The previous result")
        self.next_button = QToolButton()
        self.next_button.setArrowType(Qt.ArrowType.RightArrow)
        self.next_button.setToolTip("The next result")
        for b in (self.prev_button, self.next_button):
            b.setFixedSize(24, 138)
        top.addWidget(self.prev_button)
        top.addWidget(self.list, 1)
        top.addWidget(self.next_button)
        lay.addLayout(top)
        row = QHBoxLayout()
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(+1))
        self.position = QLabel("No results")
        self.position.setToolTip("Results stay here, and in the saved project, until you "
                                 "accept or discard them")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Hold to see the canvas without the candidate "
                                       "(or hold C over the canvas)")
        self.compare_button.pressed.connect(lambda: self.compare_requested.emit(True))
        self.compare_button.released.connect(lambda: self.compare_requested.emit(False))
        row.addWidget(self.position)
        row.addWidget(self.compare_button)
        row.addStretch(1)
        self.accept_button = QPushButton("Accept")
        self.accept_button.setToolTip("Add the shown candidate as a new layer (Enter)")
        self.accept_all_button = QPushButton("Accept all")
        self.accept_all_button.setToolTip("Add every result in the strip as a layer of its own "
                                          "(one undo step)")
        self.discard_button = QPushButton("Discard")
        self.discard_button.setToolTip("Remove the shown result (from the saved project too)")
        self.rerun_same = QPushButton("Re-run")
        self.rerun_same.setToolTip("Run the same job again with the same seed")
        self.rerun_new = QPushButton("New seed")
        self.rerun_new.setToolTip("Run the same job again with new random seeds (as many as "
                                  "the batch size)")
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

    def set_candidates(self, candidates: list[Candidate]) -> None:
        """Show these results instead (another document's), none selected."""
        self.clear()
        self.list.blockSignals(True)
        for c in candidates:
            self.add(c)
        self.list.setCurrentRow(-1)
        self.list.blockSignals(False)
        self._update_buttons()

    def select(self, index: int) -> None:
        if 0 <= index < len(self.candidates):
            self.list.setCurrentRow(index)
            self.list.scrollToItem(self.list.item(index))

    def step(self, delta: int) -> None:
        """Show the previous (-1) or next (+1) result."""
        if not self.candidates:
            return
        i = self.current_index()
        i = (len(self.candidates) - 1 if delta < 0 else 0) if i < 0 else i + delta
        self.select(max(0, min(len(self.candidates) - 1, i)))

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
        i, n = self.current_index(), len(self.candidates)
        for b in (self.accept_button, self.discard_button, self.compare_button):
            b.setEnabled(0 <= i < n)
        self.accept_all_button.setEnabled(has)
        self.prev_button.setEnabled(n > 0 and i != 0)
        self.next_button.setEnabled(n > 0 and i < n - 1)
        if not n:
            self.position.setText("No results")
        elif 0 <= i < n:
            self.position.setText(f"{i + 1} of {n}")
        else:
            self.position.setText(f"{n} result{'s' if n != 1 else ''}")
