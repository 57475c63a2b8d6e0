"""Tiny, randomly initialised pipelines of the newer model families (no downloads).

``build(kind, dest)`` writes a diffusers folder (``save_pretrained``, safetensors)
that loads back with ``DiffusionPipeline.from_pretrained(dest, local_files_only=True)``
and switches task with ``<TaskClass>.from_pipe(pipe)``. Kinds (see ``KINDS``):

    flux            FluxPipeline, schnell-like (no guidance embedding, shift 1)
    flux-dev        FluxPipeline, guidance_embeds=True, dynamic shifting
    flux-fill       FluxFillPipeline, transformer in_channels 384 (64 + 64 + 256), out 64
    flux-kontext    FluxKontextPipeline (guidance embedding)
    flux2-klein     Flux2KleinPipeline, Qwen3 text encoder with 27 layers so the
                    default text_encoder_out_layers=(9, 18, 27) exists
    sd3             StableDiffusion3Pipeline, CLIP-L + CLIP-G + T5
    zimage          ZImagePipeline, Qwen3 text encoder, pad tokens filled
    qwen            QwenImagePipeline, Qwen2.5-VL text encoder (tiny vision tower)
    qwen-edit       QwenImageEditPipeline (+ Qwen2VLProcessor)
    qwen-edit-plus  QwenImageEditPlusPipeline (+ Qwen2VLProcessor)
    chroma          ChromaPipeline, T5 only

What is kept real: the VAE scale factor (8; the DiTs pack 2x2, so a 64 px image is
an 8x8 latent, 4x4 tokens) and the latent channel counts (16 for Flux.1, SD3,
Z-Image, Qwen-Image, Chroma; 32 for Flux.2), so latent -> RGB preview projections
written for the real models apply. Everything else is as small as the classes allow
(one block of each kind, 2 heads of 16). Tokenizers are built in code: byte-level
CLIP and Qwen2 BPE (no merges, so one token per byte), a character-level T5
unigram. ``TASKS`` names the pipeline class per task, ``call_kwargs`` the arguments
each family needs for a tiny, fast call, ``load(folder, task)`` loads and switches.

Other forms, from a built folder:

- ``save_single_file_transformer(folder, file)``: the transformer alone in its original
  checkpoint key layout (``tests.support.family_layouts``); load with
  ``load_single_file_transformer(file, folder)`` =
  ``<Cls>.from_single_file(str(file), config=str(folder), subfolder="transformer",
  local_files_only=True)`` (Flux.1 / Chroma inside ``flux_width_agnostic()``).
- ``save_split_files(folder, root, name)``: ComfyUI's models/ layout
  (``diffusion_models/``, ``text_encoders/``, ``vae/``).
- ``save_gguf_transformer(folder, file, qtype)``: GGUF (needs the ``gguf`` package);
  load with ``load_gguf_transformer(file, folder)``.

Pin torch to one thread in tests (``torch.set_num_threads(1)``): on a shared 2-core
machine two threads make these tiny runs many times slower.

Known diffusers / transformers gaps these models run into:
Qwen2VLProcessor cannot be built or loaded without torchvision
(``load`` passes an assembled one), ChromaInpaintPipeline reads a
``guidance_embeds`` config key Chroma does not have (``chroma_inpaint_workaround``),
the Qwen-Image edit pipelines work at ~1 MP whatever the input size
(``qwen_edit_area``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SEED = 1234

KINDS = (
    "flux",
    "flux-dev",
    "flux-fill",
    "flux-kontext",
    "flux2-klein",
    "sd3",
    "zimage",
    "qwen",
    "qwen-edit",
    "qwen-edit-plus",
    "chroma",
)

# task -> diffusers pipeline class name; "edit" = instruction edit with image=.
TASKS: dict[str, dict[str, str]] = {
    "flux": {
        "txt2img": "FluxPipeline",
        "img2img": "FluxImg2ImgPipeline",
        "inpaint": "FluxInpaintPipeline",
    },
    "flux-dev": {
        "txt2img": "FluxPipeline",
        "img2img": "FluxImg2ImgPipeline",
        "inpaint": "FluxInpaintPipeline",
    },
    "flux-fill": {"inpaint": "FluxFillPipeline"},
    "flux-kontext": {
        "txt2img": "FluxKontextPipeline",
        "edit": "FluxKontextPipeline",
        "inpaint": "FluxKontextInpaintPipeline",
    },
    "flux2-klein": {
        "txt2img": "Flux2KleinPipeline",
        "edit": "Flux2KleinPipeline",
        "inpaint": "Flux2KleinInpaintPipeline",
    },
    "sd3": {
        "txt2img": "StableDiffusion3Pipeline",
        "img2img": "StableDiffusion3Img2ImgPipeline",
        "inpaint": "StableDiffusion3InpaintPipeline",
    },
    "zimage": {
        "txt2img": "ZImagePipeline",
        "img2img": "ZImageImg2ImgPipeline",
        "inpaint": "ZImageInpaintPipeline",
    },
    "qwen": {
        "txt2img": "QwenImagePipeline",
        "img2img": "QwenImageImg2ImgPipeline",
        "inpaint": "QwenImageInpaintPipeline",
    },
    "qwen-edit": {
        "edit": "QwenImageEditPipeline",
        "inpaint": "QwenImageEditInpaintPipeline",
    },
    "qwen-edit-plus": {"edit": "QwenImageEditPlusPipeline"},
    "chroma": {
        "txt2img": "ChromaPipeline",
        "img2img": "ChromaImg2ImgPipeline",
        "inpaint": "ChromaInpaintPipeline",
    },
}

CLIP_DIM = 32
T5_DIM = 32
QWEN_DIM = 16
HEAD_DIM = 16
HEADS = 2

# ---------------------------------------------------------------- tokenizers


def clip_tokenizer() -> Any:
    from tests.support.tiny_models import tiny_tokenizer

    return tiny_tokenizer()


def t5_tokenizer(model_max_length: int = 512) -> Any:
    """Character-level T5 unigram: specials, the word marker, printable ASCII."""
    from transformers import T5TokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    vocab += [(chr(c), -2.0) for c in range(33, 127)]
    vocab += [("\u2581" + chr(c), -1.5) for c in range(33, 127)]
    return T5TokenizerFast(vocab=vocab, unk_id=2, extra_ids=0, model_max_length=model_max_length)


QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<think>",
    "</think>",
)

# Qwen2.5-VL / Qwen3 chat templates cut down to what the pipelines use:
# text and image parts, the generation prompt, and Qwen3's enable_thinking switch.
QWEN_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] }}\n"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}<|im_end|>\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "<think>\n\n</think>\n\n{%- endif -%}{%- endif -%}"
)


def qwen_tokenizer(model_max_length: int = 131072) -> Any:
    """Byte-level Qwen2 BPE without merges (one token per byte) plus Qwen's specials."""
    from transformers import AddedToken, Qwen2TokenizerFast

    from tests.support.tiny_models import _bytes_to_unicode

    vocab = {c: i for i, c in enumerate(_bytes_to_unicode().values())}
    tok = Qwen2TokenizerFast(
        vocab=vocab,
        merges=[],
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    tok.add_special_tokens(
        {"additional_special_tokens": [AddedToken(s, special=True) for s in QWEN_SPECIALS]}
    )
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok


def _vocab_size(tok: Any) -> int:
    return (len(tok) + 63) // 64 * 64


# ------------------------------------------------------------- text encoders


def clip_text_encoder(tok: Any, projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        vocab_size=_vocab_size(tok),
        hidden_size=CLIP_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=CLIP_DIM,
        hidden_act="gelu",
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
    )
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(cfg).eval()


def t5_text_encoder(tok: Any, d_model: int = T5_DIM) -> Any:
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(
        vocab_size=_vocab_size(tok),
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )
    return T5EncoderModel(cfg).eval()


def _qwen3_config(tok: Any, layers: int) -> Any:
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=_vocab_size(tok),
        hidden_size=QWEN_DIM,
        intermediate_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=2048,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )


