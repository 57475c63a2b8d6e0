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

from canvasai.backends import models
from canvasai.backends.models import (
    BASE,
    CONTROLNET,
    INPAINT,
    REFUSED,
    SD1,
    SDXL,
    TAESD,
    UPSCALER,
    ModelRegistry,
    classify_checkpoint,
    inspect_path,
    read_safetensors_header,
)
from canvasai.core import settings
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
    assert (lora.kind, lora.family) == ("lora", SD1)


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
        backend_for(GenerationRequest(Task.TXT2IMG, model=str(ckpt)), registry=reg)
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
    assert info.kind == REFUSED and not info.usable and reg.errors
    assert "safetensors" in info.note
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
    monkeypatch.delenv("CANVASAI_MODELS_DIR", raising=False)
    settings.reset(settings.MemoryStore())
    assert default_models_dir() == tmp_path / "models"
    assert ModelRegistry().models_dirs == [tmp_path / "models"]
    monkeypatch.setenv(
        "CANVASAI_MODELS_DIR", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")])
    )
    settings.reset(settings.MemoryStore())  # the variable is read with the settings
    assert ModelRegistry().models_dirs == [tmp_path / "a", tmp_path / "b"]
    assert models.registry().models_dirs == [tmp_path / "a", tmp_path / "b"]


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


# ---------------------------------------------------------------------------------------------
# hostile entries: each one is listed as refused with its reason and never hides the rest


def _raw_safetensors(path: Path, header: object, data: bytes = b"\0\0") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    return path


def _json_folder(folder: Path, files: dict[str, object]) -> Path:
    for rel, content in files.items():
        f = folder / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(content if isinstance(content, str) else json.dumps(content))
    return folder


def _hostile(root: Path) -> dict[str, str]:
    """Build one of each hostile entry under `root`; returns {entry name: expected reason}."""
    _raw_safetensors(
        root / "shape-not-list.safetensors",
        {"w": {"dtype": "F16", "shape": 5, "data_offsets": [0, 2]}},
    )
    _raw_safetensors(
        root / "null-offsets.safetensors",
        {"w": {"dtype": "F16", "shape": [1], "data_offsets": None}},
    )
    _raw_safetensors(
        root / "offsets-backwards.safetensors",
        {"w": {"dtype": "F16", "shape": [1], "data_offsets": [2, "0"]}},
    )
    _raw_safetensors(
        root / "shape-of-strings.safetensors",
        {"w": {"dtype": "F16", "shape": ["320", 4], "data_offsets": [0, 2]}},
    )
    nested = b"[" * 100_000
    (root / "deep-json.safetensors").write_bytes(len(nested).to_bytes(8, "little") + nested)
    good = _save(root / "truncated.safetensors", SD1_KEYS)
    good.write_bytes(good.read_bytes()[:-100])
    _json_folder(
        root / "nine-as-text",
        {
            "model_index.json": {"_class_name": "StableDiffusionPipeline"},
            "unet/config.json": {"in_channels": "nine", "cross_attention_dim": 768},
        },
    )
    _json_folder(root / "index-is-a-list", {"model_index.json": [1, 2, 3]})
    _json_folder(root / "config-is-a-string", {"config.json": json.dumps("just a string")})
    _json_folder(root / "unet-config-null", {"model_index.json": {}, "unet/config.json": "null"})
    _json_folder(root / "not-json", {"config.json": "{'_class_name': 'ControlNetModel',"})
    (root / "dangling.safetensors").symlink_to(root / "gone" / "model.safetensors")
    (root / "loop").symlink_to("loop")
    return {
        "shape-not-list": "shape",
        "null-offsets": "data_offsets",
        "offsets-backwards": "data_offsets",
        "shape-of-strings": "shape",
        "deep-json": "not JSON",
        "truncated": "truncated",
        "nine-as-text": "in_channels",
        "index-is-a-list": "not a JSON object",
        "config-is-a-string": "not a JSON object",
        "unet-config-null": "not a JSON object",
        "not-json": "not valid JSON",
        "dangling": "points nowhere",
        "loop": "cannot be followed",
    }


