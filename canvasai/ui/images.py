"""numpy <-> Qt image conversions used by the panels (one place, one convention)."""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtGui import QImage, QPixmap

THUMBNAIL_OVERSAMPLE = 4  # a thumbnail averages at most this many source samples a side


def qimage_from_rgba(rgba: np.ndarray) -> QImage:
    """A QImage that owns a copy of straight (non-premultiplied) RGBA or RGB uint8 pixels."""
    a = np.ascontiguousarray(rgba, dtype=np.uint8)
    if a.ndim == 2:
        a = np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))
    h, w, c = a.shape
    fmt = QImage.Format.Format_RGBA8888 if c == 4 else QImage.Format.Format_RGB888
    return QImage(a.data, w, h, a.strides[0], fmt).copy()


def rgba_from_qimage(image: QImage) -> np.ndarray:
    """Straight RGBA uint8 pixels (a copy) of any QImage."""
    img = image.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : w * 4].reshape(h, w, 4).copy()


def thumbnail(rgba: np.ndarray, size: int = 128) -> QPixmap:
    """A `size`-px (longer side) picture of straight RGBA (or RGB / grey) pixels.

    Why not Qt's smooth scaling of the whole image: for a 4096² result that copied 64 MB
    into a QImage and filtered all of it on the GUI thread with the GIL held (the job's
    end stalled the window). The pixels are first thinned to `THUMBNAIL_OVERSAMPLE`
    samples per thumbnail pixel (a strided view: nothing is copied), then area-averaged
    in premultiplied colour, so transparent edges do not darken.
    """
    if rgba.ndim == 2:
        rgba = rgba[..., None]
    if rgba.shape[2] != 4:
        rgb = np.broadcast_to(rgba[..., :3], rgba.shape[:2] + (3,))
        rgba = np.concatenate([rgb, np.full(rgba.shape[:2] + (1,), 255, np.uint8)], axis=2)
    h, w = rgba.shape[:2]
    scale = min(1.0, size / max(h, w, 1))
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    step = max(1, min(h // th, w // tw) // THUMBNAIL_OVERSAMPLE)
    small = rgba[::step, ::step].astype(np.float32)
    small[..., :3] *= small[..., 3:4] * np.float32(1 / 255)
    if (tw, th) != (small.shape[1], small.shape[0]):
        small = cv2.resize(small, (tw, th), interpolation=cv2.INTER_AREA)
    out = np.ascontiguousarray(np.clip(small + 0.5, 0, 255).astype(np.uint8))
    img = QImage(out.data, tw, th, out.strides[0], QImage.Format.Format_RGBA8888_Premultiplied)
    return QPixmap.fromImage(img.copy())