def qwen25vl_text_encoder(tok: Any) -> Any:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = tok.convert_tokens_to_ids
    cfg = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": _vocab_size(tok),
            "hidden_size": QWEN_DIM,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            "bos_token_id": None,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": QWEN_DIM,
            "fullatt_block_indexes": [0],
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    return Qwen2_5_VLForConditionalGeneration(cfg).eval()


def qwen_image_processor() -> Any:
    """Qwen2-VL's PIL image processor; max_pixels kept small so the VL prompt stays short."""
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(
        min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2, temporal_patch_size=2
    )


def assemble_qwen_vl_processor(
    tokenizer: Any, image_processor: Any, chat_template: str | None
) -> Any:
    """A working ``Qwen2VLProcessor`` without torchvision.

    transformers 5.24 cannot construct (so cannot load) any processor that has a
    ``video_processor`` attribute when torchvision is missing: ``__init__`` checks
    every attribute's class and the video one fails with ``AttributeError: type
    object 'VIDEO_PROCESSOR_MAPPING' has no attribute '_extra_content'`` (None is
    rejected too). The Qwen-Image edit pipelines only call
    ``processor(text=..., images=..., padding=True, return_tensors="pt")``, which
    needs the tokenizer and the image processor, so this sets those directly.
    """
    from transformers import Qwen2VLProcessor

    proc = Qwen2VLProcessor.__new__(Qwen2VLProcessor)
    proc.tokenizer = tokenizer
    proc.image_processor = image_processor
    proc.video_processor = None
    proc.chat_template = chat_template
    proc.image_token = "<|image_pad|>"
    proc.video_token = "<|video_pad|>"
    proc.image_token_id = tokenizer.convert_tokens_to_ids(proc.image_token)
    proc.video_token_id = tokenizer.convert_tokens_to_ids(proc.video_token)
    return proc


