import numpy as np

from canvasai.core.geometry import Rect
from canvasai.document.compositing import Compositor
from canvasai.document.document import Document
from canvasai.document.transform import resize_canvas, scale_document


def test_grow_canvas_keeps_pixels_in_place_and_undoes():
    doc = Document(100, 80)
    layer = doc.active_layer
    rng = np.random.default_rng(0)
    px = rng.integers(0, 255, (30, 40, 4), dtype=np.uint8)
    doc.write_pixels(layer, 10, 20, px)
    before = Compositor(doc).flatten()
    old = resize_canvas(doc, 37, 5, 64, 0)
    assert (doc.width, doc.height) == (201, 85) and old == Rect(37, 5, 100, 80)
    assert np.array_equal(layer.surface.read(Rect(47, 25, 40, 30)), px)
    assert np.array_equal(Compositor(doc).flatten()[5:85, 37:137], before)
    doc.undo()
    assert (doc.width, doc.height) == (100, 80)
    assert np.array_equal(Compositor(doc).flatten(), before)


def test_scale_document_resamples_every_layer_once():
    doc = Document(64, 48, background=None)
    doc.write_pixels(doc.active_layer, 0, 0, np.full((48, 32, 4), (255, 0, 0, 255), np.uint8))
    top = doc.add_layer("Top")
    doc.write_pixels(top, 32, 0, np.full((48, 32, 4), (0, 0, 255, 255), np.uint8))
    n = len(doc.history.entries)
    scale_document(doc, 128, 96)
    assert (doc.width, doc.height) == (128, 96) and len(doc.history.entries) == n + 1
    flat = Compositor(doc).flatten()
    assert tuple(flat[40, 10]) == (255, 0, 0, 255) and tuple(flat[40, 120]) == (0, 0, 255, 255)
    doc.undo()
    assert (doc.width, doc.height) == (64, 48)
