"""Context rectangles, feathering and paste-back, decided once (numpy + OpenCV only).

Every backend that regenerates part of a picture (classic, diffusers, remote) places its
output with `composite`, and nothing else pastes a result back: the editing flows and the
CLI take the backend's composite as it is.

Nothing here imports Qt or torch. Conventions follow `canvasai.backends.api`:
images are ``H x W x 3|4`` uint8, masks ``H x W`` uint8 with 255 = regenerate.

The central promise of the editing flows is that pixels outside the (feathered)
mask stay bit-identical. `feather_mask` therefore produces an alpha that is
exactly ``0.0`` beyond ``grow_px + feather_px`` of the mask, and `paste_back`
copies the original bytes wherever alpha is exactly ``0.0``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from canvasai.backends.api import PREFILLS, BlendSettings
from canvasai.core.geometry import Rect

SD1_NATIVE = 512
SDXL_NATIVE = 1024

# --------------------------------------------------------------------------- geometry


def mask_bbox(mask: np.ndarray) -> Rect:
    """The tight bounding rect of the non-zero pixels of `mask` (empty Rect if none)."""
    ys, xs = np.nonzero(np.asarray(mask))
    if len(xs) == 0:
        return Rect(0, 0, 0, 0)
    return Rect.from_bounds(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _fit_axis(lo: int, hi: int, dlo: int, dhi: int, multiple: int) -> tuple[int, int]:
    """Grow [lo, hi) to a length that is a multiple of `multiple`, staying inside [dlo, dhi).

    Growth goes right first, then left. If the document is too small for the rounded
    length, the span is returned unsnapped: containing the mask matters more than
    divisibility (callers resize to a native model size anyway).
    """
    length = hi - lo
    target = -(-length // multiple) * multiple
    if target > dhi - dlo:
        return lo, hi
    extra = target - length
    hi2 = min(hi + extra, dhi)
    extra -= hi2 - hi
    lo2 = lo - extra
    return lo2, hi2


def inpaint_context(
    mask_bbox: Rect,
    doc_rect: Rect,
    padding_frac: float = 0.5,
    min_padding: int = 32,
    multiple: int = 8,
) -> Rect:
    """The region a model should see around a mask: bbox + padding, inside the document.

    Each side is padded by ``max(min_padding, padding_frac * side length)`` of the mask
    bbox (a model needs surroundings proportional to what it repaints, and a minimum
    so tiny masks still get context), clamped to `doc_rect`, then widened to multiples
    of `multiple` (diffusion models need sizes divisible by 8) while staying inside
    the document. A side is left unsnapped only when the document is too small to hold
    the rounded-up length.
    """
    if mask_bbox.is_empty():
        raise ValueError("the mask is empty: nothing to inpaint")
    pad_x = max(int(min_padding), int(math.ceil(padding_frac * mask_bbox.w)))
    pad_y = max(int(min_padding), int(math.ceil(padding_frac * mask_bbox.h)))
    r = mask_bbox.adjusted(pad_x, pad_y, pad_x, pad_y).intersect(doc_rect)
    if r.is_empty():
        raise ValueError("the mask lies outside the document")
    x0, x1 = _fit_axis(r.x, r.x1, doc_rect.x, doc_rect.x1, multiple)
    y0, y1 = _fit_axis(r.y, r.y1, doc_rect.y, doc_rect.y1, multiple)
    return Rect.from_bounds(x0, y0, x1, y1)


def native_scale(
    size: tuple[int, int], native: int = SD1_NATIVE, multiple: int = 8
) -> tuple[int, int]:
    """The (w, h) to run a model at: about ``native * native`` pixels, same aspect ratio.

    Models generate best near the resolution they were trained at (512 for SD 1.x,
    1024 for SDXL); a small region is scaled up and a large one down, then the
    result is scaled back. Both sides are rounded to `multiple` (at least one multiple).
    """
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"invalid size {w}x{h}")
    scale = native / math.sqrt(w * h)
    nw = max(multiple, int(round(w * scale / multiple)) * multiple)
    nh = max(multiple, int(round(h * scale / multiple)) * multiple)
    return nw, nh


# --------------------------------------------------------------------------- masks & compositing


def _binary(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    return (m > 0).astype(np.uint8)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def grow_mask(mask: np.ndarray, grow_px: int) -> np.ndarray:
    """Binary dilation of `mask` by a disk of radius `grow_px`; returns uint8 0/255."""
    m = _binary(mask)
    if grow_px > 0:
        m = cv2.dilate(m, _disk(int(grow_px)))
    return m * np.uint8(255)


def feather_mask(mask: np.ndarray, grow_px: int = 0, feather_px: int = 0) -> np.ndarray:
    """A float32 alpha in [0, 1] for pasting a generated region back.

    The mask is dilated by `grow_px` then blurred with a Gaussian whose kernel is
    ``2 * feather_px + 1`` wide (a finite window), so alpha is exactly 0.0 farther than
    ``grow_px + feather_px`` from the mask, and exactly 1.0 on the mask itself
    (everything the model repainted is used in full).
    """
    m = _binary(mask)
    grown = cv2.dilate(m, _disk(int(grow_px))) if grow_px > 0 else m
    alpha = grown.astype(np.float32)
    if feather_px > 0:
        k = 2 * int(feather_px) + 1
        sigma = max(feather_px / 2.0, 0.5)
        alpha = cv2.GaussianBlur(alpha, (k, k), sigma, borderType=cv2.BORDER_REPLICATE)
        # The kernel window is finite, but guard against any float noise anyway:
        reach = cv2.dilate(grown, _disk(int(feather_px)))
        alpha[reach == 0] = 0.0
    alpha = np.clip(alpha, 0.0, 1.0)
    alpha[m > 0] = 1.0
    return alpha.astype(np.float32, copy=False)


def _match_channels(generated: np.ndarray, original: np.ndarray) -> np.ndarray:
    """`generated` with the channel count of `original` (original alpha kept for RGB input)."""
    g = np.asarray(generated)
    if g.ndim == 2:
        g = np.repeat(g[..., None], 3, axis=2)
    oc, gc = original.shape[2], g.shape[2]
    if oc == gc:
        return g
    if oc == 4 and gc == 3:
        return np.concatenate([g, original[..., 3:4]], axis=2)
    if oc == 3 and gc == 4:
        return g[..., :3]
    raise ValueError(f"cannot combine a {gc}-channel image with a {oc}-channel image")


def paste_back(original: np.ndarray, generated: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend `generated` over `original` with `alpha` (H x W float in [0, 1] or uint8 0..255).

    Returns a new uint8 array shaped like `original`. Wherever alpha is 0 the original
    bytes are copied untouched; where alpha is 1 the generated bytes are copied. A
    3-channel `generated` over a 4-channel `original` keeps the original's alpha.
    """
    orig = np.asarray(original)
    if orig.dtype != np.uint8 or orig.ndim != 3:
        raise ValueError("original must be an H x W x C uint8 image")
    gen = _match_channels(generated, orig)
    if gen.shape != orig.shape:
        raise ValueError(f"generated shape {gen.shape} does not match original {orig.shape}")
    a = np.asarray(alpha)
    if a.shape != orig.shape[:2]:
        raise ValueError(f"alpha shape {a.shape} does not match image {orig.shape[:2]}")
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    out = orig.copy()
    full = a >= 1.0
    out[full] = gen[full]  # what the blend would give there, without float work
    part = (a > 0.0) & ~full
    if not part.any():
        return out
    av = a[part][:, None]
    o = orig[part].astype(np.float32)
    g = gen[part].astype(np.float32)
    out[part] = np.clip(np.rint(o + (g - o) * av), 0, 255).astype(np.uint8)
    return out


