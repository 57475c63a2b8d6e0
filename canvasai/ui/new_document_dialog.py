"""The New document dialog: size (with presets) and background colour or transparency."""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from canvasai.core.errors import InvalidDocumentError
from canvasai.document.document import Document, validate_size

PRESETS: tuple[tuple[str, int, int], ...] = (
    ("Full HD 1920 × 1080", 1920, 1080),
    ("Square 1024 × 1024 (SDXL)", 1024, 1024),
    ("Square 512 × 512 (SD 1.5)", 512, 512),
    ("Portrait 832 × 1216", 832, 1216),
    ("Landscape 1216 × 832", 1216, 832),
    ("4K UHD 3840 × 2160", 3840, 2160),
    ("A4 300 dpi 2480 × 3508", 2480, 3508),
)
CUSTOM = "Custom"


class NewDocumentDialog(QDialog):
    """Asks for a size and background; `create_document()` builds the result after accept."""

    def __init__(self, parent: QWidget | None = None, width: int = 1920, height: int = 1080) -> None:
        super().__init__(parent)
        self.setWindowTitle("New document")
        self.setObjectName("newDocumentDialog")
        self.preset = QComboBox()
        self.preset.addItem(CUSTOM)
        for label, w, h in PRESETS:
            self.preset.addItem(label, (w, h))
        self.width_edit = QLineEdit(str(width))
        self.height_edit = QLineEdit(str(height))
        for e in (self.width_edit, self.height_edit):
            e.setPlaceholderText("pixels")
            e.textEdited.connect(self._edited)
        self.preset.currentIndexChanged.connect(self._preset_chosen)

        self.white = QRadioButton("White")
        self.colour = QRadioButton("Colour")
        self.transparent = QRadioButton("Transparent")
        self.white.setChecked(True)
        group = QButtonGroup(self)
        for b in (self.white, self.colour, self.transparent):
            group.addButton(b)
        self._color = QColor(255, 255, 255)
        self.colour_button = QPushButton()
        self.colour_button.setFixedWidth(48)
        self.colour_button.setToolTip("Choose the background colour")
        self.colour_button.clicked.connect(self._choose_colour)
        self._show_colour()

        self.error = QLabel()
        self.error.setObjectName("errorLabel")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #ff6b6b;")
        self.error.hide()

        size_row = QHBoxLayout()
        size_row.addWidget(self.width_edit)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.height_edit)
        size_row.addWidget(QLabel("px"))
        bg_row = QHBoxLayout()
        bg_row.addWidget(self.white)
        bg_row.addWidget(self.colour)
        bg_row.addWidget(self.colour_button)
        bg_row.addWidget(self.transparent)
        bg_row.addStretch(1)
        form = QFormLayout()
        form.addRow("Preset", self.preset)
        form.addRow("Size", size_row)
        form.addRow("Background", bg_row)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self._select_matching_preset()

    # -- values ------------------------------------------------------------------------------
    def document_size(self) -> tuple[int, int]:
        """The validated size; raises InvalidDocumentError with a message for the person."""
        texts = (self.width_edit.text().strip(), self.height_edit.text().strip())
        try:
            w, h = (int(t) for t in texts)
        except ValueError:
            raise InvalidDocumentError(
                f"The document size must be whole numbers, not “{texts[0]}” × “{texts[1]}”.") from None
        return validate_size(w, h)

    def background(self) -> tuple[int, int, int, int] | None:
        if self.transparent.isChecked():
            return None
        if self.white.isChecked():
            return (255, 255, 255, 255)
        c = self._color
        return (c.red(), c.green(), c.blue(), 255)

    def set_background(self, rgba: tuple[int, int, int, int] | None) -> None:
        if rgba is None:
            self.transparent.setChecked(True)
        elif tuple(rgba[:3]) == (255, 255, 255):
            self.white.setChecked(True)
        else:
            self._color = QColor(*rgba[:3])
            self.colour.setChecked(True)
            self._show_colour()

    def create_document(self) -> Document:
        w, h = self.document_size()
        return Document(w, h, background=self.background())

    # -- behaviour --------------------------------------------------------------------------
    def accept(self) -> None:
        """Only close when the size is valid; otherwise show why, inline."""
        try:
            self.document_size()
        except InvalidDocumentError as err:
            self.error.setText(str(err))
            self.error.show()
            return
        self.error.hide()
        super().accept()

    def _edited(self) -> None:
        self.error.hide()
        self._select_matching_preset()

    def _preset_chosen(self, index: int) -> None:
        data = self.preset.itemData(index)
        if data is not None:
            self.width_edit.setText(str(data[0]))
            self.height_edit.setText(str(data[1]))
            self.error.hide()

    def _select_matching_preset(self) -> None:
        texts = (self.width_edit.text().strip(), self.height_edit.text().strip())
        idx = 0
        for i in range(1, self.preset.count()):
            w, h = self.preset.itemData(i)
            if texts == (str(w), str(h)):
                idx = i
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(idx)
        self.preset.blockSignals(False)

    def _choose_colour(self) -> None:
        c = QColorDialog.getColor(self._color, self, "Background colour")
        if c.isValid():
            self._color = c
            self.colour.setChecked(True)
            self._show_colour()

    def _show_colour(self) -> None:
        self.colour_button.setStyleSheet(f"background-color: {self._color.name()};")


