"""The Queue panel: the running job and the jobs waiting after it, each cancellable and movable.

Generate while a job runs adds the next job here (its snapshot is taken at that moment);
Esc cancels the running job only. The controller owns the jobs; this view shows them and
asks for changes by job id.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


class JobQueueView(QWidget):
    cancel_requested = Signal(int)  # job id
    move_requested = Signal(int, int)  # job id, -1 earlier / +1 later

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._running: int | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.summary = QLabel("Nothing queued")
        self.summary.setToolTip("Generate while a job runs adds the next job here; "
                                "Esc cancels the running job")
        lay.addWidget(self.summary)
        self.list = QListWidget()
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setMinimumWidth(120)
        self.list.currentRowChanged.connect(lambda _r: self._update_buttons())
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.up_button = QToolButton()
        self.up_button.setArrowType(Qt.ArrowType.UpArrow)
        self.up_button.setToolTip("Run the selected job earlier")
        self.down_button = QToolButton()
        self.down_button.setArrowType(Qt.ArrowType.DownArrow)
        self.down_button.setToolTip("Run the selected job later")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel the selected job (running or waiting)")
        self.up_button.clicked.connect(lambda: self._move(-1))
        self.down_button.clicked.connect(lambda: self._move(+1))
        self.cancel_button.clicked.connect(self._cancel)
        for b in (self.up_button, self.down_button, self.cancel_button):
            row.addWidget(b)
        lay.addLayout(row)
        self._update_buttons()

    def set_jobs(self, jobs: list[tuple[int, str]], running: int | None) -> None:
        """`jobs` in run order as (job id, description); `running` is the one under way."""
        selected = self.selected_job()
        self._running = running
        self.list.blockSignals(True)
        self.list.clear()
        waiting = 0
        for job_id, text in jobs:
            is_running = job_id == running
            waiting += not is_running
            # "▶" the running job, then the waiting ones numbered in run order
            item = QListWidgetItem(f"▶ {text}" if is_running else f"{waiting}. {text}")
            item.setToolTip(f"{'Running' if is_running else 'Waiting'}: {text}")
            item.setData(Qt.ItemDataRole.UserRole, job_id)
            self.list.addItem(item)
            if job_id == selected:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        if not jobs:
            self.summary.setText("Nothing queued")
        else:
            run = "1 running" if running is not None else "starting"
            self.summary.setText(f"{run}, {waiting} waiting")
        self._update_buttons()

    def job_ids(self) -> list[int]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def selected_job(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def select_job(self, job_id: int) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == job_id:
                self.list.setCurrentRow(i)

    def _move(self, delta: int) -> None:
        job = self.selected_job()
        if job is not None and job != self._running:
            self.move_requested.emit(job, delta)

    def _cancel(self) -> None:
        job = self.selected_job()
        if job is not None:
            self.cancel_requested.emit(job)

    def _update_buttons(self) -> None:
        job = self.selected_job()
        ids = self.job_ids()
        waiting = [j for j in ids if j != self._running]
        movable = job is not None and job in waiting
        self.up_button.setEnabled(movable and waiting.index(job) > 0)  # type: ignore[arg-type]
        self.down_button.setEnabled(movable and waiting.index(job) < len(waiting) - 1)  # type: ignore[arg-type]
        self.cancel_button.setEnabled(job is not None)
