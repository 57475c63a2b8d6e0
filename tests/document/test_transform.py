import cv2
import numpy as np
import pytest

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


def _patch_doc(bg, colour, hard_alpha):
    """A flat background under a soft-edged patch: feathered by alpha, or (like an
    accepted inpaint layer) opaque with the feather baked into its colour."""
    doc = Document(96, 96, background=None)
    doc.write_pixels(doc.active_layer, 0, 0, np.full((96, 96, 4), (*bg, 255), np.uint8))
    top = doc.add_layer("Patch")
    yy, xx = np.mgrid[0:96, 0:96]
    d = np.hypot(xx - 48, yy - 48)
    a = np.clip((30 - d) / 12, 0, 1)[..., None]
    px = np.zeros((96, 96, 4), np.uint8)
    if hard_alpha:
        px[..., :3] = (a * np.array(colour) + (1 - a) * np.array(bg) + 0.5).astype(np.uint8)
        px[..., 3] = np.where(d < 36, 255, 0)
    else:
        px[..., :3] = colour
        px[..., 3] = (a[..., 0] * 255 + 0.5).astype(np.uint8)
    px[px[..., 3] == 0] = 0
    doc.write_pixels(top, 0, 0, px)
    return doc, top


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("hard_alpha", [False, True])
@pytest.mark.parametrize("colour,bg", [((250, 250, 250), (120, 120, 120)),
                                       ((10, 10, 10), (128, 100, 90))])
def test_scale_document_leaves_no_halo_around_a_soft_edged_patch(factor, hard_alpha, colour, bg):
    doc, top = _patch_doc(bg, colour, hard_alpha)
    flat = Compositor(doc).flatten()
    size = (96 * factor, 96 * factor)
    expected = cv2.resize(flat, size, interpolation=cv2.INTER_LANCZOS4).astype(int)
    scale_document(doc, *size)
    got = Compositor(doc).flatten().astype(int)
    # The composite equals resampling the flattened image (no light/dark outline).
    assert np.abs(got - expected)[..., :3].max() <= 3
    if not hard_alpha:
        # Semi-transparent edge pixels keep the patch's colour (no brightening/darkening).
        px = top.surface.read(doc.rect)
        edge = px[(px[..., 3] > 8) & (px[..., 3] < 250)]
        assert len(edge) > 0
        assert np.abs(edge[:, :3].astype(int) - np.array(colour)).max() <= 3
