"""The tools panel: one button per tool, brush settings and fill tolerance."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from canvasai.tools.base import BrushSettings, Tool
from canvasai.ui.icons import icon

MAX_BRUSH_SIZE = 1000


class _SliderSpin(QWidget):
    """A slider and a spin box showing the same integer."""

    valueChanged = Signal(int)  # noqa: N815 - Qt naming

    def __init__(self, lo: int, hi: int, value: int, suffix: str = "") -> None:
        super().__init__()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(lo, hi)
        self.spin = QSpinBox()
        self.spin.setRange(lo, hi)
        self.spin.setSuffix(suffix)
        self.spin.setFixedWidth(72)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        self.slider.valueChanged.connect(self._sync)
        self.spin.valueChanged.connect(self._sync)
        self.setValue(value)

    def _sync(self, v: int) -> None:
        for w in (self.slider, self.spin):
            if w.value() != v:
                w.blockSignals(True)
                w.setValue(v)
                w.blockSignals(False)
        self.valueChanged.emit(v)

    def value(self) -> int:
        return self.spin.value()

    def setValue(self, v: int) -> None:  # noqa: N802 - Qt naming
        self.spin.setValue(int(v))
        self.slider.blockSignals(True)
        self.slider.setValue(int(v))
        self.slider.blockSignals(False)


ICONS = {
    "brush": "brush", "eraser": "eraser", "mask_brush": "mask", "mask_eraser": "mask_eraser",
    "rect_select": "rect_select", "lasso_select": "lasso", "fill": "fill", "picker": "picker",
    "move": "move", "frame": "frame",
}


class ToolsPanel(QWidget):
    """Tool buttons and the settings of the shared `BrushSettings` (edited in place)."""

    tool_selected = Signal(str)
    brush_changed = Signal()
    tolerance_changed = Signal(int)

    def __init__(self, tool_classes: Sequence[type[Tool]], brush: BrushSettings,
                 tolerance: int = 32, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("toolsPanel")
        self.brush = brush
        self.buttons: dict[str, QToolButton] = {}
        self._group = QButtonGroup(self)
        self._group.setExclusive(True)
        grid = QGridLayout()
        grid.setSpacing(3)
        for i, cls in enumerate(tool_classes):
            b = QToolButton()
            b.setObjectName(f"tool_{cls.name}")
            b.setCheckable(True)
            b.setAutoRaise(True)
            b.setFixedSize(QSize(40, 40))
            ic = icon(ICONS.get(cls.name, cls.name))
            if ic.isNull():  # a tool without a drawn icon: its initials, full name in the tooltip
                b.setText("".join(word[0] for word in cls.label.split()[:2]))
            else:
                b.setIcon(ic)
            b.setIconSize(QSize(26, 26))
            b.setToolTip(f"{cls.label} ({cls.shortcut})" if cls.shortcut else cls.label)
            b.clicked.connect(lambda _checked=False, n=cls.name: self.tool_selected.emit(n))
            self._group.addButton(b)
            self.buttons[cls.name] = b
            grid.addWidget(b, i // 5, i % 5)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.size = _SliderSpin(1, MAX_BRUSH_SIZE, round(brush.size), " px")
        self.hardness = _SliderSpin(0, 100, round(brush.hardness * 100), " %")
        self.opacity = _SliderSpin(1, 100, round(brush.opacity * 100), " %")
        self.flow = _SliderSpin(1, 100, round(brush.flow * 100), " %")
        self.spacing = _SliderSpin(1, 200, round(brush.spacing * 100), " %")
        self.pressure_size = QCheckBox("Pressure → size")
        self.pressure_size.setChecked(brush.pressure_size)
        self.pressure_opacity = QCheckBox("Pressure → opacity")
        self.pressure_opacity.setChecked(brush.pressure_opacity)
        self.tolerance = _SliderSpin(0, 255, tolerance)
        form.addRow("Size", self.size)
        form.addRow("Hardness", self.hardness)
        form.addRow("Opacity", self.opacity)
        form.addRow("Flow", self.flow)
        form.addRow("Spacing", self.spacing)
        form.addRow(self.pressure_size)
        form.addRow(self.pressure_opacity)
        form.addRow("Fill tolerance", self.tolerance)

        self._bind(self.size, lambda v: setattr(brush, "size", float(v)))
        self._bind(self.hardness, lambda v: setattr(brush, "hardness", v / 100))
        self._bind(self.opacity, lambda v: setattr(brush, "opacity", v / 100))
        self._bind(self.flow, lambda v: setattr(brush, "flow", v / 100))
        self._bind(self.spacing, lambda v: setattr(brush, "spacing", v / 100))
        self.pressure_size.toggled.connect(lambda on: self._apply(lambda: setattr(brush, "pressure_size", on)))
        self.pressure_opacity.toggled.connect(
            lambda on: self._apply(lambda: setattr(brush, "pressure_opacity", on)))
        self.tolerance.valueChanged.connect(self.tolerance_changed)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(grid)
        layout.addSpacing(8)
        layout.addLayout(form)
        layout.addStretch(1)

    def _apply(self, change: Callable[[], None]) -> None:
        change()
        self.brush_changed.emit()

    def _bind(self, control: _SliderSpin, setter: Callable[[int], None]) -> None:
        control.valueChanged.connect(lambda v: self._apply(lambda: setter(v)))

    def set_current_tool(self, name: str) -> None:
        b = self.buttons.get(name)
        if b is not None and not b.isChecked():
            b.setChecked(True)

    def sync_from_brush(self) -> None:
        """Show the brush settings after something else changed them (e.g. [ and ])."""
        for control, value in ((self.size, self.brush.size), (self.hardness, self.brush.hardness * 100),
                               (self.opacity, self.brush.opacity * 100),
                               (self.flow, self.brush.flow * 100),
                               (self.spacing, self.brush.spacing * 100)):
            control.blockSignals(True)
            control.setValue(round(value))
            control.blockSignals(False)

