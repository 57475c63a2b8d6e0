"""Numeric entry for the transform tool, and running its full-quality resample off the
GUI thread.

`TransformBar` is a small bar the canvas shows over its top edge while the transform
tool is current: X, Y, width and height (in pixels or per cent of the original), the
angle, Apply and Cancel. Typing a value (Enter or leaving the field) or clicking the
arrows moves the box at once; Apply commits (one undo step), Cancel leaves the
pixels untouched.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from canvasai.tools.transform import TransformBox

MAX_COORD = 1_000_000.0
HINT = ("Drag a handle to scale (Shift keeps the proportions, Alt scales from the centre), "
        "inside to move, outside or the round knob to rotate (Shift: 15° steps). "
        "Enter applies, Esc cancels, Ctrl+Z steps back.")


def _spin(lo: float, hi: float, suffix: str, tip: str, decimals: int = 1) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setDecimals(decimals)
    s.setSuffix(suffix)
    s.setKeyboardTracking(False)  # a value counts on Enter or when the field is left
    s.setAccelerated(True)
    s.setToolTip(tip)
    s.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.UpDownArrows)
    s.setAlignment(Qt.AlignmentFlag.AlignRight)
    return s


class TransformBar(QFrame):
    """X / Y / W / H / angle fields with Apply and Cancel (see the module docstring).

    Signals: `values_entered(dict)` with some of x, y, width, height (pixels), angle
    (degrees); `apply_requested()`; `cancel_requested()`.
    """

    values_entered = Signal(dict)
    apply_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transformBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setToolTip(HINT)
        self._box: TransformBox | None = None
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 6, 4)
        row.setSpacing(4)
        self.x = _spin(-MAX_COORD, MAX_COORD, "", "Left edge (document pixels, before rotation)")
        self.y = _spin(-MAX_COORD, MAX_COORD, "", "Top edge (document pixels, before rotation)")
        self.w = _spin(0.1, MAX_COORD, "", "Width")
        self.h = _spin(0.1, MAX_COORD, "", "Height")
        self.unit = QComboBox()
        self.unit.addItems(["px", "%"])
        self.unit.setToolTip("Width and height in pixels, or in per cent of the original")
        self.angle = _spin(-180.0, 180.0, "°", "Angle, clockwise (Shift-drag snaps to 15°)", 2)
        self.angle.setWrapping(True)
        self.fields = (self.x, self.y, self.w, self.h, self.angle)
        self.note = QLabel()
        self.note.setObjectName("transformNote")
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Apply the transform (Enter): one undo step")
        self.apply_button.setDefault(False)
        self.apply_button.setAutoDefault(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Put the pixels back as they were (Esc)")
        self.cancel_button.setAutoDefault(False)
        self._labels: list[QLabel] = []
        for text, field in (("X", self.x), ("Y", self.y), ("W", self.w), ("H", self.h)):
            label = QLabel(text)
            label.setBuddy(field)
            self._labels.append(label)
            row.addWidget(label)
            row.addWidget(field)
        row.addWidget(self.unit)
        angle_label = QLabel("∠")
        angle_label.setToolTip(self.angle.toolTip())
        self._labels.append(angle_label)
        row.addSpacing(4)
        row.addWidget(angle_label)
        row.addWidget(self.angle)
        row.addWidget(self.note)
        row.addSpacing(6)
        row.addWidget(self.apply_button)
        row.addWidget(self.cancel_button)
        self.help = QLabel("?")
        self.help.setObjectName("transformHelp")
        self.help.setToolTip(HINT)
        self.help.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.help.setFixedWidth(18)
        row.addWidget(self.help)
        # Disabled buttons must look disabled (the app's style sheet gives them no state).
        self.setStyleSheet("QPushButton:disabled { color: #6d7079; border-color: #3a3d44; }"
                           "#transformHelp { color: #9aa0aa; font-weight: bold; }")
        for field in self.fields:
            field.setFixedWidth(78)
        self.angle.setFixedWidth(84)
        self.x.valueChanged.connect(lambda v: self._entered(x=v))
        self.y.valueChanged.connect(lambda v: self._entered(y=v))
        self.w.valueChanged.connect(lambda v: self._entered(width=self._to_px(v, True)))
        self.h.valueChanged.connect(lambda v: self._entered(height=self._to_px(v, False)))
        self.angle.valueChanged.connect(lambda v: self._entered(angle=v))
        self.unit.currentIndexChanged.connect(lambda _i: self.show_box(self._box))
        self.apply_button.clicked.connect(self.apply_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.show_box(None)

    @property
    def percent(self) -> bool:
        return self.unit.currentIndex() == 1

    def _to_px(self, value: float, horizontal: bool) -> float:
        box = self._box
        if not self.percent or box is None:
            return value
        return value / 100.0 * (box.source.w if horizontal else box.source.h)

    def _entered(self, **values: Any) -> None:
        self.values_entered.emit(values)

    def show_box(self, box: TransformBox | None, pending: bool = False, busy: bool = False,
                 why_not: str = "") -> None:
        """Show `box`'s values (None: nothing to transform, `why_not` says why)."""
        self._box = box
        enabled = box is not None and not busy
        for w in (*self.fields, self.unit, *self._labels):
            w.setVisible(box is not None)
            w.setEnabled(enabled)
        self.note.setVisible(box is None or busy)
        self.note.setText("Applying…" if busy else why_not)
        self.apply_button.setEnabled(pending and not busy)
        self.cancel_button.setEnabled(pending)
        if box is not None:
            if self.percent:
                sw, sh = abs(box.width) / box.source.w * 100, abs(box.height) / box.source.h * 100
            else:
                sw, sh = abs(box.width), abs(box.height)
            for field, value in ((self.x, box.left), (self.y, box.top), (self.w, sw),
                                 (self.h, sh), (self.angle, box.angle)):
                if field.hasFocus() and field.lineEdit().isModified():
                    continue  # the person is typing here
                field.blockSignals(True)
                field.setValue(value)
                field.blockSignals(False)
        self.adjustSize()
