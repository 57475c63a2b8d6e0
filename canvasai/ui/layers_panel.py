"""The layers panel: the stack (top layer first), its properties and layer operations.

Every change goes through the Document's undoable operations; the panel only
mirrors the document and rebuilds itself from its `layers_changed` event.
"""

from __future__ import annotations

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
from canvasai.document.layer import Layer
from canvasai.ui.icons import icon

LAYER_ID = Qt.ItemDataRole.UserRole + 1
BADGE = Qt.ItemDataRole.UserRole + 2  # a marker drawn at the row's right end ("sketch")
MIN_ROWS = 5  # the list always shows at least this many layers without scrolling
SKETCH_TIP = ("Sketch layer: the input of Sketch → Render (Auto renders it when nothing is "
              "masked). Right-click to unmark it.")


class _BadgeDelegate(QStyledItemDelegate):
    """Draws a row as usual, then its badge (e.g. "sketch") as a small tag on the right."""

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
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#b8860b"))
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
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(props)
        layout.addLayout(opacity_row)
        layout.addWidget(self.list, 1)
        self._fit_rows()
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
                if layer.is_sketch:
                    item.setData(BADGE, "sketch")
                    tip += "\n" + SKETCH_TIP
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
                  self.merge_button, self.up_button, self.down_button):
            w.setEnabled(layer is not None)
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
        act = menu.addAction("Sketch layer (input of Sketch → Render)")
        act.setCheckable(True)
        act.setChecked(layer.is_sketch)
        act.toggled.connect(lambda on: self.set_sketch(layer, on))
        menu.exec(self.list.viewport().mapToGlobal(pos))

    def set_sketch(self, layer: Layer, on: bool) -> None:
        """Mark `layer` as the sketch (one at a time) or unmark it; one undo step."""
        doc = self._doc
        if doc is None or layer not in doc.layers:
            return
        with doc.history.macro("Sketch layer" if on else "Not a sketch layer"):
            if on:
                for other in doc.layers:
                    if other.is_sketch and other is not layer:
                        doc.set_layer_properties(other, is_sketch=False)
            doc.set_layer_properties(layer, is_sketch=on)

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
