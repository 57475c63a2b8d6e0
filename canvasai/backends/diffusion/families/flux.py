"""Flux.1 (Black Forest Labs): dev, schnell, Fill (inpainting) and Kontext (editing).

A 12 B rectified-flow transformer with CLIP-L + T5-XXL text encoders and a 16-channel
VAE; latents are packed 2x2 into tokens while denoising, so sizes are multiples of 16.
dev and Kontext embed a *distilled* guidance value (no CFG, no negative prompt);
schnell is step-distilled (4 steps, guidance ignored); Fill takes image + mask and
wants a high distilled guidance (~30).

Single files are recognised with diffusers' own keys: ``double_blocks.*`` makes it a
Flux.1 transformer, a ``guidance_in`` embedder makes it dev-like (else schnell), an
image input of 384 channels makes it Fill. Kontext shares dev's layout, so a Kontext
single file is told apart only by its name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from canvasai.backends.diffusion.families.base import (
    BASE,
    DISTILLED,
    EDIT,
    INPAINT,
    UNSUPPORTED,
    Defaults,
    Detected,
    Family,
    LatentProjection,
    Part,
    unpack_2x2,
)

FLUX_RGB = LatentProjection.of(
    [
        [-0.0346, 0.0244, 0.0681],
        [0.0034, 0.0210, 0.0687],
        [0.0275, -0.0668, -0.0433],
        [-0.0174, 0.0160, 0.0617],
        [0.0859, 0.0721, 0.0329],
        [0.0004, 0.0383, 0.0115],
        [0.0405, 0.0861, 0.0915],
        [-0.0236, -0.0185, -0.0259],
        [-0.0245, 0.0250, 0.1180],
        [0.1008, 0.0755, -0.0421],
        [-0.0515, 0.0201, 0.0011],
        [0.0428, -0.0012, -0.0036],
        [0.0817, 0.0765, 0.0749],
        [-0.1264, -0.0522, -0.1103],
        [-0.0280, -0.0881, -0.0499],
        [-0.1262, -0.0982, -0.0778],
    ],
    [-0.0329, -0.0718, -0.0851],
)

CLIP_L = Part("text_encoder", "CLIP-L text encoder", "text_encoders", "clip_l.safetensors", ("clip_l",))
T5_XXL = Part("text_encoder_2", "T5-XXL text encoder", "text_encoders", "t5xxl_fp16.safetensors", ("t5",))
FLUX_VAE = Part("vae", "Flux VAE (16 channels)", "vae", "ae.safetensors", ("vae16",))


def strip_prefix(shapes: Mapping[str, Sequence[int]]) -> dict[str, Sequence[int]]:
    """Checkpoint keys without ComfyUI's ``model.diffusion_model.`` prefix."""
    p = "model.diffusion_model."
    return {(k[len(p):] if k.startswith(p) else k): v for k, v in shapes.items()}


