"""Small dialogs: an amount in pixels (grow/shrink/feather) and layer properties."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QInputDialog,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from canvasai.document.blend import BlendMode
from canvasai.document.layer import Layer
from canvasai.ui.layers_panel import BLEND_ORDER


def ask_pixels(parent: QWidget, title: str, label: str, value: int = 4,
               maximum: int = 500) -> int | None:
    """A whole number of pixels from the person, or None if they cancelled."""
    amount, ok = QInputDialog.getInt(parent, title, label, value, 1, maximum, 1)
    return int(amount) if ok else None


class LayerPropertiesDialog(QDialog):
    """Edit all of a layer's properties at once; `changes()` is what differs (one undo step)."""

    def __init__(self, layer: Layer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Layer properties")
        self.layer = layer
        self.name = QLineEdit(layer.name)
        self.opacity = QSpinBox()
        self.opacity.setRange(0, 100)
        self.opacity.setSuffix(" %")
        self.opacity.setValue(round(layer.opacity * 100))
        self.blend = QComboBox()
        for mode in BLEND_ORDER:
            self.blend.addItem(mode.label, mode)
        self.blend.setCurrentIndex(self.blend.findData(layer.blend_mode))
        self.visible = QCheckBox("Visible")
        self.visible.setChecked(layer.visible)
        self.locked = QCheckBox("Locked")
        self.locked.setChecked(layer.locked)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Opacity", self.opacity)
        form.addRow("Blend mode", self.blend)
        form.addRow(self.visible)
        form.addRow(self.locked)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def changes(self) -> dict[str, Any]:
        wanted: dict[str, Any] = {
            "name": self.name.text().strip() or self.layer.name,
            "opacity": self.opacity.value() / 100,
            "blend_mode": BlendMode(self.blend.currentData()),
            "visible": self.visible.isChecked(),
            "locked": self.locked.isChecked(),
        }
        out = {}
        for k, v in wanted.items():
            current = getattr(self.layer, k)
            if k == "opacity" and round(current * 100) == round(v * 100):
                continue
            if v != current:
                out[k] = v
        return out
