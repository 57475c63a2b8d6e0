"""Tiny random LoRAs for the tiny test models, saved as people have them.

`save_unet_lora` / `save_transformer_lora` put a PEFT LoRA with random (non-zero)
weights on a tiny pipeline's denoiser and save it with the pipeline's own
``save_lora_weights`` (diffusers/PEFT key layout). `to_kohya` rewrites such a file in
kohya / A1111's layout (``lora_unet_…_to_k.lora_down.weight``, ``.lora_up.weight``,
``.alpha``), the same weights, so both layouts can be checked to give one picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _random_lora(module: Any, rank: int, seed: int, targets: tuple[str, ...]) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model_state_dict

    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets),
                        init_lora_weights=False)
    module.add_adapter(config)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_" in name:
                p.mul_(0.5)  # visible but not wild on a random model
    state = get_peft_model_state_dict(module)
    module.delete_adapters(module.active_adapters())
    return state


def save_unet_lora(folder: Path, dest: Path, rank: int = 4, seed: int = 0) -> Path:
    """A LoRA on the attention projections of an SD pipeline folder's UNet."""
    import diffusers

    pipe = diffusers.StableDiffusionPipeline.from_pretrained(
        folder, local_files_only=True, safety_checker=None, requires_safety_checker=False
    )
    state = _random_lora(pipe.unet, rank, seed, ("to_q", "to_k", "to_v", "to_out.0"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    diffusers.StableDiffusionPipeline.save_lora_weights(
        dest.parent, unet_lora_layers=state, weight_name=dest.name, safe_serialization=True
    )
    return dest


def save_transformer_lora(folder: Path, dest: Path, rank: int = 4, seed: int = 0) -> Path:
    """A LoRA on the attention projections of a Flux pipeline folder's transformer."""
    import diffusers

    pipe = diffusers.FluxPipeline.from_pretrained(folder, local_files_only=True)
    state = _random_lora(pipe.transformer, rank, seed, ("to_q", "to_k", "to_v"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    diffusers.FluxPipeline.save_lora_weights(
        dest.parent, transformer_lora_layers=state, weight_name=dest.name, safe_serialization=True
    )
    return dest


def to_kohya(src: Path, dest: Path, rank: int = 4) -> Path:
    """The same UNet LoRA in kohya's layout (A1111's ``Lora/`` folder has these)."""
    import torch
    from safetensors.torch import load_file, save_file

    out = {}
    for key, value in load_file(str(src)).items():
        base = key.removeprefix("unet.")
        for peft_name, kohya_name in ((".lora_A.weight", ".lora_down.weight"),
                                      (".lora_B.weight", ".lora_up.weight")):
            if base.endswith(peft_name):
                module = base[: -len(peft_name)]
                name = "lora_unet_" + module.replace(".", "_")
                out[name + kohya_name] = value.contiguous()
                out[name + ".alpha"] = torch.tensor(float(rank))
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dest), metadata={"ss_tag_frequency": '{"set": {"inkwash": 9, "fox": 3}}'})
    return dest