def save_qwen_vl_processor(tokenizer: Any, image_processor: Any, dest: Path) -> None:
    """The files of a Qwen-Image-Edit ``processor/`` folder (what the hub repo has)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(dest)
    image_processor.save_pretrained(dest)
    pre = json.loads((dest / "preprocessor_config.json").read_text())
    pre["image_processor_type"] = "Qwen2VLImageProcessor"
    pre["processor_class"] = "Qwen2VLProcessor"
    (dest / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    video = dict(pre, video_processor_type="Qwen2VLVideoProcessor")
    video.pop("image_processor_type")
    (dest / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2))
    (dest / "chat_template.jinja").write_text(QWEN_CHAT_TEMPLATE)


def load_qwen_vl_processor(path: Path) -> Any:
    """``Qwen2VLProcessor.from_pretrained(path)``, or (no torchvision) the same assembled."""
    from transformers import AutoTokenizer, Qwen2VLProcessor
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    path = Path(path)
    try:
        return Qwen2VLProcessor.from_pretrained(path, local_files_only=True)
    except (AttributeError, ImportError, ValueError, TypeError):
        pass
    template = path / "chat_template.jinja"
    return assemble_qwen_vl_processor(
        AutoTokenizer.from_pretrained(path, local_files_only=True),
        Qwen2VLImageProcessorPil.from_pretrained(path, local_files_only=True),
        template.read_text() if template.is_file() else None,
    )


def qwen2vl_processor(tok: Any) -> Any:
    return assemble_qwen_vl_processor(tok, qwen_image_processor(), QWEN_CHAT_TEMPLATE)


# --------------------------------------------------------------------- VAEs


def kl_vae(latent_channels: int, scaling_factor: float, shift_factor: float) -> Any:
    """Flux.1 / SD3 style AutoencoderKL: 4 blocks (8x), no quant convs."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ).eval()


def flux2_vae() -> Any:
    from diffusers import AutoencoderKLFlux2

    return AutoencoderKLFlux2(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=32,
        norm_num_groups=8,
        sample_size=64,
    ).eval()


def qwen_vae() -> Any:
    from diffusers import AutoencoderKLQwenImage

    z = 16
    return AutoencoderKLQwenImage(
        base_dim=4,
        z_dim=z,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * z,
        latents_std=[1.0] * z,
    ).eval()


# ---------------------------------------------------------------- schedulers


def _flow_scheduler(**kw: Any) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, **kw)


def _dynamic_flux_scheduler() -> Any:
    return _flow_scheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )


def _qwen_scheduler() -> Any:
    return _flow_scheduler(
        shift=1.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=0.9,
        base_image_seq_len=256,
        max_image_seq_len=8192,
        shift_terminal=0.02,
        time_shift_type="exponential",
    )


# ----------------------------------------------------------------- pipelines


def _flux_transformer(
    in_channels: int = 64, out_channels: int | None = None, guidance: bool = False
) -> Any:
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=in_channels,
        out_channels=out_channels,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS,
        joint_attention_dim=T5_DIM,
        pooled_projection_dim=CLIP_DIM,
        guidance_embeds=guidance,
        axes_dims_rope=(4, 4, 8),
    ).eval()


