"""ControlNet conditioning maps from a sketch or photo, with OpenCV/numpy only (no weights).

Every function takes an H x W x 3|4 uint8 image and returns an H x W x 3 uint8 map
of the same size, in the convention the matching ControlNet was trained on: white
lines on black for canny / lineart / scribble / softedge (soft edge: grey levels, as
HED and PiDiNet give); near = bright for depth. Transparent sketch layers are
flattened onto white paper first. Depth from a model and pose live in
`canvasai.backends.preprocessors`, the public entry point.
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
    """Thin white lines on black, from a drawing or a photo.

    The dark side of every edge: how much darker each (lightly denoised) pixel is than its
    blurred neighbourhood, normalised to the picture's strongest lines (at least 16 levels
    of contrast, so flat or noisy areas stay black). A drawing's ink is its own line.
    Faint lines keep grey levels, like the line-art annotators.
    """
    g = _ink_on_paper(_gray(image)).astype(np.float32)
    side = max(g.shape)
    fine = cv2.GaussianBlur(g, (0, 0), max(0.8, side / 768.0))
    blur = cv2.GaussianBlur(g, (0, 0), max(1.5, side / 384.0))
    d = np.clip(blur - fine, 0.0, None)
    hi = max(float(np.percentile(d, 98)), 16.0)
    floor = 0.12
    lines = np.clip((d / hi - floor) / (1.0 - floor), 0.0, 1.0) ** 0.6
    return _three(np.rint(lines * 255.0).astype(np.uint8))


def scribble(image: np.ndarray, thickness: int = 3) -> np.ndarray:
    """Bold white strokes on black (what scribble models expect): a drawing's ink,
    dilated; for a photo or a painting (mostly not paper), its strongest soft edges."""
    g = _ink_on_paper(_gray(image))
    if (g >= 200).mean() < 0.5:
        ink = np.where(softedge(image)[..., 0] > 96, 255, 0).astype(np.uint8)
    else:
        _, ink = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
        if not ink.any() or ink.all():  # blank page: Otsu is meaningless
            ink = np.where(g < 128, 255, 0).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thickness, thickness))
    return _three(cv2.dilate(ink, k))


def softedge(image: np.ndarray) -> np.ndarray:
    """Soft, thick edges in grey levels (HED / PiDiNet-like, without their networks).

    Gradient magnitude of the luminance summed over three blur scales (fine detail and
    the outlines of large shapes), normalised to its strongest edges; a floor removes
    gentle shading and a gamma lifts weak edges the way HED's sigmoid output does.
    """
    g = _gray(image).astype(np.float32) / 255.0
    side = max(g.shape)
    acc = np.zeros_like(g)
    for sigma in (max(1.0, side / 512.0), max(2.0, side / 256.0), max(4.0, side / 128.0)):
        b = cv2.GaussianBlur(g, (0, 0), sigma)
        gx = cv2.Sobel(b, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(b, cv2.CV_32F, 0, 1, ksize=3)
        acc += cv2.magnitude(gx, gy)
    hi = float(np.percentile(acc, 99.5))
    if hi < 1e-3:
        return np.zeros((*g.shape, 3), np.uint8)
    floor = 0.1
    edges = np.clip((acc / hi - floor) / (1.0 - floor), 0.0, 1.0) ** 0.7
    edges = cv2.GaussianBlur(edges, (0, 0), max(0.8, side / 1024.0))
    edges[edges < 0.04] = 0.0
    return _three(np.clip(np.rint(edges * 255.0), 0, 255).astype(np.uint8))


def depth_proxy(image: np.ndarray) -> np.ndarray:
    """A stand-in depth map (see DEPTH_PROXY_NOTE): smooth, brighter = nearer."""
    g = _gray(image).astype(np.float32)
    sigma = max(2.0, max(g.shape) / 64.0)
    g = cv2.GaussianBlur(g, (0, 0), sigma)
    lo, hi = float(g.min()), float(g.max())
    g = (g - lo) / (hi - lo) * 255.0 if hi - lo > 1e-3 else np.full_like(g, 128.0)
    return _three(np.clip(np.rint(g), 0, 255).astype(np.uint8))


#: the preprocessors that need no model, by control kind
WEIGHT_FREE = {
    ControlKind.CANNY: canny,
    ControlKind.LINEART: lineart,
    ControlKind.SCRIBBLE: scribble,
    ControlKind.SOFTEDGE: softedge,
}


def control_map(
    kind: ControlKind, image: np.ndarray, preprocess: bool = True
) -> tuple[np.ndarray, str]:
    """(map, note) for `kind` without any model; with preprocess=False the image is used
    as the map as-is. Depth falls back to the proxy (with its note); pose needs a model,
    so it raises here: use `canvasai.backends.preprocessors.preprocess`, which finds one."""
    if not preprocess:
        return flatten_on_white(image), ""
    fn = WEIGHT_FREE.get(kind)
    if fn is not None:
        return fn(image), ""
    if kind == ControlKind.DEPTH:
        return depth_proxy(image), DEPTH_PROXY_NOTE
    raise ValueError(f"{getattr(kind, 'value', kind)} maps need a model: see canvasai.backends.preprocessors")
