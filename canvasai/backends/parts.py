"""Recognise the separate parts people keep beside a transformer (ComfyUI's split files).

ComfyUI users keep the denoiser in ``diffusion_models/`` (or ``unet/``), the text
encoders in ``text_encoders/`` (or ``clip/``) and the VAE in ``vae/``. Each part is
recognised from its safetensors header alone (key names and shapes), and given a
*part type* that the families' `Part.accepts` lists name:

- text encoders: ``clip_l`` / ``clip_g`` (CLIP text models, 768 / 1280 wide), ``t5``
  (T5 encoder), ``qwen3`` (Qwen3: Z-Image, Flux.2 Klein), ``qwen25vl`` (Qwen2.5-VL:
  Qwen-Image), ``mistral`` (Flux.2 dev);
- VAEs: ``vae4`` (SD 1.x/SDXL), ``vae16`` (Flux.1 / SD3 / Z-Image / Chroma),
  ``vae32`` (Flux.2), ``wan`` (Qwen-Image's video-style VAE).

No tensor is read; nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

TEXT_ENCODER = "text_encoder"
VAE = "vae"


def _width(shapes: Mapping[str, Sequence[int]], key: str) -> int | None:
    s = shapes.get(key)
    return int(s[-1]) if s else None


def _strip(shapes: Mapping[str, Sequence[int]]) -> dict[str, Sequence[int]]:
    out: dict[str, Sequence[int]] = {}
    for k, v in shapes.items():
        for p in ("model.diffusion_model.", "first_stage_model."):
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def classify_part(shapes: Mapping[str, Sequence[int]], name: str = "") -> tuple[str, str] | None:
    """(kind, part type) of a text-encoder or VAE file, or None when it is neither.

    CLIP-L and CLIP-G differ by width (768 / 1280); a file of another width is told by
    its name."""
    s = _strip(shapes)
    keys = s.keys()
    tok = "text_model.embeddings.token_embedding.weight"
    if tok in s:
        w = _width(s, tok)
        by_width = {768: "clip_l", 1280: "clip_g"}.get(w or 0)
        return TEXT_ENCODER, by_width or ("clip_g" if "clip_g" in name.lower() else "clip_l")
    if "encoder.block.0.layer.0.SelfAttention.q.weight" in keys:
        return TEXT_ENCODER, "t5"
    if any(k.startswith("visual.") or k.startswith("model.visual.") for k in keys) and any(
        ".self_attn.q_proj." in k for k in keys
    ):
        return TEXT_ENCODER, "qwen25vl"
    if "model.layers.0.self_attn.q_norm.weight" in keys or "layers.0.self_attn.q_norm.weight" in keys:
        return TEXT_ENCODER, "qwen3"
    if "model.layers.0.self_attn.q_proj.bias" in keys or "model.language_model.layers.0.self_attn.q_proj.bias" in keys:
        return TEXT_ENCODER, "qwen25vl"
    if "model.layers.0.self_attn.q_proj.weight" in keys:
        return TEXT_ENCODER, "mistral"
    if "decoder.middle.0.residual.0.gamma" in keys:
        return VAE, "wan"
    conv = s.get("decoder.conv_in.weight")
    if conv is not None and len(conv) == 5 and any(k.startswith("encoder.down") for k in keys):
        return VAE, "wan"  # 3-D convolutions: the video-style VAE (diffusers layout)
    if conv is not None and len(conv) == 4 and any(k.startswith("encoder.down") for k in keys):
        return VAE, {4: "vae4", 16: "vae16", 32: "vae32"}.get(int(conv[1]), "vae4")
    return None
