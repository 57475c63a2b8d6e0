"""Diffusers -> original checkpoint key layouts of the newer DiT families.

Inverses of diffusers' single-file converters in ``diffusers.loaders.single_file_utils``
(0.42.1): ``convert_flux_transformer_checkpoint_to_diffusers`` (Flux.1 dev/schnell/
Fill/Kontext, BFL layout: ``double_blocks.0.img_attn.qkv.weight``),
``convert_chroma_transformer_checkpoint_to_diffusers``,
``convert_flux2_transformer_checkpoint_to_diffusers`` (``single_stream_modulation.lin``),
``convert_sd3_transformer_checkpoint_to_diffusers`` (``joint_blocks.0.x_block.attn.qkv``),
``convert_z_image_transformer_checkpoint_to_diffusers`` (``layers.0.attention.qkv``),
and Qwen-Image, whose single files already use the diffusers names (diffusers maps
them with the identity). Written for any depth / width, so tiny test models can be
saved as the files people download.

``flux_width_agnostic()`` works around diffusers' Flux.1 and Chroma converters
hard-coding the full-size width (``inner_dim = 3072``, MLP 12288) when they split
the single blocks' fused ``linear1``: inside it the split sizes come from the tensor,
so a narrow (tiny) Flux.1 / Chroma file loads. Real, full-width files load the same
with or without it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

Tensor = Any
StateDict = dict[str, Tensor]


def _swap_scale_shift(w: Tensor) -> Tensor:
    """diffusers keeps (scale, shift), the originals (shift, scale); the swap is its own inverse."""
    import torch

    a, b = w.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def _cat(*ts: Tensor) -> Tensor:
    import torch

    return torch.cat(list(ts), dim=0)


def _block_ids(sd: StateDict, prefix: str) -> list[int]:
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    return sorted({int(m[1]) for k in sd if (m := pat.match(k))})


def _pop_pairs(sd: StateDict, out: StateDict, pairs: dict[str, str]) -> None:
    """Move ``new.weight|bias`` -> ``old.weight|bias`` for each (new, old) present."""
    for new, old in pairs.items():
        for p in ("weight", "bias"):
            if f"{new}.{p}" in sd:
                out[f"{old}.{p}"] = sd.pop(f"{new}.{p}")


def _qkv(sd: StateDict, out: StateDict, names: tuple[str, str, str], old: str) -> None:
    for p in ("weight", "bias"):
        if f"{names[0]}.{p}" in sd:
            out[f"{old}.{p}"] = _cat(*(sd.pop(f"{n}.{p}") for n in names))


def _finish(sd: StateDict, out: StateDict, family: str) -> StateDict:
    if sd:
        raise KeyError(f"{family}: no original name for {sorted(sd)[:8]}")
    return out


# ------------------------------------------------------------------ Flux.1 / Chroma


def _flux_like_blocks(sd: StateDict, out: StateDict, modulation: bool) -> None:
    for i in _block_ids(sd, "transformer_blocks"):
        b, o = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        if modulation:
            _pop_pairs(sd, out, {b + "norm1.linear": o + "img_mod.lin"})
            _pop_pairs(sd, out, {b + "norm1_context.linear": o + "txt_mod.lin"})
        _qkv(sd, out, (b + "attn.to_q", b + "attn.to_k", b + "attn.to_v"), o + "img_attn.qkv")
        _qkv(
            sd,
            out,
            (b + "attn.add_q_proj", b + "attn.add_k_proj", b + "attn.add_v_proj"),
            o + "txt_attn.qkv",
        )
        for new, old in (
            ("attn.norm_q", "img_attn.norm.query_norm"),
            ("attn.norm_k", "img_attn.norm.key_norm"),
            ("attn.norm_added_q", "txt_attn.norm.query_norm"),
            ("attn.norm_added_k", "txt_attn.norm.key_norm"),
        ):
            out[o + old + ".scale"] = sd.pop(b + new + ".weight")
        _pop_pairs(
            sd,
            out,
            {
                b + "ff.net.0.proj": o + "img_mlp.0",
                b + "ff.net.2": o + "img_mlp.2",
                b + "ff_context.net.0.proj": o + "txt_mlp.0",
                b + "ff_context.net.2": o + "txt_mlp.2",
                b + "attn.to_out.0": o + "img_attn.proj",
                b + "attn.to_add_out": o + "txt_attn.proj",
            },
        )
    for i in _block_ids(sd, "single_transformer_blocks"):
        b, o = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        if modulation:
            _pop_pairs(sd, out, {b + "norm.linear": o + "modulation.lin"})
        for p in ("weight", "bias"):
            parts = (b + "attn.to_q", b + "attn.to_k", b + "attn.to_v", b + "proj_mlp")
            out[f"{o}linear1.{p}"] = _cat(*(sd.pop(f"{n}.{p}") for n in parts))
        out[o + "norm.query_norm.scale"] = sd.pop(b + "attn.norm_q.weight")
        out[o + "norm.key_norm.scale"] = sd.pop(b + "attn.norm_k.weight")
        _pop_pairs(sd, out, {b + "proj_out": o + "linear2"})
    _pop_pairs(sd, out, {"context_embedder": "txt_in", "x_embedder": "img_in"})
    _pop_pairs(sd, out, {"proj_out": "final_layer.linear"})


def flux_to_original(state: StateDict) -> StateDict:
    """FluxTransformer2DModel (dev, schnell, Fill, Kontext) -> BFL ``flux1-*.safetensors`` keys."""
    sd, out = dict(state), {}
    _pop_pairs(
        sd,
        out,
        {
            "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
            "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
            "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
            "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
            "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
            "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
        },
    )
    _flux_like_blocks(sd, out, modulation=True)
    for p in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{p}"] = _swap_scale_shift(
            sd.pop(f"norm_out.linear.{p}")
        )
    return _finish(sd, out, "flux")


def chroma_to_original(state: StateDict) -> StateDict:
    """ChromaTransformer2DModel -> lodestones' ``chroma-*.safetensors`` keys."""
    sd, out = dict(state), {}
    for i in _block_ids(sd, "distilled_guidance_layer.layers"):
        b = f"distilled_guidance_layer.layers.{i}."
        _pop_pairs(sd, out, {b + "linear_1": b + "in_layer", b + "linear_2": b + "out_layer"})
    for i in _block_ids(sd, "distilled_guidance_layer.norms"):
        out[f"distilled_guidance_layer.norms.{i}.scale"] = sd.pop(
            f"distilled_guidance_layer.norms.{i}.weight"
        )
    for name in ("in_proj", "out_proj"):
        n = f"distilled_guidance_layer.{name}"
        _pop_pairs(sd, out, {n: n})
    _flux_like_blocks(sd, out, modulation=False)
    return _finish(sd, out, "chroma")


