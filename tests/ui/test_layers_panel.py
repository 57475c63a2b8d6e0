"""Layers panel: every operation reaches the document as one undoable step, and the list follows."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QModelIndex, Qt

from canvasai.document.blend import BlendMode
from canvasai.document.document import Document
from canvasai.ui.layers_panel import LayersPanel


@pytest.fixture
def setup(qtbot):
    doc = Document(64, 64)  # Background, Layer 1
    doc.add_layer("Top")
    doc.history.clear()
    panel = LayersPanel()
    qtbot.addWidget(panel)
    panel.set_document(doc)
    panel.show()
    return panel, doc


def names_in_list(panel: LayersPanel) -> list[str]:
    return [panel.list.item(i).text() for i in range(panel.list.count())]


def test_list_shows_top_layer_first_and_active_highlight(setup):
    panel, doc = setup
    assert names_in_list(panel) == ["Top", "Layer 1", "Background"]
    assert panel.list.currentRow() == 0
    doc.set_active(0)
    assert panel.list.currentRow() == 2
    panel.list.setCurrentRow(1)
    assert doc.active_layer.name == "Layer 1"


def test_add_delete_duplicate_buttons_undoable(setup):
    panel, doc = setup
    panel.add_button.click()
    assert len(doc.layers) == 4 and panel.list.count() == 4
    assert panel.list.currentRow() == 0  # the new layer is active
    panel.duplicate_button.click()
    assert doc.active_layer.name.endswith("copy") and panel.list.count() == 5
    panel.delete_button.click()
    assert len(doc.layers) == 4
    for _ in range(3):
        doc.undo()
    assert names_in_list(panel) == ["Top", "Layer 1", "Background"]


def test_reorder_by_model_move(setup, qtbot):
    panel, doc = setup
    model = panel.list.model()
    # drag "Background" (row 2) to the top (row 0), the way a drop does
    assert model.moveRow(QModelIndex(), 2, QModelIndex(), 0)
    qtbot.waitUntil(lambda: [la.name for la in doc.layers] == ["Layer 1", "Top", "Background"])
    assert names_in_list(panel) == ["Background", "Top", "Layer 1"]
    doc.undo()
    assert [la.name for la in doc.layers] == ["Background", "Layer 1", "Top"]
    assert names_in_list(panel) == ["Top", "Layer 1", "Background"]


def test_move_buttons(setup):
    panel, doc = setup
    panel.down_button.click()
    assert [la.name for la in doc.layers] == ["Background", "Top", "Layer 1"]
    assert not panel.up_button.isEnabled() or doc.active_index < 2


def test_rename_and_visibility_via_items(setup, qtbot):
    panel, doc = setup
    top = doc.layers[2]
    panel.list.item(0).setText("Sky")
    qtbot.waitUntil(lambda: top.name == "Sky")
    panel.list.item(0).setCheckState(Qt.CheckState.Unchecked)
    qtbot.waitUntil(lambda: not top.visible)
    assert panel.list.item(0).checkState() == Qt.CheckState.Unchecked
    assert doc.history.entries == ["Rename layer to “Sky”", "Hide “Sky”"]
    doc.undo()
    doc.undo()
    assert top.name == "Top" and top.visible
    assert names_in_list(panel)[0] == "Top"


def test_opacity_blend_lock_controls(setup):
    panel, doc = setup
    top = doc.layers[2]
    panel.opacity.setValue(40)
    assert top.opacity == pytest.approx(0.4)
    panel.blend.setCurrentIndex(panel.blend.findData(BlendMode.MULTIPLY))
    assert top.blend_mode is BlendMode.MULTIPLY
    panel.lock.setChecked(True)
    assert top.locked
    assert not panel.list.item(0).icon().isNull()
    assert len(doc.history.entries) == 3
    for _ in range(3):
        doc.undo()
    assert (top.opacity, top.blend_mode, top.locked) == (1.0, BlendMode.NORMAL, False)
    assert panel.opacity.value() == 100 and BlendMode(panel.blend.currentData()) is BlendMode.NORMAL
    assert not panel.lock.isChecked()


def test_blend_modes_offered(setup):
    panel, _ = setup
    offered = [panel.blend.itemData(i) for i in range(panel.blend.count())]
    assert offered[:6] == [BlendMode.NORMAL, BlendMode.MULTIPLY, BlendMode.SCREEN,
                           BlendMode.OVERLAY, BlendMode.DARKEN, BlendMode.LIGHTEN]


def test_merge_down_and_flatten(setup):
    panel, doc = setup
    doc.write_pixels(doc.layers[2], 0, 0, np.full((8, 8, 4), (255, 0, 0, 255), np.uint8))
    panel.merge_button.click()
    assert names_in_list(panel) == ["Layer 1", "Background"]
    assert tuple(doc.layers[1].surface.read(doc.rect)[2, 2]) == (255, 0, 0, 255)
    panel.flatten()
    assert panel.list.count() == 1
    assert not panel.merge_button.isEnabled() and not panel.delete_button.isEnabled()
    doc.undo()
    doc.undo()
    assert names_in_list(panel) == ["Top", "Layer 1", "Background"]


def test_opacity_drag_previews_live_and_records_one_undo_step(setup, qtbot):
    panel, doc = setup
    layer = doc.active_layer
    n = len(doc.history.entries)
    panel.opacity.setSliderDown(True)
    panel._opacity_drag_started()
    panel.opacity.setValue(70)
    assert layer.opacity == 0.7 and len(doc.history.entries) == n
    panel.opacity.setValue(40)
    panel.opacity.setSliderDown(False)
    panel._commit_opacity()
    assert layer.opacity == 0.4 and len(doc.history.entries) == n + 1
    doc.undo()
    assert layer.opacity == 1.0


def test_sketch_layer_has_a_visible_marker_and_can_be_unmarked(setup):
    from canvasai.ui.layers_panel import BADGE

    panel, doc = setup
    top = doc.layers[-1]
    panel.set_sketch(top, True)
    item = panel.list.item(0)
    assert item.data(BADGE) == "sketch" and "Sketch layer" in item.toolTip()
    assert item.text() == "Top"  # the name stays editable as it is
    panel.set_sketch(doc.layers[1], True)  # one sketch at a time, one undo step
    assert [la.is_sketch for la in doc.layers] == [False, True, False]
    assert panel.list.item(0).data(BADGE) is None and panel.list.item(1).data(BADGE) == "sketch"
    doc.undo()
    assert [la.is_sketch for la in doc.layers] == [False, False, True]
    panel.set_sketch(top, False)
    assert panel.list.item(0).data(BADGE) is None
    # the marker is painted: the row differs from the same row without it
    panel.set_sketch(top, True)
    with_badge = panel.list.viewport().grab(panel.list.visualItemRect(panel.list.item(0)))
    panel.set_sketch(top, False)
    without = panel.list.viewport().grab(panel.list.visualItemRect(panel.list.item(0)))
    assert with_badge.toImage() != without.toImage()


def test_the_list_shows_more_than_four_rows(qtbot):
    doc = Document(32, 32)
    for _ in range(6):
        doc.add_layer()
    panel = LayersPanel()
    qtbot.addWidget(panel)
    panel.set_document(doc)
    panel.resize(260, 10)  # as small as the dock allows
    panel.show()
    qtbot.waitExposed(panel)
    visible = [i for i in range(panel.list.count())
               if panel.list.viewport().rect().contains(panel.list.visualItemRect(panel.list.item(i)))]
    assert len(visible) >= 5


def test_new_layer_names_do_not_skip_numbers():
    doc = Document(32, 32)  # Background, Layer 1
    assert doc.add_layer().name == "Layer 2"
    assert doc.add_layer().name == "Layer 3"
    doc.remove_layer(doc.layers[1])  # Layer 1 gone: numbers keep counting up, none reused
    assert doc.add_layer().name == "Layer 4"
