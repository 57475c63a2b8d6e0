"""A tiny single-file SD 1.x checkpoint that loads with the *bundled* CLIP tokenizer.

`tests.support.tiny_models` writes single files whose ``<stem>.config`` sidecar
carries its own byte-level tokenizer. This one leaves the tokenizer out of the
sidecar and gives the text encoder the real CLIP vocabulary size (49408, special
tokens 49406/49407), so loading it goes through
`canvasai.backends.diffusion.pipelines.shared_tokenizers`, i.e. reads the
tokenizer shipped as package data (``resources/model_configs/tokenizer``). That
makes it a check that the package data is where the code looks for it (e.g. in an
installed wheel). A few MB; builds in about a second.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

CLIP_VOCAB = 49408
CLIP_BOS, CLIP_EOS = 49406, 49407


def write_tiny_sd1_single_file(path: str | Path, seed: int = 1234) -> Path:
    """Write ``path`` (.safetensors, SD 1.x layout) and its tokenizer-less sidecar."""
    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.support.ldm_layout import sd1_pipeline_to_ldm
    from tests.support.tiny_models import (
        TEXT_DIM,
        _sd15_scheduler,
        tiny_tokenizer,
        tiny_unet,
        tiny_vae,
        write_config_folder,
    )

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=CLIP_VOCAB,
            hidden_size=TEXT_DIM,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=TEXT_DIM,
            bos_token_id=CLIP_BOS,
            eos_token_id=CLIP_EOS,
            pad_token_id=CLIP_EOS,
        )
    ).eval()
    pipe = StableDiffusionPipeline(
        vae=tiny_vae(),
        text_encoder=text_encoder,
        tokenizer=tiny_tokenizer(),  # only so the pipeline saves; left out of the sidecar
        unet=tiny_unet(4),
        scheduler=_sd15_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    save_file(sd1_pipeline_to_ldm(pipe.unet, pipe.vae, pipe.text_encoder), str(path))
    with tempfile.TemporaryDirectory(prefix="canvasai-tiny-") as tmp:
        folder = Path(tmp) / "pipe"
        pipe.save_pretrained(folder, safe_serialization=True)
        sidecar = path.with_suffix(".config")
        write_config_folder(folder, sidecar)
    shutil.rmtree(sidecar / "tokenizer")
    return path
