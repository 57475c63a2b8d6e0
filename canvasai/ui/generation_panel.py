"""The generation panel: prompt, model, task, sampling settings, task options, Generate/Cancel."""

from __future__ import annotations

import os
from collections.abc import Iterable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from canvasai.backends.api import CLASSIC_MODEL, MAX_MARGIN, SCHEDULERS, SEED_MODULUS, ControlKind
from canvasai.core import settings
from canvasai.core.settings import RANGES
from canvasai.generation.params import FlowParams
from canvasai.ui.prompt_completion import LoraCompleter

TASKS = (
    ("auto", "Auto (from mask, frame, control layers)"),
    ("generate", "Generate (text → image)"),
    ("refine", "Refine (image → image)"),
    ("inpaint", "Inpaint (mask → regenerate)"),
    ("outpaint", "Outpaint (extend canvas)"),
    ("sketch", "Sketch → Render"),
    ("upscale", "Upscale"),
    ("edit", "Edit (follow an instruction)"),
)
PROMPT_HINTS = {
    "edit": "Instruction: “make it night”, “remove the lamp”, “turn the cat into a fox”…",
}
DEFAULT_PROMPT_HINT = "Describe what to paint…"
TASK_NAMES = {
    "generate": "generate from text", "refine": "refine the picture", "inpaint": "inpaint",
    "outpaint": "outpaint", "sketch": "render the control layers", "upscale": "upscale",
    "edit": "edit by instruction",
}
#: What the Classic (OpenCV) backend can do; other tasks need a model.
CLASSIC_TASKS = ("inpaint", "outpaint", "upscale")
UPSCALE_TARGET_ITEMS = (("Resample every layer (no AI)", "resample"),
                        ("Upscale into a new layer", "layer"),
                        ("Open as a new document", "new_document"))
UPSCALE_TARGET_NOTES = {
    "resample": "Every layer, the mask and the selection are resampled with Lanczos; "
                "layers stay editable, nothing is added.",
    "layer": "Layers are resampled and hidden; the upscaled picture is one new layer "
             "above them.",
    "new_document": "The upscaled picture opens as a new one-layer document; this one "
                    "is left as it is.",
}
UPSCALE_METHOD_ITEMS = (("Lanczos (no AI)", "lanczos"),
                        ("Model upscaler (x4 model)", "model"),
                        ("Tiled refine", "refine"))
UPSCALE_METHOD_NOTES = {
    "lanczos": "A plain Lanczos resize, no model runs.",
    "model": "The x4 upscaler model redraws the picture (2×: its 4× result reduced).",
    "refine": "Lanczos, then the model redraws tile by tile with this strength and "
              "these steps (slow on large pictures).",
}
#: The task sections each task shows (Auto adds the sections of the task it would choose).
SECTIONS = {
    "auto": {"outpaint"},
    "generate": set(),
    "refine": set(),
    "inpaint": {"inpaint"},
    "outpaint": {"outpaint"},
    "sketch": {"sketch", "inpaint"},
    "upscale": {"upscale"},
    "edit": {"inpaint", "edit"},
}
MESSAGE_LINES = 3  # the message area's fixed height, in lines: it never moves the Generate button
PROMPT_HISTORY_KEY = "ui/prompt_history"


def _range(key: str) -> tuple[float, float]:
    """A field's limits from the settings model (the request contract checks the same)."""
    return RANGES[f"generation/{key}"]


