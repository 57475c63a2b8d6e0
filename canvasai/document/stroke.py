"""Brush strokes: round dabs accumulated in "wash" mode.

A stroke keeps a coverage buffer per touched tile (the maximum of the dab alphas
so far) and recomputes the touched pixels from the tile as it was before the
stroke. Overlapping dabs therefore never build up past the stroke's opacity,
which is what painters expect from an opacity slider, and the 'before' tiles are
exactly what undo needs: the stroke's undo entry holds one copy of the touched
tiles and nothing else.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from canvasai.core.geometry import Rect
from canvasai.document.tiles import TiledSurface, TileKey


@lru_cache(maxsize=64)
def _falloff_lut(hardness_q: int) -> np.ndarray:
    """Alpha as a function of normalised radius (1024 samples over [0, 1])."""
    hardness = hardness_q / 100.0
    r = np.linspace(0.0, 1.0, 1025, dtype=np.float32)
    if hardness >= 1.0:
        return (r < 1.0).astype(np.float32)
    t = np.clip((r - hardness) / (1.0 - hardness), 0.0, 1.0)
    return (1.0 - t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep falloff


def dab_alpha(cx: float, cy: float, radius: float, hardness: float,
              rect: Rect) -> np.ndarray:
    """Coverage (h, w) float32 of a round dab centred at (cx, cy) over `rect`.

    The edge is anti-aliased over about one pixel, also for hard brushes.
    """
    ys = np.arange(rect.y, rect.y1, dtype=np.float32) + 0.5 - cy
    xs = np.arange(rect.x, rect.x1, dtype=np.float32) + 0.5 - cx
    d = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    radius = max(radius, 0.5)
    lut = _falloff_lut(int(round(hardness * 100)))
    idx = np.minimum(d * (1024.0 / radius), 1024.0).astype(np.int32)
    a = lut[idx]
    # one-pixel anti-aliased rim
    rim = np.clip(radius - d + 0.5, 0.0, 1.0)
    return np.minimum(a, rim) if hardness >= 0.5 else a * rim


def dab_rect(cx: float, cy: float, radius: float) -> Rect:
    r = max(radius, 0.5) + 1
    return Rect.from_bounds(math.floor(cx - r), math.floor(cy - r), math.ceil(cx + r),
                            math.ceil(cy + r))


class Stroke:
    """One stroke on one surface. Call `dab` repeatedly, then `finish` for the undo data.

    `color` is (r, g, b) for RGBA surfaces and ignored for 1-channel surfaces (masks),
    where painting raises coverage towards 255 and erasing lowers it.
    `clip` is an optional 1-channel surface (the selection) that limits the effect.
    """

    def __init__(self, surface: TiledSurface, bounds: Rect, color: tuple[int, int, int] = (0, 0, 0),
                 opacity: float = 1.0, erase: bool = False, clip: TiledSurface | None = None) -> None:
        self.surface = surface
        self.bounds = bounds
        self.color = np.asarray(color[:3], np.float32) / 255.0
        self._target = np.append(np.asarray(color[:3], np.float32), np.float32(255.0))
        self.opacity = float(opacity)
        self.erase = erase
        self.clip = clip
        self.before: dict[TileKey, np.ndarray | None] = {}
        self._coverage: dict[TileKey, np.ndarray] = {}
        self.rect = Rect(0, 0, 0, 0)

    def dab(self, cx: float, cy: float, radius: float, hardness: float = 1.0,
            flow: float = 1.0) -> Rect:
        """Stamp one dab; returns the rect of pixels that may have changed.

        Coverage and 'before' pixels are gathered from the touched tiles into one
        array, blended once, and scattered back: a few numpy calls per dab rather
        than per tile.
        """
        rect = dab_rect(cx, cy, radius).intersect(self.bounds)
        if rect.is_empty():
            return rect
        alpha = dab_alpha(cx, cy, radius, hardness, rect)
        if flow != 1.0:
            alpha *= np.float32(flow)
        surf = self.surface
        ts = surf.tile_size
        cov = np.empty((rect.h, rect.w), np.float32)
        base = np.empty((rect.h, rect.w, surf.channels), np.uint8)
        clip = None if self.clip is None else np.empty((rect.h, rect.w), np.uint8)
        parts = []
        for key in rect.tiles(ts):
            tr = surf.key_rect(key)
            part = tr.intersect(rect)
            ys, xs = slice(part.y - tr.y, part.y1 - tr.y), slice(part.x - tr.x, part.x1 - tr.x)
            oys = slice(part.y - rect.y, part.y1 - rect.y)
            oxs = slice(part.x - rect.x, part.x1 - rect.x)
            tile_cov = self._coverage.get(key)
            if tile_cov is None:
                self.before[key] = None if (t := surf.tile(key)) is None else t.copy()
                tile_cov = self._coverage[key] = np.zeros((ts, ts), np.float32)
            c = tile_cov[ys, xs]
            np.maximum(c, alpha[oys, oxs], out=c)
            cov[oys, oxs] = c
            b = self.before[key]
            base[oys, oxs] = (b if b is not None else surf.fill_tile())[ys, xs]
            if clip is not None:
                clip[oys, oxs] = self.clip.tile_or_fill(key)[ys, xs, 0]
            parts.append((key, ys, xs, oys, oxs))
        out = self._blend(base, cov, clip)
        for key, ys, xs, oys, oxs in parts:
            surf.writable_tile(key)[ys, xs] = out[oys, oxs]
        self.rect = self.rect.union(rect)
        return rect

    def _blend(self, base: np.ndarray, cov: np.ndarray, clip: np.ndarray | None) -> np.ndarray:
        eff = cov * np.float32(self.opacity)
        if clip is not None:
            eff *= clip.astype(np.float32) * np.float32(1 / 255.0)
        if self.surface.channels == 1:
            b = base[..., 0].astype(np.float32)
            res = b * (1 - eff) if self.erase else b + (255.0 - b) * eff
            res += 0.5
            return res.astype(np.uint8)[..., None]
        ba = base[..., 3].astype(np.float32) * np.float32(1 / 255.0)
        if self.erase:
            out = base.copy()
            out[..., 3] = (ba * (1 - eff) * 255.0 + 0.5).astype(np.uint8)
            return out
        keep = ba * (1 - eff)  # weight of the old colour
        oa = eff + keep
        # Where nothing covers the pixel (oa == 0) the old bytes stay as they are (even the
        # hidden colour of alpha-0 pixels): weight 1 for the old colour there. Elsewhere an
        # untouched pixel (eff == 0) has keep == oa, so its weight is exactly 1.0 too.
        inv = 1.0 / np.maximum(oa, np.float32(1e-30))
        h, w = eff.shape
        # Four-channel weights (whole-array numpy ops are much faster than on 3-channel views):
        # out = base * w_old + target * w_new, target = (colour, 255); alpha: base_a * (1 - eff)
        # + 255 * eff = 255 * oa.
        w_old = np.empty((h, w, 4), np.float32)
        w_old[..., 0] = keep * inv
        w_old[..., 0] += oa == 0
        w_old[..., 1] = w_old[..., 0]
        w_old[..., 2] = w_old[..., 0]
        w_old[..., 3] = 1 - eff
        w_new = np.empty((h, w, 4), np.float32)
        w_new[..., 0] = eff * inv
        w_new[..., 1] = w_new[..., 0]
        w_new[..., 2] = w_new[..., 0]
        w_new[..., 3] = eff
        w_new *= self._target
        res = base.astype(np.float32)
        res *= w_old
        res += w_new
        res += 0.5
        return res.astype(np.uint8)

    def finish(self) -> dict[TileKey, np.ndarray | None]:
        """End the stroke: drop coverage buffers, free tiles erased to nothing, return 'before'."""
        self._coverage.clear()
        if self.erase and not self.surface.fill.any():
            for key in self.before:
                t = self.surface.tile(key)
                if t is not None and not t[..., -1].any():
                    self.surface.set_tile(key, None)
        return self.before