def _flux_components(transformer: Any, scheduler: Any) -> dict[str, Any]:
    clip_tok, t5_tok = clip_tokenizer(), t5_tokenizer()
    return {
        "scheduler": scheduler,
        "vae": kl_vae(16, 0.3611, 0.1159),
        "text_encoder": clip_text_encoder(clip_tok, projection=False),
        "tokenizer": clip_tok,
        "text_encoder_2": t5_text_encoder(t5_tok),
        "tokenizer_2": t5_tok,
        "transformer": transformer,
    }


def _pipe_flux(kind: str) -> Any:
    import diffusers

    if kind == "flux":
        comps = _flux_components(_flux_transformer(), _flow_scheduler(shift=1.0))
        return diffusers.FluxPipeline(**comps, image_encoder=None, feature_extractor=None)
    if kind == "flux-dev":
        comps = _flux_components(_flux_transformer(guidance=True), _dynamic_flux_scheduler())
        return diffusers.FluxPipeline(**comps, image_encoder=None, feature_extractor=None)
    if kind == "flux-fill":
        # packed latent 16*4 + packed masked-image latent 16*4 + packed 8x8 mask 64*4
        tr = _flux_transformer(in_channels=384, out_channels=64, guidance=True)
        return diffusers.FluxFillPipeline(**_flux_components(tr, _dynamic_flux_scheduler()))
    if kind == "flux-kontext":
        comps = _flux_components(_flux_transformer(guidance=True), _dynamic_flux_scheduler())
        return diffusers.FluxKontextPipeline(**comps, image_encoder=None, feature_extractor=None)
    raise KeyError(kind)


def _pipe_flux2_klein() -> Any:
    import diffusers
    from transformers import Qwen3ForCausalLM

    tok = qwen_tokenizer()
    te = Qwen3ForCausalLM(_qwen3_config(tok, layers=27)).eval()
    tr = diffusers.Flux2Transformer2DModel(
        patch_size=1,
        in_channels=128,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS,
        joint_attention_dim=3 * QWEN_DIM,
        timestep_guidance_channels=256,
        axes_dims_rope=(4, 4, 4, 4),
        guidance_embeds=False,
    ).eval()
    sched = _flow_scheduler(shift=3.0, use_dynamic_shifting=True)
    return diffusers.Flux2KleinPipeline(
        scheduler=sched,
        vae=flux2_vae(),
        text_encoder=te,
        tokenizer=tok,
        transformer=tr,
        is_distilled=True,
    )


def _pipe_sd3() -> Any:
    import diffusers

    tok, tok2, tok3 = clip_tokenizer(), clip_tokenizer(), t5_tokenizer(model_max_length=256)
    tr = diffusers.SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=1,
        attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS,
        joint_attention_dim=2 * CLIP_DIM,
        caption_projection_dim=HEADS * HEAD_DIM,
        pooled_projection_dim=2 * CLIP_DIM,
        pos_embed_max_size=32,
        qk_norm="rms_norm",  # as SD3.5
    ).eval()
    return diffusers.StableDiffusion3Pipeline(
        scheduler=_flow_scheduler(shift=3.0),
        vae=kl_vae(16, 1.5305, 0.0609),
        text_encoder=clip_text_encoder(tok, projection=True),
        tokenizer=tok,
        text_encoder_2=clip_text_encoder(tok2, projection=True),
        tokenizer_2=tok2,
        text_encoder_3=t5_text_encoder(tok3, d_model=2 * CLIP_DIM),
        tokenizer_3=tok3,
        transformer=tr,
        image_encoder=None,
        feature_extractor=None,
    )


