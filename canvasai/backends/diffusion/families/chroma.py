"""Chroma (Lodestone): an 8.9 B Flux.1-schnell derivative with real CFG and a T5 encoder.

Flux's VAE and packed latents; classic CFG with a negative prompt (guidance ~4,
26-40 steps). Single files are told from Flux by their distilled guidance layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from canvasai.backends.diffusion.families.base import (
    BASE,
    CFG,
    Defaults,
    Detected,
    Family,
    Part,
    unpack_2x2,
)
from canvasai.backends.diffusion.families.flux import FLUX_RGB, FLUX_VAE, T5_XXL, strip_prefix


class Chroma(Family):
    name = "chroma"
    label = "Chroma"
    multiple = 16
    native_side = 1024
    latent_channels = 16
    packed = True
    projection = FLUX_RGB
    guidance_mode = CFG
    transformer_class = "ChromaTransformer2DModel"
    parts = (Part("text_encoder", T5_XXL.what, T5_XXL.folder, T5_XXL.example, T5_XXL.accepts), FLUX_VAE)
    tiny_autoencoders = ("taef1",)
    tae_family = "flux"  # Flux.1's VAE, so TAEF1 decodes its latents
    pipelines = {
        "txt2img": "ChromaPipeline",
        "img2img": "ChromaImg2ImgPipeline",
        "inpaint": "ChromaInpaintPipeline",
    }

    def detect_checkpoint(self, shapes: Mapping[str, Sequence[int]], name: str) -> Detected | None:
        s = strip_prefix(shapes)
        if "distilled_guidance_layer.in_proj.bias" not in s:
            return None
        return Detected(self.name, BASE, "")

    def prepare(self, pipe: Any) -> None:
        # diffusers 0.42's ChromaInpaintPipeline reads transformer.config.guidance_embeds,
        # an option Chroma's transformer does not have (real Chroma folders lack it too)
        cfg = pipe.transformer.config
        if "guidance_embeds" not in cfg:
            pipe.transformer.register_to_config(guidance_embeds=False)

    def defaults(self, variant: str = "", kind: str = BASE) -> Defaults:
        return Defaults(steps=26, guidance=4.0, strength=0.75)

    def preview_latents(self, pipe: Any, latents: Any, width: int, height: int) -> Any:
        if latents.ndim == 3:
            return unpack_2x2(latents, width, height, int(getattr(pipe, "vae_scale_factor", 8)))
        return latents
