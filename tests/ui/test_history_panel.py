"""History panel: lists every step; clicking a row undoes or redoes to it."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from canvasai.document.document import Document
from canvasai.ui.history_panel import ORIGIN_TEXT, HistoryPanel


@pytest.fixture
def setup(qtbot):
    doc = Document(32, 32)
    panel = HistoryPanel()
    qtbot.addWidget(panel)
    panel.set_history(doc.history)
    panel.show()
    layer = doc.active_layer
    for i in range(3):
        doc.write_pixels(layer, i * 4, 0, np.full((2, 2, 4), 255, np.uint8), f"Dot {i}")
    return panel, doc


def texts(panel: HistoryPanel) -> list[str]:
    return [panel.list.item(i).text() for i in range(panel.list.count())]


def test_lists_steps_and_current(setup):
    panel, doc = setup
    assert texts(panel) == [ORIGIN_TEXT, "Dot 0", "Dot 1", "Dot 2"]
    assert panel.current_row == 3


def test_click_undoes_and_redoes_to_that_point(setup, qtbot):
    panel, doc = setup
    layer = doc.active_layer
    rect = panel.list.visualItemRect(panel.list.item(1))
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert doc.history.entries == ["Dot 0"]
    assert doc.history.redo_entries == ["Dot 1", "Dot 2"]
    assert layer.surface.read(doc.rect)[0, 4, 3] == 0  # Dot 1 undone
    assert panel.current_row == 1
    assert panel.list.item(3).font().italic()  # redoable steps look different
    panel.go_to(0)
    assert doc.history.entries == []
    panel.go_to(3)
    assert doc.history.entries == ["Dot 0", "Dot 1", "Dot 2"]
    assert layer.surface.read(doc.rect)[0, 8, 3] == 255


def test_follows_undo_and_new_steps(setup):
    panel, doc = setup
    doc.undo()
    assert panel.current_row == 2 and panel.list.count() == 4
    doc.write_pixels(doc.active_layer, 0, 10, np.full((2, 2, 4), 255, np.uint8), "Other")
    assert texts(panel) == [ORIGIN_TEXT, "Dot 0", "Dot 1", "Other"]


def test_one_change_notification_per_jump(setup):
    panel, doc = setup
    calls = []
    doc.history.changed.connect(lambda: calls.append(1))
    panel.go_to(0)
    assert len(calls) == 1