def color_match(
    generated: np.ndarray, original: np.ndarray, mask: np.ndarray, ring_px: int = 16
) -> np.ndarray:
    """Shift `generated`'s colours so a ring just outside the mask matches `original`.

    Diffusion output often drifts in brightness/tint; matching mean and standard
    deviation per Lab channel over the ring (where both images should agree) removes
    the visible border. Returns a new uint8 image like `generated` (alpha untouched);
    unchanged if the ring is empty (mask covers everything).
    """
    gen = np.asarray(generated)
    orig = np.asarray(original)
    m = _binary(mask)
    ring = (cv2.dilate(m, _disk(int(ring_px))) > 0) & (m == 0)
    if ring.sum() < 16:
        return gen.copy()
    g_lab = cv2.cvtColor(np.ascontiguousarray(gen[..., :3]), cv2.COLOR_RGB2LAB).astype(np.float32)
    o_lab = cv2.cvtColor(np.ascontiguousarray(orig[..., :3]), cv2.COLOR_RGB2LAB).astype(np.float32)
    for c in range(3):
        gs, os_ = g_lab[..., c][ring], o_lab[..., c][ring]
        g_mu, g_sd = float(gs.mean()), float(gs.std())
        o_mu, o_sd = float(os_.mean()), float(os_.std())
        ratio = 1.0 if g_sd < 1e-3 else float(np.clip(o_sd / g_sd, 0.5, 2.0))
        g_lab[..., c] = (g_lab[..., c] - g_mu) * ratio + o_mu
    rgb = cv2.cvtColor(np.clip(g_lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
    out = gen.copy()
    out[..., :3] = rgb
    return out


def paste_alpha(mask: np.ndarray, blend: BlendSettings) -> np.ndarray:
    """The alpha `composite` blends with: the mask grown and feathered by `blend`."""
    return feather_mask(mask, blend.grow_px, blend.feather_px)


def composite(
    original: np.ndarray, generated: np.ndarray, mask: np.ndarray, blend: BlendSettings
) -> np.ndarray:
    """THE paste-back: `generated` over `original` through the feathered `mask`.

    Colour-matched to the surroundings first when `blend.color_match` is set. Pixels
    farther than ``grow_px + feather_px`` from the mask are the original bytes.
    """
    gen = color_match(generated, original, mask) if blend.color_match else generated
    return paste_back(original, gen, paste_alpha(mask, blend))


# --------------------------------------------------------------------------- outpaint


def _infill(canvas: np.ndarray, new_area: np.ndarray, max_side: int = 512) -> np.ndarray:
    """OpenCV Telea inpaint of `new_area` (uint8 0/255) on the RGB channels.

    Large canvases are inpainted at reduced size (Telea's cost grows with the area
    times radius^2) and scaled back up; only new-area pixels are taken from it.
    """
    rgb = np.ascontiguousarray(canvas[..., :3])
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(new_area, (sw, sh), interpolation=cv2.INTER_NEAREST)
        # shrink the known area a little so resampled border pixels are re-inpainted
        small_mask = cv2.dilate(small_mask, _disk(1))
        filled = cv2.inpaint(small, small_mask, 5, cv2.INPAINT_TELEA)
        filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC)
    else:
        filled = cv2.inpaint(rgb, new_area, 5, cv2.INPAINT_TELEA)
    out = canvas.copy()
    sel = new_area > 0
    out[..., :3][sel] = filled[sel]
    return out


def outpaint_canvas(
    image: np.ndarray,
    left: int = 0,
    right: int = 0,
    top: int = 0,
    bottom: int = 0,
    prefill: str = "infill",
    solid_color: tuple[int, int, int] = (127, 127, 127),
) -> tuple[np.ndarray, np.ndarray]:
    """Grow `image` by the given margins and pre-fill the new area.

    Returns ``(canvas, mask)``: the bigger image (the original pixels byte-identical at
    offset (left, top); new pixels opaque if the image has alpha) and a uint8 mask that
    is 255 exactly on the new area. Prefill modes: ``edge`` (replicate border pixels),
    ``infill`` (OpenCV Telea inpaint), ``blur`` (edge-extend then heavy blur, a neutral
    start for a diffusion model), ``solid`` (`solid_color`).
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError("image must be an H x W x 3|4 uint8 array")
    margins = (int(left), int(right), int(top), int(bottom))
    if min(margins) < 0:
        raise ValueError("outpaint margins must not be negative")
    if prefill not in PREFILLS:
        raise ValueError(f"unknown prefill {prefill!r}; choose one of {', '.join(PREFILLS)}")
    left, right, top, bottom = margins
    h, w, c = img.shape
    H, W = h + top + bottom, w + left + right
    mask = np.full((H, W), 255, np.uint8)
    mask[top : top + h, left : left + w] = 0
    if prefill == "solid":
        canvas = np.empty((H, W, c), np.uint8)
        canvas[..., :3] = np.asarray(solid_color, np.uint8)
    else:
        canvas = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_REPLICATE)
        if prefill == "blur" and mask.any():
            k = max(3, (max(left, right, top, bottom) // 2) * 2 + 1)
            reflected = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_REFLECT)
            blurred = cv2.blur(reflected[..., :3], (k, k), borderType=cv2.BORDER_REFLECT)
            sel = mask > 0
            canvas[..., :3][sel] = blurred[sel]
        elif prefill == "infill" and mask.any():
            canvas = _infill(canvas, mask)
    if c == 4:
        canvas[..., 3][mask > 0] = 255
    canvas[top : top + h, left : left + w] = img
    return canvas, mask
