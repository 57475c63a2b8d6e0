"""Layer roles in the UI: the marker each role shows in the layers list, the small editor
behind "Use as ▸ Control… / Reference… / Region prompt…", and "Preprocess into new layer"
(a control map made off the GUI thread, added as one undo step).

The roles themselves are plain values of `canvasai.document.layer`; every change goes
through `Document.set_layer_properties`, so it is one undo step like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from canvasai.document.layer import (
    CONTROL_KINDS,
    CONTROL_LABELS,
    CONTROL_STRENGTH,
    REFERENCE_KINDS,
    REFERENCE_LABELS,
    REFERENCE_STRENGTH,
    ControlRole,
    LayerRole,
    ReferenceRole,
    RegionRole,
    RoleError,
)
from canvasai.ui.background import run_in_pool

#: role type -> (menu text, marker colour)
ROLE_TYPES = {
    "control": ("Control layer…", "#b8860b"),
    "reference": ("Reference image…", "#2f6fb3"),
    "region": ("Region prompt…", "#3c8d40"),
}
CONTROL_NOTES = {
    "scribble": "Rough strokes; the picture follows their shapes loosely.",
    "lineart": "Clean lines (drawn, or found in a photo) followed closely.",
    "softedge": "Soft outlines found in a photo: the layout, not the details.",
    "canny": "Sharp edges found in a photo, followed closely.",
    "depth": "Near and far (bright = near). Found in a photo only when a depth "
             "model is installed; a painted depth map works without one.",
    "pose": "A stick-figure pose (OpenPose colours). Found in a photo only when a pose "
            "model is installed.",
}
REFERENCE_NOTES = {
    "content": "The subject and look of the whole image.",
    "style": "Colours, texture and brushwork, not the layout.",
    "composition": "The layout, not the style.",
}
#: the control maps "Preprocess into new layer" makes: in-process with no model weights,
#: then depth and pose, which use a model when one is installed (always off the GUI thread)
PREPROCESS_KINDS = ("canny", "lineart", "scribble", "softedge", "depth", "pose")
MODEL_KINDS = ("depth", "pose")
#: larger layers are preprocessed on a worker thread (pixels)
BACKGROUND_PIXELS = 512 * 512
ROLE_TIP = "Right-click ▸ Use as… to change it. Used while the layer is visible."


def badge(role: LayerRole) -> tuple[str, str] | None:
    """(text, colour) of the marker drawn in the layer's row, None for a normal layer."""
    if role is None:
        return None
    colour = ROLE_TYPES[role.type][1]
    if isinstance(role, ControlRole):
        return role.label.lower(), colour
    if isinstance(role, ReferenceRole):
        return "ref", colour
    return "region", colour


def short(role: LayerRole) -> str:
    """The role in a few words for a list row: "line art 0.80, 0–60 %", "style ref 1.10",
    "region “a stormy sky”"."""
    if isinstance(role, ControlRole):
        rng = "" if (role.start, role.end) == (0.0, 1.0) else (
            f", {role.start * 100:.0f}–{role.end * 100:.0f} %")
        return f"{role.label.lower()} {role.strength:.2f}{rng}"
    if isinstance(role, ReferenceRole):
        return f"{role.kind} ref {role.strength:.2f}"
    if isinstance(role, RegionRole):
        text = role.prompt if len(role.prompt) <= 40 else role.prompt[:39] + "…"
        return f"region “{text}”"
    return ""


def tooltip(role: LayerRole) -> str:
    """What the role does, in words, for the row's tooltip."""
    if role is None:
        return ""
    uses = {
        "control": "Guides the structure of Generate, Refine, Inpaint, Edit and Sketch → "
                   "Render (left out of the picture they read).",
        "reference": "The picture borrows from it (IP-Adapter, Redux, an edit model's "
                     "references); left out of the picture itself.",
        "region": "Inside its painted area the picture follows this prompt; the main prompt "
                  "applies elsewhere.",
    }[role.type]
    return f"{role.describe()}.\n{uses}\n{ROLE_TIP}"


def _dspin(lo: float, hi: float, value: float, step: float, suffix: str = "") -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setDecimals(2)
    s.setValue(value)
    if suffix:
        s.setSuffix(suffix)
    return s


def _percent(value: float) -> QSpinBox:
    s = QSpinBox()
    s.setRange(0, 100)
    s.setSuffix(" %")
    s.setValue(round(value * 100))
    return s


