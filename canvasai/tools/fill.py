"""Bucket fill: the connected region of similar colour around the click."""

from __future__ import annotations

import cv2
import numpy as np

from canvasai.document.compositing import composite_layers
from canvasai.tools.base import PointerEvent, Tool


def similar_region(pixels: np.ndarray, x: int, y: int, tolerance: int) -> np.ndarray:
    """(h, w) bool of pixels 4-connected to (x, y) whose RGBA differs by <= tolerance per channel.

    Fully transparent pixels compare equal whatever their colour channels hold.
    """
    px = pixels.astype(np.int16)
    px[px[..., 3] == 0] = 0
    seed = px[y, x]
    close = (np.abs(px - seed).max(axis=-1) <= tolerance).astype(np.uint8)
    h, w = close.shape
    ff = np.zeros((h + 2, w + 2), np.uint8)
    cv2.floodFill(close, ff, (x, y), 2, loDiff=0, upDiff=0,
                  flags=4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    return ff[1:-1, 1:-1].astype(bool)


class FillTool(Tool):
    name = "fill"
    label = "Bucket fill"
    shortcut = "G"

    def press(self, ev: PointerEvent) -> None:
        doc = self.ctx.doc
        layer = doc.active_layer
        x, y = int(ev.x), int(ev.y)
        if layer is None or not doc.rect.contains_point(x, y):
            return
        if layer.locked:
            self.ctx.status(f"Layer “{layer.name}” is locked.")
            return
        rect = doc.rect
        current = layer.surface.read(rect)
        sample = composite_layers(doc.layers, rect) if self.ctx.fill_sample_merged else current
        region = similar_region(sample, x, y, self.ctx.fill_tolerance)
        alpha = region.astype(np.float32)
        if doc.selection is not None:
            alpha *= doc.selection.read(rect)[..., 0].astype(np.float32) / 255.0
        if not alpha.any():
            return
        ys, xs = np.nonzero(alpha)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        a = alpha[y0:y1, x0:x1, None]
        base = current[y0:y1, x0:x1].astype(np.float32) / 255.0
        color = np.asarray(self.ctx.foreground, np.float32) / 255.0
        ba = base[..., 3:4]
        oa = a + ba * (1 - a)
        with np.errstate(divide="ignore", invalid="ignore"):
            rgb = np.where(oa > 0, (color * a + base[..., :3] * ba * (1 - a)) / oa, 0.0)
        out = np.concatenate([rgb, oa], axis=-1) * 255.0 + 0.5
        doc.write_pixels(layer, int(x0), int(y0), out.astype(np.uint8), "Bucket fill")
