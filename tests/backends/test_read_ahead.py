"""Weights are read into the OS cache (GIL released) before diffusers maps them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canvasai.backends.diffusion import read_ahead as ra
from canvasai.backends.models import BASE, SD1, ModelInfo


def _info(path: Path, parts: tuple[tuple[str, Path], ...] = ()) -> ModelInfo:
    return ModelInfo(name=path.name, path=path, family=SD1, kind=BASE,
                     format="diffusers" if path.is_dir() else "single_file", parts=parts)


def _write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    return path


def test_a_folder_reads_the_named_components_plain_files_before_variants(tmp_path: Path) -> None:
    root = tmp_path / "model"
    root.mkdir()
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"]}))
    unet = _write(root / "unet" / "diffusion_pytorch_model.safetensors", 1000)
    _write(root / "unet" / "diffusion_pytorch_model.fp16.safetensors", 500)  # not asked for
    vae16 = _write(root / "vae" / "diffusion_pytorch_model.fp16.safetensors", 300)  # all it has
    shards = [_write(root / "text_encoder" / f"model-0000{i}-of-00002.safetensors", 200)
              for i in (1, 2)]
    _write(root / "text_encoder" / "model.bin", 100)  # never read: safetensors only
    _write(root / "safety_checker" / "model.safetensors", 100)  # not part of the pipeline
    _write(root / "leftovers" / "model.safetensors", 100)

    assert sorted(ra.weight_files(_info(root))) == sorted([unet, vae16, *shards])


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ra, "CHUNK_BYTES", 1 << 16)


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "readinto"])
def test_a_file_and_its_parts_are_read_and_every_byte_once(
        tmp_path: Path, sendfile: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if sendfile and not ra._sendfile_works[0]:
        pytest.skip("no sendfile to /dev/null here")
    monkeypatch.setattr(ra, "_sendfile_works", [sendfile])
    main = _write(tmp_path / "flux.safetensors", 3 * ra.CHUNK_BYTES // 2)
    te = _write(tmp_path / "t5.safetensors", 1234)
    ckpt = _write(tmp_path / "old.ckpt", 50)  # pickles are never mapped: nothing to read
    info = _info(main, parts=(("text_encoder_2", te), ("vae", ckpt)))
    files = ra.weight_files(info)
    assert files == [main, te]

    calls: list[int] = []
    done = ra.read_ahead(files, checkpoint=lambda: calls.append(1), available=1 << 40)
    assert done == main.stat().st_size + te.stat().st_size
    assert len(calls) == 3  # once a chunk: two of the big file, one of the small


def test_too_big_for_the_memory_available_is_left_to_the_load(tmp_path: Path) -> None:
    f = _write(tmp_path / "big.safetensors", 4096)
    assert ra.read_ahead([f], available=4096) == 0  # over half of what is available
    assert ra.read_ahead([f], available=3 * 4096) == 4096
    assert ra.read_ahead([tmp_path / "missing.safetensors"]) == 0


def test_a_cancelled_load_stops_reading_at_once(tmp_path: Path) -> None:
    f = _write(tmp_path / "big.safetensors", 4 * ra.CHUNK_BYTES)
    calls: list[int] = []

    class Abandoned(Exception):
        pass

    def checkpoint() -> None:
        calls.append(1)
        raise Abandoned

    with pytest.raises(Abandoned):
        ra.read_ahead([f], checkpoint=checkpoint, available=1 << 40)
    assert len(calls) == 1


def test_loading_a_model_reads_its_weights_ahead_first(
        tiny_models, tiny_registry, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from canvasai.backends.diffusion import pipelines

    seen: list[list[Path]] = []
    real = pipelines.read_ahead

    def spy(paths, checkpoint=lambda: None, available=None):  # noqa: ANN001, ANN202
        seen.append(list(paths))
        return real(paths, checkpoint, available)

    monkeypatch.setattr(pipelines, "read_ahead", spy)
    manager = pipelines.PipelineManager(tiny_registry)
    info = tiny_registry.resolve(str(tiny_models.sd1))
    loaded = manager.load(info)
    assert loaded.pipe is not None
    assert seen == [ra.weight_files(info)]
    names = {p.parent.name for p in seen[0]}
    assert names == {"unet", "vae", "text_encoder"}


def test_where_sendfile_cannot_write_to_devnull_readinto_takes_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    def refuse(*_a: object) -> int:
        raise OSError(errno.ENOTSOCK, "Socket operation on non-socket")  # macOS

    monkeypatch.setattr(ra, "_sendfile_works", [True])
    monkeypatch.setattr(os, "sendfile", refuse, raising=False)
    f = _write(tmp_path / "m.safetensors", 5 * ra.CHUNK_BYTES + 7)
    assert ra.read_ahead([f, f], available=1 << 40) == 2 * f.stat().st_size
    assert ra._sendfile_works == [False]  # asked once, not for every file