class RoleEditor(QDialog):
    """Edits one layer's role: the role type, then its settings. `role()` is the result."""

    def __init__(self, layer_name: str, role: LayerRole, role_type: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("roleEditor")
        self.setWindowTitle(f"Use “{layer_name}” as…")
        self.type = QComboBox()
        for key, (text, _c) in ROLE_TYPES.items():
            self.type.addItem(text.rstrip("…"), key)
        self.type.addItem("Normal layer", "")
        self.pages: list[QWidget] = []  # one per role type; only the chosen one is shown
        control = role if isinstance(role, ControlRole) else ControlRole()
        reference = role if isinstance(role, ReferenceRole) else ReferenceRole()

        # control
        page = QWidget()
        f = QFormLayout(page)
        self.control_kind = QComboBox()
        for k in CONTROL_KINDS:
            self.control_kind.addItem(CONTROL_LABELS[k], k)
        self.control_kind.setCurrentIndex(CONTROL_KINDS.index(control.kind))
        self.control_note = QLabel("")
        self.control_note.setWordWrap(True)
        self.control_strength = _dspin(*CONTROL_STRENGTH, control.strength, 0.05)
        self.control_strength.setToolTip("How strongly the picture follows the layer")
        self.control_start = _percent(control.start)
        self.control_end = _percent(control.end)
        self.control_start.setToolTip("From which share of the denoising steps it acts")
        self.control_end.setToolTip("Until which share of the steps it acts (lower: the "
                                    "model finishes the details freely)")
        self.control_is_map = QCheckBox("The layer already is a control map (skip detection)")
        self.control_is_map.setChecked(not control.preprocess)
        f.addRow("Type", self.control_kind)
        f.addRow(self.control_note)
        f.addRow("Strength", self.control_strength)
        f.addRow("Starts at", self.control_start)
        f.addRow("Ends at", self.control_end)
        f.addRow(self.control_is_map)
        self.control_kind.currentIndexChanged.connect(self._kind_changed)
        self._model = control.model
        self.pages.append(page)

        # reference
        page = QWidget()
        f = QFormLayout(page)
        self.reference_kind = QComboBox()
        for k in REFERENCE_KINDS:
            self.reference_kind.addItem(REFERENCE_LABELS[k], k)
        self.reference_kind.setCurrentIndex(REFERENCE_KINDS.index(reference.kind))
        self.reference_note = QLabel("")
        self.reference_note.setWordWrap(True)
        self.reference_strength = _dspin(*REFERENCE_STRENGTH, reference.strength, 0.05)
        f.addRow("Lends", self.reference_kind)
        f.addRow(self.reference_note)
        f.addRow("Strength", self.reference_strength)
        self.reference_kind.currentIndexChanged.connect(self._kind_changed)
        self.pages.append(page)

        # region
        page = QWidget()
        f = QFormLayout(page)
        hint = QLabel("The layer's painted area (its alpha) is the region.")
        hint.setWordWrap(True)
        self.region_prompt = QPlainTextEdit(role.prompt if isinstance(role, RegionRole) else "")
        self.region_prompt.setPlaceholderText("What to paint inside the region…")
        self.region_prompt.setTabChangesFocus(True)
        self.region_prompt.setFixedHeight(64)
        self.region_negative = QLineEdit(role.negative if isinstance(role, RegionRole) else "")
        self.region_negative.setPlaceholderText("What to avoid there (optional)")
        f.addRow(hint)
        f.addRow("Prompt", self.region_prompt)
        f.addRow("Negative", self.region_negative)
        self.pages.append(page)

        # normal
        page = QWidget()
        f = QFormLayout(page)
        plain = QLabel("A normal paint layer: part of the picture, no other use.")
        plain.setWordWrap(True)
        f.addRow(plain)
        self.pages.append(page)

        self.error = QLabel("")
        self.error.setObjectName("roleError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #ff7b72;")
        self.error.setVisible(False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        form = QFormLayout()
        form.addRow("Use as", self.type)
        lay.addLayout(form)
        for page in self.pages:
            lay.addWidget(page)
        lay.addWidget(self.error)
        lay.addStretch(1)
        lay.addWidget(self.buttons)
        self.type.currentIndexChanged.connect(self._type_changed)
        self.type.setCurrentIndex(max(0, self.type.findData(role_type)))
        self._kind_changed()
        self._type_changed()
        self.setMinimumWidth(340)

    def _type_changed(self, *_: object) -> None:
        current = self.type.currentIndex()
        for i, page in enumerate(self.pages):  # hidden pages take no room
            page.setVisible(i == current)
        self.error.setVisible(False)
        self.adjustSize()

    def _kind_changed(self, *_: object) -> None:
        self.control_note.setText(CONTROL_NOTES[self.control_kind.currentData()])
        self.reference_note.setText(REFERENCE_NOTES[self.reference_kind.currentData()])

    def role(self) -> LayerRole:
        """The role as set; `RoleError` with a sentence when a value does not fit."""
        t = self.type.currentData()
        if t == "control":
            return ControlRole(kind=self.control_kind.currentData(),
                               strength=round(self.control_strength.value(), 2),
                               start=self.control_start.value() / 100,
                               end=self.control_end.value() / 100,
                               preprocess=not self.control_is_map.isChecked(),
                               model=self._model)
        if t == "reference":
            return ReferenceRole(kind=self.reference_kind.currentData(),
                                 strength=round(self.reference_strength.value(), 2))
        if t == "region":
            return RegionRole(prompt=self.region_prompt.toPlainText().strip(),
                              negative=self.region_negative.text().strip())
        return None

    def accept(self) -> None:
        try:
            self.role()
        except RoleError as exc:
            self.error.setText(str(exc))
            self.error.setVisible(True)
            return
        super().accept()


# ----------------------------------------------------------------------------- preprocess
def control_map(kind: str, image: np.ndarray) -> tuple[np.ndarray, str]:
    """(map, note) of `kind` for an H x W x 3|4 image: H x W x 3, and "" or what the map
    is (a depth proxy when no depth model is installed). The backends' preprocessors; a
    depth or pose model runs where installed, so call this off the GUI thread for those."""
    from canvasai.backends import preprocessors

    out, note = preprocessors.preprocess(kind, image)
    out = np.asarray(out)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out[..., :3], dtype=np.uint8), str(note or "")


def run_off_thread(work: Callable[[], Any], on_done: Callable[[Any, Any], None],
                   pixels: int, owner: QObject, *, always: bool = False) -> None:
    """Run `work` and call `on_done(result, error)` on the GUI thread: on the global thread
    pool when `pixels` is large or `always` (the GUI stays responsive), else right away."""
    if pixels < BACKGROUND_PIXELS and not always:
        try:
            result = work()
        except Exception as exc:  # noqa: BLE001
            on_done(None, str(exc) or type(exc).__name__)
            return
        on_done(result, None)
        return
    run_in_pool(owner, work, lambda result: on_done(result, None),
                lambda exc: on_done(None, str(exc) or type(exc).__name__))