def test_each_hostile_entry_is_refused_with_its_reason(tmp_path: Path, tiny_models) -> None:
    root = tmp_path / "models"
    root.mkdir()
    expected = _hostile(root)
    shutil.copytree(tiny_models.sd1, root / "good-folder")
    _save(root / "good-file.safetensors", SD1_KEYS)
    # a ControlNet config with a list where a number belongs is odd, not fatal
    _json_folder(
        root / "odd-controlnet-canny",
        {"config.json": {"_class_name": "ControlNetModel", "cross_attention_dim": [768]}},
    )
    reg = ModelRegistry([root], include_hf_cache=False)
    found = {m.name: m for m in reg.models()}

    assert found["good-folder"].usable and found["good-folder"].kind == BASE
    assert found["good-file"].usable and found["good-file"].family == SD1
    odd = found["odd-controlnet-canny"]
    assert (odd.kind, odd.control_type, odd.family) == (CONTROLNET, "canny", "unknown")
    for name, reason in expected.items():
        info = found[name]
        assert info.kind == REFUSED and not info.usable, name
        assert reason in info.note, (name, info.note)
    assert len(found) == len(expected) + 3
    assert len(reg.errors) == len(expected)
    # resolving: the good ones run, the bad ones fail with their reason (never a TypeError)
    assert reg.resolve("good-folder").kind == BASE
    with pytest.raises(ModelError, match="in_channels"):
        reg.resolve(str(root / "nine-as-text"))
    with pytest.raises(ModelError, match="shape"):
        reg.resolve(str(root / "shape-not-list.safetensors"))
    from canvasai.backends.api import GenerationRequest, Task
    from canvasai.backends.router import backend_for

    with pytest.raises(ModelError, match="was not loaded: .*data_offsets"):
        backend_for(GenerationRequest(Task.TXT2IMG, model="null-offsets"), registry=reg)


