"""Planning geometry: context rects, native scaling, feathering, paste-back, outpaint canvas."""

from __future__ import annotations

import numpy as np
import pytest

from canvasai.backends import masking
from canvasai.backends.api import BlendSettings
from canvasai.core.geometry import Rect

DOC = Rect(0, 0, 1000, 600)


@pytest.mark.parametrize(
    "bbox",
    [Rect(400, 300, 50, 40), Rect(0, 0, 10, 10), Rect(990, 590, 10, 10), Rect(1, 2, 997, 597)],
)
def test_inpaint_context_contains_mask_inside_doc_multiple_of_8(bbox):
    r = masking.inpaint_context(bbox, DOC)
    assert r.contains(bbox)
    assert DOC.contains(r)
    assert r.w % 8 == 0 and r.h % 8 == 0


def test_inpaint_context_padding_is_proportional_with_minimum():
    small = masking.inpaint_context(Rect(500, 300, 4, 4), DOC, padding_frac=0.5, min_padding=32)
    assert small.x <= 500 - 32 and small.x1 >= 504 + 32  # minimum padding applies
    big = masking.inpaint_context(Rect(300, 200, 200, 100), DOC, padding_frac=0.5, min_padding=32)
    assert big.x <= 300 - 100 and big.x1 >= 500 + 100  # half the width on each side
    assert big.y <= 200 - 50 and big.y1 >= 300 + 50


def test_inpaint_context_tiny_document_is_not_snapped_beyond_its_size():
    doc = Rect(0, 0, 21, 13)
    r = masking.inpaint_context(Rect(5, 5, 3, 3), doc)
    assert r == doc  # too small for a multiple of 8 that holds the padding


def test_inpaint_context_rejects_empty_mask():
    with pytest.raises(ValueError):
        masking.inpaint_context(Rect(0, 0, 0, 0), DOC)


def test_mask_bbox():
    m = np.zeros((50, 60), np.uint8)
    assert masking.mask_bbox(m).is_empty()
    m[10:20, 30:35] = 255
    assert masking.mask_bbox(m) == Rect(30, 10, 5, 10)


@pytest.mark.parametrize(
    ("size", "native"), [((256, 256), 512), ((300, 100), 512), ((2000, 1000), 1024), ((7, 9), 512)]
)
def test_native_scale_keeps_aspect_and_area(size, native):
    w, h = masking.native_scale(size, native=native)
    assert w % 8 == 0 and h % 8 == 0
    assert abs(w * h - native * native) / (native * native) < 0.1
    assert abs(w / h - size[0] / size[1]) / (size[0] / size[1]) < 0.1


def test_feather_mask_reach_is_exact():
    mask = np.zeros((80, 80), np.uint8)
    mask[30:50, 30:50] = 255
    alpha = masking.feather_mask(mask, grow_px=4, feather_px=6)
    assert alpha.dtype == np.float32 and alpha.shape == mask.shape
    assert np.all(alpha[mask > 0] == 1.0)
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    # beyond grow + feather (10 px, plus 1 for the disk's discreteness) alpha is exactly zero
    ys, xs = np.mgrid[:80, :80]
    dx = np.maximum(np.maximum(30 - xs, xs - 49), 0)
    dy = np.maximum(np.maximum(30 - ys, ys - 49), 0)
    far = np.hypot(dx, dy) > 11
    assert np.all(alpha[far] == 0.0)
    # and it is a gradient in between, not a hard edge
    ring = (np.hypot(dx, dy) > 0) & (np.hypot(dx, dy) <= 10)
    assert 0.0 < alpha[ring].mean() < 1.0


def test_feather_mask_without_grow_or_feather_is_binary():
    mask = np.zeros((10, 10), np.uint8)
    mask[2:5, 2:5] = 200
    alpha = masking.feather_mask(mask)
    np.testing.assert_array_equal(alpha, (mask > 0).astype(np.float32))


