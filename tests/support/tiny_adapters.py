"""Tiny random reference-image adapters for the tiny test models, saved as people have them.

- `save_ip_adapter`: an IP-Adapter for a tiny UNet (one ``to_k_ip``/``to_v_ip`` pair per
  cross-attention layer, numbered 1, 3, 5, ... as diffusers reads them, and a plain
  ``image_proj``), written as h94's / ComfyUI's single ``.safetensors``
  (``image_proj.*`` + ``ip_adapter.*``). `cross_dim` other than the UNet's makes an
  adapter of another family (2048: SDXL-sized).
- `save_clip_vision` / `save_siglip`: tiny CLIP / SigLIP vision encoders, as a single
  file (ComfyUI ``clip_vision/``, transformers key layout) or a folder with config.json
  (h94's ``image_encoder/``). 16 attention heads, as CanvasAI assumes for single files.
- `save_redux`: a tiny Flux Redux embedder (``redux_up`` / ``redux_down``), ComfyUI's
  ``style_models/`` file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ENCODER_HIDDEN = 32
ENCODER_PROJECTION = 16
ENCODER_IMAGE = 32  # 4 x 4 patches of 8 px


def _unet(folder: Path) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))


def ip_adapter_state(
    unet: Any, clip_dim: int = ENCODER_PROJECTION, seed: int = 0, cross_dim: int | None = None,
    tokens: int = 4, std: float = 0.5,
) -> dict[str, Any]:
    """A random plain IP-Adapter fitting `unet`, as flat ``image_proj.*`` / ``ip_adapter.*`` keys."""
    import torch

    from canvasai.backends.diffusion.references import expected_ip_layers

    g = torch.Generator().manual_seed(seed)
    cross = int(cross_dim or unet.config.cross_attention_dim)

    def rnd(*shape: int) -> Any:
        return torch.randn(*shape, generator=g) * std

    state = {
        "image_proj.proj.weight": rnd(tokens * cross, clip_dim),
        "image_proj.proj.bias": rnd(tokens * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    for i, (hidden, _unet_cross) in enumerate(expected_ip_layers(unet)):
        key = 1 + 2 * i
        state[f"ip_adapter.{key}.to_k_ip.weight"] = rnd(hidden, cross)
        state[f"ip_adapter.{key}.to_v_ip.weight"] = rnd(hidden, cross)
    return state


def save_ip_adapter(model_folder: Path, dest: Path, seed: int = 0, cross_dim: int | None = None,
                    clip_dim: int = ENCODER_PROJECTION) -> Path:
    """An IP-Adapter for the UNet of the SD pipeline folder `model_folder`, saved at `dest`."""
    from safetensors.torch import save_file

    state = ip_adapter_state(_unet(model_folder), clip_dim, seed, cross_dim)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest))
    return dest


def _save(model: Any, dest: Path, prefix: str = "") -> Path:
    """`model` as a single ``.safetensors`` (keys under `prefix`, as people's files have
    them) or, for any other `dest`, a folder with config.json."""
    from safetensors.torch import save_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix == ".safetensors":
        state = {(k if k.startswith(prefix) else prefix + k): v.contiguous()
                 for k, v in model.state_dict().items()}
        save_file(state, str(dest))
    else:
        model.save_pretrained(dest, safe_serialization=True)
    return dest


def save_clip_vision(dest: Path, projection: int = ENCODER_PROJECTION, seed: int = 0) -> Path:
    """A tiny CLIPVisionModelWithProjection: a ``.safetensors`` file, or a folder."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPVisionConfig(hidden_size=ENCODER_HIDDEN, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=16, image_size=ENCODER_IMAGE, patch_size=8,
                           projection_dim=projection, hidden_act="gelu")
    return _save(CLIPVisionModelWithProjection(cfg).eval(), dest)


def save_siglip(dest: Path, seed: int = 0) -> Path:
    """A tiny SiglipVisionModel (no pooling head, as Redux reads patch features)."""
    import torch
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed)
    cfg = SiglipVisionConfig(hidden_size=ENCODER_HIDDEN, intermediate_size=37, num_hidden_layers=2,
                             num_attention_heads=16, image_size=ENCODER_IMAGE, patch_size=8,
                             vision_use_head=False)
    # transformers 5 drops the "vision_model." prefix that ComfyUI's sigclip files carry
    return _save(SiglipVisionModel(cfg).eval(), dest, prefix="vision_model.")


def save_redux(dest: Path, text_dim: int, seed: int = 0, redux_dim: int = ENCODER_HIDDEN) -> Path:
    """A tiny Flux Redux embedder producing `text_dim`-wide tokens (the transformer's
    ``joint_attention_dim``), ComfyUI's single-file layout."""
    import torch
    from diffusers import ReduxImageEncoder

    torch.manual_seed(seed)
    net = ReduxImageEncoder(redux_dim=redux_dim, txt_in_features=text_dim).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4.0)  # strong enough to show on a random model
    return _save(net, dest)