def _deny_listing(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make `folder` unreadable even for root (tests run as root: chmod 000 alone is not
    enough), the way the scan lists folders."""
    real_scandir = os.scandir

    def scandir(path=".", *args, **kwargs):
        if Path(os.fspath(path)) == folder:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_sub_folder_is_refused_and_hides_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "models"
    locked = root / "locked"
    locked.mkdir(parents=True)
    _save(locked / "inside.safetensors", SD1_KEYS)
    _save(root / "zz-after.safetensors", SD1_KEYS)
    locked.chmod(0)
    try:
        _deny_listing(monkeypatch, locked)
        reg = ModelRegistry([root], include_hf_cache=False)
        found = {m.name: m for m in reg.models()}
    finally:
        locked.chmod(0o755)
    assert found["locked"].kind == REFUSED
    assert "Permission denied" in found["locked"].note
    assert found["zz-after"].usable
    assert set(found) == {"locked", "zz-after"}


def test_unreadable_models_folder_is_an_error_not_an_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "models"
    root.mkdir()
    _deny_listing(monkeypatch, root)
    reg = ModelRegistry([root], include_hf_cache=False)
    assert reg.models() == []
    assert any("Permission denied" in e for e in reg.errors)
    with pytest.raises(ModelError, match="No models are installed"):
        reg.resolve("anything")


def test_models_command_lists_refused_entries_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from canvasai.cli.models import main as models_main

    root = tmp_path / "models"
    root.mkdir()
    expected = _hostile(root)
    _save(root / "good-file.safetensors", SD1_KEYS)
    monkeypatch.setenv("CANVASAI_MODELS_DIR", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    settings.reset(settings.MemoryStore())

    assert models_main([]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert out.splitlines()[0].startswith("classic")
    assert "good-file  (sd1, base, single_file, " in out
    assert f"refused ({len(expected)}):" in out
    for name, reason in expected.items():
        line = next(x for x in out.splitlines() if x.strip().startswith(f"{name}  [refused]"))
        assert reason in line

    assert models_main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in data["models"]] == ["classic", "good-file"]
    refused_rows = {r["name"]: r for r in data["refused"]}
    assert set(refused_rows) == set(expected)
    assert all(not r["usable"] and r["note"] for r in refused_rows.values())
    assert data["models_dirs"] == [str(root)] and data["ok"] is True


def test_models_command_survives_a_broken_registry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from canvasai.cli.models import main as models_main

    def broken(*_a, **_k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(models, "registry", broken)
    assert models_main(["--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["models"][0]["name"] == "classic" and "disk on fire" in data["errors"][0]
    assert models_main([]) == 1
    assert "Traceback" not in "".join(capsys.readouterr())


# ---------------------------------------------------------------------------------------------
# links: each real folder and file is visited once


def test_self_links_do_not_multiply_a_model(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "sub").mkdir(parents=True)
    _save(root / "sub" / "only.safetensors", SD1_KEYS)
    for i in range(16):
        (root / f"link{i:02d}").symlink_to(".")
        (root / "sub" / f"up{i:02d}").symlink_to("..")
    (root / "a-alias.safetensors").symlink_to(root / "sub" / "only.safetensors")
    (root / "b-alias-folder").symlink_to(root / "sub")
    reg = ModelRegistry([root, root / "sub"], include_hf_cache=False)
    found = reg.models()
    assert [m.name for m in found] == ["sub/only"]  # once, under its real name
    assert reg.errors == []


def test_linked_model_outside_the_folder_is_found_once(tmp_path: Path, tiny_models) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tiny_models.sd1, elsewhere / "sd1-copy")
    root = tmp_path / "models"
    root.mkdir()
    (root / "linked").symlink_to(elsewhere / "sd1-copy")
    (root / "linked-again").symlink_to(elsewhere / "sd1-copy")
    (root / "shelf").symlink_to(elsewhere)
    reg = ModelRegistry([root], include_hf_cache=False)
    assert [(m.name, m.kind) for m in reg.models()] == [("linked", BASE)]


def test_scan_depth_limit_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "models"
    deep = root.joinpath(*"abcdefg")
    deep.mkdir(parents=True)
    _save(root / "a" / "b" / "shallow.safetensors", SD1_KEYS)
    _save(deep / "too-deep.safetensors", SD1_KEYS)
    names = [m.name for m in ModelRegistry([root], include_hf_cache=False).models()]
    assert names == ["a/b/shallow"]


# ---------------------------------------------------------------------------------------------
# one registry for the panel, the router and the CLI


def test_one_shared_registry_follows_the_settings(models_dir: Path, tmp_path: Path) -> None:
    reg = models.registry()
    assert models.registry() is reg and reg.models_dirs == [models_dir]
    assert models.registry(settings.current().models) is reg
    _save(models_dir / "first.safetensors", SD1_KEYS)
    assert [m.name for m in models.rescan()] == ["first"]
    assert [m.name for m in reg.models()] == ["first"]  # everyone sees the rescan
    other = tmp_path / "other-models"
    other.mkdir()
    settings.update(**{"models/models_dirs": [str(other)]})
    fresh = models.registry()
    assert fresh is not reg and fresh.models_dirs == [other] and fresh.models() == []
    settings.update(**{"models/include_hf_cache": False})
    assert models.registry() is not fresh and not models.registry().include_hf_cache


def test_unknown_name_rescans_once_before_failing(models_dir: Path) -> None:
    reg = models.registry()
    assert reg.models() == []
    scans = reg.scans
    _save(models_dir / "late.safetensors", SD1_KEYS)
    assert reg.resolve("late").family == SD1  # not in the last scan: one rescan finds it
    assert reg.scans == scans + 1
    reg.resolve("late")
    assert reg.scans == scans + 1  # known now: no more scanning
    with pytest.raises(ModelError, match="Unknown model 'nope'. Installed: late"):
        reg.resolve("nope")
    assert reg.scans == scans + 2
    with pytest.raises(ModelError, match="does not exist"):
        reg.resolve(str(models_dir / "nope.safetensors"))  # a path: nothing to rescan
    assert reg.scans == scans + 2


def test_concurrent_rescans_are_consistent(models_dir: Path) -> None:
    import threading

    for i in range(6):
        _save(models_dir / f"m{i}.safetensors", SD1_KEYS)
    reg = models.registry()
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                results.append([m.name for m in models.rescan()])
                results.append([m.name for m in reg.models()])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(r == [f"m{i}" for i in range(6)] for r in results)
    assert reg.scans >= 30


def test_config_folders_follow_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from canvasai.backends.diffusion.pipelines import configs_root
    from canvasai.core.paths import resource

    monkeypatch.delenv("CANVASAI_MODEL_CONFIGS", raising=False)
    settings.reset(settings.MemoryStore())
    assert configs_root() == resource("model_configs")
    monkeypatch.setenv("CANVASAI_MODEL_CONFIGS", str(tmp_path / "configs"))
    settings.reset(settings.MemoryStore())
    assert configs_root() == tmp_path / "configs"
    settings.update(**{"models/configs_dir": str(tmp_path / "mine")})
    assert configs_root() == tmp_path / "mine"
