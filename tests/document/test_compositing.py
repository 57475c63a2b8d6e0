"""The cached compositor must always agree with a from-scratch composite."""

import numpy as np

from canvasai.core.geometry import Rect
from canvasai.document.blend import BlendMode, to_straight_uint8
from canvasai.document.compositing import Compositor, composite_layers
from canvasai.document.document import Document
from canvasai.document.stroke import Stroke


def paint(doc, layer, rng):
    s = Stroke(layer.surface, doc.rect, color=tuple(int(c) for c in rng.integers(0, 255, 3)),
               opacity=float(rng.uniform(0.3, 1)))
    for _ in range(3):
        x, y = rng.uniform(0, doc.width), rng.uniform(0, doc.height)
        s.dab(x, y, float(rng.uniform(5, 40)), float(rng.uniform(0, 1)))
    s.finish()
    doc.notify_pixels(layer, doc.rect)


def test_cached_composite_matches_reference_through_random_edits():
    rng = np.random.default_rng(3)
    doc = Document(200, 150)
    for _ in range(4):
        doc.add_layer()
    comp = Compositor(doc)
    modes = list(BlendMode)
    for step in range(40):
        layer = doc.layers[int(rng.integers(0, len(doc.layers)))]
        action = step % 4
        if action == 0:
            paint(doc, layer, rng)
        elif action == 1:
            doc.set_active(int(rng.integers(0, len(doc.layers))))
        elif action == 2:
            doc.set_layer_properties(layer, blend_mode=modes[int(rng.integers(0, len(modes)))],
                                     opacity=float(rng.uniform(0.2, 1)))
        else:
            doc.set_layer_properties(layer, visible=bool(rng.integers(0, 2)))
        region = Rect(int(rng.integers(0, 150)), int(rng.integers(0, 100)), 60, 50)
        got = to_straight_uint8(comp.composite(region))
        ref = composite_layers(doc.layers, region.intersect(doc.rect))
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1, step


def test_display_is_premultiplied():
    doc = Document(8, 8, background=None)
    doc.write_pixels(doc.active_layer, 0, 0, np.full((8, 8, 4), (200, 100, 0, 128), np.uint8))
    px = Compositor(doc).display(Rect(0, 0, 1, 1))[0, 0]
    assert abs(int(px[0]) - 100) <= 1 and abs(int(px[1]) - 50) <= 1 and px[3] == 128


def test_rename_keeps_the_projection_caches_but_visual_changes_drop_them():
    doc = Document(128, 128)
    top = doc.add_layer("Top")
    doc.set_active(doc.layers[1])
    comp = Compositor(doc)
    comp.composite(doc.rect)
    assert comp.cache_nbytes > 0
    doc.set_layer_properties(top, name="Sky", locked=True)
    assert comp.cache_nbytes > 0
    doc.set_layer_properties(top, opacity=0.5)
    assert comp.cache_nbytes == 0
