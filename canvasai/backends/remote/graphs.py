"""ComfyUI API-format graphs for each task and model family, from core nodes only.

A graph is ``{node_id: {"class_type": ..., "inputs": {...}}}``; a link is
``[node_id, output_index]``. Only nodes a plain ComfyUI install has are used
(nodes.py and comfy_extras): CheckpointLoaderSimple, UNETLoader, CLIPLoader,
DualCLIPLoader, VAELoader, CLIPTextEncode, FluxGuidance, EmptyLatentImage, LoadImage,
VAEEncode, VAEEncodeForInpaint, InpaintModelConditioning, ControlNetLoader,
ControlNetApplyAdvanced, KSampler, VAEDecode, UpscaleModelLoader,
ImageUpscaleWithModel, ImageScale and PreviewImage; LoraLoader for LoRAs, one per LoRA,
chained in order; ControlNetLoader + ControlNetApplyAdvanced per control layer, chained on
the conditioning; and for reference images, only where the server has the
ComfyUI_IPAdapter_plus node pack, IPAdapterModelLoader + CLIPVisionLoader +
IPAdapterAdvanced, chained on the model.

Everything about sizes, crops and paste-back is decided on CanvasAI's side: the graphs
take an uploaded picture that is already at the model's work size and return one image
at that size (`backend.py` scales it back and composites it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from canvasai.backends.diffusion import families
from canvasai.backends.diffusion.families.base import CFG, DISTILLED, NO_GUIDANCE
from canvasai.backends.remote.catalog import ServerModel, pick_file
from canvasai.core.errors import ModelError

Graph = dict[str, dict[str, Any]]

#: our sampler names -> (ComfyUI sampler_name, scheduler)
SAMPLERS: dict[str, tuple[str, str]] = {
    "euler": ("euler", "normal"),
    "euler_a": ("euler_ancestral", "normal"),
    "dpmpp_2m": ("dpmpp_2m", "normal"),
    "dpmpp_2m_karras": ("dpmpp_2m", "karras"),
    "ddim": ("ddim", "ddim_uniform"),
    "unipc": ("uni_pc", "normal"),
    "lcm": ("lcm", "normal"),
}

#: families kept as split files (diffusion_models/): (CLIP loader node, clip type,
#: text encoder file hints (one per slot), VAE file hints)
SPLIT_PARTS: dict[str, tuple[str, str, tuple[tuple[str, ...], ...], tuple[str, ...]]] = {
    "flux": ("DualCLIPLoader", "flux", (("clip_l",), ("t5xxl", "t5")), ("ae.", "flux")),
    "chroma": ("CLIPLoader", "chroma", (("t5xxl", "t5"),), ("ae.", "flux")),
    "flux2": ("CLIPLoader", "flux2", (("qwen_3", "qwen3"),), ("flux2",)),
    "zimage": ("CLIPLoader", "lumina2", (("qwen_3", "qwen3"),), ("ae.", "flux")),
    "qwen": ("CLIPLoader", "qwen_image", (("qwen_2.5", "qwen2.5", "qwen_2_5"),), ("qwen_image",)),
    "sd3": ("DualCLIPLoader", "sd3", (("clip_l",), ("clip_g",)), ("sd3",)),
}


def sampler_for(scheduler: str, family: str) -> tuple[str, str]:
    if scheduler in SAMPLERS:
        return SAMPLERS[scheduler]
    if family in ("sd1", "sd2", "sdxl"):
        return ("dpmpp_2m", "karras")
    return ("euler", "simple")


@dataclass
class Sampling:
    prompt: str
    negative: str
    steps: int
    guidance: float
    seed: int
    scheduler: str = "default"
    denoise: float = 1.0


@dataclass(frozen=True)
class LoraUse:
    """A LoRA file of the server and its weight (for the model and the text encoder)."""

    filename: str
    weight: float


@dataclass(frozen=True)
class ControlUse:
    """A ControlNet file of the server, the uploaded control map, and how it acts."""

    controlnet: str
    image: str  # the uploaded map's name (or, before upload, its key in the plan's uploads)
    strength: float
    start: float = 0.0
    end: float = 1.0


@dataclass(frozen=True)
class ReferenceUse:
    """An IP-Adapter (with its image encoder) and the uploaded reference image."""

    ipadapter: str
    clip_vision: str
    image: str  # uploaded name (or upload key)
    weight: float
    weight_type: str = "linear"  # IPAdapterAdvanced weight_type: linear / style transfer / ...


@dataclass(frozen=True)
class Extras:
    """What a job adds to the plain graph: LoRAs, control layers, reference images."""

    loras: tuple[LoraUse, ...] = ()
    controls: tuple[ControlUse, ...] = ()
    references: tuple[ReferenceUse, ...] = ()

    def named(self, names: dict[str, str]) -> Extras:
        """The same with upload keys replaced by the names the server gave the uploads."""
        return Extras(
            self.loras,
            tuple(replace(c, image=names.get(c.image, c.image)) for c in self.controls),
            tuple(replace(r, image=names.get(r.image, r.image)) for r in self.references),
        )


NO_EXTRAS = Extras()


class GraphBuilder:
    """Adds nodes with ids "1", "2", ...; `link(node, i)` is an input link."""

    def __init__(self) -> None:
        self.graph: Graph = {}

    def add(self, class_type: str, **inputs: Any) -> str:
        node_id = str(len(self.graph) + 1)
        self.graph[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id

    @staticmethod
    def link(node: str, index: int = 0) -> list[Any]:
        return [node, index]


def load_model(g: GraphBuilder, model: ServerModel, listing: dict[str, list[str]]) -> tuple[list, list, list]:
    """(MODEL, CLIP, VAE) links for `model` on a server with `listing`'s files."""
    if model.folder == "checkpoints":
        ck = g.add("CheckpointLoaderSimple", ckpt_name=model.filename)
        return g.link(ck, 0), g.link(ck, 1), g.link(ck, 2)
    parts = SPLIT_PARTS.get(model.family)
    if parts is None:
        raise ModelError(f"{model.filename} is a bare diffusion model of a family that needs a "
                         "checkpoint file on the server.")
    loader, clip_type, encoder_hints, vae_hints = parts
    encoders = list(listing.get("text_encoders") or ())
    chosen = []
    for hints in encoder_hints:
        found = pick_file(encoders, *hints)
        if found is None:
            raise ModelError(f"The server has no {' / '.join(hints)} text encoder for "
                             f"{model.filename} (ComfyUI models/text_encoders).")
        chosen.append(found)
    vae = pick_file(list(listing.get("vae") or ()), *vae_hints)
    if vae is None:
        raise ModelError(f"The server has no VAE for {model.filename} "
                         f"(ComfyUI models/vae, e.g. {vae_hints[0]}safetensors).")
    unet = g.add("UNETLoader", unet_name=model.filename, weight_dtype="default")
    if loader == "DualCLIPLoader":
        clip = g.add("DualCLIPLoader", clip_name1=chosen[0], clip_name2=chosen[1], type=clip_type)
    else:
        clip = g.add("CLIPLoader", clip_name=chosen[0], type=clip_type)
    vae_node = g.add("VAELoader", vae_name=vae)
    return g.link(unet), g.link(clip), g.link(vae_node)