def _pipe_zimage() -> Any:
    import diffusers
    import torch
    from transformers import Qwen3Model

    tok = qwen_tokenizer()
    te = Qwen3Model(_qwen3_config(tok, layers=2)).eval()
    tr = diffusers.ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=HEADS * HEAD_DIM,
        n_layers=1,
        n_refiner_layers=1,
        n_heads=HEADS,
        n_kv_heads=HEADS,
        norm_eps=1e-5,
        qk_norm=True,
        cap_feat_dim=QWEN_DIM,
        rope_theta=256.0,
        t_scale=1000.0,
        axes_dims=[8, 4, 4],
        axes_lens=[1024, 64, 64],
    ).eval()
    with torch.no_grad():  # torch.empty in the constructor: fill, or NaNs at random
        tr.x_pad_token.copy_(torch.randn_like(tr.x_pad_token) * 0.02)
        tr.cap_pad_token.copy_(torch.randn_like(tr.cap_pad_token) * 0.02)
    return diffusers.ZImagePipeline(
        scheduler=_flow_scheduler(shift=3.0),
        vae=kl_vae(16, 0.3611, 0.1159),
        text_encoder=te,
        tokenizer=tok,
        transformer=tr,
    )


def _qwen_transformer() -> Any:
    from diffusers import QwenImageTransformer2DModel

    return QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=64,
        out_channels=16,
        num_layers=1,
        attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS,
        joint_attention_dim=QWEN_DIM,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    ).eval()


def _pipe_qwen(kind: str) -> Any:
    import diffusers

    tok = qwen_tokenizer()
    comps: dict[str, Any] = {
        "scheduler": _qwen_scheduler(),
        "vae": qwen_vae(),
        "text_encoder": qwen25vl_text_encoder(tok),
        "tokenizer": tok,
        "transformer": _qwen_transformer(),
    }
    if kind == "qwen":
        return diffusers.QwenImagePipeline(**comps)
    comps["processor"] = qwen2vl_processor(tok)
    if kind == "qwen-edit":
        return diffusers.QwenImageEditPipeline(**comps)
    if kind == "qwen-edit-plus":
        return diffusers.QwenImageEditPlusPipeline(**comps)
    raise KeyError(kind)


def _pipe_chroma() -> Any:
    import diffusers

    tok = t5_tokenizer()
    tr = diffusers.ChromaTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=HEAD_DIM,
        num_attention_heads=HEADS,
        joint_attention_dim=T5_DIM,
        axes_dims_rope=(4, 4, 8),
        approximator_hidden_dim=32,
        approximator_layers=1,
        approximator_num_channels=16,
    ).eval()
    return diffusers.ChromaPipeline(
        scheduler=_dynamic_flux_scheduler(),
        vae=kl_vae(16, 0.3611, 0.1159),
        text_encoder=t5_text_encoder(tok),
        tokenizer=tok,
        transformer=tr,
        image_encoder=None,
        feature_extractor=None,
    )


def make_pipeline(kind: str) -> Any:
    """The tiny pipeline object (not saved), deterministic for a kind."""
    import torch

    if kind not in KINDS:
        raise KeyError(f"unknown tiny family kind {kind!r}; known: {', '.join(KINDS)}")
    torch.manual_seed(SEED)
    if kind.startswith("flux2"):
        return _pipe_flux2_klein()
    if kind.startswith("flux"):
        return _pipe_flux(kind)
    if kind == "sd3":
        return _pipe_sd3()
    if kind == "zimage":
        return _pipe_zimage()
    if kind.startswith("qwen"):
        return _pipe_qwen(kind)
    return _pipe_chroma()


# ------------------------------------------------------------------ saving

MARKER = "tiny-family.json"


