"""The classic backend: OpenCV inpainting, outpaint infill and Lanczos upscaling.

No model weights, no torch. It is the default when no diffusion model is installed
and it says so in every result's metadata: this is texture propagation from the
surrounding pixels, not AI generation. Pixels outside the mask are never touched.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from canvasai.backends import masking
from canvasai.backends.api import (
    GenerationRequest,
    GenerationResult,
    JobContext,
    Task,
    request_seeds,
)
from canvasai.core.errors import GenerationError
from canvasai.core.geometry import Rect

NOTES = {
    Task.INPAINT: "OpenCV inpainting, no AI model",
    Task.OUTPAINT: "OpenCV edge extension / infill, no AI model",
    Task.UPSCALE: "OpenCV Lanczos resize, no AI model",
}
METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
MAX_OUTPUT_PIXELS = 1 << 28  # 268 M pixels (16384 x 16384): beyond that, refuse
# Telea/NS cost grows with masked area x radius^2 and cannot be interrupted (1 MP at
# radius 15 takes ~15 s on one core): larger masks are inpainted at reduced scale (~1 s).
MAX_FULL_RES_MASK_AREA = 256 * 256


def models_folder_hint() -> str:
    """Where a person should put diffusion models."""
    from canvasai.backends.models import default_models_dir

    return str(default_models_dir())


def inpaint_radius(mask_area: int) -> int:
    """Inpaint neighbourhood radius: grows with the mask (3 px for specks, up to 15 px)."""
    return int(min(15, max(3, round(math.sqrt(max(mask_area, 1)) / 12))))


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[..., :3])


def _require_image(request: GenerationRequest) -> np.ndarray:
    img = request.image
    if img is None:
        raise GenerationError(f"{request.task.value} needs an input image")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise GenerationError("the input image must be H x W x 3 (RGB) or 4 (RGBA) uint8")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise GenerationError("the input image is empty")
    return img


def _as_rgba(image: np.ndarray) -> np.ndarray:
    if image.shape[2] == 4:
        return image
    alpha = np.full(image.shape[:2] + (1,), 255, np.uint8)
    return np.concatenate([image, alpha], axis=2)


def _telea_or_ns(
    rgb: np.ndarray, mask: np.ndarray, flags: int, area: int
) -> tuple[np.ndarray, float]:
    """Inpaint `rgb` where `mask` > 0; returns (filled RGB, scale it was computed at)."""
    if area <= MAX_FULL_RES_MASK_AREA:
        return cv2.inpaint(rgb, mask, inpaint_radius(area), flags), 1.0
    scale = math.sqrt(MAX_FULL_RES_MASK_AREA / area)
    h, w = mask.shape
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    # any masked pixel in a cell masks the cell: resampled edges never leak masked colours
    small_mask = (cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    small_area = int(np.count_nonzero(small_mask))
    filled = cv2.inpaint(small, small_mask * np.uint8(255), inpaint_radius(small_area), flags)
    return cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC), scale


class ClassicBackend:
    """Implements `canvasai.backends.api.Backend` with OpenCV only."""

    name = "classic"

    def run(self, request: GenerationRequest, ctx: JobContext) -> GenerationResult:
        handlers = {
            Task.INPAINT: self._inpaint,
            Task.OUTPAINT: self._outpaint,
            Task.UPSCALE: self._upscale,
        }
        handler = handlers.get(request.task)
        if handler is None:
            raise GenerationError(
                f"{request.task.value} needs a diffusion model; the classic (OpenCV) backend "
                f"can only inpaint, outpaint and upscale. Install a model in "
                f"{models_folder_hint()} and pick it as the model."
            )
        ctx.check_cancelled()
        image, meta = handler(request, ctx)
        ctx.check_cancelled()
        seeds = request_seeds(request)
        # Deterministic: every batch item is the same picture; share the one array.
        image.setflags(write=False)
        metadata = {"backend": self.name, "note": NOTES[request.task], **meta}
        return GenerationResult(images=(image,) * len(seeds), seeds=seeds, metadata=metadata)

    # ------------------------------------------------------------------ tasks

    def _preview(
        self, ctx: JobContext, request: GenerationRequest, step: int, img: np.ndarray
    ) -> None:
        if request.previews and ctx.wants_preview():
            ctx.preview(step, _as_rgba(img))

    def _inpaint(
        self, request: GenerationRequest, ctx: JobContext
    ) -> tuple[np.ndarray, dict[str, Any]]:
        image = _require_image(request)
        mask = request.mask
        if mask is None:
            raise GenerationError("inpaint needs a mask")
        mask2 = mask[..., 0] if mask.ndim == 3 else mask
        if mask2.shape != image.shape[:2]:
            raise GenerationError(
                f"the mask is {mask2.shape[1]}x{mask2.shape[0]} but the image is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        method = request.classic_method.lower()
        if method not in METHODS:
            raise GenerationError(f"unknown classic inpaint method {request.classic_method!r}")
        binary = (mask2 > 0).astype(np.uint8) * np.uint8(255)
        total = 3
        ctx.progress(1, total)
        area = int(np.count_nonzero(binary))
        radius = inpaint_radius(area)
        meta: dict[str, Any] = {"method": method, "radius": radius}
        if area == 0:
            ctx.progress(total, total)
            return image.copy(), {**meta, "empty_mask": True}
        # Only the neighbourhood of the mask matters to Telea/NS: crop to keep big canvases fast.
        doc = Rect(0, 0, image.shape[1], image.shape[0])
        ctxr = masking.inpaint_context(
            masking.mask_bbox(binary),
            doc,
            padding_frac=0.1,
            min_padding=2 * radius + 2,
            multiple=1,
        )
        rows, cols = ctxr.slices()
        crop_mask = np.ascontiguousarray(binary[rows, cols])
        ctx.check_cancelled()
        filled, scale = _telea_or_ns(_rgb(image[rows, cols]), crop_mask, METHODS[method], area)
        if scale < 1.0:
            meta.update(scale=round(scale, 4), radius=inpaint_radius(int(area * scale * scale)))
        ctx.progress(2, total)
        ctx.check_cancelled()
        out = image.copy()
        # Telea/NS only invent the masked pixels; the rest is the original (not the resampled
        # reduced-scale fill) before the one paste-back blends it in.
        crop = image[rows, cols]
        filled = np.where(crop_mask[..., None] > 0, filled, crop[..., :3])
        out[rows, cols] = masking.composite(crop, filled, crop_mask, request.blend)
        self._preview(ctx, request, 2, out)
        ctx.progress(total, total)
        return out, meta

    def _outpaint(
        self, request: GenerationRequest, ctx: JobContext
    ) -> tuple[np.ndarray, dict[str, Any]]:
        image = _require_image(request)
        s = request.outpaint
        assert s is not None  # the request validated it
        ctx.progress(1, 2)
        ctx.check_cancelled()
        try:
            canvas, _ = masking.outpaint_canvas(image, s.left, s.right, s.top, s.bottom, s.prefill)
        except ValueError as e:
            raise GenerationError(str(e)) from e
        self._preview(ctx, request, 1, canvas)
        ctx.progress(2, 2)
        return canvas, {"method": f"outpaint-{s.prefill}", "margins": (s.left, s.right, s.top, s.bottom)}

    def _upscale(
        self, request: GenerationRequest, ctx: JobContext
    ) -> tuple[np.ndarray, dict[str, Any]]:
        image = _require_image(request)
        s = request.upscale
        scale = 2 if s is None else int(s.scale)
        sharpen = 0.0 if s is None else float(s.sharpen)
        if scale not in (2, 4):
            raise GenerationError(f"upscale factor must be 2 or 4, not {scale}")
        h, w = image.shape[:2]
        if h * w * scale * scale > MAX_OUTPUT_PIXELS:
            raise GenerationError(
                f"upscaling {w}x{h} by {scale}x would exceed {MAX_OUTPUT_PIXELS:,} pixels"
            )
        total = 2 if sharpen > 0 else 1
        ctx.check_cancelled()
        if image.ndim == 3 and image.shape[2] == 4 and (image[..., 3] < 255).any():
            # a layer with transparency: through premultiplied colour, like Scale image
            from canvasai.document.transform import resample_rgba

            out = resample_rgba(image, (w * scale, h * scale))
        else:
            out = cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_LANCZOS4)
        ctx.progress(1, total)
        if sharpen > 0:
            ctx.check_cancelled()
            rgb = np.ascontiguousarray(out[..., :3])
            blurred = cv2.GaussianBlur(rgb, (0, 0), sigmaX=1.0 * scale / 2)
            out[..., :3] = cv2.addWeighted(rgb, 1.0 + sharpen, blurred, -sharpen, 0)
            ctx.progress(2, total)
        self._preview(ctx, request, total, out)
        return out, {"method": "lanczos", "scale": scale, "sharpen": sharpen}
