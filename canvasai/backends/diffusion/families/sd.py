"""Stable Diffusion 1.x, 2.x and SDXL: UNet models with classic CFG.

Their folders and checkpoints are recognised by the registry's UNet rules
(`canvasai.backends.models.classify_checkpoint` / `classify_pipeline_folder`,
which mirror diffusers' own single-file keys); an inpainting model is one whose
UNet takes 9 input channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canvasai.backends.diffusion.families.base import (
    CFG,
    Defaults,
    Detected,
    Family,
    LatentProjection,
    Part,
)

_SD_PIPELINES = {
    "txt2img": "StableDiffusionPipeline",
    "img2img": "StableDiffusionImg2ImgPipeline",
    "inpaint": "StableDiffusionInpaintPipeline",
    "controlnet": "StableDiffusionControlNetPipeline",
    "controlnet_img2img": "StableDiffusionControlNetImg2ImgPipeline",
    "controlnet_inpaint": "StableDiffusionControlNetInpaintPipeline",
}

# ComfyUI's widely used approximation coefficients (SD 1.x without bias, SDXL with)
_SD1_RGB = LatentProjection.of(
    [
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ]
)
_SDXL_RGB = LatentProjection.of(
    [
        [0.3651, 0.4232, 0.4341],
        [-0.2533, -0.0042, 0.1068],
        [0.1076, 0.1111, -0.0362],
        [-0.3165, -0.2492, -0.2188],
    ],
    [0.1084, -0.0175, -0.0011],
)


class _StableDiffusion(Family):
    guidance_mode = CFG
    multiple = 8
    latent_channels = 4
    pipelines = _SD_PIPELINES
    controlnet_class = "ControlNetModel"
    multi_controlnet_class = "MultiControlNetModel"
    reference_method = "ip_adapter"
    supports_regions = True  # UNet cross-attention: regions.applied
    parts = (Part("text_encoder", "CLIP text encoder", "checkpoints"),)

    def detect_folder(self, class_name: str, index: Mapping[str, Any]) -> Detected | None:
        return None  # the registry's UNet rules decide (9 input channels: inpainting)

    def defaults(self, variant: str = "", kind: str = "base") -> Defaults:
        return Defaults(steps=25, guidance=7.0, sampler="default", strength=0.75)

    def control_kwargs(self, control: Any, inpaint: bool) -> dict[str, Any]:
        # SD's ControlNet txt2img pipelines call the control map `image`
        return {"control_image": control} if inpaint else {"image": control}

    def embed_prompt(self, pipe: Any, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
        """`pipe.encode_prompt` as the pipeline's own call runs it (CFG when guidance > 1 and
        the UNet takes no guidance embedding, e.g. LCM); SDXL adds the pooled embeddings."""
        unet = getattr(pipe, "unet", None)
        if unet is None or not hasattr(pipe, "encode_prompt"):
            return None
        guidance = float(kwargs.get("guidance_scale", 0.0))
        cfg = guidance > 1.0 and getattr(unet.config, "time_cond_proj_dim", None) is None
        enc = pipe.encode_prompt(
            prompt=kwargs["prompt"],
            device=pipe._execution_device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=cfg,
            negative_prompt=kwargs.get("negative_prompt") or None,
        )
        out = {"prompt_embeds": enc[0]}
        if cfg:
            out["negative_prompt_embeds"] = enc[1]
        if len(enc) == 4:  # SDXL: (prompt, negative, pooled, negative pooled)
            out["pooled_prompt_embeds"] = enc[2]
            if cfg:
                out["negative_pooled_prompt_embeds"] = enc[3]
        return out

    def native_size(self, pipe: Any) -> int:
        """UNet sample size x VAE factor (512, 768, 1024), as the model says."""
        try:
            return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
        except AttributeError:
            return self.native_side


class SD1(_StableDiffusion):
    name = "sd1"
    label = "SD 1.x"
    native_side = 512
    projection = _SD1_RGB
    tiny_autoencoders = ("taesd",)


class SD2(_StableDiffusion):
    name = "sd2"
    label = "SD 2.x"
    native_side = 768
    projection = _SD1_RGB  # same VAE as SD 1.x
    tiny_autoencoders = ("taesd",)
    tae_family = "sd1"


class SDXL(_StableDiffusion):
    name = "sdxl"
    label = "SDXL"
    native_side = 1024
    projection = _SDXL_RGB
    tiny_autoencoders = ("taesdxl",)
    pipelines = {
        "txt2img": "StableDiffusionXLPipeline",
        "img2img": "StableDiffusionXLImg2ImgPipeline",
        "inpaint": "StableDiffusionXLInpaintPipeline",
        "controlnet": "StableDiffusionXLControlNetPipeline",
        "controlnet_img2img": "StableDiffusionXLControlNetImg2ImgPipeline",
        "controlnet_inpaint": "StableDiffusionXLControlNetInpaintPipeline",
    }

    def defaults(self, variant: str = "", kind: str = "base") -> Defaults:
        if "turbo" in variant or "lightning" in variant:
            return Defaults(steps=4, guidance=1.0, sampler="euler_a", strength=0.6,
                            negative_prompt=False,
                            note="few-step distilled model: runs without CFG")
        return Defaults(steps=25, guidance=6.0, sampler="default", strength=0.75)
