"""LoRAs: recognised by family from their keys, applied through load_lora_weights, cached.

Tiny random LoRAs (tests/support/tiny_loras.py) on the tiny SD 1.x and Flux models, in
the diffusers/PEFT layout and in kohya's, found by the registry as a person's files are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from canvasai.backends.api import GenerationRequest, RequestError, Task
from canvasai.backends.diffusion.backend import DiffusersBackend
from canvasai.backends.loras import LoraSpec, lora_family, split_prompt, trigger_words
from canvasai.backends.models import LORA, ModelRegistry, inspect_path
from canvasai.core.errors import ModelError
from tests.support.fixtures import RecordingContext

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
tiny_loras = pytest.importorskip("tests.support.tiny_loras")
tf = pytest.importorskip("tests.support.tiny_families")


def test_prompt_tags_are_taken_out_with_their_weights() -> None:
    clean, specs = split_prompt("a fox <lora:inkwash:0.7>, in snow <LORA:grain> <lora:inkwash:0.5>")
    assert clean == "a fox, in snow"
    assert specs == [LoraSpec("inkwash", 0.5), LoraSpec("grain", 1.0)]
    assert split_prompt("no tags here") == ("no tags here", [])


def test_family_from_the_key_layouts() -> None:
    d = (4, 768)
    assert lora_family({"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
                        ".lora_down.weight": (4, 768)}) == "sd1"
    assert lora_family({"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": d}) == "sdxl"
    assert lora_family({"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"
                        ".lora_A.weight": (4, 2048)}) == "sdxl"
    assert lora_family({"transformer.single_transformer_blocks.0.attn.to_k.lora_A.weight": d}) == "flux"
    assert lora_family({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": d}) == "flux"
    assert lora_family({"diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight": d}) == "flux"
    assert lora_family({"transformer.transformer_blocks.0.img_mod.1.lora_A.weight": d}) == "qwen"
    assert lora_family({"diffusion_model.layers.0.attention.qkv.lora_A.weight": d}) == "zimage"
    assert lora_family({"transformer.transformer_blocks.0.attn.to_k.lora_A.weight": d}) == "unknown"


def test_trigger_words_from_metadata() -> None:
    meta = {"ss_tag_frequency": '{"a": {"inkwash": 9, "fox": 3}, "b": {"fox": 8}}',
            "modelspec.trigger_phrase": "ink style"}
    assert trigger_words(meta) == ("ink style", "fox", "inkwash")
    assert trigger_words({"ss_tag_frequency": "{not json"}) == ()
    assert trigger_words(None) == ()


def test_a_lora_weight_is_checked() -> None:
    with pytest.raises(RequestError, match="weight of LoRA"):
        GenerationRequest(task=Task.TXT2IMG, loras=(LoraSpec("x", 9.0),))


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory, tiny_models) -> Path:
    d = tmp_path_factory.mktemp("loras")
    a = tiny_loras.save_unet_lora(tiny_models.sd1, d / "Lora" / "inkwash.safetensors")
    tiny_loras.to_kohya(a, d / "Lora" / "inkwash-kohya.safetensors")
    flux = tf.cached("flux", tmp_path_factory.mktemp("flux"))
    tiny_loras.save_transformer_lora(flux, d / "loras" / "flux-grain.safetensors")
    (d / "flux-model").symlink_to(flux, target_is_directory=True)
    return d


def _run(backend, model, prompt="a fox", loras=()):
    req = GenerationRequest(task=Task.TXT2IMG, model=str(model), prompt=prompt, width=32,
                            height=32, steps=2, seed=1, loras=loras, native_resolution=False)
    return backend.run(req, RecordingContext())


def test_loras_change_the_picture_by_weight_and_layout(lora_dir, tiny_models, monkeypatch) -> None:
    backend = DiffusersBackend(ModelRegistry([lora_dir], include_hf_cache=False))
    kinds = {m.name: m for m in backend.registry.models() if m.kind == LORA}
    assert set(kinds) == {"Lora/inkwash", "Lora/inkwash-kohya", "loras/flux-grain"}
    assert kinds["loras/flux-grain"].family == "flux"
    assert kinds["Lora/inkwash-kohya"].triggers == ("inkwash", "fox")
    base = _run(backend, tiny_models.sd1).images[0]
    one = _run(backend, tiny_models.sd1, loras=(LoraSpec("Lora/inkwash", 1.0),))
    assert not np.array_equal(base, one.images[0])
    assert one.metadata["loras"] == [{"name": "Lora/inkwash", "weight": 1.0}]
    zero = _run(backend, tiny_models.sd1, loras=(LoraSpec("Lora/inkwash", 0.0),)).images[0]
    np.testing.assert_array_equal(base, zero)  # weight 0 is no LoRA
    kohya = _run(backend, tiny_models.sd1, loras=(LoraSpec("Lora/inkwash-kohya", 1.0),))
    np.testing.assert_array_equal(one.images[0], kohya.images[0])  # same weights, other layout
    # A1111's prompt syntax asks for the same thing; an unchanged LoRA is not loaded again
    pipe_cls = type(backend.manager._loaded.pipe)
    calls = []
    real = pipe_cls.load_lora_weights
    monkeypatch.setattr(pipe_cls, "load_lora_weights",
                        lambda self, *a, **k: calls.append(a) or real(self, *a, **k))
    tagged = _run(backend, tiny_models.sd1, prompt="a fox <lora:Lora/inkwash:1>")
    np.testing.assert_array_equal(tagged.images[0], one.images[0])
    assert tagged.metadata["prompt"] == "a fox" and calls == []
    # and without any LoRA the model is as before
    np.testing.assert_array_equal(_run(backend, tiny_models.sd1).images[0], base)


def test_an_unchanged_lora_set_is_not_set_again(lora_dir, tiny_models, monkeypatch) -> None:
    backend = DiffusersBackend(ModelRegistry([lora_dir], include_hf_cache=False))
    ink = (LoraSpec("Lora/inkwash", 0.7),)
    first = _run(backend, tiny_models.sd1, loras=ink).images[0]
    pipe_cls = type(backend.manager._loaded.pipe)
    calls = []
    real = pipe_cls.set_adapters
    monkeypatch.setattr(pipe_cls, "set_adapters",
                        lambda self, *a, **k: calls.append(a) or real(self, *a, **k))
    np.testing.assert_array_equal(_run(backend, tiny_models.sd1, loras=ink).images[0], first)
    assert calls == []  # same adapters, same weights: nothing to do
    other = _run(backend, tiny_models.sd1, loras=(LoraSpec("Lora/inkwash", 0.2),)).images[0]
    assert len(calls) == 1 and not np.array_equal(other, first)
    _run(backend, tiny_models.sd1)  # off, then the same set again is set again
    np.testing.assert_array_equal(_run(backend, tiny_models.sd1, loras=ink).images[0], first)
    assert len(calls) == 2


def test_flux_lora_applies_to_flux_and_is_refused_for_sd(lora_dir, tiny_models) -> None:
    backend = DiffusersBackend(ModelRegistry([lora_dir], include_hf_cache=False))
    flux = lora_dir / "flux-model"
    base = _run(backend, flux).images[0]
    grain = _run(backend, flux, loras=(LoraSpec("loras/flux-grain", 1.0),)).images[0]
    assert not np.array_equal(base, grain)
    with pytest.raises(ModelError, match="for Flux.1 models"):
        _run(backend, tiny_models.sd1, loras=(LoraSpec("loras/flux-grain", 1.0),))
    with pytest.raises(ModelError, match="not a LoRA"):
        _run(backend, tiny_models.sd1, loras=(LoraSpec(str(tiny_models.sd1), 1.0),))


def test_a_lora_file_is_listed_as_a_lora(lora_dir) -> None:
    info = inspect_path(lora_dir / "Lora" / "inkwash-kohya.safetensors")
    assert info.kind == LORA and info.usable and info.triggers == ("inkwash", "fox")
