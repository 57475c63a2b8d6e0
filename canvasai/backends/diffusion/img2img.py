"""Image -> image refine (denoising strength). Also the per-tile engine of tiled upscaling.

The family picks the pipeline (`Family.route`): its img2img pipeline, or its inpaint
pipeline repainting through a full mask (inpainting models; Flux.2 Klein, which has
no img2img pipeline). With control layers the family's ControlNet img2img pipeline runs
them all (`controls.generate`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from canvasai.backends.api import GenerationRequest, GenerationResult, JobContext, request_seeds
from canvasai.backends.diffusion import common, controls, live
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager
from canvasai.core.errors import GenerationError


def refine_pipe(
    manager: PipelineManager, loaded: LoadedModel, image_rgb: np.ndarray, strength: float
) -> tuple[Any, dict[str, Any]]:
    """The pipeline and its image arguments for refining `image_rgb` (already at work size)."""
    route = loaded.route("img2img")
    pipe = manager.variant(loaded, route.pipeline)
    kw = common.route_kwargs(route, image_rgb, strength)
    h, w = image_rgb.shape[:2]
    if loaded.multiple != common.MULTIPLE:
        kw |= {"height": h, "width": w}  # the DiT pipelines would resize to their own size
    return pipe, kw


def check_strength(strength: float) -> float:
    if not 0.0 < strength <= 1.0:
        raise GenerationError(f"denoising strength must be in (0, 1], not {strength}")
    return float(strength)


def run(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    if live.handles(request):  # a live-painting frame: speed first (live.py)
        return live.run(manager, loaded, request, ctx)
    image = common.require_image(request)
    strength = check_strength(request.strength)
    h, w = image.shape[:2]
    ww, wh = common.work_size((w, h), loaded, request.native_resolution)
    work = common.resize(common.rgb(image), (ww, wh))
    if request.controls and request.live:
        return live.mark_vae(controls.generate(manager, loaded, request, ctx, (w, h), (ww, wh),
                                               image=work, alpha=common.alpha_of(image),
                                               strength=strength))
    if request.controls:
        return controls.generate(manager, loaded, request, ctx, (w, h), (ww, wh), image=work,
                                 alpha=common.alpha_of(image), strength=strength)
    pipe, kw = refine_pipe(manager, loaded, work, strength)
    seeds = request_seeds(request)
    images, sampler, preview = common.generate_at(
        manager,
        loaded,
        pipe,
        request,
        ctx,
        seeds,
        common.prompt_kwargs(request, loaded) | kw,
        (w, h),
        common.alpha_of(image),
        work=(ww, wh),
    )
    route = loaded.route("img2img")
    notes = [route.note] if route.note else []
    meta = common.metadata(
        request,
        loaded,
        manager,
        seeds,
        (w, h),
        sampler,
        preview,
        notes,
        work_size=[ww, wh],
        pipeline=route.pipeline,
    )
    return common.result(images, seeds, meta)
