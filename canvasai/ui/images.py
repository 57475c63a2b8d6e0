"""numpy <-> Qt image conversions used by the panels (one place, one convention)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap


def qimage_from_rgba(rgba: np.ndarray) -> QImage:
    """A QImage that owns a copy of straight (non-premultiplied) RGBA or RGB uint8 pixels."""
    a = np.ascontiguousarray(rgba, dtype=np.uint8)
    if a.ndim == 2:
        a = np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))
    h, w, c = a.shape
    fmt = QImage.Format.Format_RGBA8888 if c == 4 else QImage.Format.Format_RGB888
    return QImage(a.data, w, h, a.strides[0], fmt).copy()


def thumbnail(rgba: np.ndarray, size: int = 128) -> QPixmap:
    img = qimage_from_rgba(rgba)
    return QPixmap.fromImage(img.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                        Qt.TransformationMode.SmoothTransformation))