def build(kind: str, dest: Path) -> Path:
    """Build the tiny ``kind`` pipeline and save it as a diffusers folder at ``dest``."""
    dest = Path(dest)
    t0 = time.perf_counter()
    pipe = make_pipeline(kind)
    if dest.exists():
        shutil.rmtree(dest)
    processor = getattr(pipe, "processor", None)
    if processor is not None:  # cannot save_pretrained itself without torchvision
        pipe.register_modules(processor=None)
    pipe.save_pretrained(dest, safe_serialization=True)
    if processor is not None:
        save_qwen_vl_processor(processor.tokenizer, processor.image_processor, dest / "processor")
        index = json.loads((dest / "model_index.json").read_text())
        index["processor"] = ["transformers", "Qwen2VLProcessor"]
        (dest / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
    (dest / MARKER).write_text(
        json.dumps({"kind": kind, "seed": SEED, "build_s": round(time.perf_counter() - t0, 3)})
    )
    return dest


def cached(kind: str, root: Path) -> Path:
    """``build(kind, root / kind)`` once; later calls reuse the folder."""
    dest = Path(root) / kind
    marker = dest / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("kind") == kind:
        return dest
    return build(kind, dest)


def load(folder: Path, task: str | None = None) -> Any:
    """``DiffusionPipeline.from_pretrained`` (offline), switched to ``TASKS[kind][task]``."""
    import diffusers

    folder = Path(folder)
    extra: dict[str, Any] = {}
    if (folder / "processor").is_dir():
        extra["processor"] = load_qwen_vl_processor(folder / "processor")
    pipe = diffusers.DiffusionPipeline.from_pretrained(folder, local_files_only=True, **extra)
    pipe.set_progress_bar_config(disable=True)
    if task is None:
        return pipe
    kind = json.loads((folder / MARKER).read_text())["kind"]
    cls = getattr(diffusers, TASKS[kind][task])
    out = pipe if type(pipe) is cls else cls.from_pipe(pipe)
    out.set_progress_bar_config(disable=True)
    if kind == "chroma":
        chroma_inpaint_workaround(out)
    return out


def chroma_inpaint_workaround(pipe: Any) -> None:
    """diffusers 0.42.1 ChromaInpaintPipeline reads ``transformer.config.guidance_embeds``,
    which ChromaTransformer2DModel has no such option (AttributeError); real Chroma
    folders lack it too. Registering ``False`` is what the pipeline means."""
    cfg = pipe.transformer.config
    if "guidance_embeds" not in cfg:
        pipe.transformer.register_to_config(guidance_embeds=False)


def call_kwargs(
    kind: str, task: str, height: int = 64, width: int = 64, steps: int = 2
) -> dict[str, Any]:
    """Arguments for a small, fast call of ``TASKS[kind][task]`` (output_type "np")."""
    import torch
    from PIL import Image

    img = Image.new("RGB", (width, height), (180, 90, 40))
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    kw: dict[str, Any] = {
        "prompt": "a red fox",
        "num_inference_steps": steps,
        "height": height,
        "width": width,
        "output_type": "np",
        "generator": torch.Generator("cpu").manual_seed(0),
    }
    if task in ("img2img", "inpaint", "edit"):
        kw["image"] = [img, img] if kind == "qwen-edit-plus" else img
    if kind == "flux2-klein" and task == "edit":
        # Flux.2 reference images must be >= 64 px on both sides (ValueError otherwise)
        kw["image"] = img.resize((max(64, width), max(64, height)))
    if task == "img2img" or (task == "inpaint" and kind != "flux-fill"):
        kw["strength"] = 0.75
    if task == "inpaint":
        kw["mask_image"] = mask
    if kind.startswith("flux") and kind != "flux2-klein":
        kw["max_sequence_length"] = 32
    if kind == "flux-kontext":
        kw["_auto_resize"] = False  # else the image goes to ~1 MP first
        kw["max_area"] = height * width  # else the output goes to ~1 MP
    if kind in ("sd3", "chroma"):
        kw["max_sequence_length"] = 32
    if kind in ("flux2-klein", "zimage"):
        kw["max_sequence_length"] = 64
    if kind.startswith("qwen"):
        kw["max_sequence_length"] = 64
        kw["true_cfg_scale"] = 1.0  # CFG only with a negative prompt and true_cfg_scale > 1
    return kw


_QWEN_EDIT_MODULES = (
    "diffusers.pipelines.qwenimage.pipeline_qwenimage_edit",
    "diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_inpaint",
    "diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus",
)


@contextlib.contextmanager
def qwen_edit_area(area: int) -> Iterator[None]:
    """Cap the ~1 MP working size of the Qwen-Image edit pipelines at ``area`` pixels.

    They resize the input image to 1024x1024-equivalent before the VAE encode (and
    QwenImageEditInpaintPipeline also *outputs* that size, ignoring height/width),
    which costs 6-30 s on a 2-core CPU even with the tiny VAE. Tests use this to keep
    them near the requested size; the real behaviour is unchanged outside the block.
    """
    import importlib

    saved = []
    for name in _QWEN_EDIT_MODULES:
        mod = importlib.import_module(name)
        orig = mod.calculate_dimensions

        def capped(target_area: float, ratio: float, _orig: Any = orig) -> Any:
            return _orig(min(target_area, area), ratio)

        saved.append((mod, orig))
        mod.calculate_dimensions = capped
    try:
        yield
    finally:
        for mod, orig in saved:
            mod.calculate_dimensions = orig


# ------------------------------------------------- single files and split files

# Key prefix of the transformer in the file as its publisher ships it: BFL (Flux.1/.2),
# lodestones (Chroma), Tongyi / ComfyUI (Z-Image, Qwen-Image) ship bare keys;
# StabilityAI's sd3.5_*.safetensors nest the MMDiT under model.diffusion_model.
SINGLE_FILE_PREFIX = {"SD3Transformer2DModel": "model.diffusion_model."}
NEEDS_FLUX_WIDTH_PATCH = ("FluxTransformer2DModel", "ChromaTransformer2DModel")


def _index(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "model_index.json").read_text())


