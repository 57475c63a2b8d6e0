"""Generate the config-only model folders used to load single-file checkpoints offline.

``from_single_file(path, config=<folder>)`` needs a local diffusers layout of the
architecture (model_index.json, each component's config.json, the scheduler
config) but no weights. This script writes those folders from the published
configuration values of each architecture, validating every config by building
the model on the meta device (no memory, no download), and writes one shared
CLIP BPE tokenizer rebuilt from OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` (MIT;
it ships inside the ``open_clip_torch`` wheel: ``pip download --no-deps
open_clip_torch`` and pass the wheel or the extracted .gz file).

Usage: python resources/model_configs/generate.py --bpe <wheel-or-.txt.gz> [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"

SD_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
}
SDXL_SCHEDULER = {
    **SD_SCHEDULER,
    "interpolation_type": "linear",
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
}
SD_VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
SDXL_VAE = {**SD_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}
SD_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "sample_size": 64,
}
SDXL_UNET = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "use_linear_projection": True,
}
SD_CONTROLNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
    "controlnet_conditioning_channel_order": "rgb",
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
}
CLIP_L = {  # openai/clip-vit-large-patch14 text tower (SD 1.x, SDXL text_encoder)
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
    "layer_norm_eps": 1e-05,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
CLIP_BIGG = {  # laion CLIP-ViT-bigG-14 text tower (SDXL text_encoder_2)
    **CLIP_L,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def read_bpe(source: Path) -> list[str]:
    """The merge lines of OpenAI's CLIP BPE file, from the .gz or an open_clip wheel."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as z:
            data = z.read(BPE_MEMBER)
    else:
        data = source.read_bytes()
    text = gzip.GzipFile(fileobj=io.BytesIO(data)).read().decode("utf-8")
    # CLIP uses the first 49152 - 256 - 2 merges (the same slice as open_clip and HF)
    return text.split("\n")[1 : 49152 - 256 - 2 + 1]


def write_tokenizer(folder: Path, merges: list[str]) -> None:
    chars = list(_bytes_to_unicode().values())
    vocab_list = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8"
    )
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=1))
    cfg = {
        **special,
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1))


def _save_model_config(cls: Any, cfg: dict[str, Any], folder: Path) -> None:
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = cls(**cfg)  # validates the values
    model.save_config(folder)


def _save_text_config(cls_name: str, cfg: dict[str, Any], folder: Path) -> None:
    import transformers

    config = transformers.CLIPTextConfig(**cfg)
    config.architectures = [cls_name]
    config.save_pretrained(folder)


def _index(cls: str, components: dict[str, list[Any]], **extra: Any) -> dict[str, Any]:
    import diffusers

    return {"_class_name": cls, "_diffusers_version": diffusers.__version__, **extra, **components}


def build(out: Path, bpe: Path) -> None:
    import diffusers

    out.mkdir(parents=True, exist_ok=True)
    write_tokenizer(out / "tokenizer", read_bpe(bpe))
    sd_components = {
        "feature_extractor": [None, None],
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    xl_components = {
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    for name, in_ch, cls in (
        ("sd1-base", 4, "StableDiffusionPipeline"),
        ("sd1-inpaint", 9, "StableDiffusionInpaintPipeline"),
    ):
        f = out / name
        if f.exists():
            shutil.rmtree(f)
        f.mkdir()
        index = _index(cls, sd_components, requires_safety_checker=False)
        (f / "model_index.json").write_text(json.dumps(index, indent=1))
        _save_model_config(
            diffusers.UNet2DConditionModel, {**SD_UNET, "in_channels": in_ch}, f / "unet"
        )
        _save_model_config(diffusers.AutoencoderKL, SD_VAE, f / "vae")
        _save_text_config("CLIPTextModel", CLIP_L, f / "text_encoder")
        diffusers.PNDMScheduler.from_config(SD_SCHEDULER).save_config(f / "scheduler")
    for name, in_ch, cls in (
        ("sdxl-base", 4, "StableDiffusionXLPipeline"),
        ("sdxl-inpaint", 9, "StableDiffusionXLInpaintPipeline"),
    ):
        f = out / name
        if f.exists():
            shutil.rmtree(f)
        f.mkdir()
        index = _index(cls, xl_components, force_zeros_for_empty_prompt=True)
        (f / "model_index.json").write_text(json.dumps(index, indent=1))
        unet = {**SDXL_UNET, "in_channels": in_ch}
        _save_model_config(diffusers.UNet2DConditionModel, unet, f / "unet")
        _save_model_config(diffusers.AutoencoderKL, SDXL_VAE, f / "vae")
        _save_text_config("CLIPTextModel", CLIP_L, f / "text_encoder")
        _save_text_config("CLIPTextModelWithProjection", CLIP_BIGG, f / "text_encoder_2")
        diffusers.EulerDiscreteScheduler.from_config(SDXL_SCHEDULER).save_config(f / "scheduler")
    f = out / "sd1-controlnet"
    if f.exists():
        shutil.rmtree(f)
    _save_model_config(diffusers.ControlNetModel, SD_CONTROLNET, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bpe", type=Path, required=True, help="open_clip wheel or bpe .txt.gz")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    build(args.out, args.bpe)
    print(f"wrote config folders to {args.out}")


if __name__ == "__main__":
    main()
