"""ControlNet conditioning maps from a sketch or photo, with OpenCV/numpy only.

Every function takes an H x W x 3|4 uint8 image and returns an H x W x 3 uint8 map
in the convention the matching ControlNet was trained on (white lines on black for
canny / lineart / scribble; near = bright for depth). Transparent sketch layers
are flattened onto white paper first.
"""

from __future__ import annotations

import cv2
import numpy as np

from canvasai.backends.api import ControlKind

DEPTH_PROXY_NOTE = (
    "depth: no depth-estimation model is installed, so the control map is a cheap proxy "
    "(blurred luminance, brighter = nearer), not a real depth map"
)


def flatten_on_white(image: np.ndarray) -> np.ndarray:
    """RGB of `image` composited over white (straight alpha)."""
    if image.shape[2] == 3:
        return np.ascontiguousarray(image)
    a = image[..., 3:4].astype(np.float32) / 255.0
    rgb = image[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(flatten_on_white(image), cv2.COLOR_RGB2GRAY)


def _three(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def _ink_on_paper(gray: np.ndarray) -> np.ndarray:
    """The gray image with ink dark: invert when the picture is mostly dark (lines on black)."""
    return 255 - gray if np.median(gray) < 128 else gray


def canny(image: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    return _three(cv2.Canny(_gray(image), low, high))


def lineart(image: np.ndarray) -> np.ndarray:
    """Thin white lines on black: adaptive threshold of the ink, cleaned of specks."""
    g = _ink_on_paper(_gray(image))
    g = cv2.GaussianBlur(g, (3, 3), 0)
    lines = cv2.adaptiveThreshold(g, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 11, 8)
    lines = cv2.morphologyEx(lines, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    return _three(lines)


def scribble(image: np.ndarray, thickness: int = 3) -> np.ndarray:
    """Bold white strokes on black: threshold of the ink, dilated (what scribble models expect)."""
    g = _ink_on_paper(_gray(image))
    _, ink = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if not ink.any() or ink.all():  # blank page: Otsu is meaningless
        ink = np.where(g < 128, 255, 0).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thickness, thickness))
    return _three(cv2.dilate(ink, k))


def depth_proxy(image: np.ndarray) -> np.ndarray:
    """A stand-in depth map (see DEPTH_PROXY_NOTE): smooth, brighter = nearer."""
    g = _gray(image).astype(np.float32)
    sigma = max(2.0, max(g.shape) / 64.0)
    g = cv2.GaussianBlur(g, (0, 0), sigma)
    lo, hi = float(g.min()), float(g.max())
    g = (g - lo) / (hi - lo) * 255.0 if hi - lo > 1e-3 else np.full_like(g, 128.0)
    return _three(np.clip(np.rint(g), 0, 255).astype(np.uint8))


def control_map(
    kind: ControlKind, image: np.ndarray, preprocess: bool = True
) -> tuple[np.ndarray, str]:
    """(map, note) for `kind`; with preprocess=False the image is used as the map as-is."""
    if not preprocess:
        return flatten_on_white(image), ""
    if kind == ControlKind.CANNY:
        return canny(image), ""
    if kind == ControlKind.LINEART:
        return lineart(image), ""
    if kind == ControlKind.SCRIBBLE:
        return scribble(image), ""
    if kind == ControlKind.DEPTH:
        return depth_proxy(image), DEPTH_PROXY_NOTE
    raise ValueError(f"unknown control kind {kind!r}")