@contextlib.contextmanager
def flux_width_agnostic() -> Iterator[None]:
    """Let diffusers' Flux.1 / Chroma single-file converters split ``linear1`` of any width.

    They call ``torch.split(linear1, (3072, 3072, 3072, 12288))``; inside this block
    that call splits into q, k, v (a seventh of the rows each, as the MLP ratio is 4)
    and the MLP rest instead (rows, so GGUF-quantized byte tensors split the same). Test-only: it swaps the module's
    ``torch`` reference for a proxy, and puts it back on exit.
    """
    import torch
    from diffusers.loaders import single_file_utils as sfu

    class _TorchProxy:
        def __getattr__(self, name: str) -> Any:
            return getattr(torch, name)

        @staticmethod
        def split(t: Tensor, sizes: Any, dim: int = 0) -> Any:
            if isinstance(sizes, tuple) and len(sizes) == 4 and sum(sizes) != t.shape[dim]:
                width = t.shape[dim] // 7  # rows = q + k + v + MLP (ratio 4) = 7 x width
                sizes = (width, width, width, t.shape[dim] - 3 * width)
            return torch.split(t, sizes, dim=dim)

    saved = sfu.torch
    sfu.torch = _TorchProxy()
    try:
        yield
    finally:
        sfu.torch = saved


# ------------------------------------------------------------------------ Flux.2


def flux2_to_original(state: StateDict) -> StateDict:
    """Flux2Transformer2DModel -> BFL ``flux-2-*.safetensors`` keys."""
    sd, out = dict(state), {}
    _pop_pairs(
        sd,
        out,
        {
            "x_embedder": "img_in",
            "context_embedder": "txt_in",
            "time_guidance_embed.timestep_embedder.linear_1": "time_in.in_layer",
            "time_guidance_embed.timestep_embedder.linear_2": "time_in.out_layer",
            "time_guidance_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
            "time_guidance_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
            "double_stream_modulation_img.linear": "double_stream_modulation_img.lin",
            "double_stream_modulation_txt.linear": "double_stream_modulation_txt.lin",
            "single_stream_modulation.linear": "single_stream_modulation.lin",
            "proj_out": "final_layer.linear",
        },
    )
    out["final_layer.adaLN_modulation.1.weight"] = _swap_scale_shift(
        sd.pop("norm_out.linear.weight")
    )
    for i in _block_ids(sd, "transformer_blocks"):
        b, o = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        _qkv(sd, out, (b + "attn.to_q", b + "attn.to_k", b + "attn.to_v"), o + "img_attn.qkv")
        _qkv(
            sd,
            out,
            (b + "attn.add_q_proj", b + "attn.add_k_proj", b + "attn.add_v_proj"),
            o + "txt_attn.qkv",
        )
        for new, old in (
            ("attn.norm_q", "img_attn.norm.query_norm"),
            ("attn.norm_k", "img_attn.norm.key_norm"),
            ("attn.norm_added_q", "txt_attn.norm.query_norm"),
            ("attn.norm_added_k", "txt_attn.norm.key_norm"),
        ):
            out[o + old + ".scale"] = sd.pop(b + new + ".weight")
        _pop_pairs(
            sd,
            out,
            {
                b + "attn.to_out.0": o + "img_attn.proj",
                b + "ff.linear_in": o + "img_mlp.0",
                b + "ff.linear_out": o + "img_mlp.2",
                b + "attn.to_add_out": o + "txt_attn.proj",
                b + "ff_context.linear_in": o + "txt_mlp.0",
                b + "ff_context.linear_out": o + "txt_mlp.2",
            },
        )
    for i in _block_ids(sd, "single_transformer_blocks"):
        b, o = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        _pop_pairs(
            sd, out, {b + "attn.to_qkv_mlp_proj": o + "linear1", b + "attn.to_out": o + "linear2"}
        )
        out[o + "norm.query_norm.scale"] = sd.pop(b + "attn.norm_q.weight")
        out[o + "norm.key_norm.scale"] = sd.pop(b + "attn.norm_k.weight")
    return _finish(sd, out, "flux2")


