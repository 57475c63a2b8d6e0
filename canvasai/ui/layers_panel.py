"""The layers panel: the stack (top layer first), its properties and layer operations.

Every change goes through the Document's undoable operations; the panel only
mirrors the document and rebuilds itself from its `layers_changed` event.
Each row shows the layer's role (control layer, reference, region prompt) as a coloured
tag with a tooltip; right-click ▸ Use as… (or the Role button) changes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QModelIndex, QPoint, QRect, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QSlider,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from canvasai.document.blend import BlendMode
from canvasai.document.document import Document
from canvasai.document.layer import CONTROL_LABELS, ControlRole, Layer, LayerRole
from canvasai.document.tiles import TiledSurface
from canvasai.ui import layer_roles
from canvasai.ui.icons import icon

LAYER_ID = Qt.ItemDataRole.UserRole + 1
BADGE = Qt.ItemDataRole.UserRole + 2  # the role's tag drawn at the row's right end ("depth")
BADGE_COLOR = Qt.ItemDataRole.UserRole + 3
MIN_ROWS = 5  # the list always shows at least this many layers without scrolling


class _BadgeDelegate(QStyledItemDelegate):
    """Draws a row as usual, then its badge (the role: "depth", "ref", "region") as a small
    coloured tag on the right."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        badge = index.data(BADGE)
        if not badge:
            super().paint(painter, option, index)
            return
        fm = option.fontMetrics
        w = fm.horizontalAdvance(badge) + 12
        opt = QStyleOptionViewItem(option)
        opt.rect = option.rect.adjusted(0, 0, -(w + 6), 0)  # the name never runs under the tag
        super().paint(painter, opt, index)
        r = QRect(option.rect.right() - w - 3, option.rect.center().y() - fm.height() // 2,
                  w, fm.height())
        painter.save()
        state = index.data(Qt.ItemDataRole.CheckStateRole)
        if state in (0, Qt.CheckState.Unchecked):
            painter.setOpacity(0.45)  # a hidden layer's role is not used: its tag fades
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(index.data(BADGE_COLOR) or "#b8860b"))
        painter.drawRoundedRect(r, 4, 4)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(r, Qt.AlignmentFlag.AlignCenter, badge)
        painter.restore()
# The usual six first, then the rest of what the compositor supports.
BLEND_ORDER = (
    BlendMode.NORMAL, BlendMode.MULTIPLY, BlendMode.SCREEN, BlendMode.OVERLAY,
    BlendMode.DARKEN, BlendMode.LIGHTEN,
) + tuple(m for m in BlendMode if m not in (
    BlendMode.NORMAL, BlendMode.MULTIPLY, BlendMode.SCREEN, BlendMode.OVERLAY,
    BlendMode.DARKEN, BlendMode.LIGHTEN))


class LayersPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("layersPanel")
        self._doc: Document | None = None
        self._syncing = False

        self.list = QListWidget()
        self.list.setObjectName("layerList")
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setIconSize(QSize(16, 16))
        self.list.setItemDelegate(_BadgeDelegate(self.list))
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.currentRowChanged.connect(self._row_changed)
        self.list.itemChanged.connect(self._item_changed)
        self.list.model().rowsMoved.connect(self._rows_moved)

        self.blend = QComboBox()
        self.blend.setObjectName("blendCombo")
        for mode in BLEND_ORDER:
            self.blend.addItem(mode.label, mode)
        self.blend.setToolTip("Blend mode")
        self.blend.currentIndexChanged.connect(self._blend_changed)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setObjectName("opacitySlider")
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Layer opacity")
        self.opacity_label = QLabel("100 %")
        self.opacity_label.setMinimumWidth(44)
        self.opacity.valueChanged.connect(self._opacity_moved)
        self.opacity.sliderPressed.connect(self._opacity_drag_started)
        self.opacity.sliderReleased.connect(self._commit_opacity)
        self._drag_start_opacity: float | None = None
        self.lock = QCheckBox("Lock")
        self.lock.setToolTip("Lock the layer against painting")
        self.lock.toggled.connect(self._lock_toggled)

        self.add_button = self._button("layer_add", "+", "New layer (Ctrl+Shift+N)", self.add_layer)
        self.delete_button = self._button("layer_delete", "−", "Delete layer", self.delete_layer)
        self.duplicate_button = self._button("layer_duplicate", "⧉", "Duplicate layer (Ctrl+J)",
                                             self.duplicate_layer)
        self.up_button = self._button("layer_up", "▲", "Move layer up", lambda: self.move_active(+1))
        self.down_button = self._button("layer_down", "▼", "Move layer down",
                                        lambda: self.move_active(-1))
        self.merge_button = self._button("layer_merge", "⤓", "Merge down (Ctrl+E)", self.merge_down)
        self.role_button = QToolButton()
        self.role_button.setObjectName("layer_role")
        self.role_button.setText("Use as")
        self.role_button.setToolTip("Use the layer as a control layer, a reference image or a "
                                    "region prompt (or a normal layer)")
        self.role_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.role_menu = QMenu(self.role_button)
        self.role_menu.aboutToShow.connect(self._fill_role_button_menu)
        self.role_button.setMenu(self.role_menu)
        # the active layer's role in words (hidden for a normal layer)
        self.role_note = QLabel("")
        self.role_note.setObjectName("roleNote")
        self.role_note.setWordWrap(True)
        self.role_note.setVisible(False)
        self.role_editor: layer_roles.RoleEditor | None = None
        self.preprocessing = 0  # control maps being made on a worker thread

        props = QHBoxLayout()
        props.addWidget(self.blend, 1)
        props.addWidget(self.lock)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(QLabel("Opacity"))
        opacity_row.addWidget(self.opacity, 1)
        opacity_row.addWidget(self.opacity_label)
        buttons = QHBoxLayout()
        for b in (self.add_button, self.delete_button, self.duplicate_button, self.up_button,
                  self.down_button, self.merge_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.role_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(props)
        layout.addLayout(opacity_row)
        layout.addWidget(self.list, 1)
        self._fit_rows()
        layout.addWidget(self.role_note)
        layout.addLayout(buttons)
        self._refresh_controls()

    def _button(self, name: str, text: str, tip: str, slot: object) -> QToolButton:
        b = QToolButton()
        b.setObjectName(name)
        ic = icon(name)
        if ic.isNull():
            b.setText(text)
        else:
            b.setIcon(ic)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    # -- document binding -------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        if self._doc is not None:
            self._doc.layers_changed.disconnect(self.rebuild)
            self._doc.active_changed.disconnect(self._on_active)
        self._doc = doc
        if doc is not None:
            doc.layers_changed.connect(self.rebuild)
            doc.active_changed.connect(self._on_active)
        self.rebuild()

    @property
    def document(self) -> Document | None:
        return self._doc

    def row_of(self, layer_index: int) -> int:
        """List row of a layer index (the list shows the top layer first)."""
        assert self._doc is not None
        return len(self._doc.layers) - 1 - layer_index

    def layer_at_row(self, row: int) -> Layer | None:
        doc = self._doc
        if doc is None or not 0 <= row < len(doc.layers):
            return None
        return doc.layers[len(doc.layers) - 1 - row]

    def rebuild(self) -> None:
        """Mirror the document's stack (called on every layers_changed)."""
        self._syncing = True
        self.list.clear()
        doc = self._doc
        if doc is not None:
            for layer in reversed(doc.layers):
                item = QListWidgetItem(layer.name)
                item.setData(LAYER_ID, layer.id)
                item.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
                              | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsUserCheckable
                              | Qt.ItemFlag.ItemIsDragEnabled)
                item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
                tips = [f"{layer.name}: {layer.blend_mode.label}, {round(layer.opacity * 100)} %"]
                if layer.locked:
                    item.setIcon(icon("lock"))
                    tips.append("locked")
                if not layer.visible:
                    tips.append("hidden")
                tip = ", ".join(tips) + ". Double-click to rename; drag to reorder."
                tag = layer_roles.badge(layer.role)
                if tag is not None:
                    item.setData(BADGE, tag[0])
                    item.setData(BADGE_COLOR, tag[1])
                    tip += "\n" + layer_roles.tooltip(layer.role)
                    if not layer.visible:
                        tip += "\nHidden: not used now."
                item.setToolTip(tip)
                self.list.addItem(item)
            if doc.active_layer is not None:
                self.list.setCurrentRow(self.row_of(doc.active_index))
        self._syncing = False
        self._refresh_controls()

    def _on_active(self, _layer: Layer | None) -> None:
        if self._doc is None or self._doc.active_layer is None:
            return
        self._syncing = True
        self.list.setCurrentRow(self.row_of(self._doc.active_index))
        self._syncing = False
        self._refresh_controls()

    def _refresh_controls(self) -> None:
        doc = self._doc
        layer = doc.active_layer if doc is not None else None
        self._syncing, was = True, self._syncing
        for w in (self.blend, self.opacity, self.lock, self.delete_button, self.duplicate_button,
                  self.merge_button, self.up_button, self.down_button, self.role_button):
            w.setEnabled(layer is not None)
        role = layer.role if layer is not None else None
        note = "" if role is None else role.describe() + (
            "" if layer.visible else " (hidden: not used)")
        self.role_note.setText(note)
        self.role_note.setToolTip(layer_roles.tooltip(role))
        self.role_note.setVisible(bool(note))
        self.add_button.setEnabled(doc is not None)
        if doc is not None and layer is not None:
            self.blend.setCurrentIndex(max(0, self.blend.findData(layer.blend_mode)))
            if not self.opacity.isSliderDown():
                self.opacity.setValue(round(layer.opacity * 100))
            self.opacity_label.setText(f"{self.opacity.value()} %")
            self.lock.setChecked(layer.locked)
            self.delete_button.setEnabled(len(doc.layers) > 1)
            self.merge_button.setEnabled(doc.active_index > 0)
            self.down_button.setEnabled(doc.active_index > 0)
            self.up_button.setEnabled(doc.active_index < len(doc.layers) - 1)
        self._syncing = was

    def _fit_rows(self) -> None:
        """At least MIN_ROWS rows visible (the dock showed four before)."""
        probe = QListWidgetItem("Layer")
        self.list.addItem(probe)
        row = max(self.list.sizeHintForRow(0), self.fontMetrics().height() + 8)
        self.list.takeItem(0)
        frame = 2 * self.list.frameWidth()
        self.list.setMinimumHeight(row * MIN_ROWS + frame + 2)

    def _context_menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        layer = self._layer_by_id(item.data(LAYER_ID)) if item is not None else None
        if layer is None or self._doc is None:
            return
        menu = QMenu(self)
        self.fill_role_menu(menu, layer)
        self.context_menu = menu
        menu.exec(self.list.viewport().mapToGlobal(pos))

    def _fill_role_button_menu(self) -> None:
        self.role_menu.clear()
        layer = self._doc.active_layer if self._doc is not None else None
        if layer is not None:
            self.fill_role_menu(self.role_menu, layer)

    def fill_role_menu(self, menu: QMenu, layer: Layer) -> None:
        """"Use as ▸ Control (type)… / Reference… / Region prompt… / Normal layer", "Edit
        role…" and "Preprocess into new layer ▸ …" for `layer`."""
        use = menu.addMenu("Use as")
        use.setObjectName("useAsMenu")
        control = use.addMenu("Control layer")
        for kind, label in CONTROL_LABELS.items():
            act = control.addAction(f"{label}…")
            act.setCheckable(True)
            act.setChecked(isinstance(layer.role, ControlRole) and layer.role.kind == kind)
            act.triggered.connect(lambda _=False, k=kind: self.edit_role(layer, "control", k))
        for key in ("reference", "region"):
            act = use.addAction(layer_roles.ROLE_TYPES[key][0])
            act.setCheckable(True)
            act.setChecked(layer.role_type == key)
            act.triggered.connect(lambda _=False, k=key: self.edit_role(layer, k))
        use.addSeparator()
        normal = use.addAction("Normal layer")
        normal.setCheckable(True)
        normal.setChecked(layer.role is None)
        normal.triggered.connect(lambda: self.set_role(layer, None))
        if layer.role is not None:
            menu.addAction("Edit role…").triggered.connect(
                lambda: self.edit_role(layer, layer.role_type))
        pre = menu.addMenu("Preprocess into new layer")
        pre.setToolTip("Make a control map of this layer as a new control layer you can "
                       "paint on (depth and pose use a model where one is installed)")
        for kind in layer_roles.PREPROCESS_KINDS:
            pre.addAction(CONTROL_LABELS[kind]).triggered.connect(
                lambda _=False, k=kind: self.preprocess_layer(layer, k))

    # -- roles --------------------------------------------------------------------------------
    def set_role(self, layer: Layer, role: LayerRole) -> None:
        """Give `layer` a role (None: a normal layer again); one undo step."""
        doc = self._doc
        if doc is not None and layer in doc.layers:
            doc.set_layer_properties(layer, role=role)

    def set_sketch(self, layer: Layer, on: bool) -> None:
        """Make `layer` a scribble control layer, or a normal layer again; one undo step."""
        doc = self._doc
        if doc is not None and layer in doc.layers:
            doc.set_layer_properties(layer, is_sketch=on)

    def edit_role(self, layer: Layer, role_type: str, kind: str | None = None) -> None:
        """Open the role editor for `layer` on `role_type` (a control of `kind`); OK applies
        it as one undo step. The editor stays reachable as `role_editor` (not blocking)."""
        if self._doc is None or layer not in self._doc.layers:
            return
        role = layer.role
        if kind is not None:
            role = ControlRole(kind=kind, **({} if not isinstance(role, ControlRole) else {
                "strength": role.strength, "start": role.start, "end": role.end,
                "preprocess": role.preprocess, "model": role.model}))
        if self.role_editor is not None:
            self.role_editor.close()
        editor = self.role_editor = layer_roles.RoleEditor(layer.name, role, role_type, self)
        editor.accepted.connect(lambda: self.set_role(layer, editor.role()))
        editor.open()

    def preprocess_layer(self, layer: Layer, kind: str) -> None:
        """A control map of `layer` (canny, line art, scribble, soft edge with no model;
        depth and pose with one where installed) as a new control layer above it; the
        original, if it was a control layer, is hidden (so it is not used twice). Large
        layers, and depth and pose, are processed off the GUI thread; one undo step."""
        doc = self._doc
        if doc is None or layer not in doc.layers:
            return
        bounds = (doc.rect if layer.surface.fill[3] else layer.surface.bounds()).intersect(doc.rect)
        if bounds.is_empty():
            self._note(f"“{layer.name}” is empty: paint or paste something to preprocess.")
            return
        pixels = layer.surface.read(bounds)
        label = CONTROL_LABELS[kind]
        self._note(f"Making a {label.lower()} map of “{layer.name}”…")

        def work() -> Any:
            return layer_roles.control_map(kind, pixels)

        def done(result: Any, error: Any) -> None:
            self.preprocessing -= 1
            self._preprocessed(layer, kind, bounds, result, error)

        self.preprocessing += 1
        layer_roles.run_off_thread(work, done, bounds.w * bounds.h, self,
                                   always=kind in layer_roles.MODEL_KINDS)

    def _preprocessed(self, layer: Layer, kind: str, bounds: Any, result: Any,
                      error: Any) -> None:
        doc = self._doc
        if error is not None or result is None:
            self._note(f"Could not preprocess “{layer.name}”: {error}")
            return
        result, what = result
        if doc is None or layer not in doc.layers:
            self._note("The layer was deleted before its control map was ready.")
            return
        label = CONTROL_LABELS[kind]
        old = layer.role
        role = ControlRole(kind=kind, preprocess=False, **({} if not isinstance(
            old, ControlRole) else {"strength": old.strength, "start": old.start, "end": old.end}))
        rgba = np.dstack([result, np.full(result.shape[:2], 255, np.uint8)])
        new = Layer(f"{layer.name} ({label.lower()})", TiledSurface(4), role=role)
        new.surface.write(bounds.x, bounds.y, rgba)
        with doc.history.macro(f"Preprocess “{layer.name}” into a {label.lower()} map"):
            doc.add_layer(layer=new, index=doc.index_of(layer) + 1)
            if isinstance(old, ControlRole) and layer.visible:
                doc.set_layer_properties(layer, visible=False)
        self._note(f"“{new.name}” is a control layer ({label.lower()} map); paint on it to "
                   "change what the picture follows." + (f" Note: {what}." if what else ""))

    def _note(self, text: str) -> None:
        self.role_note.setText(text)
        self.role_note.setVisible(bool(text))

    # -- edits from the widgets ----------------------------------------------------------------
    def _row_changed(self, row: int) -> None:
        if self._syncing or self._doc is None:
            return
        layer = self.layer_at_row(row)
        if layer is not None:
            self._doc.set_active(layer)
            self._refresh_controls()

    def _item_changed(self, item: QListWidgetItem) -> None:
        if self._syncing or self._doc is None:
            return
        layer = self._layer_by_id(item.data(LAYER_ID))
        if layer is None:
            return
        visible = item.checkState() == Qt.CheckState.Checked
        name = item.text().strip()
        props: dict[str, object] = {}
        if visible != layer.visible:
            props["visible"] = visible
        if name and name != layer.name:
            props["name"] = name
        if props:
            # Deferred: the item view is still inside its own signal handler.
            QTimer.singleShot(0, lambda: self._apply(layer, props))
        elif not name:
            QTimer.singleShot(0, self.rebuild)  # an empty name is refused: show the old one

    def _apply(self, layer: Layer, props: dict[str, object]) -> None:
        if self._doc is not None and layer in self._doc.layers:
            self._doc.set_layer_properties(layer, **props)

    def _rows_moved(self, _parent: QModelIndex, start: int, _end: int, _dest: QModelIndex,
                    row: int) -> None:
        if self._syncing or self._doc is None:
            return
        layer = self.layer_at_row(start)
        if layer is None:
            return
        new_row = row if row < start else row - 1
        new_index = len(self._doc.layers) - 1 - new_row
        QTimer.singleShot(0, lambda: self._move(layer, new_index))

    def _move(self, layer: Layer, index: int) -> None:
        if self._doc is not None and layer in self._doc.layers:
            if self._doc.index_of(layer) != index:
                self._doc.move_layer(layer, index)
            else:
                self.rebuild()

    def _layer_by_id(self, layer_id: int) -> Layer | None:
        if self._doc is None:
            return None
        return next((la for la in self._doc.layers if la.id == layer_id), None)

    def _blend_changed(self, _i: int) -> None:
        layer = self._doc.active_layer if self._doc is not None else None
        if not self._syncing and layer is not None:
            self._doc.set_layer_properties(layer, blend_mode=BlendMode(self.blend.currentData()))

    def _opacity_drag_started(self) -> None:
        layer = self._doc.active_layer if self._doc is not None else None
        self._drag_start_opacity = layer.opacity if layer is not None else None

    def _opacity_moved(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        if self._syncing:
            return
        layer = self._doc.active_layer if self._doc is not None else None
        if self.opacity.isSliderDown():
            # Live preview while dragging; the undo step is recorded once, on release.
            if layer is not None and self._drag_start_opacity is not None:
                layer.opacity = value / 100
                self._doc.notify_pixels(layer, self._doc.rect)
        else:
            self._commit_opacity()  # keyboard / wheel / click on the groove

    def _commit_opacity(self) -> None:
        layer = self._doc.active_layer if self._doc is not None else None
        if layer is None:
            return
        if self._drag_start_opacity is not None:
            layer.opacity = self._drag_start_opacity  # so the undo step spans the whole drag
            self._drag_start_opacity = None
        self._doc.set_layer_properties(layer, opacity=self.opacity.value() / 100)

    def _lock_toggled(self, on: bool) -> None:
        layer = self._doc.active_layer if self._doc is not None else None
        if not self._syncing and layer is not None:
            self._doc.set_layer_properties(layer, locked=on)

    # -- operations (also used by the Layer menu) -------------------------------------------
    def add_layer(self) -> None:
        if self._doc is not None:
            self._doc.add_layer()

    def delete_layer(self) -> None:
        doc = self._doc
        if doc is not None and doc.active_layer is not None and len(doc.layers) > 1:
            doc.remove_layer(doc.active_layer)

    def duplicate_layer(self) -> None:
        doc = self._doc
        if doc is not None and doc.active_layer is not None:
            doc.duplicate_layer(doc.active_layer)

    def merge_down(self) -> None:
        doc = self._doc
        if doc is not None and doc.active_layer is not None and doc.active_index > 0:
            doc.merge_down(doc.active_layer)

    def move_active(self, delta: int) -> None:
        doc = self._doc
        if doc is not None and doc.active_layer is not None:
            target = doc.active_index + delta
            if 0 <= target < len(doc.layers):
                doc.move_layer(doc.active_layer, target)

    def flatten(self) -> None:
        if self._doc is not None and len(self._doc.layers) > 0:
            self._doc.flatten()
