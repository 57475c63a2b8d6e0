"""Selection and mask operations, each one undo step.

Selections and the inpaint mask are 1-channel tiled surfaces (255 = selected /
regenerate). `doc.selection is None` means nothing is selected, and tools act on
the whole layer. Morphology uses OpenCV (no Qt, no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import cv2
import numpy as np

from canvasai.core.geometry import Rect
from canvasai.document.commands import MaskReplaceCommand, SelectionCommand
from canvasai.document.document import Document
from canvasai.document.tiles import TiledSurface


class SelectMode(str, Enum):
    REPLACE = "replace"
    ADD = "add"
    SUBTRACT = "subtract"
    INTERSECT = "intersect"


def _set_selection(doc: Document, new: TiledSurface | None, text: str) -> None:
    cmd = SelectionCommand(doc, new, text)
    cmd.redo()  # swaps `new` in, keeps the old one
    doc.history.push(cmd)


def _dense(surface: TiledSurface | None, rect: Rect) -> np.ndarray:
    if surface is None:
        return np.zeros((rect.h, rect.w), np.uint8)
    return surface.read(rect)[..., 0]


def _from_dense(values: np.ndarray, rect: Rect) -> TiledSurface:
    s = TiledSurface(1)
    s.write(rect.x, rect.y, values)
    s.prune()
    return s


def _combine(doc: Document, shape: np.ndarray, mode: SelectMode, text: str) -> None:
    rect = doc.rect
    cur = _dense(doc.selection, rect)
    if mode is SelectMode.REPLACE:
        out = shape
    elif mode is SelectMode.ADD:
        out = np.maximum(cur, shape)
    elif mode is SelectMode.SUBTRACT:
        out = (cur.astype(np.uint16) * (255 - shape) // 255).astype(np.uint8)
    else:
        out = (cur.astype(np.uint16) * shape // 255).astype(np.uint8)
    _set_selection(doc, _from_dense(out, rect) if out.any() else None, text)


def select_rect(doc: Document, rect: Rect, mode: SelectMode = SelectMode.REPLACE) -> None:
    shape = np.zeros((doc.height, doc.width), np.uint8)
    r = rect.intersect(doc.rect)
    shape[r.slices()] = 255
    _combine(doc, shape, mode, "Rectangle selection")


def select_polygon(doc: Document, points: Sequence[tuple[float, float]],
                   mode: SelectMode = SelectMode.REPLACE) -> None:
    """Lasso: fill the polygon (anti-aliased edge) into the selection."""
    shape = np.zeros((doc.height, doc.width), np.uint8)
    if len(points) >= 3:
        shift = 4  # sub-pixel precision for the vertices
        pts = np.round(np.asarray(points, np.float64) * (1 << shift)).astype(np.int32)
        cv2.fillPoly(shape, [pts], 255, lineType=cv2.LINE_AA, shift=shift)
    _combine(doc, shape, mode, "Lasso selection")


def select_all(doc: Document) -> None:
    _set_selection(doc, TiledSurface(1, fill=255), "Select all")


def select_none(doc: Document) -> None:
    if doc.selection is not None:
        _set_selection(doc, None, "Select none")


def invert_selection(doc: Document) -> None:
    cur = _dense(doc.selection, doc.rect)
    inv = 255 - cur
    _set_selection(doc, _from_dense(inv, doc.rect) if inv.any() else None, "Invert selection")


def _morph(values: np.ndarray, px: int, grow: bool) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    if grow:
        return cv2.dilate(values, k)
    # shrinking must also pull in from the canvas edge
    padded = cv2.copyMakeBorder(values, px, px, px, px, cv2.BORDER_CONSTANT, value=0)
    return cv2.erode(padded, k)[px:-px, px:-px]


def grow_selection(doc: Document, px: int) -> None:
    if doc.selection is None or px <= 0:
        return
    out = _morph(_dense(doc.selection, doc.rect), int(px), grow=True)
    _set_selection(doc, _from_dense(out, doc.rect), f"Grow selection {px}px")


def shrink_selection(doc: Document, px: int) -> None:
    if doc.selection is None or px <= 0:
        return
    out = _morph(_dense(doc.selection, doc.rect), int(px), grow=False)
    _set_selection(doc, _from_dense(out, doc.rect) if out.any() else None, f"Shrink selection {px}px")


def feather_values(values: np.ndarray, px: float) -> np.ndarray:
    """Gaussian feather whose visible softness spans about `px` pixels on each side."""
    sigma = max(px / 2.0, 0.1)
    return cv2.GaussianBlur(values, (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_CONSTANT)


def feather_selection(doc: Document, px: float) -> None:
    if doc.selection is None or px <= 0:
        return
    out = feather_values(_dense(doc.selection, doc.rect), px)
    _set_selection(doc, _from_dense(out, doc.rect), f"Feather selection {px:g}px")


def selection_bounds(doc: Document) -> Rect:
    if doc.selection is None:
        return Rect(0, 0, 0, 0)
    if doc.selection.fill.any():
        return doc.rect
    return doc.selection.bounds().intersect(doc.rect)


# -- mask <-> selection ------------------------------------------------------------
def _set_mask(doc: Document, new: TiledSurface, text: str) -> None:
    cmd = MaskReplaceCommand(doc, new, text)
    cmd.redo()
    doc.history.push(cmd)


def mask_to_selection(doc: Document) -> None:
    m = doc.mask.copy()
    _set_selection(doc, None if m.is_blank else m, "Selection from mask")


def selection_to_mask(doc: Document) -> None:
    s = doc.selection
    m = _from_dense(_dense(s, doc.rect), doc.rect) if s is not None else TiledSurface(1)
    _set_mask(doc, m, "Mask from selection")


def clear_mask(doc: Document) -> None:
    if not doc.mask.is_blank:
        _set_mask(doc, TiledSurface(1), "Clear mask")


def mask_array(doc: Document, rect: Rect | None = None) -> np.ndarray:
    """The inpaint mask as an (h, w) uint8 array."""
    return doc.mask.read(rect or doc.rect)[..., 0]
