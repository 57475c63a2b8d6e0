"""What a model family declares, and the behaviour most families share.

A `Family` answers every question a task module or the registry has about a kind of
model: how it is recognised (pipeline folder class names, single-file key patterns),
which diffusers pipeline class runs each task, its native size and size multiple, its
default steps / guidance / sampler, how the person's guidance value maps onto the
pipeline's arguments (classic CFG, distilled guidance, true CFG, none), whether it reads
a negative prompt, its latent layout and latent->RGB preview projection, and which
parts it needs beside its main weights.

Task modules ask the family; they never test family names. This module (and every
family module) imports neither torch nor diffusers at import time: the UI reads
defaults and capabilities from here before any model library is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from canvasai.core.errors import ModelError

# model kinds (the registry's vocabulary; repeated here so families need not import it)
BASE = "base"
INPAINT = "inpaint"
EDIT = "edit"
CONTROLNET = "controlnet"
UNSUPPORTED = "unsupported"

# how the person's guidance value reaches the pipeline
CFG = "cfg"  # classic classifier-free guidance: guidance_scale, negative prompt used
DISTILLED = "distilled"  # guidance embedded in the model (Flux dev): no negative prompt
TRUE_CFG = "true_cfg"  # true CFG on top (Qwen-Image): true_cfg_scale + negative prompt
NO_GUIDANCE = "none"  # step-distilled models (schnell, Turbo, Klein): guidance ignored

# the ways a task reaches a pipeline (`Route.mode`)
MODE_TXT2IMG = "txt2img"  # prompt only
MODE_IMG2IMG = "img2img"  # image + strength
MODE_FULL_MASK = "full_mask"  # an inpaint pipeline repainting everything (image + white mask)
MODE_INPAINT = "inpaint"  # image + mask (+ strength)
MODE_EDIT = "edit"  # image (+ references) + instruction


@dataclass(frozen=True)
class Defaults:
    """Per-model defaults the panel shows and the person can change."""

    steps: int
    guidance: float
    sampler: str = "default"
    strength: float = 0.75
    negative_prompt: bool = True  # does the model read one at these settings?
    note: str = ""  # why, when something is off (shown next to the disabled field)


@dataclass(frozen=True)
class Route:
    """Which pipeline class runs a task for one model, and how it is called."""

    pipeline: str  # diffusers class name
    mode: str  # one of the MODE_* constants
    note: str = ""  # said in the result's metadata (e.g. "mask-blend inpainting")


@dataclass(frozen=True)
class Detected:
    """What a family recognised in a folder or a checkpoint header."""

    family: str
    kind: str
    variant: str = ""
    note: str = ""


@dataclass(frozen=True)
class LatentProjection:
    """A fixed linear latent->RGB map (rows: latent channels; columns: R, G, B)."""

    factors: np.ndarray
    bias: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[Sequence[float]], bias: Sequence[float] = (0, 0, 0)) -> LatentProjection:
        return cls(np.asarray(rows, np.float32), np.asarray(bias, np.float32))

    @property
    def channels(self) -> int:
        return int(self.factors.shape[0])


@dataclass(frozen=True)
class Part:
    """A component a model needs beside its main weights (for split files)."""

    role: str  # pipeline component name: "text_encoder", "text_encoder_2", "vae", ...
    what: str  # for the person: "CLIP-L text encoder", "T5-XXL text encoder", "Flux VAE"
    folder: str  # where ComfyUI keeps it: "text_encoders", "vae"
    example: str = ""  # a file name people have, e.g. "t5xxl_fp16.safetensors"
    accepts: tuple[str, ...] = ()  # part types (canvasai.backends.parts) that can fill it


class Family:
    """Base class of the family modules; subclasses set the attributes and override hooks."""

    name: str = ""
    label: str = ""
    multiple: int = 8  # width/height must be multiples of this
    native_side: int = 512  # native area is native_side² (aspect kept)
    latent_channels: int = 4
    packed: bool = False  # latents are packed 2x2 into tokens while denoising (Flux, Qwen)
    projection: LatentProjection | None = None
    guidance_mode: str = CFG
    #: task key -> diffusers pipeline class name; keys: txt2img, img2img, inpaint, fill,
    #: edit, edit_inpaint, controlnet, controlnet_img2img, controlnet_inpaint
    pipelines: Mapping[str, str] = {}
    #: model_index.json `_class_name` -> (kind, variant); empty: the generate / refine /
    #: inpaint pipelines of `pipelines` are base models
    folder_classes: Mapping[str, tuple[str, str]] = {}
    transformer_class: str = ""  # the denoiser class for single-file / GGUF / split loading
    parts: tuple[Part, ...] = ()
    tiny_autoencoders: tuple[str, ...] = ()  # names people give its tiny VAE ("taef1", ...)
    tae_family: str = ""  # a family whose tiny autoencoder it shares ("" = its own)
    max_sequence_length: int | None = None  # passed to the pipeline when set
    uses_references: bool = False  # takes reference images through `image=` (Flux.2 Klein)
    controlnet_class: str = ""  # ControlNet model class Sketch→Render loads ("" = none yet)
    #: the class that runs several ControlNets together (control layers); "" = one at a time
    multi_controlnet_class: str = ""
    #: how generate / refine / inpaint read reference images (backends/diffusion/references.py):
    #: "ip_adapter" (SD 1.x, SDXL), "redux" (Flux.1), "image" (Flux.2 Klein's image=), "" (none)
    reference_method: str = ""
    #: regional prompts (a prompt per layer mask) by masked cross-attention; the UNet families
    #: have them (`canvasai.backends.diffusion.regions`), the DiTs not yet
    supports_regions: bool = False

    # -- recognising ---------------------------------------------------------------------------

    def detect_folder(self, class_name: str, index: Mapping[str, Any]) -> Detected | None:
        """A pipeline folder whose ``model_index.json`` names `class_name`, or None."""
        known = self.folder_classes or {
            self.pipelines[k]: (BASE, "") for k in ("txt2img", "img2img", "inpaint")
            if k in self.pipelines
        }
        hit = known.get(class_name)
        if hit is None:
            return None
        return Detected(self.name, hit[0], hit[1])

    def detect_checkpoint(self, shapes: Mapping[str, Sequence[int]], name: str) -> Detected | None:
        """A single-file checkpoint (tensor names -> shapes, prefix stripped), or None."""
        return None

    # -- defaults ------------------------------------------------------------------------------

    def defaults(self, variant: str = "", kind: str = BASE) -> Defaults:
        raise NotImplementedError

    def takes_negative_prompt(self, variant: str = "", kind: str = BASE) -> bool:
        return self.defaults(variant, kind).negative_prompt

    # -- routing -------------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        return key in self.pipelines

    def route(self, task: str, kind: str, variant: str = "", *, native_inpaint: bool = False) -> Route:
        """The pipeline and calling mode for `task` ("txt2img", "img2img", "inpaint", "edit").

        `native_inpaint` is True for models trained to inpaint (SD 9-channel, Flux Fill):
        they repaint the whole picture through a full mask for txt2img / img2img.
        """
        p = self.pipelines
        native_inpaint = native_inpaint or kind == INPAINT
        if task == "txt2img":
            if native_inpaint:
                return Route(self.inpaint_pipeline(kind), MODE_FULL_MASK,
                             "inpainting model: generated as a full-canvas inpaint")
            if kind == EDIT and "txt2img" not in p:
                raise ModelError(f"{self.label} edit models cannot generate from text alone.")
            return Route(p["txt2img"], MODE_TXT2IMG)
        if task == "img2img":
            if native_inpaint:
                return Route(self.inpaint_pipeline(kind), MODE_FULL_MASK,
                             "inpainting model: refined as a full-canvas inpaint")
            if "img2img" in p:
                return Route(p["img2img"], MODE_IMG2IMG)
            if "inpaint" in p:
                return Route(p["inpaint"], MODE_FULL_MASK, "refined as a full-canvas inpaint")
            raise ModelError(f"{self.label} models cannot refine an image here.")
        if task == "inpaint":
            if native_inpaint:
                return Route(self.inpaint_pipeline(kind), MODE_INPAINT)
            if kind == EDIT and "edit_inpaint" in p:
                return Route(p["edit_inpaint"], MODE_INPAINT)
            if "inpaint" in p:
                return Route(p["inpaint"], MODE_INPAINT, self.mask_blend_note)
            raise ModelError(f"{self.label} models cannot inpaint here.")
        if task == "edit":
            if kind == EDIT and "edit" in p:
                return Route(p["edit"], MODE_EDIT)
            if self.uses_references and "txt2img" in p:
                return Route(p["txt2img"], MODE_EDIT)
            raise ModelError(
                f"Edit needs an edit model (Flux Kontext, Qwen-Image-Edit, Flux.2 Klein); "
                f"this {self.label} model generates and inpaints but cannot follow instructions."
            )
        raise ModelError(f"unknown task {task!r}")

    def inpaint_pipeline(self, kind: str) -> str:
        return self.pipelines["fill"] if kind == INPAINT and "fill" in self.pipelines else self.pipelines["inpaint"]

    mask_blend_note = (
        "base model inpainting in mask-blend mode: borders may be less coherent than "
        "with an inpainting (Fill) model"
    )

    def loader_pipeline(self, kind: str, variant: str = "", folder_class: str = "") -> str:
        """The class a model is loaded with (the others come from it through from_pipe)."""
        if kind == EDIT and "edit" in self.pipelines:
            return self.pipelines["edit"]
        if kind == INPAINT and "fill" in self.pipelines:
            return self.pipelines["fill"]
        return self.pipelines["txt2img"]

    # -- calling -------------------------------------------------------------------------------

    def call_kwargs(self, prompt: str, negative: str, steps: int, guidance: float,
                    variant: str = "", kind: str = BASE) -> dict[str, Any]:
        """Prompt, steps and guidance as this family's pipelines take them."""
        kw: dict[str, Any] = {"prompt": prompt, "num_inference_steps": int(steps)}
        uses_negative = self.takes_negative_prompt(variant, kind)
        if self.guidance_mode == CFG:
            kw["guidance_scale"] = float(guidance)
            if uses_negative and negative:
                kw["negative_prompt"] = negative
        elif self.guidance_mode == DISTILLED:
            kw["guidance_scale"] = float(guidance)
        elif self.guidance_mode == TRUE_CFG:
            kw["true_cfg_scale"] = float(guidance)
            # true CFG only runs with a negative prompt; a blank one keeps it on
            kw["negative_prompt"] = negative if negative else " "
        elif self.guidance_mode == NO_GUIDANCE:
            kw["guidance_scale"] = 0.0
        if self.max_sequence_length:
            kw["max_sequence_length"] = self.max_sequence_length
        return kw

    def embed_prompt(self, pipe: Any, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
        """The text embeddings `pipe` would compute from its call arguments `kwargs` (prompt,
        negative_prompt, guidance, sequence length), as the arguments that replace the
        prompt (and the negative prompt when ``negative_prompt_embeds`` is among them):
        live painting keeps them while the prompt is unchanged. None: this family's
        pipelines take only prompts (default)."""
        return None

    def control_kwargs(self, control: Any, inpaint: bool) -> dict[str, Any]:
        """The control map as this family's ControlNet pipelines take it."""
        return {"control_image": control}

    def edit_kwargs(self, images: list[Any], variant: str = "") -> dict[str, Any]:
        """The picture to edit (first) and any references, as the edit pipeline takes them."""
        return {"image": images if self.uses_references else images[0]}

    max_references: int = 0  # reference images besides the picture the edit pipeline reads

    def extra_kwargs(self, pipeline: str, width: int, height: int) -> dict[str, Any]:
        """Arguments a pipeline needs beside the usual ones (default: none)."""
        return {}

    def load_kwargs(self, folder: Any) -> dict[str, Any]:
        """Extra components for ``from_pretrained`` of a diffusers folder (default: none)."""
        return {}

    min_reference_side: int = 0  # the edit pipeline refuses smaller pictures / references

    def prepare(self, pipe: Any) -> None:
        """Fix-ups a task pipeline needs right after it is made (default: none)."""

    # -- previews ------------------------------------------------------------------------------

    def preview_latents(self, pipe: Any, latents: Any, width: int, height: int) -> Any:
        """Step latents as B x C x h x w (unpacked when the family packs them)."""
        if latents.ndim == 5:  # video-style VAEs (Qwen's): B x C x T x h x w
            latents = latents[:, :, 0]
        return latents

    def native_size(self, pipe: Any) -> int:
        return self.native_side


def unpack_2x2(latents: Any, width: int, height: int, vae_factor: int = 8) -> Any:
    """Flux/Qwen-style packed tokens (B, (h/2)(w/2), C*4) -> B x C x h x w latents."""
    b, n, c4 = latents.shape
    h = 2 * (int(height) // (vae_factor * 2))
    w = 2 * (int(width) // (vae_factor * 2))
    if (h // 2) * (w // 2) < n:  # reference-image tokens follow the picture's (Kontext)
        latents = latents[:, : (h // 2) * (w // 2)]
    elif (h // 2) * (w // 2) != n:
        raise ValueError(f"cannot unpack {n} tokens for a {width}x{height} preview")
    x = latents.reshape(b, h // 2, w // 2, c4 // 4, 2, 2)
    x = x.permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c4 // 4, h, w)
