"""Z-Image (Tongyi-MAI): a 6 B single-stream DiT with a Qwen3 text encoder and Flux's VAE.

Z-Image-Turbo is step-distilled (8-9 steps, guidance 0, so no negative prompt);
the base model uses CFG with a negative prompt. 16-channel latents, sizes multiples
of 16 (the transformer patchifies 2x2 itself).
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
)
from canvasai.backends.diffusion.families.flux import FLUX_RGB, FLUX_VAE, strip_prefix


class ZImage(Family):
    name = "zimage"
    label = "Z-Image"
    multiple = 16
    native_side = 1024
    latent_channels = 16
    projection = FLUX_RGB  # Flux.1's VAE
    guidance_mode = CFG
    controlnet_class = "ZImageControlNetModel"
    transformer_class = "ZImageTransformer2DModel"
    parts = (
        Part("text_encoder", "Qwen3 text encoder", "text_encoders", "qwen_3_4b.safetensors", ("qwen3",)),
        FLUX_VAE,
    )
    tiny_autoencoders = ("taef1",)
    tae_family = "flux"  # Flux.1's VAE, so TAEF1 decodes its latents
    pipelines = {
        "txt2img": "ZImagePipeline",
        "img2img": "ZImageImg2ImgPipeline",
        "inpaint": "ZImageInpaintPipeline",
        "controlnet": "ZImageControlNetPipeline",
        "controlnet_inpaint": "ZImageControlNetInpaintPipeline",
    }

    def detect_folder(self, class_name: str, index: Mapping[str, Any]) -> Detected | None:
        hit = super().detect_folder(class_name, index)
        if hit is None:
            return None
        return Detected(self.name, BASE, "turbo" if "turbo" in str(index.get("_name", "")).lower() else "")

    def detect_checkpoint(self, shapes: Mapping[str, Sequence[int]], name: str) -> Detected | None:
        s = strip_prefix(shapes)
        if "layers.0.adaLN_modulation.0.weight" not in s or "cap_embedder.0.weight" not in s:
            return None
        return Detected(self.name, BASE, "turbo" if "turbo" in name.lower() else "")

    def defaults(self, variant: str = "", kind: str = BASE) -> Defaults:
        if variant == "turbo":
            return Defaults(steps=9, guidance=0.0, strength=0.7, negative_prompt=False,
                            note="Z-Image-Turbo is step-distilled: guidance 0, no negative prompt")
        return Defaults(steps=30, guidance=4.0, strength=0.75)

    def call_kwargs(self, prompt: str, negative: str, steps: int, guidance: float,
                    variant: str = "", kind: str = BASE) -> dict[str, Any]:
        kw = super().call_kwargs(prompt, negative, steps, guidance, variant, kind)
        if float(guidance) <= 0.0:
            kw.pop("negative_prompt", None)  # no CFG: a negative prompt would be ignored
        return kw
