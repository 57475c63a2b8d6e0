"""Foreground/background colour swatches, swap (X), reset, and a hex field."""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, QSize, Signal
from PySide6.QtGui import QColor, QRegularExpressionValidator
from PySide6.QtWidgets import (
    QColorDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

RGB = tuple[int, int, int]


def to_hex(c: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


class ColorPanel(QWidget):
    """Holds the two painting colours. `colors_changed(fg, bg)` fires on every change."""

    colors_changed = Signal(tuple, tuple)

    def __init__(self, foreground: RGB = (0, 0, 0), background: RGB = (255, 255, 255),
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("colorPanel")
        self._fg, self._bg = tuple(foreground), tuple(background)
        self.fg_button = QPushButton()
        self.bg_button = QPushButton()
        for b, tip in ((self.fg_button, "Foreground colour (click to choose)"),
                       (self.bg_button, "Background colour (click to choose)")):
            b.setFixedSize(QSize(40, 40))
            b.setToolTip(tip)
        self.fg_button.setObjectName("fgSwatch")
        self.bg_button.setObjectName("bgSwatch")
        self.swap_button = QToolButton()
        self.swap_button.setText("⇄")
        self.swap_button.setToolTip("Swap colours (X)")
        self.reset_button = QToolButton()
        self.reset_button.setText("◩")
        self.reset_button.setToolTip("Reset to black and white (D)")
        self.hex_edit = QLineEdit()
        self.hex_edit.setMaxLength(7)
        self.hex_edit.setValidator(QRegularExpressionValidator(QRegularExpression("#?[0-9a-fA-F]{0,6}")))
        self.hex_edit.setToolTip("Foreground colour as hex (#rrggbb)")

        self.fg_button.clicked.connect(lambda: self._choose(True))
        self.bg_button.clicked.connect(lambda: self._choose(False))
        self.swap_button.clicked.connect(self.swap)
        self.reset_button.clicked.connect(self.reset)
        self.hex_edit.editingFinished.connect(self._hex_entered)

        swatches = QHBoxLayout()
        swatches.addWidget(self.fg_button)
        swatches.addWidget(self.bg_button)
        side = QVBoxLayout()
        side.addWidget(self.swap_button)
        side.addWidget(self.reset_button)
        swatches.addLayout(side)
        swatches.addStretch(1)
        hex_row = QHBoxLayout()
        hex_row.addWidget(QLabel("Hex"))
        hex_row.addWidget(self.hex_edit, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(swatches)
        layout.addLayout(hex_row)
        self._refresh()

    @property
    def foreground(self) -> RGB:
        return self._fg  # type: ignore[return-value]

    @property
    def background(self) -> RGB:
        return self._bg  # type: ignore[return-value]

    def set_foreground(self, color: RGB) -> None:
        self._set(tuple(int(c) for c in color[:3]), self._bg)

    def set_background(self, color: RGB) -> None:
        self._set(self._fg, tuple(int(c) for c in color[:3]))

    def swap(self) -> None:
        self._set(self._bg, self._fg)

    def reset(self) -> None:
        self._set((0, 0, 0), (255, 255, 255))

    def _set(self, fg: tuple, bg: tuple) -> None:
        if (fg, bg) == (self._fg, self._bg):
            return
        self._fg, self._bg = fg, bg
        self._refresh()
        self.colors_changed.emit(fg, bg)

    def _refresh(self) -> None:
        for button, c in ((self.fg_button, self._fg), (self.bg_button, self._bg)):
            button.setStyleSheet(f"background-color: {to_hex(c)}; border: 1px solid #888;")
        if not self.hex_edit.hasFocus():
            self.hex_edit.setText(to_hex(self._fg))

    def _choose(self, foreground: bool) -> None:
        current = QColor(*(self._fg if foreground else self._bg))
        title = "Foreground colour" if foreground else "Background colour"
        color = QColorDialog.getColor(current, self, title)
        if color.isValid():
            rgb = (color.red(), color.green(), color.blue())
            if foreground:
                self.set_foreground(rgb)
            else:
                self.set_background(rgb)

    def _hex_entered(self) -> None:
        text = self.hex_edit.text().lstrip("#")
        if len(text) == 6:
            self.set_foreground(tuple(int(text[i:i + 2], 16) for i in (0, 2, 4)))  # type: ignore[arg-type]
        else:
            self.hex_edit.setText(to_hex(self._fg))
