"""W3C Compositing and Blending Level 1: separable blend modes and source-over.

Working format for compositing is float32 *premultiplied* RGBA in [0, 1] for the
backdrop, and straight RGBA for a layer being composited onto it. With a straight
source colour Cs, source alpha as, premultiplied backdrop cb = Cb * ab:

    Cs' = (1 - ab) * Cs + ab * B(Cb, Cs)          (spec section 5.8)
    co  = as * Cs' + cb * (1 - as)                (source-over, premultiplied)
    ao  = as + ab * (1 - as)

The mode names are the OpenRaster `composite-op` values.
"""

from __future__ import annotations

import enum

import numpy as np


class BlendMode(str, enum.Enum):
    NORMAL = "svg:src-over"
    MULTIPLY = "svg:multiply"
    SCREEN = "svg:screen"
    OVERLAY = "svg:overlay"
    DARKEN = "svg:darken"
    LIGHTEN = "svg:lighten"
    COLOR_DODGE = "svg:color-dodge"
    COLOR_BURN = "svg:color-burn"
    HARD_LIGHT = "svg:hard-light"
    SOFT_LIGHT = "svg:soft-light"
    DIFFERENCE = "svg:difference"
    EXCLUSION = "svg:exclusion"

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").title()

    @classmethod
    def from_ora(cls, op: str | None) -> BlendMode:
        """Map an OpenRaster composite-op to a mode; unknown ops fall back to normal."""
        try:
            return cls(op) if op else cls.NORMAL
        except ValueError:
            return cls.NORMAL


def _hard_light(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return np.where(cs <= 0.5, cb * (2 * cs), 1 - (1 - cb) * (1 - (2 * cs - 1)))


def _soft_light(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    d = np.where(cb <= 0.25, ((16 * cb - 12) * cb + 4) * cb, np.sqrt(cb))
    return np.where(cs <= 0.5, cb - (1 - 2 * cs) * cb * (1 - cb), cb + (2 * cs - 1) * (d - cb))


def _color_dodge(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.minimum(1.0, cb / np.maximum(1 - cs, 1e-12))
    return np.where(cb == 0, 0.0, np.where(cs >= 1, 1.0, r)).astype(np.float32)


def _color_burn(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 1 - np.minimum(1.0, (1 - cb) / np.maximum(cs, 1e-12))
    return np.where(cb >= 1, 1.0, np.where(cs <= 0, 0.0, r)).astype(np.float32)


def blend_function(mode: BlendMode, cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    """B(Cb, Cs) for a separable mode, on straight colour arrays in [0, 1]."""
    if mode is BlendMode.NORMAL:
        return cs
    if mode is BlendMode.MULTIPLY:
        return cb * cs
    if mode is BlendMode.SCREEN:
        return cb + cs - cb * cs
    if mode is BlendMode.OVERLAY:
        return _hard_light(cs, cb)
    if mode is BlendMode.DARKEN:
        return np.minimum(cb, cs)
    if mode is BlendMode.LIGHTEN:
        return np.maximum(cb, cs)
    if mode is BlendMode.COLOR_DODGE:
        return _color_dodge(cb, cs)
    if mode is BlendMode.COLOR_BURN:
        return _color_burn(cb, cs)
    if mode is BlendMode.HARD_LIGHT:
        return _hard_light(cb, cs)
    if mode is BlendMode.SOFT_LIGHT:
        return _soft_light(cb, cs)
    if mode is BlendMode.DIFFERENCE:
        return np.abs(cb - cs)
    if mode is BlendMode.EXCLUSION:
        return cb + cs - 2 * cb * cs
    raise ValueError(f"unsupported blend mode {mode}")


_INV255 = np.float32(1.0 / 255.0)


def composite_layer(backdrop: np.ndarray, layer_rgba8: np.ndarray, opacity: float,
                    mode: BlendMode) -> None:
    """Composite a straight uint8 RGBA layer onto a premultiplied float32 backdrop, in place."""
    src = layer_rgba8.astype(np.float32)
    a_s = src[..., 3:4] * np.float32(opacity / 255.0)  # source alpha in [0, 1], with opacity
    if mode is BlendMode.NORMAL:
        # Premultiply in one pass: with the alpha channel set to 255, src * (a_s / 255)
        # gives (Cs * as, as). Then source-over is backdrop * (1 - as) + src.
        src[..., 3] = 255.0
        src *= a_s * np.float32(1.0 / 255.0)
        backdrop *= 1.0 - a_s
        backdrop += src
        return
    cs = src[..., :3]
    cs *= np.float32(1.0 / 255.0)
    inv_as = 1.0 - a_s
    ab = backdrop[..., 3:4]
    with np.errstate(divide="ignore", invalid="ignore"):
        cb = np.where(ab > 0, backdrop[..., :3] / np.maximum(ab, 1e-12), 0.0).astype(np.float32)
    mixed = (1.0 - ab) * cs + ab * blend_function(mode, cb, cs)
    backdrop[..., :3] = a_s * mixed + backdrop[..., :3] * inv_as
    backdrop[..., 3:4] = a_s + ab * inv_as


def over_premultiplied(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Premultiplied source-over of two float32 arrays: top over bottom (new array)."""
    return top + bottom * (1.0 - top[..., 3:4])


def to_display(premul: np.ndarray) -> np.ndarray:
    """Premultiplied float32 -> premultiplied uint8 RGBA (QImage Format_RGBA8888_Premultiplied)."""
    out = premul * np.float32(255.0)
    out += np.float32(0.5)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def to_straight_uint8(premul: np.ndarray) -> np.ndarray:
    """Premultiplied float32 -> straight uint8 RGBA (for files and colour picking)."""
    a = premul[..., 3]
    scale = np.zeros_like(a)
    np.divide(np.float32(255.0), a, out=scale, where=a > 0)
    out = premul * scale[..., None]
    out[..., 3] = a * np.float32(255.0)
    out += np.float32(0.5)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)
