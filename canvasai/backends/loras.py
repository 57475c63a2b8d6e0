"""LoRA files: which family a LoRA is for, its trigger words, and A1111's prompt syntax.

A LoRA comes in several key layouts — kohya / A1111 (``lora_unet_…``, ``lora_te_…``),
diffusers (``unet.…lora.down.weight``, ``transformer.…``), PEFT (``…lora_A.weight``),
ComfyUI / BFL (``diffusion_model.double_blocks.…``) — and diffusers'
``load_lora_weights`` reads all of them. Here only the header is read (no tensors):
the layout tells the family (UNet blocks: SD 1.x / 2.x / SDXL by the cross-attention
width; Flux's double/single blocks; SD3's joint blocks; Qwen's image modulation;
Z-Image's layers), and the metadata gives trigger words (kohya's
``ss_tag_frequency``, modelspec's ``trigger_phrase``).

``<lora:name:0.8>`` in a prompt (A1111's convention) asks for a LoRA by name with a
weight; `split_prompt` takes the tags out. Nothing here imports torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SD1, SD2, SDXL, UNKNOWN = "sd1", "sd2", "sdxl", "unknown"

#: weights a LoRA may be applied with (A1111 allows negatives to push away from a style)
MIN_WEIGHT, MAX_WEIGHT = -4.0, 4.0

_TAG = re.compile(r"<lora:([^:<>]+?)(?::(-?\d+(?:\.\d+)?))?>", re.IGNORECASE)


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA asked for: a registry name or path, and its weight."""

    name: str
    weight: float = 1.0


def split_prompt(prompt: str) -> tuple[str, list[LoraSpec]]:
    """The prompt without its ``<lora:name:weight>`` tags, and the LoRAs they ask for.

    A tag without a weight means 1.0; the same LoRA twice keeps the last weight.
    """
    found: dict[str, float] = {}
    for m in _TAG.finditer(prompt):
        found[m.group(1).strip()] = float(m.group(2)) if m.group(2) is not None else 1.0
    clean = re.sub(r"\s{2,}", " ", _TAG.sub("", prompt))
    clean = re.sub(r"\s+([,.;])", r"\1", clean).strip(" ,")
    return clean, [LoraSpec(n, w) for n, w in found.items()]


def _in_dim(shapes: Mapping[str, Sequence[int]], needle: str) -> int | None:
    for k, s in shapes.items():
        if needle in k and ("down" in k or "lora_A" in k) and len(s) >= 2:
            return int(s[-1])
    return None


def is_lora(keys: Sequence[str] | Any) -> bool:
    return any(
        ("lora_" in k or ".lora." in k or "lora_A" in k or "lora_down" in k) for k in keys
    )


def lora_family(shapes: Mapping[str, Sequence[int]]) -> str:
    """The family a LoRA's keys and shapes belong to ("unknown" when they do not say)."""
    keys = list(shapes)
    text = " ".join(keys[:2000])
    if any(t in text for t in ("double_blocks", "single_blocks", "single_transformer_blocks")):
        return "flux"
    if "joint_blocks" in text or "context_block" in text:
        return "sd3"
    if "img_mod" in text or "txt_mod" in text:
        return "qwen"
    if re.search(r"(^|[._])layers[._]\d+[._](attention|feed_forward)", text):
        return "zimage"
    if any(t in text for t in ("lora_te2_", "text_encoder_2", "lora_unet_input_blocks",
                               "lora_unet_output_blocks", "add_embedding")):
        return SDXL
    if any(t in text for t in ("lora_unet_down_blocks", "lora_unet_up_blocks", "lora_te_",
                               "unet.down_blocks", "unet.up_blocks", "down_blocks")):
        width = _in_dim(shapes, "attn2_to_k") or _in_dim(shapes, "attn2.to_k")
        return {768: SD1, 1024: SD2, 2048: SDXL}.get(width or 0, SD1 if width is None else UNKNOWN)
    return UNKNOWN


def trigger_words(metadata: Mapping[str, Any] | None, limit: int = 8) -> tuple[str, ...]:
    """Trigger words from a LoRA's safetensors metadata, most used first."""
    if not metadata:
        return ()
    out: list[str] = []
    phrase = metadata.get("modelspec.trigger_phrase")
    if isinstance(phrase, str) and phrase.strip():
        out += [p.strip() for p in phrase.split(",") if p.strip()]
    freq = metadata.get("ss_tag_frequency")
    if isinstance(freq, str):
        try:
            freq = json.loads(freq)
        except (ValueError, RecursionError):
            freq = None
    if isinstance(freq, dict):
        counts: dict[str, int] = {}
        for tags in freq.values():
            if isinstance(tags, dict):
                for tag, n in tags.items():
                    if isinstance(tag, str) and isinstance(n, int) and not isinstance(n, bool):
                        counts[tag.strip()] = counts.get(tag.strip(), 0) + n
        out += [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if t]
    seen: list[str] = []
    for t in out:
        if t not in seen and len(t) <= 80:
            seen.append(t)
    return tuple(seen[:limit])
