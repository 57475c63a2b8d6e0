"""Model registry: discovery, family/kind detection from headers, pickles never unpickled."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from canvasai.backends.models import (
    BASE,
    CONTROLNET,
    INPAINT,
    REFUSED,
    SD1,
    SDXL,
    TAESD,
    UNSUPPORTED,
    UPSCALER,
    ModelRegistry,
    classify_checkpoint,
    inspect_path,
    read_safetensors_header,
)
from canvasai.core.errors import ModelError


def _save(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    from safetensors.numpy import save_file

    save_file({k: np.zeros(s, np.float16) for k, s in shapes.items()}, str(path))
    return path


SD1_KEYS = {
    "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
    "first_stage_model.encoder.conv_in.weight": (8, 3, 3, 3),
}
SDXL_KEYS = {
    "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
    "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (1280,),
}


class Evil:
    """Unpickling this creates the marker file: proof that a payload ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.marker), "w"))


def test_scan_finds_tiny_folders_and_single_files(tiny_registry: ModelRegistry) -> None:
    models = {m.name: m for m in tiny_registry.rescan()}
    assert models["sd1-tiny"].kind == BASE and models["sd1-tiny"].family == SD1
    assert models["sd1-tiny"].format == "diffusers"
    assert models["sd1-tiny-inpaint"].kind == INPAINT
    single = models["single/sd1-tiny-single"]
    assert (single.kind, single.family, single.format) == (BASE, SD1, "single_file")
    assert models["single/sd1-tiny-inpaint-single"].kind == INPAINT
    cn = models["controlnet/sd1-tiny-controlnet-scribble"]
    assert (cn.kind, cn.control_type) == (CONTROLNET, "scribble")
    assert models["sd-x4-upscaler-tiny"].kind == UPSCALER
    assert models["taesd-tiny"].kind == TAESD
    assert (models["sdxl-tiny"].family, models["sdxl-tiny"].kind) == (SDXL, BASE)
    # config sidecars of single files are not models of their own
    assert not any(name.endswith(".config") for name in models)
    assert all(m.size_bytes > 0 for m in models.values())


def test_header_classification_sd1_sdxl_inpaint_controlnet(tmp_path: Path) -> None:
    sd1 = inspect_path(_save(tmp_path / "dreamshaper.safetensors", SD1_KEYS))
    assert (sd1.family, sd1.kind) == (SD1, BASE)
    xl = inspect_path(_save(tmp_path / "juggernaut.safetensors", SDXL_KEYS))
    assert (xl.family, xl.kind) == (SDXL, BASE)
    xl_inp = dict(SDXL_KEYS)
    xl_inp["model.diffusion_model.input_blocks.0.0.weight"] = (320, 9, 3, 3)
    info = inspect_path(_save(tmp_path / "xl-inpaint.safetensors", xl_inp))
    assert (info.family, info.kind) == (SDXL, INPAINT)
    cn = inspect_path(
        _save(
            tmp_path / "control_v11p_sd15_canny.safetensors",
            {
                "control_model.input_hint_block.0.weight": (16, 3, 3, 3),
                "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
            },
        )
    )
    assert (cn.family, cn.kind, cn.control_type) == (SD1, CONTROLNET, "canny")
    lora = classify_checkpoint({"lora_unet_down_blocks_0.lora_up.weight": (4, 4)})
    assert lora.kind == UNSUPPORTED and "LoRA" in lora.note


