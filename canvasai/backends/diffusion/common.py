"""Pixel and batch helpers shared by the task modules (numpy/OpenCV; torch lazily)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from canvasai.backends import masking
from canvasai.backends.api import (
    GenerationRequest,
    GenerationResult,
    JobContext,
)
from canvasai.backends.diffusion import references, regions
from canvasai.backends.diffusion.families.base import (
    MODE_FULL_MASK,
    MODE_IMG2IMG,
    MODE_TXT2IMG,
    Route,
)
from canvasai.backends.diffusion.pipelines import (
    LoadedModel,
    PipelineManager,
    StepReporter,
    run_with_oom_stepdown,
)
from canvasai.core.errors import GenerationError

log = logging.getLogger(__name__)

MULTIPLE = 8  # the smallest size multiple (SD); a model's own is `loaded.multiple`


def require_image(request: GenerationRequest) -> np.ndarray:
    img = request.image
    if img is None:
        raise GenerationError(f"{request.task.value} needs an input image")
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.dtype != np.uint8:
        raise GenerationError("the input image must be H x W x 3 or 4 uint8")
    if min(img.shape[:2]) < 1:
        raise GenerationError("the input image is empty")
    return img


def require_mask(request: GenerationRequest, image: np.ndarray) -> np.ndarray:
    mask = request.mask
    if mask is None:
        raise GenerationError(f"{request.task.value} needs a mask")
    m = mask[..., 0] if mask.ndim == 3 else mask
    if m.shape != image.shape[:2]:
        raise GenerationError(
            f"the mask is {m.shape[1]}x{m.shape[0]} but the image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    return (m > 0).astype(np.uint8) * np.uint8(255)


def rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[..., :3])


def to_rgba(rgb_img: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    h, w = rgb_img.shape[:2]
    a = np.full((h, w, 1), 255, np.uint8) if alpha is None else alpha.reshape(h, w, 1)
    return np.concatenate([rgb_img[..., :3], a], axis=2)


def alpha_of(image: np.ndarray) -> np.ndarray | None:
    return image[..., 3].copy() if image.shape[2] == 4 else None


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (w, h): Lanczos when enlarging, area averaging when shrinking."""
    w, h = size
    if (img.shape[1], img.shape[0]) == (w, h):
        return img
    shrinking = w * h < img.shape[0] * img.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    return cv2.resize(img, (w, h), interpolation=interp)


def round8(n: float) -> int:
    return round_to(n, MULTIPLE)


def round_to(n: float, multiple: int) -> int:
    return max(multiple, int(round(n / multiple)) * multiple)


def work_size(size: tuple[int, int], loaded: LoadedModel, native: bool) -> tuple[int, int]:
    """(w, h) to run the model at: its native pixel count (same aspect), or the size rounded
    to the family's multiple (8 for SD, 16 for the DiTs)."""
    m = loaded.multiple
    if native:
        return masking.native_scale(size, loaded.native_size, m)
    return round_to(size[0], m), round_to(size[1], m)


def to_uint8(img: Any) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float32)
    return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)


