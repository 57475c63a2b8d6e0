"""Each family recognised from a single-file header, and ComfyUI's split files paired.

Headers only: the files hold tiny zero tensors under the key names and shapes real
checkpoints have (diffusers' own detection keys), so no weights are needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from canvasai.backends.models import (
    BASE,
    EDIT,
    INPAINT,
    REFUSED,
    TEXT_ENCODER,
    UNSUPPORTED,
    VAE,
    ModelRegistry,
    inspect_path,
)


def _save(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.zeros(s, np.float16) for k, s in shapes.items()}, str(path))
    return path


FLUX = {"double_blocks.0.img_attn.norm.key_norm.scale": (8,), "img_in.weight": (16, 64)}
FLUX_DEV = FLUX | {"guidance_in.in_layer.bias": (16,)}
CASES = [
    ("flux1-schnell.safetensors", FLUX, ("flux", BASE, "schnell")),
    ("flux1-dev.safetensors", FLUX_DEV, ("flux", BASE, "dev")),
    ("flux1-fill-dev.safetensors", FLUX_DEV | {"img_in.weight": (16, 384)}, ("flux", INPAINT, "fill")),
    ("flux1-kontext-dev.safetensors", FLUX_DEV, ("flux", EDIT, "kontext")),
    ("chroma-unlocked-v50.safetensors",
     FLUX | {"distilled_guidance_layer.in_proj.bias": (8,)}, ("chroma", BASE, "")),
    ("flux-2-klein-4b.safetensors",
     {"single_stream_modulation.lin.weight": (8, 8), "txt_in.weight": (8, 7680)},
     ("flux2", BASE, "klein")),
    ("flux2-dev.safetensors",
     {"single_stream_modulation.lin.weight": (8, 8), "txt_in.weight": (8, 15360)},
     ("flux2", UNSUPPORTED, "dev")),
    ("sd3.5_medium.safetensors",
     {"joint_blocks.0.context_block.adaLN_modulation.1.bias": (8,)}, ("sd3", BASE, "")),
    ("z_image_turbo_bf16.safetensors",
     {"layers.0.adaLN_modulation.0.weight": (8, 8), "cap_embedder.0.weight": (8,)},
     ("zimage", BASE, "turbo")),
    ("qwen_image_fp8.safetensors",
     {"transformer_blocks.0.img_mod.1.weight": (8, 8), "txt_norm.weight": (8,)}, ("qwen", BASE, "")),
    ("qwen_image_edit_2509.safetensors",
     {"transformer_blocks.0.img_mod.1.weight": (8, 8), "txt_norm.weight": (8,)},
     ("qwen", EDIT, "edit-plus")),
]


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
@pytest.mark.parametrize(("name", "keys", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_family_from_its_single_file_header(tmp_path, name, keys, expected, prefix) -> None:
    path = _save(tmp_path / name, {prefix + k: v for k, v in keys.items()})
    info = inspect_path(path)
    assert (info.family, info.kind, info.variant) == expected


PARTS = {
    "clip_l.safetensors": {"text_model.embeddings.token_embedding.weight": (16, 768)},
    "t5xxl_fp16.safetensors": {"encoder.block.0.layer.0.SelfAttention.q.weight": (8, 8)},
    "ae.safetensors": {"encoder.down.0.block.0.conv1.weight": (8, 8, 3, 3),
                       "decoder.conv_in.weight": (8, 16, 3, 3)},
}


def test_text_encoders_and_vaes_are_recognised_as_parts(tmp_path) -> None:
    got = {}
    for name, keys in PARTS.items():
        info = inspect_path(_save(tmp_path / name, keys))
        got[name] = (info.kind, info.variant)
    assert got == {
        "clip_l.safetensors": (TEXT_ENCODER, "clip_l"),
        "t5xxl_fp16.safetensors": (TEXT_ENCODER, "t5"),
        "ae.safetensors": (VAE, "vae16"),
    }


def test_split_files_are_paired_or_say_what_is_missing_and_where(tmp_path) -> None:
    root = tmp_path / "ComfyUI" / "models"
    _save(root / "diffusion_models" / "flux1-schnell.safetensors", FLUX)
    reg = ModelRegistry([root], include_hf_cache=False)
    (flux,) = [m for m in reg.models() if m.path.name == "flux1-schnell.safetensors"]
    assert flux.kind == REFUSED and not flux.usable
    for what in ("CLIP-L text encoder", "T5-XXL text encoder", "Flux VAE"):
        assert what in flux.note
    assert str(root / "text_encoders") in flux.note and str(root / "vae") in flux.note
    _save(root / "text_encoders" / "clip_l.safetensors", PARTS["clip_l.safetensors"])
    _save(root / "text_encoders" / "t5xxl_fp16.safetensors", PARTS["t5xxl_fp16.safetensors"])
    # only the VAE missing now: the message names just that
    (flux,) = [m for m in reg.rescan() if m.path.name == "flux1-schnell.safetensors"]
    assert flux.kind == REFUSED and "Flux VAE" in flux.note and "T5" not in flux.note
    _save(root / "vae" / "ae.safetensors", PARTS["ae.safetensors"])
    (flux,) = [m for m in reg.rescan() if m.path.name == "flux1-schnell.safetensors"]
    assert flux.kind == BASE and flux.usable
    assert dict(flux.parts) == {
        "text_encoder": root / "text_encoders" / "clip_l.safetensors",
        "text_encoder_2": root / "text_encoders" / "t5xxl_fp16.safetensors",
        "vae": root / "vae" / "ae.safetensors",
    }
    # named by path (not in a scanned folder's list yet) it is paired the same way
    assert dict(reg.resolve(str(flux.path)).parts) == dict(flux.parts)


def test_a_vae_of_another_family_does_not_complete_a_model(tmp_path) -> None:
    root = tmp_path / "models"
    _save(root / "diffusion_models" / "z_image_turbo.safetensors",
          {"layers.0.adaLN_modulation.0.weight": (8, 8), "cap_embedder.0.weight": (8,)})
    _save(root / "text_encoders" / "t5xxl.safetensors", PARTS["t5xxl_fp16.safetensors"])
    _save(root / "vae" / "sdxl_vae.safetensors", {"encoder.down.0.block.0.conv1.weight": (8, 8, 3, 3),
                                                   "decoder.conv_in.weight": (8, 4, 3, 3)})
    (z,) = [m for m in ModelRegistry([root], include_hf_cache=False).models() if m.family == "zimage"]
    assert z.kind == REFUSED and "Qwen3 text encoder" in z.note and "Flux VAE" in z.note
    # what it found instead is named, so the mix-up is plain
    assert "t5xxl.safetensors (T5)" in z.note and "sdxl_vae.safetensors (SD/SDXL VAE" in z.note


def _save_gguf(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    gguf = pytest.importorskip("gguf")
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), arch="flux")
    for k, s in shapes.items():
        w.add_tensor(k, np.zeros(s, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_transformers_are_recognised_and_paired_like_split_files(tmp_path) -> None:
    root = tmp_path / "models"
    path = _save_gguf(root / "unet" / "flux1-dev-Q8_0.gguf", FLUX_DEV | {"img_in.weight": (16, 64)})
    for name, keys in PARTS.items():
        _save(root / ("vae" if name == "ae.safetensors" else "clip") / name, keys)
    (info,) = [m for m in ModelRegistry([root], include_hf_cache=False).models() if m.format == "gguf"]
    assert (info.family, info.kind, info.variant) == ("flux", BASE, "dev")
    assert info.path == path and {r for r, _ in info.parts} == {"text_encoder", "text_encoder_2", "vae"}


@pytest.mark.parametrize(
    "payload",
    [b"", b"GGUF", b"GGUF\x03\x00\x00\x00" + b"\xff" * 16, b"NOPE" + b"\x00" * 40,
     b"GGUF\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
     + b"\xff\xff\xff\xff\xff\xff\xff\x7f"],
)
def test_hostile_gguf_headers_are_refused_with_a_reason(tmp_path, payload) -> None:
    bad = tmp_path / "models" / "bad.gguf"
    bad.parent.mkdir()
    bad.write_bytes(payload)
    (info,) = ModelRegistry([tmp_path / "models"], include_hf_cache=False).models()
    assert info.kind == REFUSED and info.note
