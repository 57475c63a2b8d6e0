"""Tiny, randomly initialised Stable Diffusion models for tests (no downloads).

The convention diffusers' own tests use: real model classes built from small
configs. They are saved the way people get models (diffusers folders, and a
single-file ``.safetensors`` in the original SD key layout with a sidecar
``<stem>.config`` folder describing the tiny architecture) and then loaded by
the app through the same registry -> router -> pipeline-manager path as a real
model. Architecture choices that matter:

- the VAE has 4 blocks, so the latent is 1/8 of the image like a real SD VAE;
- the inpaint UNet has 9 input channels (4 latent + 1 mask + 4 masked image);
- the ControlNet has 4 conditioning-embedding entries, so the hint is 8x downsampled;
- the x4 upscaler has a 7-channel UNet (4 latent + 3 low-res RGB), a noise-level
  class embedding, and a 3-block VAE (4x);
- the tokenizer is byte-level (256 byte symbols + the same with ``</w>`` + 2 specials).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SEED = 1234
TEXT_DIM = 32


@dataclass(frozen=True)
class TinyModels:
    root: Path
    sd1: Path  # diffusers folder, StableDiffusionPipeline, 4-ch UNet
    sd1_inpaint: Path  # diffusers folder, 9-ch UNet
    sd1_file: Path  # single-file .safetensors (LDM layout) + sd1_file.with_suffix(".config")
    sd1_inpaint_file: Path
    controlnet_scribble: Path  # ControlNetModel folder (name tells the control type)
    upscaler: Path  # StableDiffusionUpscalePipeline folder
    taesd: Path  # AutoencoderTiny folder
    sdxl: Path  # StableDiffusionXLPipeline folder (two text encoders, text_time embedding)


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


def tiny_tokenizer() -> Any:
    from transformers import CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_text_encoder(tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(
        vocab_size=1000,
        hidden_size=TEXT_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=TEXT_DIM,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
    )
    return CLIPTextModel(cfg).eval()


def tiny_unet(in_channels: int = 4, **extra: Any) -> Any:
    from diffusers import UNet2DConditionModel

    kwargs: dict[str, Any] = dict(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    kwargs.update(extra)
    return UNet2DConditionModel(**kwargs).eval()


def tiny_vae(blocks: int = 4, scaling_factor: float = 0.18215) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 16, 16, 16)[:blocks],
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
    ).eval()


def tiny_controlnet() -> Any:
    from diffusers import ControlNetModel

    return ControlNetModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        in_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
        conditioning_embedding_out_channels=(4, 8, 8, 16),
    ).eval()


def tiny_taesd() -> Any:
    from diffusers import AutoencoderTiny

    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    ).eval()


def _sd15_scheduler() -> Any:
    """SD 1.5's published default scheduler (PNDM) so tests meet its N+1 callbacks."""
    from diffusers import PNDMScheduler

    return PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        set_alpha_to_one=False,
        skip_prk_steps=True,
        steps_offset=1,
    )


def _sd1_pipeline(in_channels: int) -> Any:
    from diffusers import StableDiffusionPipeline

    tok = tiny_tokenizer()
    return StableDiffusionPipeline(
        vae=tiny_vae(),
        text_encoder=tiny_text_encoder(tok),
        tokenizer=tok,
        unet=tiny_unet(in_channels),
        scheduler=_sd15_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl_pipeline() -> Any:
    """SDXL layout in miniature: two text encoders (the second with projection, its
    pooled output feeding the UNet's text_time embedding: 6 x 8 time ids + 32)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    tok = tiny_tokenizer()
    te2 = CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=1000,
            hidden_size=TEXT_DIM,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=TEXT_DIM,
            hidden_act="gelu",
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.eos_token_id,
        )
    ).eval()
    unet = tiny_unet(
        4,
        cross_attention_dim=2 * TEXT_DIM,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + TEXT_DIM,
        use_linear_projection=True,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )
    return StableDiffusionXLPipeline(
        vae=tiny_vae(scaling_factor=0.13025),
        text_encoder=tiny_text_encoder(tok),
        text_encoder_2=te2,
        tokenizer=tok,
        tokenizer_2=tiny_tokenizer(),
        unet=unet,
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            steps_offset=1,
            timestep_spacing="leading",
        ),
    )


def _upscaler_pipeline() -> Any:
    from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline

    tok = tiny_tokenizer()
    return StableDiffusionUpscalePipeline(
        vae=tiny_vae(blocks=3, scaling_factor=0.08333),
        text_encoder=tiny_text_encoder(tok),
        tokenizer=tok,
        unet=tiny_unet(7, num_class_embeds=1000),
        low_res_scheduler=DDPMScheduler(),
        scheduler=DDIMScheduler(prediction_type="v_prediction"),
        max_noise_level=350,
    )


def write_config_folder(pipe_folder: Path, dest: Path) -> None:
    """Copy a diffusers folder without its weights: what `from_single_file(config=)` needs."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(
        pipe_folder, dest, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.ckpt")
    )


def _save_single_file(pipe: Any, folder: Path, file: Path) -> None:
    from safetensors.torch import save_file

    from tests.support.ldm_layout import sd1_pipeline_to_ldm

    save_file(sd1_pipeline_to_ldm(pipe.unet, pipe.vae, pipe.text_encoder), str(file))
    write_config_folder(folder, file.with_suffix(".config"))


_built: dict[Path, TinyModels] = {}


def build_tiny_models(root: str | os.PathLike[str]) -> TinyModels:
    """Build (once per root) every tiny model under `root`; returns their paths."""
    import torch

    root = Path(root)
    if root in _built:
        return _built[root]
    models = TinyModels(
        root=root,
        sd1=root / "sd1-tiny",
        sd1_inpaint=root / "sd1-tiny-inpaint",
        sd1_file=root / "single" / "sd1-tiny-single.safetensors",
        sd1_inpaint_file=root / "single" / "sd1-tiny-inpaint-single.safetensors",
        controlnet_scribble=root / "controlnet" / "sd1-tiny-controlnet-scribble",
        upscaler=root / "sd-x4-upscaler-tiny",
        taesd=root / "taesd-tiny",
        sdxl=root / "sdxl-tiny",
    )
    marker = root / "tiny-models.json"
    if not marker.is_file():
        root.mkdir(parents=True, exist_ok=True)
        (root / "single").mkdir(exist_ok=True)
        torch.manual_seed(SEED)
        for in_ch, folder, file in (
            (4, models.sd1, models.sd1_file),
            (9, models.sd1_inpaint, models.sd1_inpaint_file),
        ):
            pipe = _sd1_pipeline(in_ch)
            pipe.save_pretrained(folder, safe_serialization=True)
            _save_single_file(pipe, folder, file)
        tiny_controlnet().save_pretrained(models.controlnet_scribble, safe_serialization=True)
        _upscaler_pipeline().save_pretrained(models.upscaler, safe_serialization=True)
        tiny_taesd().save_pretrained(models.taesd, safe_serialization=True)
        _sdxl_pipeline().save_pretrained(models.sdxl, safe_serialization=True)
        marker.write_text(json.dumps({k: str(v) for k, v in asdict(models).items()}, indent=1))
    _built[root] = models
    return models
