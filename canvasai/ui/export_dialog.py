"""The export options dialog: format, quality, lossless, scale, metadata; and how the
export will be signed (Content Credentials; changed in Preferences)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from canvasai.core import settings
from canvasai.formats.export import ExportOptions

FORMAT_LABELS = [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WebP"), ("tiff", "TIFF")]


def signing_text() -> str:
    """How exports will be signed, from the settings alone (nothing is loaded here)."""
    c = settings.current().credentials
    if not c.sign:
        return "Content Credentials: off (Edit ▸ Preferences)."
    if c.cert_chain or c.private_key:
        return f"Content Credentials: signed with your certificate ({Path(c.cert_chain).name})."
    return ("Content Credentials: signed with CanvasAI's self-issued certificate — shown as "
            "valid, not trusted (Edit ▸ Preferences).")


class ExportDialog(QDialog):
    """Asks for `ExportOptions`; remembers the last choice in the settings model."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        s = settings.current().export
        self.format = QComboBox()
        for key, label in FORMAT_LABELS:
            self.format.addItem(label, key)
        idx = self.format.findData(s.format)
        self.format.setCurrentIndex(max(0, idx))
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setValue(s.quality)
        self.lossless = QCheckBox("Lossless (WebP)")
        self.lossless.setChecked(s.lossless)
        self.scale = QDoubleSpinBox()
        self.scale.setRange(1.0, 1600.0)
        self.scale.setSuffix(" %")
        self.scale.setValue(s.scale_percent)
        self.metadata = QCheckBox(
            "Include generation parameters, AI provenance and Content Credentials"
        )
        self.metadata.setChecked(s.metadata)
        self.signing = QLabel(signing_text())
        self.signing.setObjectName("exportSigning")
        self.signing.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("Quality", self.quality)
        form.addRow("", self.lossless)
        form.addRow("Scale", self.scale)
        form.addRow("", self.metadata)
        form.addRow("", self.signing)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.format.currentIndexChanged.connect(self._sync)
        self.metadata.toggled.connect(self._sync)
        self._sync()

    def _sync(self) -> None:
        fmt = self.format.currentData()
        self.quality.setEnabled(
            fmt in ("jpeg", "webp") and not (fmt == "webp" and self.lossless.isChecked())
        )
        self.lossless.setEnabled(fmt == "webp")
        self.signing.setEnabled(self.metadata.isChecked())

    def options(self) -> ExportOptions:
        return ExportOptions(
            format=str(self.format.currentData()),
            quality=self.quality.value(),
            lossless=self.lossless.isChecked(),
            scale=self.scale.value() / 100.0,
            metadata=self.metadata.isChecked(),
        )

    def accept(self) -> None:
        opts = self.options()
        settings.update(**{"export/format": opts.format, "export/quality": opts.quality,
                           "export/lossless": opts.lossless,
                           "export/scale_percent": self.scale.value(),
                           "export/metadata": opts.metadata})
        super().accept()
