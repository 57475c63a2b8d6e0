import numpy as np
import pytest

from canvasai.core.errors import InvalidDocumentError
from canvasai.core.geometry import Rect
from canvasai.document.blend import BlendMode
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document


@pytest.mark.parametrize("w,h", [(0, 10), (10, 0), (-5, 10), (10**6, 10**6), (40000, 10), (2.5, 3), ("x", 3)])
def test_bad_sizes_give_a_clear_error_without_allocating(w, h):
    with pytest.raises(InvalidDocumentError) as err:
        Document(w, h)
    assert "document" in str(err.value).lower() or "size" in str(err.value).lower()


def test_huge_valid_document_costs_nothing_until_painted():
    doc = Document(32768, 32768)
    assert sum(layer.surface.nbytes for layer in doc.layers) == 0


def solid(doc, layer, rect, rgba):
    doc.write_pixels(layer, rect.x, rect.y, np.full((rect.h, rect.w, 4), rgba, np.uint8))


def test_layer_operations_are_each_one_undo_step():
    doc = Document(64, 64, background=None)
    first = doc.layers[0]
    second = doc.add_layer("Top")
    assert doc.active_layer is second
    dup = doc.duplicate_layer(second)
    doc.move_layer(dup, 0)
    doc.set_layer_properties(second, name="Renamed", opacity=0.5, blend_mode="svg:screen",
                             visible=False, locked=True)
    assert second.blend_mode is BlendMode.SCREEN and second.opacity == 0.5
    doc.remove_layer(first)
    assert [la.name for la in doc.layers] == ["Top copy", "Renamed"]
    for _ in range(5):
        assert doc.undo()
    assert doc.layers == [first]
    for _ in range(5):
        assert doc.redo()
    assert [la.name for la in doc.layers] == ["Top copy", "Renamed"]


def test_merge_down_bakes_the_look_and_undoes_in_one_step():
    doc = Document(32, 32, background=None)
    bottom = doc.layers[0]
    solid(doc, bottom, Rect(0, 0, 32, 32), (0, 0, 255, 255))
    top = doc.add_layer("Top")
    solid(doc, top, Rect(8, 8, 8, 8), (255, 0, 0, 255))
    doc.set_layer_properties(top, opacity=0.5)
    comp = Compositor(doc)
    look = comp.flatten()
    n = len(doc.history.entries)
    merged = doc.merge_down(top)
    assert doc.layers == [merged] and len(doc.history.entries) == n + 1
    assert np.abs(comp.flatten().astype(int) - look.astype(int)).max() <= 1
    doc.undo()
    assert doc.layers == [bottom, top]
    assert np.array_equal(comp.flatten(), look)


def test_flatten_keeps_the_look():
    doc = Document(40, 40)
    layer = doc.active_layer
    solid(doc, layer, Rect(5, 5, 20, 20), (10, 200, 30, 128))
    doc.set_layer_properties(layer, blend_mode="svg:multiply")
    comp = Compositor(doc)
    look = comp.flatten()
    doc.flatten()
    assert len(doc.layers) == 1
    assert np.abs(comp.flatten().astype(int) - look.astype(int)).max() <= 1


def test_history_budget_drops_oldest_but_keeps_newest():
    doc = Document(256, 256, background=None)
    doc.history.budget = 64 * 64 * 4 * 3
    layer = doc.active_layer
    for i in range(6):
        solid(doc, layer, Rect(0, 0, 128, 128), (i, 0, 0, 255))
    assert 1 <= len(doc.history.entries) < 6
    assert doc.history.nbytes <= doc.history.budget or len(doc.history.entries) == 1


def test_history_macro_groups_and_rolls_back_on_error():
    doc = Document(32, 32, background=None)
    with doc.history.macro("Two things"):
        doc.add_layer("A")
        doc.add_layer("B")
    assert doc.history.entries[-1] == "Two things"
    doc.undo()
    assert [la.name for la in doc.layers] == ["Layer 1"]
    n = len(doc.history.entries)
    try:
        with doc.history.macro("Fails"):
            doc.add_layer("C")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert [la.name for la in doc.layers] == ["Layer 1"] and len(doc.history.entries) == n