def apply_loras(g: GraphBuilder, model: list, clip: list,
                loras: tuple[LoraUse, ...]) -> tuple[list, list]:
    """One LoraLoader per LoRA, each taking the previous one's MODEL and CLIP."""
    for lora in loras:
        node = g.add("LoraLoader", model=model, clip=clip, lora_name=lora.filename,
                     strength_model=float(lora.weight), strength_clip=float(lora.weight))
        model, clip = g.link(node, 0), g.link(node, 1)
    return model, clip


def apply_references(g: GraphBuilder, model: list, refs: tuple[ReferenceUse, ...]) -> list:
    """One IPAdapterAdvanced per reference image, chained on the MODEL (loaders shared)."""
    adapters: dict[str, str] = {}
    encoders: dict[str, str] = {}
    for ref in refs:
        if ref.ipadapter not in adapters:
            adapters[ref.ipadapter] = g.add("IPAdapterModelLoader", ipadapter_file=ref.ipadapter)
        if ref.clip_vision not in encoders:
            encoders[ref.clip_vision] = g.add("CLIPVisionLoader", clip_name=ref.clip_vision)
        image = g.add("LoadImage", image=ref.image)
        node = g.add("IPAdapterAdvanced", model=model, ipadapter=g.link(adapters[ref.ipadapter]),
                     image=g.link(image, 0), weight=float(ref.weight), weight_type=ref.weight_type,
                     combine_embeds="concat", start_at=0.0, end_at=1.0, embeds_scaling="V only",
                     clip_vision=g.link(encoders[ref.clip_vision]))
        model = g.link(node, 0)
    return model


def apply_controls(g: GraphBuilder, positive: list, negative: list,
                   controls: tuple[ControlUse, ...], vae: list) -> tuple[list, list]:
    """One ControlNetApplyAdvanced per control layer, chained on both conditionings, each
    with its ControlNetLoader (shared by layers using the same file) and control map."""
    loaders: dict[str, str] = {}
    for c in controls:
        if c.controlnet not in loaders:
            loaders[c.controlnet] = g.add("ControlNetLoader", control_net_name=c.controlnet)
        image = g.add("LoadImage", image=c.image)
        node = g.add("ControlNetApplyAdvanced", positive=positive, negative=negative,
                     control_net=g.link(loaders[c.controlnet]), image=g.link(image, 0),
                     strength=float(c.strength), start_percent=float(c.start),
                     end_percent=float(c.end), vae=vae)
        positive, negative = g.link(node, 0), g.link(node, 1)
    return positive, negative