def test_hf_cache_layout(tmp_path: Path, tiny_models) -> None:
    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-sd"
    snap = repo / "snapshots" / "0123abcd"
    shutil.copytree(tiny_models.sd1, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    files = cache / "models--someone--checkpoints" / "snapshots" / "ffff"
    files.mkdir(parents=True)
    _save(files / "xl-model.safetensors", SDXL_KEYS)
    reg = ModelRegistry([], include_hf_cache=True, hf_cache=cache)
    models = {m.name: m for m in reg.models()}
    assert models["someone/tiny-sd"].kind == BASE
    assert models["someone/tiny-sd"].path == snap
    assert models["someone/checkpoints/xl-model"].family == SDXL
    assert reg.resolve("someone/tiny-sd").path == snap


def test_hf_cache_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from canvasai.backends.models import hf_cache_dir

    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hf_cache_dir() == tmp_path / "c"


def test_pickle_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    ckpt = tmp_path / "models" / "evil-model.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(pickle.dumps({"state_dict": Evil(marker)}))
    assert pickle.loads(pickle.dumps(0)) == 0  # sanity: pickle itself works here
    reg = ModelRegistry([ckpt.parent], include_hf_cache=False)
    (info,) = reg.models()
    assert info.kind == REFUSED and info.format == "pickle"
    assert "pickle" in info.note.lower()
    assert reg.resolve(str(ckpt)).kind == REFUSED
    from canvasai.backends.api import GenerationRequest, Task
    from canvasai.backends.router import backend_for

    with pytest.raises(ModelError, match="pickle"):
        backend_for(
            GenerationRequest(Task.TXT2IMG, model=str(ckpt)),
            {"models_dirs": [ckpt.parent], "include_hf_cache": False},
        )
    assert not marker.exists()


def test_allowed_pickle_is_read_with_weights_only(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    ckpt = tmp_path / "evil.pt"
    ckpt.write_bytes(pickle.dumps({"state_dict": Evil(marker)}))
    reg = ModelRegistry([tmp_path], include_hf_cache=False, allow_pickle=[ckpt])
    with pytest.raises(ModelError, match="plain weights"):
        reg.resolve(str(ckpt))
    assert not marker.exists()
    # a genuine weights-only pickle is accepted once allowed
    import torch

    good = tmp_path / "sd1.ckpt"
    torch.save({k: torch.zeros(s) for k, s in SD1_KEYS.items()}, good)
    assert reg.resolve(str(good)).kind == REFUSED  # not allowed: untouched
    reg2 = ModelRegistry([tmp_path], include_hf_cache=False, allow_pickle=[good])
    info = reg2.resolve(str(good))
    assert (info.family, info.kind, info.format) == (SD1, BASE, "pickle")


def test_diffusers_folder_with_bin_weights_is_refused(tmp_path: Path, tiny_models) -> None:
    folder = tmp_path / "old-model"
    shutil.copytree(tiny_models.sd1, folder)
    for f in (folder / "unet").glob("*.safetensors"):
        f.rename(f.with_name("diffusion_pytorch_model.bin"))
    info = inspect_path(folder)
    assert info.kind == REFUSED and ".bin" in info.note


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x05\x00",
        (10**9).to_bytes(8, "little") + b"{}",
        (20).to_bytes(8, "little") + b"not json at all!!!!!",
        (2).to_bytes(8, "little") + b"[]",
    ],
)
def test_corrupt_safetensors_gives_clear_error(tmp_path: Path, payload: bytes) -> None:
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(payload)
    with pytest.raises(ModelError, match="safetensors"):
        read_safetensors_header(bad)
    reg = ModelRegistry([tmp_path], include_hf_cache=False)
    (info,) = reg.models()
    assert info.kind == UNSUPPORTED and reg.errors
    with pytest.raises(ModelError, match="broken.safetensors"):
        reg.resolve(str(bad))


def test_truncated_safetensors_detected(tmp_path: Path) -> None:
    good = _save(tmp_path / "model.safetensors", SD1_KEYS)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated"):
        read_safetensors_header(good)


def test_unknown_name_lists_installed(tiny_registry: ModelRegistry) -> None:
    with pytest.raises(ModelError, match="sd1-tiny") as err:
        tiny_registry.resolve("no-such-model")
    assert "Unknown model" in str(err.value)
    with pytest.raises(ModelError, match="does not exist"):
        tiny_registry.resolve("/nowhere/model.safetensors")


def test_find_by_kind_and_control_type(tiny_registry: ModelRegistry) -> None:
    assert tiny_registry.find(CONTROLNET, SD1, "scribble") is not None
    assert tiny_registry.find(CONTROLNET, SD1, "depth") is None
    assert tiny_registry.find(TAESD, SD1).name == "taesd-tiny"


def test_default_models_dir_follows_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from canvasai.backends.models import default_models_dir

    monkeypatch.setenv("CANVASAI_DATA_DIR", str(tmp_path))
    assert default_models_dir() == tmp_path / "models"
    monkeypatch.setenv(
        "CANVASAI_MODELS_DIR", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")])
    )
    assert ModelRegistry().models_dirs == [tmp_path / "a", tmp_path / "b"]


def test_registry_and_router_do_not_import_torch() -> None:
    code = (
        "import sys, canvasai.backends.models, canvasai.backends.router, "
        "canvasai.backends.previews, canvasai.backends.device\n"
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "print(json.dumps(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert json.loads(out.stdout) == []
