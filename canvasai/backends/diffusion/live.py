"""Live painting frames (issue 13): img2img / txt2img with `request.live`, tuned for latency.

What a live job does differently from the same request with ``live=False`` (which Apply
runs, with the same seed and steps, for the full-quality result):

- Text embeddings are kept while the prompt, negative prompt, guidance, model and
  active LoRAs are unchanged: a stroke changes only the picture, so the text encoder
  runs once per prompt, not once per frame. Families whose pipelines take embeddings
  say how to make them (`Family.embed_prompt`: SD 1.x/2.x, SDXL, Flux.1); the others pass
  their prompts as usual. The embeddings are exactly the ones the pipeline would make,
  so the frame is the same picture as without the cache.
- The frame is decoded by the family's tiny autoencoder (TAESD, TAESDXL, TAEF1, ...)
  when one is installed (the pipeline stops at its latents), else by the model's own
  VAE inside the pipeline. ``metadata["decoder"]`` says which ("taesd" or "vae").
- No per-step previews: the frame is the preview.
- The sampler is kept between live jobs on the same pipeline while the same sampler is
  asked for (as a bare diffusers pipeline keeps its scheduler; every call resets it with
  ``set_timesteps``) instead of being rebuilt from the config for each job (~5 ms).
- On CUDA the UNet and VAE run in channels_last memory format, and with the
  ``models/compile`` setting the denoiser is ``torch.compile``d in place (shared by
  every task pipeline made from the model). Done once per loaded model.

The pipeline itself stays loaded between jobs (`PipelineManager` keeps the last model
and its task variants). Control layers in a live job run through the ordinary control
path (full VAE; ``metadata["decoder"] == "vae"``).
"""

from __future__ import annotations

import inspect
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from canvasai.backends.api import (
    GenerationRequest,
    GenerationResult,
    JobContext,
    Task,
    request_seeds,
)
from canvasai.backends.diffusion import common, references, regions
from canvasai.backends.diffusion.families.base import MODE_TXT2IMG
from canvasai.backends.diffusion.pipelines import LoadedModel, PipelineManager, StepReporter

log = logging.getLogger(__name__)

LIVE_TASKS = (Task.IMG2IMG, Task.TXT2IMG)
TAESD_DECODER = "taesd"
VAE_DECODER = "vae"


@dataclass(eq=False)
class LiveState:
    """What live jobs keep between them, per pipeline manager (one worker thread)."""

    prompt_key: tuple[Any, ...] | None = None
    prompt_owner: Any = None  # weakref to the pipeline the embeddings came from
    prompt_embeds: dict[str, Any] | None = None
    hits: int = 0
    misses: int = 0
    #: pipeline -> (sampler asked for, the scheduler made for it, its label)
    schedulers: weakref.WeakKeyDictionary[Any, tuple[str, Any, str]] = field(
        default_factory=weakref.WeakKeyDictionary)
    tuned: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)  # channels_last
    compiled: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)

    def clear_prompt(self) -> None:
        self.prompt_key = self.prompt_owner = self.prompt_embeds = None


_states: weakref.WeakKeyDictionary[PipelineManager, LiveState] = weakref.WeakKeyDictionary()


def state(manager: PipelineManager) -> LiveState:
    st = _states.get(manager)
    if st is None:
        st = _states[manager] = LiveState()
    return st


def handles(request: GenerationRequest) -> bool:
    """A live request this module runs (control layers take the ordinary path)."""
    return bool(request.live) and request.task in LIVE_TASKS and not request.controls


def run(
    manager: PipelineManager, loaded: LoadedModel, request: GenerationRequest, ctx: JobContext
) -> GenerationResult:
    """A live frame for an img2img or txt2img request (see the module docstring)."""
    from canvasai.backends.diffusion.img2img import check_strength, refine_pipe

    extra: dict[str, Any] = {}
    alpha = None
    if request.task == Task.IMG2IMG:
        image = common.require_image(request)
        strength = check_strength(request.strength)
        h, w = image.shape[:2]
        out_size = (w, h)
        work = common.work_size(out_size, loaded, request.native_resolution)
        alpha = common.alpha_of(image)
        pipe, image_kw = refine_pipe(manager, loaded, common.resize(common.rgb(image), work), strength)
        route = loaded.route("img2img")
        extra["work_size"] = [work[0], work[1]]
    else:
        native = loaded.native_size
        out_size = (int(request.width or native), int(request.height or native))
        m = loaded.multiple
        work = (common.round_to(out_size[0], m), common.round_to(out_size[1], m))
        route = loaded.route("txt2img")
        pipe = manager.variant(loaded, route.pipeline)
        grey = None if route.mode == MODE_TXT2IMG else np.full((work[1], work[0], 3), 127, np.uint8)
        image_kw = {"height": work[1], "width": work[0]} | common.route_kwargs(route, grey, 1.0)
    tuning = tune(manager, loaded, pipe)
    seeds = request_seeds(request)
    sampler = kept_scheduler(manager, loaded, pipe, request.scheduler)
    kwargs = common.prompt_kwargs(request, loaded) | image_kw
    kwargs |= loaded.family.extra_kwargs(type(pipe).__name__, *work)
    kwargs, cache = cached_prompt(manager, loaded, pipe, kwargs)
    kwargs = references.apply(manager, loaded, pipe, request, kwargs)
    previewer = manager.previewer(loaded, pipe, work)
    decoder = TAESD_DECODER if previewer.taesd is not None else VAE_DECODER
    decode = previewer if previewer.taesd is not None else None
    reporter = StepReporter(ctx, len(seeds), False, None, None)  # the frame is the preview
    with regions.applied(pipe, loaded, request, work):
        raw = common.run_batch(manager, loaded, pipe, ctx, reporter, seeds, kwargs, decode=decode)
    images = [common.to_rgba(common.resize(im, out_size), alpha) for im in raw]
    notes = [route.note] if route.note else []
    meta = common.metadata(
        request, loaded, manager, seeds, out_size, sampler, "off", notes,
        pipeline=route.pipeline, live=True, decoder=decoder, prompt_cache=cache, **extra,
    )
    if tuning:
        meta["live_tuning"] = tuning
    return common.result(images, seeds, meta)