def _prepare(g: GraphBuilder, model: ServerModel, listing: dict, s: Sampling,
             extras: Extras) -> tuple[list, list, list, list, float]:
    """Load the model, apply LoRAs and references, encode the prompts, apply the control
    layers: (MODEL, VAE, positive, negative, cfg)."""
    m, clip, vae = load_model(g, model, listing)
    m, clip = apply_loras(g, m, clip, extras.loras)
    m = apply_references(g, m, extras.references)
    positive, negative, cfg = _conditioning(g, model, clip, s)
    positive, negative = apply_controls(g, positive, negative, extras.controls, vae)
    return m, vae, positive, negative, cfg


def _conditioning(g: GraphBuilder, model: ServerModel, clip: list, s: Sampling) -> tuple[list, list, float]:
    """(positive, negative, cfg) as the family's guidance mode wants them."""
    fam = families.find(model.family)
    mode = fam.guidance_mode if fam is not None else CFG
    reads_negative = fam.takes_negative_prompt(model.variant, model.kind) if fam else True
    pos = g.add("CLIPTextEncode", text=s.prompt, clip=clip)
    neg = g.add("CLIPTextEncode", text=s.negative if reads_negative else "", clip=clip)
    positive = g.link(pos)
    cfg = float(s.guidance)
    if mode == DISTILLED:
        positive = g.link(g.add("FluxGuidance", conditioning=positive, guidance=float(s.guidance)))
        cfg = 1.0
    elif mode == NO_GUIDANCE:
        cfg = 1.0
    return positive, g.link(neg), cfg


def _sample(g: GraphBuilder, model_link: list, model: ServerModel, s: Sampling, positive: list,
            negative: list, latent: list, cfg: float, vae: list) -> str:
    sampler, scheduler = sampler_for(s.scheduler, model.family)
    ks = g.add("KSampler", model=model_link, seed=int(s.seed), steps=int(s.steps), cfg=cfg,
               sampler_name=sampler, scheduler=scheduler, positive=positive, negative=negative,
               latent_image=latent, denoise=float(s.denoise))
    dec = g.add("VAEDecode", samples=g.link(ks), vae=vae)
    return g.add("PreviewImage", images=g.link(dec))


def txt2img(model: ServerModel, listing: dict, s: Sampling, width: int, height: int,
            extras: Extras = NO_EXTRAS) -> Graph:
    """Prompt (+ LoRAs, control layers, references) -> picture."""
    g = GraphBuilder()
    m, vae, positive, negative, cfg = _prepare(g, model, listing, s, extras)
    latent = g.add("EmptyLatentImage", width=int(width), height=int(height), batch_size=1)
    _sample(g, m, model, s, positive, negative, g.link(latent), cfg, vae)
    return g.graph


def img2img(model: ServerModel, listing: dict, s: Sampling, image_name: str,
            extras: Extras = NO_EXTRAS) -> Graph:
    """Refine an uploaded picture (already at work size) with denoise = strength."""
    g = GraphBuilder()
    m, vae, positive, negative, cfg = _prepare(g, model, listing, s, extras)
    img = g.add("LoadImage", image=image_name)
    enc = g.add("VAEEncode", pixels=g.link(img, 0), vae=vae)
    _sample(g, m, model, s, positive, negative, g.link(enc), cfg, vae)
    return g.graph


def inpaint(model: ServerModel, listing: dict, s: Sampling, image_name: str,
            extras: Extras = NO_EXTRAS) -> Graph:
    """Regenerate the masked part of an uploaded RGBA picture (mask = transparent pixels,
    as LoadImage's MASK output reads them: 1 - alpha).

    SD checkpoints go through VAEEncodeForInpaint (the masked latent is filled, so the
    whole denoise runs); other families, and any strength below 1, through
    InpaintModelConditioning with a noise mask.
    """
    g = GraphBuilder()
    m, vae, positive, negative, cfg = _prepare(g, model, listing, s, extras)
    img = g.add("LoadImage", image=image_name)
    pixels, mask = g.link(img, 0), g.link(img, 1)
    if model.family in ("sd1", "sd2", "sdxl") and s.denoise >= 1.0:
        latent = g.link(g.add("VAEEncodeForInpaint", pixels=pixels, vae=vae, mask=mask,
                              grow_mask_by=6))
    else:
        cond = g.add("InpaintModelConditioning", positive=positive, negative=negative, vae=vae,
                     pixels=pixels, mask=mask, noise_mask=True)
        positive, negative, latent = g.link(cond, 0), g.link(cond, 1), g.link(cond, 2)
    _sample(g, m, model, s, positive, negative, latent, cfg, vae)
    return g.graph


def upscale(image_name: str, width: int, height: int, upscale_model: str | None) -> Graph:
    """An upscale model when the server has one, then an exact resize to the target."""
    g = GraphBuilder()
    img = g.link(g.add("LoadImage", image=image_name), 0)
    if upscale_model:
        um = g.add("UpscaleModelLoader", model_name=upscale_model)
        img = g.link(g.add("ImageUpscaleWithModel", upscale_model=g.link(um), image=img))
    scaled = g.add("ImageScale", image=img, upscale_method="lanczos", width=int(width),
                   height=int(height), crop="disabled")
    g.add("PreviewImage", images=g.link(scaled))
    return g.graph