class Flux(Family):
    name = "flux"
    label = "Flux.1"
    multiple = 16
    native_side = 1024
    latent_channels = 16
    packed = True
    projection = FLUX_RGB
    guidance_mode = DISTILLED
    controlnet_class = "FluxControlNetModel"
    multi_controlnet_class = "FluxMultiControlNetModel"
    reference_method = "redux"
    transformer_class = "FluxTransformer2DModel"
    parts = (CLIP_L, T5_XXL, FLUX_VAE)
    tiny_autoencoders = ("taef1",)
    pipelines = {
        "txt2img": "FluxPipeline",
        "img2img": "FluxImg2ImgPipeline",
        "inpaint": "FluxInpaintPipeline",
        "fill": "FluxFillPipeline",
        "edit": "FluxKontextPipeline",
        "edit_inpaint": "FluxKontextInpaintPipeline",
        "controlnet": "FluxControlNetPipeline",
        "controlnet_img2img": "FluxControlNetImg2ImgPipeline",
        "controlnet_inpaint": "FluxControlNetInpaintPipeline",
    }
    folder_classes = {
        "FluxPipeline": (BASE, ""),  # dev or schnell: decided from the transformer config
        "FluxImg2ImgPipeline": (BASE, ""),
        "FluxInpaintPipeline": (BASE, ""),
        "FluxFillPipeline": (INPAINT, "fill"),
        "FluxKontextPipeline": (EDIT, "kontext"),
        "FluxKontextInpaintPipeline": (EDIT, "kontext"),
    }

    def embed_prompt(self, pipe: Any, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
        """CLIP pooled + T5 embeddings as `pipe.encode_prompt` makes them (the T5 encoder is
        the costly part of a few-step frame). With a negative prompt (true CFG) the
        pipeline encodes both itself."""
        if not hasattr(pipe, "encode_prompt") or kwargs.get("negative_prompt"):
            return None
        enc = pipe.encode_prompt(
            prompt=kwargs["prompt"],
            prompt_2=None,
            device=pipe._execution_device,
            num_images_per_prompt=1,
            max_sequence_length=int(kwargs.get("max_sequence_length") or 512),
        )
        return {"prompt_embeds": enc[0], "pooled_prompt_embeds": enc[1]}

    def detect_folder(self, class_name: str, index: Mapping[str, Any]) -> Detected | None:
        hit = super().detect_folder(class_name, index)
        if hit is None or hit.variant:
            return hit
        cfg = index.get("_transformer_config") or {}
        return Detected(self.name, hit.kind, "dev" if cfg.get("guidance_embeds") else "schnell")

    def detect_checkpoint(self, shapes: Mapping[str, Sequence[int]], name: str) -> Detected | None:
        s = strip_prefix(shapes)
        if "double_blocks.0.img_attn.norm.key_norm.scale" not in s:
            return None
        if "distilled_guidance_layer.in_proj.bias" in s or "single_stream_modulation.lin.weight" in s:
            return None  # Chroma, Flux.2
        img_in = s.get("img_in.weight") or ()
        in_ch = int(img_in[1]) if len(img_in) == 2 else 64
        low = name.lower()
        if "guidance_in.in_layer.bias" in s:
            if in_ch == 384:
                return Detected(self.name, INPAINT, "fill")
            if in_ch == 128:
                return Detected(self.name, UNSUPPORTED, "depth",
                                "Flux Depth/Canny control models are not supported yet")
            if "kontext" in low:
                return Detected(self.name, EDIT, "kontext")
            return Detected(self.name, BASE, "dev")
        return Detected(self.name, BASE, "schnell")

    def control_kwargs(self, control: Any, inpaint: bool) -> dict[str, Any]:
        kw: dict[str, Any] = {"control_image": control}
        if isinstance(control, list):
            # several ControlNets: diffusers' Flux img2img / inpaint ControlNet pipelines
            # need a mode per net (None = no union mode), or they run none of them
            kw["control_mode"] = [None] * len(control)
        return kw

    def defaults(self, variant: str = "", kind: str = BASE) -> Defaults:
        note = "Flux uses distilled guidance: there is no negative prompt"
        if variant == "schnell":
            return Defaults(steps=4, guidance=0.0, sampler="default", strength=0.8,
                            negative_prompt=False,
                            note="Flux schnell is step-distilled: 4 steps, guidance is ignored")
        if variant == "fill" or kind == INPAINT:
            return Defaults(steps=28, guidance=30.0, strength=1.0, negative_prompt=False, note=note)
        if variant == "kontext" or kind == EDIT:
            return Defaults(steps=28, guidance=2.5, strength=1.0, negative_prompt=False, note=note)
        return Defaults(steps=28, guidance=3.5, strength=0.8, negative_prompt=False, note=note)

    def call_kwargs(self, prompt: str, negative: str, steps: int, guidance: float,
                    variant: str = "", kind: str = BASE) -> dict[str, Any]:
        kw = super().call_kwargs(prompt, negative, steps, guidance, variant, kind)
        kw["max_sequence_length"] = 256 if variant == "schnell" else 512
        return kw

    def extra_kwargs(self, pipeline: str, width: int, height: int) -> dict[str, Any]:
        if pipeline.startswith("FluxKontext"):
            # keep CanvasAI's work size: Kontext would otherwise snap to its ~1 MP sizes
            return {"_auto_resize": False, "max_area": int(width) * int(height)}
        return {}

    def edit_kwargs(self, images: list[Any], variant: str = "") -> dict[str, Any]:
        # keep CanvasAI's work size: Kontext would otherwise snap to its preferred sizes
        w, h = images[0].size
        return {"image": images[0], "_auto_resize": False, "max_area": w * h}

    def preview_latents(self, pipe: Any, latents: Any, width: int, height: int) -> Any:
        if latents.ndim == 3:
            return unpack_2x2(latents, width, height, int(getattr(pipe, "vae_scale_factor", 8)))
        return latents
