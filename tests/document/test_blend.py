"""Blend modes against values computed by hand from the W3C Compositing spec."""

import numpy as np
import pytest

from canvasai.document.blend import BlendMode, composite_layer, to_straight_uint8


def _one(backdrop_straight, ab, src_straight, a_s, mode, opacity=1.0):
    """Composite one pixel: backdrop (straight colour, alpha) under a straight source."""
    cb = np.array(backdrop_straight, np.float32)
    bd = np.zeros((1, 1, 4), np.float32)
    bd[0, 0, :3] = cb * ab
    bd[0, 0, 3] = ab
    src = np.zeros((1, 1, 4), np.uint8)
    src[0, 0, :3] = np.round(np.array(src_straight) * 255)
    src[0, 0, 3] = round(a_s * 255)
    composite_layer(bd, src, opacity, mode)
    return bd[0, 0]


# Hand-computed with Cs' = (1 - ab) Cs + ab B(Cb, Cs); co = as Cs' + (1 - as) ab Cb.
# Backdrop Cb = (0.6, 0.2, 1.0) alpha 0.5; source Cs = (0.4, 0.8, 0.0) alpha 0.6 (exact in /255? no:
# values are chosen as k/255-friendly approximations; tolerance covers the quantisation).
CB, AB = (0.6, 0.2, 1.0), 0.5
CS, AS = (0.4, 0.8, 0.0), 0.6


def expected(b_values):
    cb, cs = np.array(CB), np.array(CS)
    cs_prime = (1 - AB) * cs + AB * np.array(b_values)
    co = AS * cs_prime + (1 - AS) * AB * cb
    ao = AS + AB * (1 - AS)
    return np.concatenate([co, [ao]])


@pytest.mark.parametrize(
    "mode,b",
    [
        (BlendMode.NORMAL, (0.4, 0.8, 0.0)),
        (BlendMode.MULTIPLY, (0.24, 0.16, 0.0)),
        (BlendMode.SCREEN, (0.76, 0.84, 1.0)),
        # overlay = hardlight(Cs, Cb): Cb<=.5 -> 2 Cb Cs ; else screen(Cs, 2Cb-1)
        (BlendMode.OVERLAY, (1 - (1 - 0.4) * (1 - 0.2), 2 * 0.2 * 0.8, 1 - (1 - 0.0) * (1 - 1.0))),
        (BlendMode.DARKEN, (0.4, 0.2, 0.0)),
        (BlendMode.LIGHTEN, (0.6, 0.8, 1.0)),
        (BlendMode.DIFFERENCE, (0.2, 0.6, 1.0)),
        (BlendMode.EXCLUSION, (0.6 + 0.4 - 2 * 0.24, 0.2 + 0.8 - 2 * 0.16, 1.0)),
        # hard light: Cs<=.5 -> multiply(Cb, 2Cs); else screen(Cb, 2Cs-1)
        (BlendMode.HARD_LIGHT, (0.6 * 0.8, 0.2 + 0.6 - 0.2 * 0.6, 0.0)),
        # color dodge: Cb==0 -> 0; Cs==1 -> 1; else min(1, Cb/(1-Cs))
        (BlendMode.COLOR_DODGE, (1.0, 1.0, 1.0)),
        # color burn: Cb==1 -> 1; Cs==0 -> 0; else 1 - min(1, (1-Cb)/Cs)
        (BlendMode.COLOR_BURN, (0.0, 0.0, 1.0)),
    ],
)
def test_blend_mode_matches_w3c_formula_with_partial_alpha(mode, b):
    got = _one(CB, AB, CS, AS, mode)
    np.testing.assert_allclose(got, expected(b), atol=3e-3)


def test_soft_light_formula():
    # Cs=0.8 > .5: D(Cb)=sqrt(Cb) for Cb>.25 ; B = Cb + (2Cs-1)(D-Cb)
    cb, cs = 0.36, 0.8
    b = cb + (2 * cs - 1) * (np.sqrt(cb) - cb)
    got = _one((cb, cb, cb), 1.0, (cs, cs, cs), 1.0, BlendMode.SOFT_LIGHT)
    np.testing.assert_allclose(got[:3], [b] * 3, atol=3e-3)


def test_layer_opacity_scales_source_alpha():
    got = _one((0, 0, 0), 1.0, (1, 1, 1), 1.0, BlendMode.NORMAL, opacity=0.25)
    np.testing.assert_allclose(got, [0.25, 0.25, 0.25, 1.0], atol=1e-6)


def test_transparent_source_leaves_backdrop_for_every_mode():
    for mode in BlendMode:
        got = _one(CB, AB, CS, 0.0, mode)
        np.testing.assert_allclose(got, [0.3, 0.1, 0.5, 0.5], atol=1e-6)


def test_source_over_empty_backdrop_is_source():
    got = _one((0, 0, 0), 0.0, (0.4, 0.8, 0.0), 0.6, BlendMode.MULTIPLY)
    straight = to_straight_uint8(got[None, None])[0, 0]
    assert abs(int(straight[0]) - 102) <= 1 and abs(int(straight[3]) - 153) <= 1


def test_ora_names_round_trip_and_unknown_falls_back():
    assert BlendMode.from_ora("svg:multiply") is BlendMode.MULTIPLY
    assert BlendMode.from_ora("krita:unknown-op") is BlendMode.NORMAL


def _random_case(rng, h=37, w=53):
    """A premultiplied backdrop and a straight source with the awkward values in it:
    transparent and opaque pixels, tiny alphas, colours at exactly 0, 1/2 and 1."""
    back = rng.random((h, w, 4)).astype(np.float32)
    back[:4] = 0.0
    back[4:8, :, 3] = 1.0
    back[8:10, :, 3] = 1e-3
    back[10:12, :, :3] = 0.5
    back[12:14, :, :3] = 1.0
    back[..., :3] *= back[..., 3:4]
    src = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    src[:, :3, 3] = 0
    src[:, 3:6, 3] = 255
    src[:, 6:8, :3] = (0, 128, 255)
    src[:, 8:10, :3] = 127
    return back, src


@pytest.mark.parametrize("mode", list(BlendMode))
def test_fast_path_agrees_with_the_spec_formula(mode):
    from canvasai.document.blend import composite_layer_reference

    rng = np.random.default_rng(7)
    for opacity in (1.0, 0.37):
        back, src = _random_case(rng)
        fast, ref = back.copy(), back.copy()
        composite_layer(fast, src, opacity, mode)
        composite_layer_reference(ref, src, opacity, mode)
        np.testing.assert_allclose(fast, ref, atol=2e-6)


def test_a_run_of_affine_layers_is_one_cached_map():
    from canvasai.document.blend import AFFINE_MODES, Transfer

    rng = np.random.default_rng(11)
    back, _ = _random_case(rng)
    modes = sorted(AFFINE_MODES, key=lambda m: m.value) * 3
    layers = [(m, _random_case(rng)[1], float(rng.uniform(0.2, 1.0))) for m in modes]
    for order in (layers, layers[::-1], layers[3:] + layers[:3]):
        t = Transfer(back.shape[:2])
        expected = back.copy()
        for mode, src, opacity in order:
            t.then(src, opacity, mode)
            composite_layer(expected, src, opacity, mode)
        got = back.copy()
        t.apply(got)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        # a part of the map applies to the same part of a backdrop
        part = back[5:20, 7:30].copy()
        t.apply(part, slice(5, 20), slice(7, 30))
        np.testing.assert_allclose(part, expected[5:20, 7:30], atol=1e-5)
