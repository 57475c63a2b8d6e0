"""Qwen-Image (Alibaba Qwen): a 20 B MMDiT with a Qwen2.5-VL text encoder, and its
instruction-editing models Qwen-Image-Edit and Qwen-Image-Edit-Plus (several images).

True CFG (``true_cfg_scale``) with a negative prompt; a 16-channel Wan-style VAE
whose latents are packed 2x2 into tokens while denoising; sizes multiples of 16.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from canvasai.backends.diffusion.families.base import (
    BASE,
    EDIT,
    TRUE_CFG,
    Defaults,
    Detected,
    Family,
    LatentProjection,
    Part,
    unpack_2x2,
)
from canvasai.backends.diffusion.families.flux import strip_prefix

# Wan 2.1 VAE coefficients (Qwen-Image uses that VAE)
WAN_RGB = LatentProjection.of(
    [
        [-0.1299, -0.1692, 0.2932],
        [0.0671, 0.0406, 0.0442],
        [0.3568, 0.2548, 0.1747],
        [0.0372, 0.2344, 0.1420],
        [0.0313, 0.0189, -0.0328],
        [0.0296, -0.0956, -0.0665],
        [-0.3477, -0.4059, -0.2925],
        [0.0166, 0.1902, 0.1975],
        [-0.0412, 0.0267, -0.1364],
        [-0.1293, 0.0740, 0.1636],
        [0.0680, 0.3019, 0.1128],
        [0.0032, 0.0581, 0.0639],
        [-0.1251, 0.0927, 0.1699],
        [0.0060, -0.0633, 0.0005],
        [0.3477, 0.2275, 0.2950],
        [0.1984, 0.0913, 0.1861],
    ],
    [-0.1835, -0.0868, -0.3360],
)


class QwenImage(Family):
    name = "qwen"
    label = "Qwen-Image"
    multiple = 16
    native_side = 1024
    latent_channels = 16
    packed = True
    projection = WAN_RGB
    guidance_mode = TRUE_CFG
    controlnet_class = "QwenImageControlNetModel"
    multi_controlnet_class = "QwenImageMultiControlNetModel"
    transformer_class = "QwenImageTransformer2DModel"
    parts = (
        Part("text_encoder", "Qwen2.5-VL text encoder", "text_encoders",
             "qwen_2.5_vl_7b.safetensors", ("qwen25vl",)),
        Part("vae", "Qwen-Image VAE", "vae", "qwen_image_vae.safetensors", ("wan",)),
    )
    pipelines = {
        "txt2img": "QwenImagePipeline",
        "img2img": "QwenImageImg2ImgPipeline",
        "inpaint": "QwenImageInpaintPipeline",
        "edit": "QwenImageEditPipeline",
        "edit_inpaint": "QwenImageEditInpaintPipeline",
        "controlnet": "QwenImageControlNetPipeline",
    }
    folder_classes = {
        "QwenImagePipeline": (BASE, ""),
        "QwenImageImg2ImgPipeline": (BASE, ""),
        "QwenImageInpaintPipeline": (BASE, ""),
        "QwenImageEditPipeline": (EDIT, "edit"),
        "QwenImageEditInpaintPipeline": (EDIT, "edit"),
        "QwenImageEditPlusPipeline": (EDIT, "edit-plus"),
    }

    def detect_checkpoint(self, shapes: Mapping[str, Sequence[int]], name: str) -> Detected | None:
        s = strip_prefix(shapes)
        if "transformer_blocks.0.img_mod.1.weight" not in s or "txt_norm.weight" not in s:
            return None
        low = name.lower()
        if "edit" in low:
            return Detected(self.name, EDIT, "edit-plus" if "2509" in low or "plus" in low else "edit")
        return Detected(self.name, BASE, "")

    def route(self, task, kind, variant="", *, native_inpaint=False):  # type: ignore[no-untyped-def]
        if task == "edit" and variant == "edit-plus":
            from canvasai.backends.diffusion.families.base import MODE_EDIT, Route

            return Route("QwenImageEditPlusPipeline", MODE_EDIT)
        return super().route(task, kind, variant, native_inpaint=native_inpaint)

    def loader_pipeline(self, kind: str, variant: str = "", folder_class: str = "") -> str:
        if variant == "edit-plus":
            return "QwenImageEditPlusPipeline"
        return super().loader_pipeline(kind, variant, folder_class)

    def load_kwargs(self, folder):  # type: ignore[no-untyped-def]
        from pathlib import Path

        proc = Path(folder) / "processor"
        if not proc.is_dir():
            return {}
        try:
            import torchvision  # noqa: F401
        except Exception:  # missing, or a build that does not match this torch
            return {"processor": qwen_vl_processor(proc)}
        return {}

    def edit_kwargs(self, images, variant=""):  # type: ignore[no-untyped-def]
        if variant == "edit-plus":
            return {"image": images[:4]}  # Edit-Plus reads the picture and up to 3 references
        return {"image": images[0]}

    def defaults(self, variant: str = "", kind: str = BASE) -> Defaults:
        if "lightning" in variant:
            return Defaults(steps=8, guidance=1.0, strength=0.75, negative_prompt=False,
                            note="Lightning: 8 steps without CFG")
        return Defaults(steps=40, guidance=4.0, strength=0.75 if kind != EDIT else 1.0)

    def preview_latents(self, pipe, latents, width, height):  # type: ignore[no-untyped-def]
        if latents.ndim == 3:
            return unpack_2x2(latents, width, height, int(getattr(pipe, "vae_scale_factor", 8)))
        return super().preview_latents(pipe, latents, width, height)


def qwen_vl_processor(folder):  # type: ignore[no-untyped-def]
    """The Qwen2-VL processor of an edit model's ``processor/`` folder, without torchvision.

    transformers cannot build a `Qwen2VLProcessor` when torchvision is missing (its
    video processor needs it), although the edit pipelines only use the tokenizer and
    the image processor: ``processor(text=..., images=..., padding=True,
    return_tensors="pt")``. So the processor is put together from those two.
    """
    from transformers import AutoTokenizer, Qwen2VLProcessor
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    # (imported here: the family modules are imported by the registry this one uses)
    from canvasai.backends.diffusion.tokenizer_loading import load_tokenizer

    tokenizer = load_tokenizer(AutoTokenizer, folder)
    images = Qwen2VLImageProcessorPil.from_pretrained(folder, local_files_only=True)
    proc = Qwen2VLProcessor.__new__(Qwen2VLProcessor)
    template = getattr(tokenizer, "chat_template", None)
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    proc.tokenizer, proc.image_processor, proc.video_processor = tokenizer, images, None
    proc.chat_template = template
    proc.image_token, proc.video_token = "<|image_pad|>", "<|video_pad|>"
    proc.image_token_id = tokenizer.convert_tokens_to_ids(proc.image_token)
    proc.video_token_id = tokenizer.convert_tokens_to_ids(proc.video_token)
    return proc