# -------------------------------------------------------------------------- SD3


def sd3_to_original(state: StateDict) -> StateDict:
    """SD3Transformer2DModel -> StabilityAI ``sd3.5_*.safetensors`` MMDiT keys (no prefix)."""
    sd, out = dict(state), {}
    out["pos_embed"] = sd.pop("pos_embed.pos_embed")
    _pop_pairs(
        sd,
        out,
        {
            "pos_embed.proj": "x_embedder.proj",
            "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
            "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
            "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
            "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2",
            "context_embedder": "context_embedder",
            "proj_out": "final_layer.linear",
        },
    )
    for p in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{p}"] = _swap_scale_shift(
            sd.pop(f"norm_out.linear.{p}")
        )
    blocks = _block_ids(sd, "transformer_blocks")
    for i in blocks:
        b, x, c = (
            f"transformer_blocks.{i}.",
            f"joint_blocks.{i}.x_block.",
            f"joint_blocks.{i}.context_block.",
        )
        _qkv(sd, out, (b + "attn.to_q", b + "attn.to_k", b + "attn.to_v"), x + "attn.qkv")
        _qkv(
            sd,
            out,
            (b + "attn.add_q_proj", b + "attn.add_k_proj", b + "attn.add_v_proj"),
            c + "attn.qkv",
        )
        _qkv(sd, out, (b + "attn2.to_q", b + "attn2.to_k", b + "attn2.to_v"), x + "attn2.qkv")
        _pop_pairs(
            sd,
            out,
            {
                b + "attn.norm_q": x + "attn.ln_q",
                b + "attn.norm_k": x + "attn.ln_k",
                b + "attn.norm_added_q": c + "attn.ln_q",
                b + "attn.norm_added_k": c + "attn.ln_k",
                b + "attn2.norm_q": x + "attn2.ln_q",
                b + "attn2.norm_k": x + "attn2.ln_k",
                b + "attn.to_out.0": x + "attn.proj",
                b + "attn2.to_out.0": x + "attn2.proj",
                b + "attn.to_add_out": c + "attn.proj",
                b + "norm1.linear": x + "adaLN_modulation.1",
                b + "ff.net.0.proj": x + "mlp.fc1",
                b + "ff.net.2": x + "mlp.fc2",
                b + "ff_context.net.0.proj": c + "mlp.fc1",
                b + "ff_context.net.2": c + "mlp.fc2",
            },
        )
        last = i == blocks[-1]  # context_pre_only: its AdaLayerNormContinuous is (scale, shift)
        for p in ("weight", "bias"):
            w = sd.pop(f"{b}norm1_context.linear.{p}")
            out[f"{c}adaLN_modulation.1.{p}"] = _swap_scale_shift(w) if last else w
    return _finish(sd, out, "sd3")


# ----------------------------------------------------------------------- Z-Image


def zimage_to_original(state: StateDict) -> StateDict:
    """ZImageTransformer2DModel -> Tongyi's / ComfyUI's ``z_image_*.safetensors`` keys."""
    sd, out = dict(state), {}
    for k in [k for k in sd if k.endswith(".attention.to_q.weight")]:
        stem = k[: -len("to_q.weight")]
        out[stem + "qkv.weight"] = _cat(
            sd.pop(stem + "to_q.weight"), sd.pop(stem + "to_k.weight"), sd.pop(stem + "to_v.weight")
        )
    renames = (
        ("all_final_layer.2-1.", "final_layer."),
        ("all_x_embedder.2-1.", "x_embedder."),
        (".attention.to_out.0.", ".attention.out."),
        (".attention.norm_k.", ".attention.k_norm."),
        (".attention.norm_q.", ".attention.q_norm."),
    )
    for k in list(sd):
        new = k
        for a, b in renames:
            new = new.replace(a, b)
        out[new] = sd.pop(k)
    return out


def qwen_to_original(state: StateDict) -> StateDict:
    """QwenImageTransformer2DModel: the single files use the diffusers names already."""
    return dict(state)


TO_ORIGINAL: dict[str, Callable[[StateDict], StateDict]] = {
    "FluxTransformer2DModel": flux_to_original,
    "ChromaTransformer2DModel": chroma_to_original,
    "Flux2Transformer2DModel": flux2_to_original,
    "SD3Transformer2DModel": sd3_to_original,
    "ZImageTransformer2DModel": zimage_to_original,
    "QwenImageTransformer2DModel": qwen_to_original,
}