def _spin(lo: float, hi: float, value: int, suffix: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(int(lo), int(hi))
    s.setValue(value)
    if suffix:
        s.setSuffix(suffix)
    return s


def _dspin(lo: float, hi: float, value: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setDecimals(decimals)
    s.setValue(value)
    return s


class GenerationPanel(QWidget):
    """Edits a `FlowParams`; the controller reads it with `params()` when Generate is pressed."""

    generate_clicked = Signal()
    cancel_clicked = Signal()
    margins_changed = Signal(tuple)  # (left, top, right, bottom)
    mark_sketch_clicked = Signal()
    refresh_models_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._busy = False
        self._auto: tuple[str, str] | None = None  # Auto's choice and why, for the document
        self._dirty = False
        self._status_for: tuple[str, object] | None = None  # task and model the status is about
        self._last_seed: int | None = None
        self._updating_margins = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)
        lay = QVBoxLayout(body)
        lay.setContentsMargins(0, 0, 14, 0)  # room for the vertical scroll bar

        # -- prompt -----------------------------------------------------------------------
        self.task = QComboBox()
        for key, label in TASKS:
            self.task.addItem(label, key)
        self.task.currentIndexChanged.connect(self._update_sections)
        lay.addWidget(self.task)
        # what Auto would do now and why, or why the chosen model can't do the task
        self.task_note = QLabel("")
        self.task_note.setWordWrap(True)
        self.task_note.setObjectName("taskNote")
        lay.addWidget(self.task_note)
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText(DEFAULT_PROMPT_HINT)
        self.prompt.setFixedHeight(72)
        self.prompt.setTabChangesFocus(True)
        self.lora_completion = LoraCompleter(self.prompt, self._lora_names)
        lay.addWidget(self.prompt)
        self.recent = QComboBox()
        self.recent.setToolTip("Recent prompts")
        self.recent.activated.connect(self._use_recent)
        lay.addWidget(self.recent)
        self.negative = QPlainTextEdit()
        self.negative.setPlaceholderText("Negative prompt (what to avoid)")
        self.negative.setFixedHeight(44)
        self.negative.setTabChangesFocus(True)
        lay.addWidget(self.negative)
        self.negative_note = QLabel("")
        self.negative_note.setWordWrap(True)
        self.negative_note.setObjectName("negativeNote")
        self.negative_note.setVisible(False)
        lay.addWidget(self.negative_note)
        # name -> (family, kind, variant[, bytes on disk, GPU bytes estimate])
        self._model_info: dict[str, tuple] = {}
        self._defaults_for: tuple[str, str, str] | None = None

        # -- model and sampling -------------------------------------------------------------
        model_row = QHBoxLayout()
        self.model = QComboBox()
        self.model.setToolTip("Model (diffusers folders and .safetensors found in the models folder)")
        model_row.addWidget(self.model, 1)
        refresh = QToolButton()
        refresh.setText("⟳")
        refresh.setToolTip("Scan the models folder again")
        refresh.clicked.connect(self.refresh_models_clicked)
        model_row.addWidget(refresh)
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Use a model file or folder from anywhere on disk")
        browse.clicked.connect(self._browse_model)
        model_row.addWidget(browse)
        lay.addLayout(model_row)
        self.model_note = QLabel("")
        self.model_note.setWordWrap(True)
        self.model_note.setObjectName("modelNote")
        self.model_note.setVisible(False)
        lay.addWidget(self.model_note)
        self.model.currentIndexChanged.connect(self._model_changed)
        self.model.currentIndexChanged.connect(self._update_sections)

        self.sampling_box = sampling = QGroupBox("Sampling")
        form = self._sampling_form = QFormLayout(sampling)
        d = settings.current().generation
        self.steps = _spin(*_range("steps"), d.steps)
        self.guidance = _dspin(*_range("guidance"), d.guidance, 0.5, 1)
        self.strength = _dspin(*_range("strength"), d.strength, 0.05)
        self.scheduler = QComboBox()
        self.scheduler.addItems(SCHEDULERS)
        self.batch = _spin(*_range("batch_size"), d.batch_size)
        seed_row = QHBoxLayout()
        self.seed = _dspin(0, SEED_MODULUS - 1, 0, 1, 0)  # a double holds every 32-bit seed
        self.seed_lock = QToolButton()
        self.seed_lock.setText("Lock")
        self.seed_lock.setCheckable(True)
        self.seed_lock.setToolTip("Locked: use this seed every time. Unlocked: a new random seed.")
        self.reuse_seed = QToolButton()
        self.reuse_seed.setText("Reuse")
        self.reuse_seed.setToolTip("Use the last job's seed (and lock it)")
        self.reuse_seed.clicked.connect(self._reuse_seed)
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.seed_lock)
        seed_row.addWidget(self.reuse_seed)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Strength", self.strength)
        form.addRow("Sampler", self.scheduler)
        form.addRow("Seed", seed_row)
        form.addRow("Batch", self.batch)
        lay.addWidget(sampling)

        # -- style and LoRAs (diffusion models) ----------------------------------------------
        self.style_box = QGroupBox("Style and LoRAs")
        f = QFormLayout(self.style_box)
        self.style = QComboBox()
        self.style.setToolTip("A saved bundle of settings, LoRAs and prompt templates; picking "
                              "one sets them (your prompt text stays as you wrote it)")
        self.style.activated.connect(self._style_picked)
        f.addRow("Style", self.style)
        self.loras = QListWidget()
        self.loras.setToolTip("Ticked LoRAs apply to every job (or write <lora:name:0.8> in "
                              "the prompt); the weight applies to the selected one")
        self.loras.setMaximumHeight(90)
        self.loras.currentItemChanged.connect(self._lora_selected)
        self.loras.itemChanged.connect(self._lora_ticked)
        f.addRow("LoRAs", self.loras)
        weight_row = QHBoxLayout()
        self.lora_weight = _dspin(-4.0, 4.0, 1.0, 0.05)
        self.lora_weight.valueChanged.connect(self._lora_weight_changed)
        self.lora_triggers = QPushButton("Add trigger words")
        self.lora_triggers.setToolTip("Append the selected LoRA's trigger words to the prompt")
        self.lora_triggers.clicked.connect(self._insert_triggers)
        weight_row.addWidget(self.lora_weight, 1)
        weight_row.addWidget(self.lora_triggers)
        f.addRow("Weight", weight_row)
        self.lora_note = QLabel("")
        self.lora_note.setWordWrap(True)
        f.addRow(self.lora_note)
        style_files = QHBoxLayout()
        self.import_style_button = QPushButton("Import style…")
        self.import_style_button.setToolTip("Add a style from a .json file (kept with your own "
                                            "styles)")
        self.import_style_button.clicked.connect(self._import_style_dialog)
        self.export_style_button = QPushButton("Export style…")
        self.export_style_button.setToolTip("Save the chosen style (or, with none, these "
                                            "settings and LoRAs) as a .json file to share")
        self.export_style_button.clicked.connect(self._export_style_dialog)
        style_files.addWidget(self.import_style_button)
        style_files.addWidget(self.export_style_button)
        f.addRow(style_files)
        self._lora_weights: dict[str, float] = {}  # every LoRA asked for, listed or not
        lay.addWidget(self.style_box)

        # -- layer roles in use ------------------------------------------------------------------
        self.roles_box = QGroupBox("Control layers, references, regions")
        f = QFormLayout(self.roles_box)
        self.role_list = QListWidget()
        self.role_list.setObjectName("roleList")
        self.role_list.setToolTip("The layers this job uses besides the picture. Right-click a "
                                  "layer in the Layers panel ▸ Use as… to add or change one; "
                                  "hide it to leave it out.")
        self.role_list.setWordWrap(True)
        self.role_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.role_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.role_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.role_list.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.role_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        f.addRow(self.role_list)
        self.roles_note = QLabel("")
        self.roles_note.setWordWrap(True)
        self.roles_note.setObjectName("rolesNote")
        f.addRow(self.roles_note)
        lay.addWidget(self.roles_box)

        # -- task sections --------------------------------------------------------------------
        self.inpaint_box = QGroupBox("Inpaint")
        f = QFormLayout(self.inpaint_box)
        self.grow = _spin(*_range("grow_px"), d.grow_px, " px")
        self.feather = _spin(*_range("feather_px"), d.feather_px, " px")
        self.color_match = QCheckBox("Match colours to the surroundings")
        self.classic_method = QComboBox()
        self.classic_method.addItem("Telea", "telea")
        self.classic_method.addItem("Navier–Stokes", "ns")
        f.addRow("Grow mask", self.grow)
        f.addRow("Feather", self.feather)
        f.addRow(self.color_match)
        f.addRow("Classic method", self.classic_method)
        self._inpaint_form = f
        lay.addWidget(self.inpaint_box)

        self.outpaint_box = QGroupBox("Outpaint")
        f = QFormLayout(self.outpaint_box)
        self.margin_spins = [_spin(0, MAX_MARGIN, 0, " px") for _ in range(4)]
        for label, spin in zip(("Left", "Top", "Right", "Bottom"), self.margin_spins, strict=True):
            spin.setSingleStep(8)
            spin.valueChanged.connect(self._margins_edited)
            f.addRow(label, spin)
        quick = QHBoxLayout()
        for text, amount in (("All +64", 64), ("All +128", 128), ("Reset", 0)):
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, a=amount: self.set_margins((a, a, a, a)))
            quick.addWidget(b)
        f.addRow(quick)
        self.prefill = QComboBox()
        for key, label in (("infill", "OpenCV infill"), ("edge", "Edge extension"),
                           ("blur", "Blurred edge"), ("solid", "Solid colour")):
            self.prefill.addItem(label, key)
        f.addRow("Pre-fill", self.prefill)
        lay.addWidget(self.outpaint_box)

        self.sketch_box = QGroupBox("Sketch → Render")
        f = QFormLayout(self.sketch_box)
        self.control = QComboBox()
        for kind in ControlKind:
            self.control.addItem(kind.value.capitalize(), kind.value)
        self.controlnet = QComboBox()
        self.controlnet.addItem("Pick by control type", None)
        self.control_scale = _dspin(*_range("control_scale"), d.control_scale, 0.05)
        self.sketch_mask = QCheckBox("Only inside the mask")
        self.sketch_mask.setChecked(True)
        self.sketch_mask_note = QLabel("")
        self.sketch_mask_note.setWordWrap(True)
        self.sketch_mask_note.setObjectName("optionNote")
        self.control_preprocess = QCheckBox("Detect lines/edges/depth first")
        self.control_preprocess.setToolTip(
            "Off when the sketch layer already is a control map (edges, depth, …)")
        self.control_preprocess.setChecked(True)
        mark = QPushButton("Use active layer as a control layer")
        mark.setToolTip("Makes the active layer a scribble control layer (right-click it in "
                        "the Layers panel ▸ Use as… for another type)")
        mark.clicked.connect(self.mark_sketch_clicked)
        self.mark_sketch_button = mark
        self.control_fallback_note = QLabel(
            "No control layer is visible: the active layer is rendered as this type.")
        self.control_fallback_note.setWordWrap(True)
        self.control_fallback_note.setObjectName("optionNote")
        self.controlnet.setToolTip("The ControlNet for control layers of its type (or for the "
                                   "only one); the others pick theirs by type")
        f.addRow(self.control_fallback_note)
        f.addRow("Control", self.control)
        f.addRow("Control strength", self.control_scale)
        f.addRow(self.control_preprocess)
        f.addRow("ControlNet", self.controlnet)
        f.addRow(self.sketch_mask)
        f.addRow(self.sketch_mask_note)
        f.addRow(mark)
        self._sketch_form = f
        lay.addWidget(self.sketch_box)

        self.upscale_box = QGroupBox("Upscale")
        f = QFormLayout(self.upscale_box)
        self.upscale_factor = QComboBox()
        self.upscale_factor.addItem("2×", 2)
        self.upscale_factor.addItem("4×", 4)
        self.upscale_source = QComboBox()
        self.upscale_source.addItem("Whole image", "image")
        self.upscale_source.addItem("Active layer", "layer")
        self.upscale_target = QComboBox()
        for label, value in UPSCALE_TARGET_ITEMS:
            self.upscale_target.addItem(label, value)
        self.upscale_target_note = QLabel("")
        self.upscale_target_note.setWordWrap(True)
        self.upscale_target_note.setObjectName("upscaleTargetNote")
        self.upscale_method = QComboBox()
        for label, value in UPSCALE_METHOD_ITEMS:
            self.upscale_method.addItem(label, value)
        self.upscale_method_note = QLabel("")
        self.upscale_method_note.setWordWrap(True)
        self.upscale_method_note.setObjectName("upscaleMethodNote")
        self.upscale_strength = _dspin(0.05, 1.0, 0.3, 0.05)
        self.upscale_strength.setToolTip("Tiled refine: how much each tile is redrawn")
        self.upscale_steps = _spin(*_range("steps"), 20)
        self.upscale_steps.setToolTip("Model upscaler / tiled refine: denoising steps")
        self.upscale_target.currentIndexChanged.connect(self._update_sections)
        self.upscale_method.currentIndexChanged.connect(self._update_sections)
        self.tile = _spin(*_range("tile"), d.tile, " px")
        self.overlap = _spin(*_range("overlap"), d.overlap, " px")
        self.sharpen = _dspin(0.0, 5.0, 0.0, 0.1)
        self.sharpen.setToolTip("Classic upscale: unsharp-mask amount (0 = off)")
        f.addRow("Factor", self.upscale_factor)
        f.addRow("Source", self.upscale_source)
        f.addRow("Result", self.upscale_target)
        f.addRow(self.upscale_target_note)
        f.addRow("Method", self.upscale_method)
        f.addRow(self.upscale_method_note)
        f.addRow("Refine strength", self.upscale_strength)
        f.addRow("Upscale steps", self.upscale_steps)
        f.addRow("Tile", self.tile)
        f.addRow("Overlap", self.overlap)
        f.addRow("Sharpen", self.sharpen)
        self._upscale_form = f
        lay.addWidget(self.upscale_box)

        self.edit_box = QGroupBox("Edit")
        f = QFormLayout(self.edit_box)
        hint = QLabel("Edits the selection (or the painted mask); with none, the whole picture. "
                      "Needs an edit model: Flux Kontext, Qwen-Image-Edit or Flux.2 Klein.")
        hint.setWordWrap(True)
        f.addRow(hint)
        self.references = QListWidget()
        self.references.setToolTip("Ticked layers go to the model as reference images, as do "
                                   "visible layers used as a Reference image (Layers panel "
                                   "▸ Use as)")
        self.references.setMaximumHeight(90)
        self._reference_ids: set[int] = set()
        self.references.itemChanged.connect(self._reference_ticked)
        f.addRow("Reference layers", self.references)
        lay.addWidget(self.edit_box)
        # what is not shown for this task and model, and why
        self.hidden_note = QLabel("")
        self.hidden_note.setWordWrap(True)
        self.hidden_note.setObjectName("hiddenNote")
        lay.addWidget(self.hidden_note)
        lay.addStretch(1)

        # -- run ------------------------------------------------------------------------------
        # Errors and notes live in a fixed-height area above the button: a long message
        # scrolls inside it instead of pushing the button away mid-click.
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("generationMessage")
        self.message.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_area = QScrollArea()
        self.message_area.setWidgetResizable(True)
        self.message_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.message_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.message_area.setWidget(self.message)
        self.message_area.setFixedHeight(self.fontMetrics().lineSpacing() * MESSAGE_LINES + 6)
        outer.addWidget(self.message_area)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("generateButton")
        self.generate_button.setMinimumHeight(34)
        self.generate_button.clicked.connect(self._on_button)
        outer.addWidget(self.generate_button)
        prog_row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.step_label = QLabel("Ready")
        # a long status ("Loading <long model name>…") is cut, never widens the panel
        self.step_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        prog_row.addWidget(self.progress, 1)
        prog_row.addWidget(self.step_label, 1)
        outer.addLayout(prog_row)
        self._job_label = ""  # the running (or last) job: "Inpaint · Classic"
        self._doc: object | None = None
        self._watch = QTimer(self)  # follows the window's document (Auto's choice, mask notes)
        self._watch.setInterval(500)
        self._watch.timeout.connect(self._follow_document)
        self._watch.start()
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        # never narrower than what the widest task and model need (measured while every
        # section is still shown): a narrower dock clipped the right edge (the model row's
        # buttons, the seed row, spin-box arrows) instead of wrapping
        self._scroll = scroll
        scroll.setMinimumWidth(
            body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 2
        )
        self.set_models([])
        self._load_prompt_history()
        self._update_sections()

    # -- models ---------------------------------------------------------------------------------
    def set_models(self, models: Iterable[tuple[str, str, str]],
                   controlnets: Iterable[tuple[str, str]] = ()) -> None:
        """Fill the model picker: (group, label, value) triples; Classic is always first.

        A model picked by path (Browse…) that the scan doesn't list is kept and stays selected.
        """
        current, current_text = self.model.currentData(), self.model.currentText()
        self.model.clear()
        self.model.addItem("Classic (no model): OpenCV", CLASSIC_MODEL)
        group = None
        for g, label, value in sorted(models):
            if g != group:
                self.model.insertSeparator(self.model.count())
                self.model.addItem(f"— {g} —", None)
                idx = self.model.count() - 1
                self.model.model().item(idx).setEnabled(False)
                group = g
            self.model.addItem(label, value)
        self._select_or_keep(self.model, current, current_text)
        cn_current, cn_text = self.controlnet.currentData(), self.controlnet.currentText()
        self.controlnet.clear()
        self.controlnet.addItem("Pick by control type", None)
        for label, value in controlnets:
            self.controlnet.addItem(label, value)
        self._select_or_keep(self.controlnet, cn_current, cn_text)

    def set_model_info(self, info: dict[str, tuple]) -> None:
        """What each listed model is: name -> (family, kind, variant[, size, memory]),
        for its defaults and the size / memory line under the picker."""
        self._model_info = dict(info)
        self._model_changed()

    def _model_changed(self, *_: object) -> None:
        """Show the chosen model's family defaults and whether it reads a negative prompt.

        Steps, guidance and strength change only when the family or variant changes, so
        a person's own values survive a rescan or picking another model of the same kind.
        """
        from canvasai.backends.diffusion import families

        info = self._model_info.get(str(self.model.currentData()))
        fam = families.find(info[0]) if info else None
        self._fill_styles()
        self._fill_loras()
        if info is None or fam is None:
            self.negative.setEnabled(True)
            self.negative_note.setText("")
            self.negative_note.setVisible(False)
            self.model_note.setText("")
            self.model_note.setVisible(False)
            self._defaults_for = None
            return
        family, kind, variant = info[:3]
        d = fam.defaults(variant, kind)
        self.negative.setEnabled(d.negative_prompt)
        self.negative_note.setText(d.note if not d.negative_prompt else "")
        self.negative_note.setVisible(not d.negative_prompt)
        label = f"{fam.label}{f' {variant}' if variant else ''}"
        size = ""
        if len(info) >= 5 and info[3]:
            size = (f" · {info[3] / 1e9:.1f} GB, needs about {info[4] / 1e9:.0f} GB of GPU "
                    "memory (runs with less, offloaded)")
        self.model_note.setVisible(True)
        self.model_note.setText(
            f"{label}: {d.steps} steps, guidance {d.guidance:g} by default"
            + (" · follows instructions (Edit)" if kind == "edit" else "")
            + size
        )
        if self._defaults_for != info[:3]:
            self._defaults_for = info[:3]
            self.steps.setValue(d.steps)
            self.guidance.setValue(d.guidance)
            self.strength.setValue(d.strength)

    # -- style and LoRAs -----------------------------------------------------------------------
    def _family(self) -> str | None:
        info = self._model_info.get(str(self.model.currentData()))
        return info[0] if info else None

    def _fill_styles(self) -> None:
        from canvasai.generation import styles

        current = self.style.currentData()
        self.style.clear()
        self.style.addItem("No style", None)
        for s in styles.available(self._family()):
            self.style.addItem(s.name, s.name)
        self._select_or_keep(self.style, current, str(current))

    def _style_picked(self, index: int) -> None:
        from canvasai.generation import styles

        name = self.style.itemData(index)
        if not name:
            return
        style = styles.find(name)
        if style is None:
            self.show_error(f"The style “{name}” could not be read.")
            return
        self.set_params(styles.apply(style, self.params()))

    def import_style_file(self, path: str) -> bool:
        """Import a style file, list it and pick it; a bad file is refused with the reason."""
        from canvasai.generation import styles

        try:
            style = styles.import_style(path)
        except styles.StyleError as exc:
            self.show_error(f"The style was not imported: {exc}")
            return False
        self._fill_styles()
        i = self.style.findData(style.name)
        if i < 0:
            fam = self._family()
            self.show_note(f"Imported the style “{style.name}”; it is for {style.family} models, "
                           f"so it is listed when one is chosen (now: {fam or 'no model'}).")
            return True
        self.style.setCurrentIndex(i)
        self._style_picked(i)
        self.show_note(f"Imported the style “{style.name}” and picked it.")
        return True

    def export_style_file(self, path: str) -> str | None:
        """Write the chosen style (or, with none, these settings and LoRAs as a style named
        after the file) to `path`; returns the file written, None after an error."""
        from pathlib import Path

        from canvasai.generation import styles

        name = self.style.currentData()
        style = styles.find(name) if name else None
        if style is None:
            style = styles.from_params(Path(path).stem.replace("-", " ").replace("_", " "),
                                       self.params(), self._family() or "")
        try:
            out = styles.export_style(style, path)
        except styles.StyleError as exc:
            self.show_error(f"The style was not exported: {exc}")
            return None
        self.show_note(f"Exported the style “{style.name}” to {out.name}.")
        return str(out)

    def _import_style_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a style", "", "Styles (*.json)")
        if path:
            self.import_style_file(path)

    def _export_style_dialog(self) -> None:
        from canvasai.generation import styles

        name = self.style.currentData() or "my style"
        path, _ = QFileDialog.getSaveFileName(self, "Export the style", styles.file_name(name),
                                              "Styles (*.json)")
        if path:
            self.export_style_file(path)

    def _lora_names(self) -> list[str]:
        """The LoRAs that fit the chosen model (for <lora: completion in the prompt)."""
        fam = self._family()
        return [name for name, info in self._model_info.items()
                if len(info) >= 2 and info[1] == "lora" and info[0] in (fam, "unknown")]

    def _fill_loras(self) -> None:
        """The LoRAs for the chosen model's family (and those whose family is unknown)."""
        fam = self._family()
        self.loras.blockSignals(True)
        self.loras.clear()
        for name, info in sorted(self._model_info.items()):
            if len(info) < 2 or info[1] != "lora" or info[0] not in (fam, "unknown"):
                continue
            weight = self._lora_weights.get(name)
            item = QListWidgetItem(name if weight is None else f"{name}  ({weight:g})")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if weight is not None else Qt.CheckState.Unchecked)
            self.loras.addItem(item)
        self.loras.blockSignals(False)
        listed = self.loras.count()
        self.lora_note.setText(
            "" if listed else "No LoRAs for this model's family in the models folders.")
        self._lora_selected(self.loras.currentItem())

    def _lora_ticked(self, item: QListWidgetItem) -> None:
        name = str(item.data(Qt.ItemDataRole.UserRole))
        if item.checkState() == Qt.CheckState.Checked:
            self._lora_weights.setdefault(name, 1.0)
        else:
            self._lora_weights.pop(name, None)
        self.loras.setCurrentItem(item)
        self._relabel(item)

    def _relabel(self, item: QListWidgetItem) -> None:
        name = str(item.data(Qt.ItemDataRole.UserRole))
        weight = self._lora_weights.get(name)
        self.loras.blockSignals(True)
        item.setText(name if weight is None else f"{name}  ({weight:g})")
        self.loras.blockSignals(False)

    def _lora_selected(self, item: QListWidgetItem | None, *_: object) -> None:
        name = str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else ""
        self.lora_weight.blockSignals(True)
        self.lora_weight.setValue(self._lora_weights.get(name, 1.0))
        self.lora_weight.blockSignals(False)
        triggers = self._triggers(name)
        self.lora_triggers.setEnabled(bool(triggers))
        self.lora_triggers.setToolTip(
            f"Append to the prompt: {', '.join(triggers)}" if triggers
            else "This LoRA's file names no trigger words")

    def _lora_weight_changed(self, value: float) -> None:
        item = self.loras.currentItem()
        if item is None:
            return
        name = str(item.data(Qt.ItemDataRole.UserRole))
        self._lora_weights[name] = float(value)
        if item.checkState() != Qt.CheckState.Checked:
            item.setCheckState(Qt.CheckState.Checked)
        self._relabel(item)

    def _triggers(self, name: str) -> tuple[str, ...]:
        info = self._model_info.get(name)
        return tuple(info[5]) if info and len(info) > 5 else ()

    def _insert_triggers(self) -> None:
        item = self.loras.currentItem()
        if item is None:
            return
        words = self._triggers(str(item.data(Qt.ItemDataRole.UserRole)))
        text = self.prompt.toPlainText().strip()
        missing = [w for w in words if w not in text]
        if missing:
            self.prompt.setPlainText(", ".join([text, *missing]) if text else ", ".join(missing))

    def set_reference_layers(self, layers: Iterable[tuple[int, str]]) -> None:
        """The layers that can be references for Edit: (id, name); ticks are kept by id."""
        ticked = set(self._reference_ids)
        self.references.blockSignals(True)
        self.references.clear()
        for layer_id, name in layers:
            item = QListWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, int(layer_id))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Checked if layer_id in ticked else Qt.CheckState.Unchecked
            )
            self.references.addItem(item)
        self.references.blockSignals(False)

    def _reference_ticked(self, item: QListWidgetItem) -> None:
        layer_id = int(item.data(Qt.ItemDataRole.UserRole))
        if item.checkState() == Qt.CheckState.Checked:
            self._reference_ids.add(layer_id)
        else:
            self._reference_ids.discard(layer_id)

    def reference_layer_ids(self) -> tuple[int, ...]:
        """The ticked reference layers (ids; kept while their layers are not listed)."""
        return tuple(sorted(self._reference_ids))

    def set_reference_layer_ids(self, ids: Iterable[int]) -> None:
        self._reference_ids = {int(i) for i in ids}
        for i in range(self.references.count()):
            item = self.references.item(i)
            on = int(item.data(Qt.ItemDataRole.UserRole)) in self._reference_ids
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    @staticmethod
    def _select_or_keep(combo: QComboBox, value: object, text: str) -> None:
        if value is None:
            combo.setCurrentIndex(0)
            return
        i = combo.findData(value)
        if i < 0:
            combo.addItem(text, value)
            i = combo.count() - 1
        combo.setCurrentIndex(i)

    def add_model_path(self, path: str, label: str | None = None) -> None:
        """Select a model by folder or file path (it need not be in the models folder)."""
        i = self.model.findData(path)
        if i < 0:
            self.model.addItem(label or f"File: {os.path.basename(path.rstrip('/'))}", path)
            i = self.model.count() - 1
        self.model.setCurrentIndex(i)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a model file", "", "Safetensors checkpoints (*.safetensors)")
        if not path:
            path = QFileDialog.getExistingDirectory(self, "…or choose a diffusers model folder")
        if path:
            self.add_model_path(path)

    # -- params ----------------------------------------------------------------------------------
    def flow(self) -> str:
        return str(self.task.currentData())

    def set_flow(self, flow: str) -> None:
        i = self.task.findData(flow)
        if i >= 0:
            self.task.setCurrentIndex(i)

    def params(self) -> FlowParams:
        seed = int(self.seed.value()) if self.seed_lock.isChecked() else None
        return FlowParams(
            prompt=self.prompt.toPlainText().strip(),
            negative_prompt=self.negative.toPlainText().strip(),
            model=self.model.currentData() or CLASSIC_MODEL,
            steps=self.steps.value(), guidance=self.guidance.value(),
            strength=self.strength.value(), seed=seed, batch_size=self.batch.value(),
            scheduler=self.scheduler.currentText(),
            grow_px=self.grow.value(), feather_px=self.feather.value(),
            color_match=self.color_match.isChecked(),
            classic_method=self.classic_method.currentData(),
            margins=self.margins(), prefill=self.prefill.currentData(),
            control=ControlKind(self.control.currentData()),
            controlnet=self.controlnet.currentData(), control_scale=self.control_scale.value(),
            control_preprocess=self.control_preprocess.isChecked(),
            sketch_use_mask=self.sketch_mask.isChecked(),
            upscale_factor=int(self.upscale_factor.currentData()),
            upscale_source=self.upscale_source.currentData(),
            upscale_target=self.upscale_target.currentData(),
            upscale_method=self.upscale_method.currentData(),
            upscale_refine_strength=self.upscale_strength.value(),
            upscale_steps=self.upscale_steps.value(),
            upscale_sharpen=self.sharpen.value(),
            tile=self.tile.value(), overlap=self.overlap.value(),
            reference_layers=self.reference_layer_ids(),
            loras=tuple(self._lora_weights.items()),
            style=self.style.currentData() or "",
        )

    def set_params(self, p: FlowParams, flow: str | None = None) -> None:
        """Restore every setting of `p` (history's "use these settings again").

        A model or ControlNet that is not in the lists (picked by path, or gone since) is
        added under its stored name, so the settings come back as they were.
        """
        if flow:
            self.set_flow(flow)
        self.prompt.setPlainText(p.prompt)
        self.negative.setPlainText(p.negative_prompt)
        self._select_or_keep(self.model, p.model or CLASSIC_MODEL, str(p.model))
        self.steps.setValue(p.steps)
        self.guidance.setValue(p.guidance)
        self.strength.setValue(p.strength)
        self.scheduler.setCurrentText(p.scheduler)
        self.batch.setValue(p.batch_size)
        self.seed_lock.setChecked(p.seed is not None)
        if p.seed is not None:
            self.seed.setValue(p.seed)
        self.grow.setValue(p.grow_px)
        self.feather.setValue(p.feather_px)
        self.color_match.setChecked(p.color_match)
        self._set_data(self.classic_method, p.classic_method)
        self.set_margins(tuple(int(v) for v in p.margins))  # type: ignore[arg-type]
        self._set_data(self.prefill, p.prefill)
        self._set_data(self.control, ControlKind(p.control).value)
        self._select_or_keep(self.controlnet, p.controlnet, str(p.controlnet))
        self.control_scale.setValue(p.control_scale)
        self.control_preprocess.setChecked(p.control_preprocess)
        self.sketch_mask.setChecked(p.sketch_use_mask)
        self._set_data(self.upscale_factor, p.upscale_factor)
        self._set_data(self.upscale_source, p.upscale_source)
        self._set_data(self.upscale_target,
                       "layer" if p.upscale_target == "resize" else p.upscale_target)
        self._set_data(self.upscale_method, p.upscale_method)
        self.upscale_strength.setValue(p.upscale_refine_strength)
        self.upscale_steps.setValue(p.upscale_steps)
        self.sharpen.setValue(p.upscale_sharpen)
        self.tile.setValue(p.tile)
        self.overlap.setValue(p.overlap)
        self.set_reference_layer_ids(p.reference_layers)
        self._lora_weights = {str(n): float(w) for n, w in p.loras}
        self._fill_loras()
        self._select_or_keep(self.style, p.style or None, p.style)

    @staticmethod
    def _set_data(combo: QComboBox, value: object) -> None:
        i = combo.findData(value)
        if i >= 0:
            combo.setCurrentIndex(i)

    def margins(self) -> tuple[int, int, int, int]:
        return tuple(s.value() for s in self.margin_spins)  # type: ignore[return-value]

    def set_margins(self, margins: tuple[int, int, int, int]) -> None:
        self._updating_margins = True
        try:
            for s, v in zip(self.margin_spins, margins, strict=True):
                s.setValue(int(v))
        finally:
            self._updating_margins = False
        self.margins_changed.emit(self.margins())
        self._refresh_context()

    def _margins_edited(self) -> None:
        if not self._updating_margins:
            self.margins_changed.emit(self.margins())
            self._refresh_context()

    # -- state --------------------------------------------------------------------------------------
    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        # Generate while a job runs queues the next one (Esc or the Queue panel cancels)
        self.generate_button.setText("Generate  (adds to the queue)" if busy else "Generate")
        self.generate_button.setToolTip("Esc cancels the running job; the Queue panel shows "
                                        "the waiting ones" if busy else "")
        self.generate_button.setProperty("busy", busy)
        self.generate_button.style().unpolish(self.generate_button)
        self.generate_button.style().polish(self.generate_button)
        if busy:
            self.message.setText("")
            self._job_label = self._describe_job()
            self._status_for = None
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self._status_for = self._settings_key()

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def job_label(self) -> str:
        """The running (or last) job in words: "Inpaint · Classic (no model): OpenCV"."""
        return self._job_label

    def _describe_job(self) -> str:
        task = self.task.currentText().split(" (")[0]
        if self.flow() == "auto" and self._auto is not None:
            task = f"Auto → {TASK_NAMES.get(self._auto[0], self._auto[0])}"
        return f"{task} · {self.model.currentText()}"

    def _settings_key(self) -> tuple[str, object]:
        return (self.flow(), self.model.currentData())

    def set_progress(self, step: int, total: int, item: int = 1, items: int = 1) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(step)
        prefix = f"{item}/{items} · " if items > 1 else ""
        self._show_status(f"{prefix}step {step}/{total}")

    def set_status(self, text: str) -> None:
        """The status of the running job (or, once idle, of the job that just ended: it
        goes back to "Ready" when the task or the model changes, so it never describes
        another job)."""
        self._show_status(text)
        if not self._busy:
            self._status_for = self._settings_key()

    def _show_status(self, text: str) -> None:
        self.step_label.setText(text)
        self.step_label.setToolTip(f"{self._job_label}: {text}" if self._job_label else text)

    def show_error(self, message: str) -> None:
        self.message.setStyleSheet("color: #ff7b72;")
        self.message.setText(message)
        self.message.setToolTip(message)
        self.message_area.verticalScrollBar().setValue(0)

    def show_note(self, message: str) -> None:
        self.message.setStyleSheet("color: #c9d1d9;")
        self.message.setText(message)
        self.message.setToolTip(message)
        self.message_area.verticalScrollBar().setValue(0)

    def note_seed(self, seed: int) -> None:
        """Remember the seed the last job used (for Reuse) and show it when unlocked."""
        self._last_seed = seed
        if not self.seed_lock.isChecked():
            self.seed.setValue(seed)

    def _reuse_seed(self) -> None:
        if self._last_seed is not None:
            self.seed.setValue(self._last_seed)
        self.seed_lock.setChecked(True)

    def _on_button(self) -> None:
        self.remember_prompt(self.prompt.toPlainText().strip())
        self._refresh_context()  # Auto's choice as of this click
        self.generate_clicked.emit()

    # -- the document the panel describes -----------------------------------------------------
    def set_document(self, doc: object | None) -> None:
        """Describe `doc` (Auto's choice, ignored options). Without a call the panel follows
        its window's ``document``."""
        self._explicit_doc = True
        self._attach(doc)

    def _follow_document(self) -> None:
        if not getattr(self, "_explicit_doc", False):
            doc = self._window_document()
            if doc is not self._doc:
                self._attach(doc)
                return
        if self._dirty:
            self._refresh_context()

    #: the document events that can change Auto's choice or the notes
    _EVENTS = ("history", "mask_changed", "selection_changed", "layers_changed", "pixels_changed")

    def _emitters(self, doc: object | None) -> list:
        out = []
        for name in self._EVENTS:
            e = getattr(doc, name, None)
            e = getattr(e, "changed", None) if name == "history" else e
            if e is not None:
                out.append(e)
        return out

    def _window_document(self) -> object | None:
        """The ``document`` of the window holding the panel (also while its dock floats)."""
        w = self.parentWidget()
        while w is not None and not hasattr(w, "document"):
            w = w.parentWidget()
        return getattr(w, "document", None)

    def _attach(self, doc: object | None) -> None:
        for e in self._emitters(self._doc):
            e.disconnect(self._doc_changed)
        self._doc = doc
        for e in self._emitters(doc):
            e.connect(self._doc_changed)
        self._refresh_context()

    def _doc_changed(self, *_: object) -> None:
        # runs inside the document's change: only note it (the watch timer refreshes)
        self._dirty = True

    def _refresh_context(self) -> None:
        """Auto's choice and reason, and the notes that depend on the document."""
        from canvasai.generation import flows

        self._dirty = False
        doc = self._doc
        flow = self.flow()
        classic = self.model.currentData() in (None, CLASSIC_MODEL)
        self._auto = None
        if doc is not None and hasattr(doc, "mask"):
            try:
                self._auto = flows.auto_choice(doc, self.params())  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - a note must never break the panel
                self._auto = None
        note = ""
        if flow == "auto":
            if self._auto is None:
                note = ("Auto picks the task from the mask, the outpaint frame and the control "
                        "layers.")
            else:
                chosen, why = self._auto
                note = f"Auto will {TASK_NAMES.get(chosen, chosen)}: {why}."
                if classic and chosen not in CLASSIC_TASKS:
                    note += " Classic (no model) can't do that: choose a model."
        elif classic and flow not in CLASSIC_TASKS:
            note = (f"Classic (no model) can't {TASK_NAMES.get(flow, flow)}: it only inpaints, "
                    "outpaints and upscales. Choose a model.")
        self.task_note.setText(note)
        self.task_note.setVisible(bool(note))
        ignored = ""
        if doc is not None and hasattr(doc, "mask") and flows.region_surface(doc) is None:  # type: ignore[arg-type]
            ignored = ("Ignored now: nothing is masked or selected, so the whole sketch is "
                       "rendered.")
        self.sketch_mask_note.setText(ignored)
        self.sketch_mask_note.setVisible(bool(ignored) and self.sketch_mask.isChecked())
        effective = self._auto[0] if flow == "auto" and self._auto else flow
        self._refresh_roles(doc if doc is not None and hasattr(doc, "layers") else None,
                            effective, classic)
        self._apply_sections()

    def _refresh_roles(self, doc: object | None, flow: str, classic: bool) -> None:
        """List the role layers (control, reference, region) and say what this job makes
        of them: which it uses, which are hidden, what the model or task ignores."""
        from canvasai.generation import flows
        from canvasai.ui import layer_roles

        layers = [la for la in reversed(doc.layers) if la.role is not None] if doc else []  # type: ignore[attr-defined]
        self.role_list.clear()
        for la in layers:
            text = f"{la.name} — {layer_roles.short(la.role)}"
            item = QListWidgetItem(text if la.visible else f"{text} (hidden: not used)")
            item.setToolTip(f"“{la.name}”: {layer_roles.tooltip(la.role)}")
            if not la.visible:
                item.setForeground(self.palette().placeholderText())
            self.role_list.addItem(item)
        rows = min(max(1, len(layers)), 5)  # every row shown up to five, then it scrolls
        line = max(self.role_list.sizeHintForRow(0), self.role_list.fontMetrics().height() + 6)
        self.role_list.setFixedHeight(rows * line + 2 * self.role_list.frameWidth() + 2)
        self._role_layers_shown = bool(layers)
        self._has_controls = bool(doc) and bool(flows.role_layers(doc, "control"))  # type: ignore[arg-type]
        notes: list[str] = []
        if doc and layers:
            used = flows.roles_summary(doc)  # type: ignore[arg-type]
            if classic:
                notes.append("Classic (no model) uses none of them.")
            elif flow in ("outpaint", "upscale"):
                notes.append(f"{TASK_NAMES.get(flow, flow).capitalize()} uses none of them.")
            elif used:
                notes.append(f"This job uses {used}.")
            if flows.role_layers(doc, "region") and not classic:  # type: ignore[arg-type]
                why = self._regions_unsupported()
                if why:
                    notes.append(why)
        self.roles_note.setText(" ".join(notes))
        self.roles_note.setVisible(bool(notes))

    def _regions_unsupported(self) -> str:
        """A sentence when the chosen model's family does not follow regional prompts."""
        from canvasai.backends.diffusion import families

        fam = families.find(self._family() or "")
        if fam is None:
            return ""
        supports = getattr(fam, "supports_regions", None)
        if supports is None:  # before the families said so: SD 1.x/2.x and SDXL do
            supports = fam.name in ("sd1", "sd2", "sdxl")
        if supports:
            return ""
        return (f"{fam.label} does not follow regional prompts: the regions are left out and "
                "only the main prompt is used.")

    def _update_sections(self) -> None:
        flow = self.flow()
        self.prompt.setPlaceholderText(PROMPT_HINTS.get(flow, DEFAULT_PROMPT_HINT))
        if not self._busy and self._status_for is not None and self._status_for != self._settings_key():
            self._status_for = None
            self._job_label = ""
            self._show_status("Ready")
        self._refresh_context()

    def _apply_sections(self) -> None:
        """Show only what the current task and model use; say what is left out and why."""
        flow = self.flow()
        effective = self._auto[0] if flow == "auto" and self._auto else flow
        show = SECTIONS[flow] | (SECTIONS.get(effective, set()) if flow == "auto" else set())
        classic = self.model.currentData() in (None, CLASSIC_MODEL)
        self.edit_box.setVisible("edit" in show)
        self.inpaint_box.setVisible("inpaint" in show)
        self.outpaint_box.setVisible("outpaint" in show)
        self.sketch_box.setVisible("sketch" in show)
        self.upscale_box.setVisible("upscale" in show)
        self.roles_box.setVisible(getattr(self, "_role_layers_shown", False))
        fallback = not getattr(self, "_has_controls", False)
        for row in (self.control_fallback_note, self.control, self.control_scale,
                    self.control_preprocess):
            self._sketch_form.setRowVisible(row, fallback)
        missing: list[str] = []
        self.sampling_box.setVisible(not classic)
        self.style_box.setVisible(not classic)
        self.negative.setVisible(not classic)
        if classic:
            self.negative_note.setVisible(False)
            missing.append("prompt, negative prompt and sampling (steps, guidance, strength, "
                           "sampler, seed, batch): Classic (OpenCV) is no AI model, it reads no "
                           "prompt and gives the same result every time")
        else:
            self.negative_note.setVisible(bool(self.negative_note.text()))
            uses_strength = effective != "generate"
            self._sampling_form.setRowVisible(self.strength, uses_strength)
            if not uses_strength:
                missing.append("strength: text → image starts from noise, not from the picture")
        self._inpaint_form.setRowVisible(self.classic_method, classic)
        self._apply_upscale_rows(classic)
        only_classic = [name for name, section in (("Classic method", "inpaint"),
                                                   ("Sharpen", "upscale")) if section in show]
        if not classic and only_classic:
            missing.append(f"{' and '.join(only_classic)}: only Classic (no model) uses "
                           f"{'them' if len(only_classic) > 1 else 'it'}")
        if "upscale" in show and self.upscale_target.currentData() == "resample":
            missing.append("method and sharpen: “Resample every layer” runs no AI model and "
                           "does not sharpen")
        elif classic and "upscale" in show:
            missing.append("method, tile and overlap: Classic resizes the whole picture with "
                           "Lanczos at once")
        self.hidden_note.setText("Not shown here: " + "; ".join(missing) + "." if missing else "")
        self.hidden_note.setVisible(bool(missing))

    def _apply_upscale_rows(self, classic: bool) -> None:
        """Upscale rows for the chosen result and method, each with a line saying what it does."""
        from canvasai.generation import flows

        target = self.upscale_target.currentData()
        self.upscale_target_note.setText(UPSCALE_TARGET_NOTES.get(target, ""))
        ai = target != "resample" and not classic
        offered = flows.ai_upscale_method(self.model.currentData() or CLASSIC_MODEL)
        model = self.upscale_method.model()
        for i in range(self.upscale_method.count()):  # only Lanczos and the model's own way
            value = self.upscale_method.itemData(i)
            item = model.item(i) if hasattr(model, "item") else None
            if item is not None:
                item.setEnabled(value == "lanczos" or value == offered)
        method = self.upscale_method.currentData() if ai else "lanczos"
        self.upscale_method_note.setText(UPSCALE_METHOD_NOTES.get(method, "") if ai else "")
        f = self._upscale_form
        f.setRowVisible(self.sharpen, (classic or method == "lanczos") and target != "resample")
        f.setRowVisible(self.upscale_method, ai)
        f.setRowVisible(self.upscale_method_note, ai)
        f.setRowVisible(self.upscale_strength, method == "refine")
        f.setRowVisible(self.upscale_steps, method in ("model", "refine"))
        f.setRowVisible(self.tile, method == "refine")
        f.setRowVisible(self.overlap, method == "refine")

    # -- prompt history --------------------------------------------------------------------------
    def _load_prompt_history(self) -> None:
        self.recent.clear()
        self.recent.addItem("Recent prompts…", None)
        for text in settings.current().ui.prompt_history:
            self.recent.addItem(text if len(text) < 60 else text[:59] + "…", text)

    def remember_prompt(self, text: str) -> None:
        if not text:
            return
        ui = settings.current().ui
        history = [text] + [h for h in ui.prompt_history if h != text]
        settings.update(**{PROMPT_HISTORY_KEY: history[: ui.prompt_history_size]})
        self._load_prompt_history()

    def _use_recent(self, index: int) -> None:
        text = self.recent.itemData(index)
        if text:
            self.prompt.setPlainText(text)
        self.recent.setCurrentIndex(0)
