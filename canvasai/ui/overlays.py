"""Things the canvas draws over the document: mask tint, selection outline."""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtGui import QPolygonF

from canvasai.core.geometry import Rect
from canvasai.document.document import Document

MASK_TINT_RGB = (230, 40, 40)
MASK_TINT_ALPHA = 0.45
# Above this many pixels the outline follows pixel centres (half a pixel inside the
# exact edge, invisible below ~400 % zoom) to keep selection changes fast on big canvases.
EXACT_OUTLINE_PIXELS = 2_000_000


def render_mask_tint(doc: Document, rect: Rect) -> np.ndarray | None:
    """Premultiplied RGBA of the inpaint mask as a translucent red, or None where it is empty."""
    m = doc.mask.read(rect)[..., 0]
    if not m.any():
        return None
    a = m.astype(np.float32) * MASK_TINT_ALPHA
    out = np.empty((rect.h, rect.w, 4), np.uint8)
    for c, v in enumerate(MASK_TINT_RGB):
        out[..., c] = (a * (v / 255.0) + 0.5).astype(np.uint8)
    out[..., 3] = (a + 0.5).astype(np.uint8)
    return out


def selection_outline(doc: Document) -> list[QPolygonF]:
    """Closed outlines (doc coordinates) of the pixels selected at least half-way."""
    sel = doc.selection
    if sel is None:
        return []
    if sel.fill[0] >= 128 and not sel.tile_keys():
        r = doc.rect
        return [QPolygonF([QPointF(r.x, r.y), QPointF(r.x1, r.y), QPointF(r.x1, r.y1),
                           QPointF(r.x, r.y1)])]
    bounds = doc.rect if sel.fill.any() else sel.bounds().intersect(doc.rect)
    if bounds.is_empty():
        return []
    # One pixel of padding so shapes touching the crop edge still close there.
    crop = bounds.adjusted(1, 1, 1, 1)
    binary = (sel.read(crop)[..., 0] >= 128).astype(np.uint8)
    binary[0, :] = binary[-1, :] = 0
    binary[:, 0] = binary[:, -1] = 0
    exact = binary.size <= EXACT_OUTLINE_PIXELS
    if exact:
        # Upscale 2x (nearest) so contour vertices land on pixel corners after halving.
        binary = np.repeat(np.repeat(binary, 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        pts = c[:, 0, :].astype(np.float64)
        # exact: map the 2x contour to pixel corners; large: through pixel centres
        pts = np.round((pts + 0.5) / 2.0) if exact else pts + 0.5
        pts += (crop.x, crop.y)
        polys.append(QPolygonF([QPointF(float(x), float(y)) for x, y in pts]))
    return polys
