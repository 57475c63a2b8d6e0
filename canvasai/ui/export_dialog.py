"""The export options dialog: format, quality, lossless, scale, metadata."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from canvasai.formats.export import ExportOptions

FORMAT_LABELS = [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WebP"), ("tiff", "TIFF")]
SETTINGS_KEY = "export/"


class ExportDialog(QDialog):
    """Asks for `ExportOptions`; remembers the last choice in QSettings."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        s = QSettings()
        self.format = QComboBox()
        for key, label in FORMAT_LABELS:
            self.format.addItem(label, key)
        idx = self.format.findData(s.value(SETTINGS_KEY + "format", "png"))
        self.format.setCurrentIndex(max(0, idx))
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setValue(int(s.value(SETTINGS_KEY + "quality", 92)))
        self.lossless = QCheckBox("Lossless (WebP)")
        self.lossless.setChecked(s.value(SETTINGS_KEY + "lossless", False) in (True, "true"))
        self.scale = QDoubleSpinBox()
        self.scale.setRange(1.0, 1600.0)
        self.scale.setSuffix(" %")
        self.scale.setValue(float(s.value(SETTINGS_KEY + "scale_percent", 100.0)))
        self.metadata = QCheckBox("Include generation parameters and AI provenance")
        self.metadata.setChecked(s.value(SETTINGS_KEY + "metadata", True) in (True, "true"))
        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("Quality", self.quality)
        form.addRow("", self.lossless)
        form.addRow("Scale", self.scale)
        form.addRow("", self.metadata)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.format.currentIndexChanged.connect(self._sync)
        self._sync()

    def _sync(self) -> None:
        fmt = self.format.currentData()
        self.quality.setEnabled(
            fmt in ("jpeg", "webp") and not (fmt == "webp" and self.lossless.isChecked())
        )
        self.lossless.setEnabled(fmt == "webp")

    def options(self) -> ExportOptions:
        return ExportOptions(
            format=str(self.format.currentData()),
            quality=self.quality.value(),
            lossless=self.lossless.isChecked(),
            scale=self.scale.value() / 100.0,
            metadata=self.metadata.isChecked(),
        )

    def accept(self) -> None:
        s = QSettings()
        opts = self.options()
        s.setValue(SETTINGS_KEY + "format", opts.format)
        s.setValue(SETTINGS_KEY + "quality", opts.quality)
        s.setValue(SETTINGS_KEY + "lossless", opts.lossless)
        s.setValue(SETTINGS_KEY + "scale_percent", self.scale.value())
        s.setValue(SETTINGS_KEY + "metadata", opts.metadata)
        super().accept()
