"""Upscale 2x / 4x: the x4 diffusion upscaler, or Lanczos + tiled diffusion refine.

- An x4 upscaler model (StableDiffusionUpscalePipeline) runs on the whole image; it
  only takes the legacy ``callback=``/``callback_steps=`` step hook. For 2x its 4x
  result is reduced with area averaging.
- Any other main model: Lanczos to the target size, then img2img with
  ``refine_strength`` on overlapping tiles. Tiles are blended with linear weight
  ramps across each overlap (weights sum to 1 everywhere, never a hard edge), so
  there are no seams; every tile gets its own seed derived from the item seed.
- Transparency: the models see colour only. Where the image is transparent its colour
  channels hold whatever was left there (usually black); a model (and Lanczos) would mix
  that into a soft edge, a dark halo once composited. So the colour is first continued
  past the painted pixels (`bleed`) and the alpha is resampled on its own and put back.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from canvasai.backends.api import (
    GenerationRequest,
    GenerationResult,
    JobContext,
    UpscaleSettings,
    request_seeds,
)
from canvasai.backends.diffusion import common, img2img
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager, StepReporter
from canvasai.backends.models import UPSCALER
from canvasai.core.errors import GenerationError

MAX_OUTPUT_PIXELS = 8192 * 8192
_TILE_SEED_STRIDE = 1_000_003


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length) with at least `overlap`."""
    if tile >= length:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def ramp(n: int, overlap: int, before: bool, after: bool) -> np.ndarray:
    """1-D blend weights: rising over `overlap` at the start / falling at the end when shared."""
    w = np.ones(n, np.float32)
    ov = min(overlap, n // 2)
    if ov > 0:
        r = (np.arange(1, ov + 1, dtype=np.float32)) / (ov + 1)
        if before:
            w[:ov] = r
        if after:
            w[n - ov :] = r[::-1]
    return w


def tiles(w: int, h: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    xs, ys = tile_starts(w, tile, overlap), tile_starts(h, tile, overlap)
    return [(x, y, min(tile, w), min(tile, h)) for y in ys for x in xs]


def _settings(request: GenerationRequest) -> UpscaleSettings:
    s = request.upscale or UpscaleSettings()
    if s.scale not in (2, 4):
        raise GenerationError(f"upscale factor must be 2 or 4, not {s.scale}")
    return s


def run(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    image = common.require_image(request)
    s = _settings(request)
    h, w = image.shape[:2]
    out_w, out_h = w * s.scale, h * s.scale
    if out_w * out_h > MAX_OUTPUT_PIXELS:
        raise GenerationError(f"upscaling {w}x{h} by {s.scale}x would be too large")
    if loaded.info.kind == UPSCALER:
        return _x4(manager, loaded, request, ctx, image, s)
    return _tiled(manager, loaded, request, ctx, image, s)


def bleed(image: np.ndarray) -> np.ndarray:
    """The colour (H x W x 3) of `image` with its fully transparent pixels given the
    colour of the nearest painted ones (alpha-weighted normalised blurs at growing radii;
    the alpha-weighted mean colour where nothing is near). Opaque and partly transparent
    pixels keep their own colour. An image without transparency is returned as is."""
    rgb_img = common.rgb(image)
    a = common.alpha_of(image)
    if a is None or not (a == 0).any() or not a.any():
        return rgb_img
    af = a.astype(np.float32) * (1.0 / 255.0)
    prem = rgb_img.astype(np.float32) * af[..., None]
    out = rgb_img.astype(np.float32)
    todo = a == 0
    h, w = a.shape
    sigma = 2.0
    while todo.any() and sigma < 2 * max(h, w):
        den = cv2.GaussianBlur(af, (0, 0), sigma)
        num = cv2.GaussianBlur(prem, (0, 0), sigma)
        ok = todo & (den > 1e-3)
        out[ok] = num[ok] / den[ok][:, None]
        todo &= ~ok
        sigma *= 3.0
    if todo.any():
        out[todo] = (prem.reshape(-1, 3).sum(0) / max(float(af.sum()), 1e-6))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _alpha_up(image: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    a = common.alpha_of(image)
    return None if a is None else common.resize(a, size)


def _x4(
    manager: PipelineManager,
    loaded: LoadedModel,
    request: GenerationRequest,
    ctx: JobContext,
    image: np.ndarray,
    s: UpscaleSettings,
) -> GenerationResult:
    h, w = image.shape[:2]
    out = (w * s.scale, h * s.scale)
    pipe = manager.variant(loaded, "txt2img")
    sampler = manager.set_scheduler(loaded, pipe, request.scheduler)
    alpha = _alpha_up(image, out)
    colour = bleed(image)  # never the black behind transparency
    lanczos = common.to_rgba(common.resize(colour, out), alpha)

    # The x4 model's latent space is not the SD VAE's: a linear projection would show
    # noise. The preview is the Lanczos enlargement the job refines.
    def preview_frame(latents: Any, index: int = 0) -> np.ndarray:
        return lanczos

    def sink(step: int, frame: np.ndarray) -> None:
        ctx.preview(step, frame.copy())

    seeds = request_seeds(request)
    reporter = StepReporter(ctx, len(seeds), request.previews, preview_frame, sink)  # type: ignore[arg-type]
    kwargs = common.prompt_kwargs(request, loaded) | {
        "image": common.pil(colour),
        "noise_level": int(s.noise_level),
    }
    raw = common.run_batch(
        manager, loaded, pipe, ctx, reporter, seeds, kwargs, legacy_callback=True
    )
    notes = [] if s.scale == 4 else ["x4 model output reduced to 2x"]
    images = [common.to_rgba(common.resize(im, out), alpha) for im in raw]
    meta = common.metadata(
        request,
        loaded,
        manager,
        seeds,
        out,
        sampler,
        "lanczos",
        notes,
        scale=s.scale,
        method="x4-upscaler",
    )
    return common.result(images, seeds, meta)


def _tiled(
    manager: PipelineManager,
    loaded: LoadedModel,
    request: GenerationRequest,
    ctx: JobContext,
    image: np.ndarray,
    s: UpscaleSettings,
) -> GenerationResult:
    h, w = image.shape[:2]
    out_w, out_h = w * s.scale, h * s.scale
    base = common.resize(bleed(image), (out_w, out_h))  # never the black behind transparency
    alpha = _alpha_up(image, (out_w, out_h))
    seeds = request_seeds(request)
    if s.refine_strength <= 0:
        meta = common.metadata(
            request,
            loaded,
            manager,
            seeds,
            (out_w, out_h),
            "none",
            "none",
            ["refine strength 0: Lanczos only"],
            scale=s.scale,
            method="lanczos",
        )
        img = common.to_rgba(base, alpha)
        return common.result([img] * len(seeds), seeds, meta)
    strength = img2img.check_strength(s.refine_strength)
    m = loaded.multiple
    tile = max(m, (int(s.tile) // m) * m)
    overlap = max(0, min(int(s.overlap), tile // 2))
    boxes = tiles(out_w, out_h, tile, overlap)
    previewer = manager.previewer(loaded)
    reporter = StepReporter(ctx, len(boxes) * len(seeds), request.previews, previewer, None)
    sampler = "default"
    images = []
    for item, seed in enumerate(seeds):
        acc = np.zeros((out_h, out_w, 3), np.float32)
        wsum = np.zeros((out_h, out_w, 1), np.float32)
        frame = base.copy()
        for t, (x, y, tw, th) in enumerate(boxes):
            crop = base[y : y + th, x : x + tw]
            work = (common.round_to(tw, m), common.round_to(th, m))
            pipe, kw = img2img.refine_pipe(manager, loaded, common.resize(crop, work), strength)
            previewer.pipe, previewer.size = pipe, work
            sampler = manager.set_scheduler(loaded, pipe, request.scheduler)

            def sink(step: int, small: np.ndarray, x=x, y=y, tw=tw, th=th, frame=frame) -> None:
                f = frame.copy()
                f[y : y + th, x : x + tw] = common.resize(small, (tw, th))
                ctx.preview(step, common.to_rgba(f, alpha))

            reporter.sink = sink
            reporter.previews = request.previews
            tile_seed = (seed + _TILE_SEED_STRIDE * t) % 2**32
            (out,) = common.run_batch(
                manager,
                loaded,
                pipe,
                ctx,
                reporter,
                (tile_seed,),
                common.prompt_kwargs(request, loaded) | kw,
                first_run=item * len(boxes) + t,
            )
            out = common.resize(out, (tw, th)).astype(np.float32)
            wgt = np.outer(
                ramp(th, overlap, y > 0, y + th < out_h), ramp(tw, overlap, x > 0, x + tw < out_w)
            )[..., None]
            acc[y : y + th, x : x + tw] += out * wgt
            wsum[y : y + th, x : x + tw] += wgt
            region = acc[y : y + th, x : x + tw] / wsum[y : y + th, x : x + tw]
            frame[y : y + th, x : x + tw] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
        final = np.clip(np.rint(acc / np.maximum(wsum, 1e-6)), 0, 255).astype(np.uint8)
        images.append(common.to_rgba(final, alpha))
    meta = common.metadata(
        request,
        loaded,
        manager,
        seeds,
        (out_w, out_h),
        sampler,
        previewer.method,
        [],
        scale=s.scale,
        method="lanczos+tiled-refine",
        tiles=len(boxes),
        tile=tile,
        overlap=overlap,
        refine_strength=strength,
    )
    return common.result(images, seeds, meta)
