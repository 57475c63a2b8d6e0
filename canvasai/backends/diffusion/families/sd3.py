"""Stable Diffusion 3 / 3.5 (Stability AI): an MMDiT with CLIP-L, CLIP-G and T5-XXL.

Classic CFG with a negative prompt; 16-channel latents (not packed), sizes multiples
of 16. SD 3.5 Large Turbo (recognised by name) runs in 4 steps without CFG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from canvasai.backends.diffusion.families.base import (
    BASE,
    CFG,
    Defaults,
    Detected,
    Family,
    LatentProjection,
    Part,
)
from canvasai.backends.diffusion.families.flux import strip_prefix

SD3_RGB = LatentProjection.of(
    [
        [-0.0922, -0.0175, 0.0749],
        [0.0311, 0.0633, 0.0954],
        [0.1994, 0.0927, 0.0458],
        [0.0856, 0.0339, 0.0902],
        [0.0587, 0.0272, -0.0496],
        [-0.0006, 0.1104, 0.0309],
        [0.0978, 0.0306, 0.0427],
        [-0.0042, 0.1038, 0.1358],
        [-0.0194, 0.0020, 0.0669],
        [-0.0488, 0.0130, -0.0268],
        [0.0922, 0.0988, 0.0951],
        [-0.0278, 0.0524, -0.0542],
        [0.0332, 0.0456, 0.0895],
        [-0.0069, -0.0030, -0.0810],
        [-0.0596, -0.0465, -0.0293],
        [-0.1448, -0.1463, -0.1189],
    ],
    [0.2394, 0.2135, 0.1925],
)


class SD3(Family):
    name = "sd3"
    label = "SD 3.5"
    multiple = 16
    native_side = 1024
    latent_channels = 16
    projection = SD3_RGB
    guidance_mode = CFG
    max_sequence_length = 256
    controlnet_class = "SD3ControlNetModel"
    multi_controlnet_class = "SD3MultiControlNetModel"
    transformer_class = "SD3Transformer2DModel"
    parts = (
        Part("text_encoder", "CLIP-L text encoder", "text_encoders", "clip_l.safetensors", ("clip_l",)),
        Part("text_encoder_2", "CLIP-G text encoder", "text_encoders", "clip_g.safetensors", ("clip_g",)),
        Part("text_encoder_3", "T5-XXL text encoder", "text_encoders", "t5xxl_fp16.safetensors", ("t5",)),
        Part("vae", "SD3 VAE (16 channels)", "vae", "sd3_vae.safetensors", ("vae16",)),
    )
    tiny_autoencoders = ("taesd3",)
    pipelines = {
        "txt2img": "StableDiffusion3Pipeline",
        "img2img": "StableDiffusion3Img2ImgPipeline",
        "inpaint": "StableDiffusion3InpaintPipeline",
        "controlnet": "StableDiffusion3ControlNetPipeline",
    }

    def detect_checkpoint(self, shapes: Mapping[str, Sequence[int]], name: str) -> Detected | None:
        s = strip_prefix(shapes)
        if "joint_blocks.0.context_block.adaLN_modulation.1.bias" not in s:
            return None
        return Detected(self.name, BASE, "turbo" if "turbo" in name.lower() else "")

    def defaults(self, variant: str = "", kind: str = BASE) -> Defaults:
        if variant == "turbo":
            return Defaults(steps=4, guidance=0.0, strength=0.7, negative_prompt=False,
                            note="SD 3.5 Turbo is step-distilled: no CFG, no negative prompt")
        return Defaults(steps=28, guidance=4.5, strength=0.75)