def mark_vae(result: GenerationResult) -> GenerationResult:
    """A live job that ran the ordinary path (control layers): say what decoded it."""
    import dataclasses

    meta = dict(result.metadata) | {"live": True, "decoder": VAE_DECODER}
    return dataclasses.replace(result, metadata=meta)


def kept_scheduler(manager: PipelineManager, loaded: LoadedModel, pipe: Any, name: str) -> str:
    """`manager.set_scheduler`, unless `pipe` still has the scheduler the last live job made
    for the same sampler (another job in between replaces it, so it is made again)."""
    key = (name or "default").lower()
    st = state(manager)
    kept = st.schedulers.get(pipe)
    if kept is not None and kept[0] == key and pipe.scheduler is kept[1]:
        return kept[2]
    label = manager.set_scheduler(loaded, pipe, name)
    st.schedulers[pipe] = (key, pipe.scheduler, label)
    return label


def cached_prompt(
    manager: PipelineManager, loaded: LoadedModel, pipe: Any, kwargs: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """`kwargs` with prompt / negative_prompt replaced by embeddings kept since the last live
    job when nothing they depend on changed. Returns (kwargs, "hit" | "miss" | "off")."""
    if "prompt" not in kwargs or not _takes(pipe, "prompt_embeds"):
        return kwargs, "off"
    import torch

    encoder = getattr(pipe, "text_encoder", None)
    key = (
        str(loaded.info.path), id(encoder), kwargs["prompt"], kwargs.get("negative_prompt"),
        float(kwargs.get("guidance_scale", 0.0)) > 1.0, kwargs.get("max_sequence_length"),
        loaded.lora_state, str(getattr(encoder, "device", "")),
        str(getattr(encoder, "dtype", "")),
    )
    st = state(manager)
    owner = st.prompt_owner() if st.prompt_owner is not None else None
    if st.prompt_key == key and owner is loaded.pipe and st.prompt_embeds is not None:
        st.hits += 1
        embeds, cache = st.prompt_embeds, "hit"
    else:
        with torch.inference_mode():
            made = loaded.family.embed_prompt(pipe, kwargs)
        if made is None:
            return kwargs, "off"
        st.prompt_key, st.prompt_owner, st.prompt_embeds = key, weakref.ref(loaded.pipe), made
        st.misses += 1
        embeds, cache = made, "miss"
    # the negative prompt stays when its embeddings are not among them (no CFG, or a
    # family whose pipeline encodes it itself)
    dropped = ("prompt", "negative_prompt") if "negative_prompt_embeds" in embeds else ("prompt",)
    rest = {k: v for k, v in kwargs.items() if k not in dropped}
    return rest | embeds, cache


def _takes(pipe: Any, name: str) -> bool:
    try:
        return name in inspect.signature(type(pipe).__call__).parameters
    except (TypeError, ValueError):
        return False


def tune(manager: PipelineManager, loaded: LoadedModel, pipe: Any) -> list[str]:
    """On CUDA: channels_last for the UNet and VAE, and with the ``models/compile`` setting
    the denoiser compiled in place; once per module. Returns what `pipe` runs with."""
    if manager.device.device != "cuda" or any("offload" in d for d in loaded.degraded):
        return []
    import torch

    from canvasai.core import settings

    compile_on = bool(settings.current().models.compile)
    st = state(manager)
    done = []
    for name in ("unet", "transformer", "vae"):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        if name in ("unet", "vae"):
            if module not in st.tuned:
                module.to(memory_format=torch.channels_last)
                st.tuned.add(module)
            done.append(f"{name}:channels_last")
        if compile_on and name != "vae":
            if module not in st.compiled:
                try:
                    module.compile()
                except Exception:  # noqa: BLE001 - compiling is an optimisation only
                    log.warning("torch.compile of the %s failed", name, exc_info=True)
                    continue
                st.compiled.add(module)
            done.append(f"{name}:compiled")
    return done
