"""The cached compositor must always agree with a from-scratch composite."""

import numpy as np
import pytest

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


BLEND_HEAVY = [BlendMode.NORMAL, BlendMode.MULTIPLY, BlendMode.SCREEN, BlendMode.OVERLAY,
               BlendMode.SOFT_LIGHT, BlendMode.HARD_LIGHT, BlendMode.DARKEN,
               BlendMode.DIFFERENCE, BlendMode.EXCLUSION, BlendMode.COLOR_DODGE]


@pytest.mark.parametrize("seed", [5, 8])
def test_cached_composite_matches_reference_with_blend_modes(seed):
    """Runs of affine layers (cached maps), non-affine layers between them, a non-Normal
    active layer, and dabs anywhere in the stack: the cached path agrees with a
    from-scratch composite after every edit."""
    rng = np.random.default_rng(seed)
    doc = Document(230, 170)
    for _ in range(7):
        doc.add_layer()
    for i, layer in enumerate(doc.layers[1:]):
        doc.set_layer_properties(layer, blend_mode=BLEND_HEAVY[(i + seed) % len(BLEND_HEAVY)])
        paint(doc, layer, rng)
    doc.set_active(4)
    comp = Compositor(doc)
    for step in range(36):
        a = doc.active_index
        action = step % 6
        if action in (0, 1):  # the dab path: paint the active layer
            paint(doc, doc.active_layer, rng)
        elif action == 2:  # paint a layer above or below it
            paint(doc, doc.layers[int(rng.integers(0, len(doc.layers)))], rng)
        elif action == 3:
            doc.set_layer_properties(doc.layers[int(rng.integers(0, len(doc.layers)))],
                                     blend_mode=BLEND_HEAVY[int(rng.integers(0, len(BLEND_HEAVY)))],
                                     opacity=float(rng.uniform(0.2, 1)))
        elif action == 4 and step % 12 == 4:
            doc.set_active(int(rng.integers(1, len(doc.layers))))
        elif action == 5 and step % 18 == 5:
            doc.set_layer_properties(doc.layers[int(rng.integers(1, len(doc.layers)))],
                                     visible=bool(rng.integers(0, 2)))
        for region in (Rect(int(rng.integers(0, 180)), int(rng.integers(0, 120)), 70, 60),
                       doc.rect):
            got = to_straight_uint8(comp.composite(region))
            ref = composite_layers(doc.layers, region.intersect(doc.rect))
            assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1, (step, a)


def test_reduced_resolution_is_the_full_composite_sampled():
    rng = np.random.default_rng(2)
    doc = Document(300, 200)
    for mode in (BlendMode.MULTIPLY, BlendMode.OVERLAY, BlendMode.NORMAL):
        layer = doc.add_layer()
        doc.set_layer_properties(layer, blend_mode=mode)
        paint(doc, layer, rng)
    comp = Compositor(doc)
    full = comp.display(doc.rect)
    for level in (1, 2, 3):
        step = 1 << level
        point = comp.display_level(Rect(64, 32, 200, 168), level, supersample=False)
        assert np.abs(point.astype(int) - full[32:200:step, 64:264:step].astype(int)).max() <= 1
        smooth = comp.display_level(doc.rect, level)
        assert smooth.shape == (-(-200 // step), -(-300 // step), 4)


def test_reduced_resolution_is_built_a_band_of_rows_at_a_time(monkeypatch):
    """Each step composites one band of sample rows of one layer (a whole layer over a
    4096² tile held the GUI thread up to 100 ms); the bands add up to the same picture."""
    from canvasai.document import compositing

    rng = np.random.default_rng(5)
    doc = Document(300, 700)
    layer = doc.add_layer()
    doc.set_layer_properties(layer, blend_mode=BlendMode.MULTIPLY)
    paint(doc, layer, rng)
    comp = Compositor(doc)
    whole = comp.composite_sampled(Rect(0, 0, 300, 700), 2)
    monkeypatch.setattr(compositing, "SAMPLE_ROWS_PER_STEP", 32)  # bands of 64 rows
    steps = compositing.sampled_steps(list(doc.layers), Rect(0, 0, 300, 700), 2)
    yields = 0
    while True:
        try:
            next(steps)
            yields += 1
        except StopIteration as done:
            banded = done.value
            break
    # the background alone gives one step per band; empty bands of the others give none
    assert -(-700 // 64) < yields < len(doc.layers) * -(-700 // 64)
    assert np.allclose(banded, whole, atol=1e-6)


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
