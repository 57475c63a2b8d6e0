"""ComfyUI API-format graphs for each task and model family, from core nodes only.

A graph is ``{node_id: {"class_type": ..., "inputs": {...}}}``; a link is
``[node_id, output_index]``. Only nodes a plain ComfyUI install has are used
(nodes.py and comfy_extras): CheckpointLoaderSimple, UNETLoader, CLIPLoader,
DualCLIPLoader, VAELoader, CLIPTextEncode, FluxGuidance, EmptyLatentImage, LoadImage,
VAEEncode, VAEEncodeForInpaint, InpaintModelConditioning, ControlNetLoader,
ControlNetApplyAdvanced, KSampler, VAEDecode, UpscaleModelLoader,
ImageUpscaleWithModel, ImageScale and PreviewImage.

Everything about sizes, crops and paste-back is decided on CanvasAI's side: the graphs
take an uploaded picture that is already at the model's work size and return one image
at that size (`backend.py` scales it back and composites it).
"""

from __future__ import annotations

from dataclasses import dataclass
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
            control: tuple[str, str, float] | None = None) -> Graph:
    """Prompt -> picture; `control` = (ControlNet file, uploaded control map, strength)."""
    g = GraphBuilder()
    m, clip, vae = load_model(g, model, listing)
    positive, negative, cfg = _conditioning(g, model, clip, s)
    if control is not None:
        cn_file, image_name, strength = control
        cn = g.add("ControlNetLoader", control_net_name=cn_file)
        img = g.add("LoadImage", image=image_name)
        apply = g.add("ControlNetApplyAdvanced", positive=positive, negative=negative,
                      control_net=g.link(cn), image=g.link(img), strength=float(strength),
                      start_percent=0.0, end_percent=1.0, vae=vae)
        positive, negative = g.link(apply, 0), g.link(apply, 1)
    latent = g.add("EmptyLatentImage", width=int(width), height=int(height), batch_size=1)
    _sample(g, m, model, s, positive, negative, g.link(latent), cfg, vae)
    return g.graph


def img2img(model: ServerModel, listing: dict, s: Sampling, image_name: str) -> Graph:
    """Refine an uploaded picture (already at work size) with denoise = strength."""
    g = GraphBuilder()
    m, clip, vae = load_model(g, model, listing)
    positive, negative, cfg = _conditioning(g, model, clip, s)
    img = g.add("LoadImage", image=image_name)
    enc = g.add("VAEEncode", pixels=g.link(img, 0), vae=vae)
    _sample(g, m, model, s, positive, negative, g.link(enc), cfg, vae)
    return g.graph


def inpaint(model: ServerModel, listing: dict, s: Sampling, image_name: str) -> Graph:
    """Regenerate the masked part of an uploaded RGBA picture (mask = transparent pixels,
    as LoadImage's MASK output reads them: 1 - alpha).

    SD checkpoints go through VAEEncodeForInpaint (the masked latent is filled, so the
    whole denoise runs); other families, and any strength below 1, through
    InpaintModelConditioning with a noise mask.
    """
    g = GraphBuilder()
    m, clip, vae = load_model(g, model, listing)
    positive, negative, cfg = _conditioning(g, model, clip, s)
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