def transformer_class(folder: Path) -> str:
    return _index(folder)["transformer"][1]


def _component_state(folder: Path, name: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    files = sorted((Path(folder) / name).glob("*.safetensors"))
    state: dict[str, Any] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def _save(state: dict[str, Any], dest: Path, metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest), metadata=metadata)
    return dest


def original_transformer_state(folder: Path, prefix: str | None = None) -> dict[str, Any]:
    """The folder's transformer in its original checkpoint key layout."""
    from tests.support.family_layouts import TO_ORIGINAL

    cls = transformer_class(folder)
    state = TO_ORIGINAL[cls](_component_state(folder, "transformer"))
    prefix = SINGLE_FILE_PREFIX.get(cls, "") if prefix is None else prefix
    return {prefix + k: v for k, v in state.items()}


def save_single_file_transformer(folder: Path, dest_file: Path, prefix: str | None = None) -> Path:
    """Write the folder's transformer as one ``.safetensors`` in the original key layout."""
    return _save(original_transformer_state(folder, prefix), dest_file, {"format": "pt"})


def load_single_file_transformer(path: Path, folder: Path, **kwargs: Any) -> Any:
    """``<TransformerClass>.from_single_file(path, config=folder, subfolder="transformer")``.

    Flux.1 / Chroma go through ``family_layouts.flux_width_agnostic()`` (diffusers
    hard-codes their full width; see there).
    """
    import diffusers

    from tests.support.family_layouts import flux_width_agnostic

    name = transformer_class(folder)
    cls = getattr(diffusers, name)
    ctx = flux_width_agnostic() if name in NEEDS_FLUX_WIDTH_PATCH else contextlib.nullcontext()
    with ctx:
        return cls.from_single_file(
            str(path), config=str(folder), subfolder="transformer", local_files_only=True, **kwargs
        )


# ComfyUI's file names for the text encoders of each family (models/text_encoders/).
TEXT_ENCODER_FILES = {
    "CLIPTextModel": "clip_l",
    "CLIPTextModelWithProjection": "clip_l",
    "T5EncoderModel": "t5xxl_fp16",
    "Qwen2_5_VLForConditionalGeneration": "qwen_2.5_vl_7b",
    "Qwen3ForCausalLM": "qwen_3_4b",
    "Qwen3Model": "qwen_3_4b",
}


def _text_encoder_file_name(index: dict[str, Any], attr: str) -> str:
    cls = index[attr][1]
    if cls == "CLIPTextModelWithProjection" and attr == "text_encoder_2":
        return "clip_g"
    return TEXT_ENCODER_FILES.get(cls, attr)


def original_text_encoder_state(folder: Path, attr: str) -> dict[str, Any]:
    """A text encoder with the key names of the original Hugging Face checkpoints (as
    ComfyUI's clip_l / clip_g / t5xxl / qwen_2.5_vl / qwen_3 files have them): CLIP under
    ``text_model.``, T5 as T5EncoderModel, Qwen2.5-VL as ``model.`` + ``visual.`` +
    ``lm_head``, Qwen3 under ``model.``."""
    cls = _index(folder)[attr][1]
    state = _component_state(folder, attr)
    out = {}
    for k, v in state.items():
        if cls.startswith("CLIPTextModel") and not k.startswith(("text_model.", "text_projection")):
            k = "text_model." + k
        elif cls == "Qwen2_5_VLForConditionalGeneration":
            k = k.replace("model.language_model.", "model.").replace("model.visual.", "visual.")
        elif cls == "Qwen3Model":
            k = "model." + k
        out[k] = v
    return out