def pil(img: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(img)


def prompt_kwargs(request: GenerationRequest, loaded: LoadedModel) -> dict[str, Any]:
    """Prompt, negative prompt, steps and guidance as `loaded`'s family takes them."""
    return loaded.family.call_kwargs(
        request.prompt,
        request.negative_prompt,
        int(request.steps),
        float(request.guidance),
        loaded.info.variant,
        loaded.info.kind,
    )


def route_kwargs(route: Route, image_rgb: np.ndarray | None, strength: float) -> dict[str, Any]:
    """The image arguments of `route.mode` for `image_rgb` (already at work size)."""
    if route.mode == MODE_TXT2IMG:
        return {}
    assert image_rgb is not None
    h, w = image_rgb.shape[:2]
    if route.mode == MODE_FULL_MASK:
        return full_mask_inpaint_kwargs(image_rgb) | {
            "height": h,
            "width": w,
            "strength": float(strength),
        }
    if route.mode == MODE_IMG2IMG:
        return {"image": pil(image_rgb), "strength": float(strength)}
    raise GenerationError(f"internal error: {route.mode} is not a whole-image mode")


def generate_at(
    manager: PipelineManager,
    loaded: LoadedModel,
    pipe: Any,
    request: GenerationRequest,
    ctx: JobContext,
    seeds: tuple[int, ...],
    kwargs: dict[str, Any],
    size: tuple[int, int],
    alpha: np.ndarray | None = None,
    work: tuple[int, int] | None = None,
) -> tuple[list[np.ndarray], str, str]:
    """Run a whole-image job: set the sampler, stream previews and return the images.

    Previews and results are scaled to `size` (the request's output size) and get
    `alpha` back; `work` is the size the model runs at (default: kwargs' width/height).
    Returns (RGBA images, sampler name, preview method).
    """
    sampler = manager.set_scheduler(loaded, pipe, request.scheduler)
    if work is None:
        work = (int(kwargs.get("width") or size[0]), int(kwargs.get("height") or size[1]))
    kwargs = kwargs | loaded.family.extra_kwargs(type(pipe).__name__, *work)
    kwargs = references.apply(manager, loaded, pipe, request, kwargs)  # reference images
    previewer = manager.previewer(loaded, pipe, work)

    def sink(step: int, small: np.ndarray) -> None:
        ctx.preview(step, to_rgba(resize(small, size), alpha))

    reporter = StepReporter(ctx, len(seeds), request.previews, previewer, sink)
    with regions.applied(pipe, loaded, request, work):  # the request's regional prompts
        raw = run_batch(manager, loaded, pipe, ctx, reporter, seeds, kwargs)
    return [to_rgba(resize(im, size), alpha) for im in raw], sampler, previewer.method


def run_batch(
    manager: PipelineManager,
    loaded: LoadedModel,
    pipe: Any,
    ctx: JobContext,
    reporter: StepReporter,
    seeds: tuple[int, ...],
    kwargs: dict[str, Any],
    *,
    first_run: int = 0,
    legacy_callback: bool = False,
    on_item: Callable[[int], None] | None = None,
    decode: Callable[[Any], np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Run `pipe` once per seed (batch items one at a time: a candidate re-run alone
    with its seed gives the same picture, and peak memory stays that of one image).

    Returns H x W x 3 uint8 images. Cancellation raises out of the step callback, so
    a cancelled run never reaches the VAE decode. `decode` (live painting): the pipeline
    returns its latents and `decode(latents)` makes the H x W x 3 uint8 image instead
    of the pipeline's VAE.
    """
    import torch

    kwargs = accepted_kwargs(pipe, kwargs)
    out = []
    for i, seed in enumerate(seeds):
        if on_item is not None:
            on_item(i)
        reporter.start_run(first_run + i, int(kwargs.get("num_inference_steps", 1)))

        def call(seed: int = seed) -> Any:
            kw = dict(kwargs, generator=torch.Generator("cpu").manual_seed(int(seed)))
            kw["output_type"] = "np" if decode is None else "latent"
            if legacy_callback:
                kw.update(callback=reporter.legacy_callback(), callback_steps=1)
            else:
                kw["callback_on_step_end"] = reporter.diffusers_callback()
            with torch.inference_mode():
                images = pipe(**kw).images
                return images[0] if decode is None else decode(images)

        ctx.check_cancelled()
        image = run_with_oom_stepdown(manager, loaded, pipe, ctx, call)
        out.append(to_uint8(image) if decode is None else image)
    return out


def accepted_kwargs(pipe: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` without the arguments `pipe` does not take (a family's pipelines differ:
    e.g. Z-Image's ControlNet inpainting has no strength)."""
    import inspect

    try:
        params = inspect.signature(type(pipe).__call__).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    dropped = [k for k in kwargs if k not in params]
    if dropped:
        log.debug("%s takes no %s", type(pipe).__name__, ", ".join(dropped))
    return {k: v for k, v in kwargs.items() if k in params}


def metadata(
    request: GenerationRequest,
    loaded: LoadedModel,
    manager: PipelineManager,
    seeds: tuple[int, ...],
    size: tuple[int, int],
    sampler: str,
    preview_method: str,
    notes: list[str],
    **extra: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "backend": "diffusers",
        "task": request.task.value,
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "steps": request.steps,
        "sampler": sampler,
        "cfg": request.guidance,
        "seed": seeds[0],
        "seeds": list(seeds),
        "size": [int(size[0]), int(size[1])],
        "model": loaded.info.name,
        "model_path": str(loaded.info.path),
        "family": loaded.info.family,
        "variant": loaded.info.variant,
        "strength": request.strength,
        "device": manager.device.describe(),
        "preview": preview_method,
    }
    region_notes, region_meta = regions.describe(request, loaded)
    notes = [*notes, *region_notes]
    if loaded.degraded:
        notes = [*notes, "memory savers active: " + ", ".join(loaded.degraded)]
    if notes:
        meta["note"] = "; ".join(notes)
    meta.update(region_meta)
    meta.update(extra)
    return meta


def result(
    images: list[np.ndarray], seeds: tuple[int, ...], meta: dict[str, Any]
) -> GenerationResult:
    frozen = []
    for img in images:
        img = np.ascontiguousarray(img)
        img.setflags(write=False)
        frozen.append(img)
    return GenerationResult(images=tuple(frozen), seeds=tuple(seeds), metadata=meta)


def full_mask_inpaint_kwargs(image_rgb: np.ndarray) -> dict[str, Any]:
    """Arguments that make an inpainting pipeline repaint everything (txt2img/img2img
    with a 9-channel inpainting model, as A1111 does)."""
    h, w = image_rgb.shape[:2]
    return {
        "image": pil(image_rgb),
        "mask_image": pil(np.full((h, w), 255, np.uint8)),
    }
