"""Flux.2 Klein (Black Forest Labs): a small Flux.2 transformer with a Qwen3 text encoder.

Klein generates, inpaints and edits: reference images go in through ``image=``, so an
instruction plus the picture (and any other references) is an edit. The distilled
Klein runs in about 4 steps without CFG; the base model uses CFG. Its VAE has 32
latent channels, patchified 2x2 into 128-channel tokens while denoising. There is no
negative prompt. Flux.2 dev (32 B, Mistral text encoder) is recognised but not run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from canvasai.backends.diffusion.families.base import (
    BASE,
    CFG,
    UNSUPPORTED,
    Defaults,
    Detected,
    Family,
    Part,
)
from canvasai.backends.diffusion.families.flux import strip_prefix

#: txt_in width = 3 x the text encoder's hidden size; Flux.2 dev's Mistral gives 15360
_MISTRAL_TXT_IN = 15360


class Flux2Klein(Family):
    name = "flux2"
    label = "Flux.2 Klein"
    multiple = 16
    native_side = 1024
    latent_channels = 32
    packed = True
    guidance_mode = CFG
    uses_references = True
    reference_method = "image"
    max_references = 3
    min_reference_side = 64
    transformer_class = "Flux2Transformer2DModel"
    parts = (
        Part("text_encoder", "Qwen3 text encoder", "text_encoders", "qwen_3_4b.safetensors", ("qwen3",)),
        Part("vae", "Flux.2 VAE (32 channels)", "vae", "flux2-vae.safetensors", ("vae32",)),
    )
    tiny_autoencoders = ("taef2",)
    pipelines = {
        "txt2img": "Flux2KleinPipeline",
        "inpaint": "Flux2KleinInpaintPipeline",
    }
    folder_classes = {
        "Flux2KleinPipeline": (BASE, "klein"),
        "Flux2KleinInpaintPipeline": (BASE, "klein"),
    }

    def detect_folder(self, class_name: str, index: Mapping[str, Any]) -> Detected | None:
        hit = super().detect_folder(class_name, index)
        if hit is None:
            if class_name == "Flux2Pipeline":
                return Detected(self.name, UNSUPPORTED, "dev", "Flux.2 dev is not supported yet")
            return None
        distilled = bool(index.get("is_distilled", True))
        return Detected(self.name, BASE, "klein" if distilled else "klein-base")

    def detect_checkpoint(self, shapes: Mapping[str, Sequence[int]], name: str) -> Detected | None:
        s = strip_prefix(shapes)
        if "single_stream_modulation.lin.weight" not in s:
            return None
        txt_in = s.get("txt_in.weight") or ()
        if len(txt_in) == 2 and int(txt_in[1]) == _MISTRAL_TXT_IN:
            return Detected(self.name, UNSUPPORTED, "dev", "Flux.2 dev is not supported yet")
        return Detected(self.name, BASE, "klein-base" if "base" in name.lower() else "klein")

    def defaults(self, variant: str = "", kind: str = BASE) -> Defaults:
        note = "Flux.2 Klein takes no negative prompt"
        if variant == "klein-base":
            return Defaults(steps=50, guidance=4.0, strength=0.8, negative_prompt=False, note=note)
        return Defaults(steps=4, guidance=1.0, strength=0.8, negative_prompt=False,
                        note="Flux.2 Klein is step-distilled: about 4 steps, no CFG, "
                        "no negative prompt")

    def preview_latents(self, pipe: Any, latents: Any, width: int, height: int) -> Any:
        if latents.ndim != 3:
            return latents
        b, n, c = latents.shape
        vf = int(getattr(pipe, "vae_scale_factor", 8))
        h2, w2 = int(height) // (vf * 2), int(width) // (vf * 2)
        if h2 * w2 < n:  # reference tokens after the picture's
            latents = latents[:, : h2 * w2]
        x = latents.reshape(b, h2, w2, c).permute(0, 3, 1, 2)  # B x 128 x h/2 x w/2
        x = x.reshape(b, c // 4, 2, 2, h2, w2).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(b, c // 4, h2 * 2, w2 * 2)