def original_vae_state(folder: Path) -> dict[str, Any]:
    """The VAE as BFL's ``ae.safetensors`` / SD3's VAE has it (LDM names, no prefix) for
    AutoencoderKL; AutoencoderKLFlux2 / AutoencoderKLQwenImage keep diffusers names
    (diffusers 0.42.1 cannot load either from a single file)."""
    from tests.support.ldm_layout import vae_to_ldm

    state = _component_state(folder, "vae")
    if _index(folder)["vae"][1] != "AutoencoderKL":
        return state
    cfg = json.loads((Path(folder) / "vae" / "config.json").read_text())
    return vae_to_ldm(state, cfg, "")


def save_split_files(folder: Path, root: Path, name: str) -> dict[str, Path]:
    """ComfyUI's layout: ``diffusion_models/<name>.safetensors`` (original transformer
    layout), ``text_encoders/<clip_l|clip_g|t5xxl_fp16|qwen_2.5_vl_7b|qwen_3_4b>.safetensors``,
    ``vae/<name>_vae.safetensors``. Returns {"transformer"|"vae"|<text encoder attr>: path}."""
    folder, root = Path(folder), Path(root)
    index = _index(folder)
    out = {
        "transformer": save_single_file_transformer(
            folder, root / "diffusion_models" / f"{name}.safetensors"
        )
    }
    for attr in ("text_encoder", "text_encoder_2", "text_encoder_3"):
        if index.get(attr, [None])[0]:
            dest = root / "text_encoders" / f"{_text_encoder_file_name(index, attr)}.safetensors"
            out[attr] = _save(original_text_encoder_state(folder, attr), dest, {"format": "pt"})
    out["vae"] = _save(
        original_vae_state(folder), root / "vae" / f"{name}_vae.safetensors", {"format": "pt"}
    )
    return out


# ------------------------------------------------------------------------ GGUF

GGUF_ARCH = {  # general.architecture as city96's GGUF conversions name it
    "FluxTransformer2DModel": "flux",
    "ChromaTransformer2DModel": "chroma",
    "Flux2TransformerModel": "flux2",
    "Flux2Transformer2DModel": "flux2",
    "SD3Transformer2DModel": "sd3",
    "ZImageTransformer2DModel": "lumina2",
    "QwenImageTransformer2DModel": "qwen_image",
}


def save_gguf_transformer(folder: Path, dest_file: Path, qtype: str = "Q8_0") -> Path:
    """Write the folder's transformer as a GGUF file in the original key layout (bare keys,
    as city96's ``*-Q8_0.gguf`` files). ``qtype``: "F32", "F16", or "Q8_0" / "Q4_0" / ...
    (2-D ``.weight`` tensors whose rows split into 32-element blocks; the rest F16,
    1-D tensors F32)."""
    import gguf
    import numpy as np

    dest_file = Path(dest_file)
    dest_file.parent.mkdir(parents=True, exist_ok=True)
    state = original_transformer_state(folder, prefix="")
    writer = gguf.GGUFWriter(str(dest_file), arch=GGUF_ARCH[transformer_class(folder)])
    writer.add_file_type(
        gguf.LlamaFileType.ALL_F32 if qtype == "F32" else gguf.LlamaFileType.MOSTLY_Q8_0
    )
    quant = getattr(gguf.GGMLQuantizationType, qtype)
    block = gguf.GGML_QUANT_SIZES[quant][0]
    for name, tensor in state.items():
        data = tensor.detach().float().numpy()
        if data.ndim < 2 or qtype == "F32":
            writer.add_tensor(name, data.astype(np.float32))
        elif qtype == "F16":
            writer.add_tensor(name, data.astype(np.float16))
        elif data.ndim == 2 and name.endswith(".weight") and data.shape[-1] % block == 0:
            # only linear weights: diffusers dequantizes in its GGUF Linear layers, so a
            # quantized pos_embed (SD3) or pad token (Z-Image) would be used as raw bytes
            writer.add_tensor(name, gguf.quants.quantize(data, quant), raw_dtype=quant)
        else:
            writer.add_tensor(name, data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest_file


def load_gguf_transformer(path: Path, folder: Path, compute_dtype: Any = None) -> Any:
    """``from_single_file(path, quantization_config=GGUFQuantizationConfig(...), config=folder, subfolder="transformer")``."""
    import diffusers
    import torch

    qc = diffusers.GGUFQuantizationConfig(compute_dtype=compute_dtype or torch.float32)
    return load_single_file_transformer(path, folder, quantization_config=qc)