@pytest.mark.parametrize("channels", [3, 4])
def test_paste_back_is_byte_identical_where_alpha_is_zero(channels):
    rng = np.random.default_rng(0)
    orig = rng.integers(0, 256, (64, 64, channels), dtype=np.uint8)
    gen = rng.integers(0, 256, (64, 64, channels), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    alpha = masking.feather_mask(mask, 3, 5)
    out = masking.paste_back(orig, gen, alpha)
    assert out.dtype == np.uint8 and out.shape == orig.shape
    np.testing.assert_array_equal(out[alpha == 0], orig[alpha == 0])
    np.testing.assert_array_equal(out[alpha == 1], gen[alpha == 1])
    mid = (alpha > 0) & (alpha < 1)
    lo = np.minimum(orig, gen)[mid].astype(int)
    hi = np.maximum(orig, gen)[mid].astype(int)
    assert np.all((out[mid] >= lo) & (out[mid] <= hi))


def test_paste_back_rgb_over_rgba_keeps_original_alpha():
    orig = np.zeros((8, 8, 4), np.uint8)
    orig[..., 3] = 77
    gen = np.full((8, 8, 3), 255, np.uint8)
    out = masking.paste_back(orig, gen, np.ones((8, 8), np.float32))
    assert np.all(out[..., :3] == 255) and np.all(out[..., 3] == 77)


def test_paste_back_accepts_uint8_alpha_and_checks_shapes():
    orig = np.zeros((4, 4, 3), np.uint8)
    gen = np.full((4, 4, 3), 100, np.uint8)
    a = np.zeros((4, 4), np.uint8)
    a[0, 0] = 255
    out = masking.paste_back(orig, gen, a)
    assert out[0, 0, 0] == 100 and out[1, 1, 0] == 0
    with pytest.raises(ValueError):
        masking.paste_back(orig, gen[:2], a)


def test_color_match_removes_a_global_tint():
    rng = np.random.default_rng(1)
    orig = rng.integers(60, 190, (64, 64, 3), dtype=np.uint8)
    tinted = np.clip(orig.astype(int) + [40, -20, 10], 0, 255).astype(np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    fixed = masking.color_match(tinted, orig, mask)
    err_before = np.abs(tinted.astype(int) - orig).mean()
    err_after = np.abs(fixed.astype(int) - orig).mean()
    assert err_after < err_before / 3


def test_color_match_keeps_alpha_and_handles_full_mask():
    gen = np.full((16, 16, 4), 90, np.uint8)
    out = masking.color_match(gen, gen, np.full((16, 16), 255, np.uint8))
    np.testing.assert_array_equal(out, gen)


@pytest.mark.parametrize("prefill", ["edge", "infill", "blur", "solid"])
@pytest.mark.parametrize("channels", [3, 4])
def test_outpaint_canvas(prefill, channels):
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (30, 40, channels), dtype=np.uint8)
    canvas, mask = masking.outpaint_canvas(img, left=5, right=7, top=3, bottom=0, prefill=prefill)
    assert canvas.shape == (33, 52, channels) and mask.shape == (33, 52)
    np.testing.assert_array_equal(canvas[3:33, 5:45], img)
    assert np.all(mask[3:33, 5:45] == 0) and np.count_nonzero(mask) == 33 * 52 - 30 * 40
    if channels == 4:
        assert np.all(canvas[..., 3][mask > 0] == 255)
    if prefill == "edge":
        np.testing.assert_array_equal(canvas[3:33, 0, :3], img[:, 0, :3])
    if prefill == "solid":
        assert np.all(canvas[0, 0, :3] == 127)


def test_outpaint_canvas_rejects_bad_arguments():
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError):
        masking.outpaint_canvas(img, left=-1)
    with pytest.raises(ValueError):
        masking.outpaint_canvas(img, left=1, prefill="magic")


def test_composite_is_the_one_paste_back():
    rng = np.random.default_rng(1)
    original = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    generated = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    mask = np.zeros((40, 50), np.uint8)
    mask[15:25, 20:30] = 255
    blend = BlendSettings(grow_px=2, feather_px=3)
    out = masking.composite(original, generated, mask, blend)
    alpha = masking.paste_alpha(mask, blend)
    assert np.array_equal(out[alpha == 0], original[alpha == 0])  # untouched beyond the reach
    assert np.array_equal(out[mask > 0], generated[mask > 0])  # repainted in full
    assert alpha[mask > 0].min() == 1.0 and (alpha > 0).sum() > (mask > 0).sum()
