"""The persistent scan index: an unchanged folder is not read again, a changed file is."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from canvasai.backends import models
from canvasai.backends.models import REFUSED, SD1, SDXL, ModelRegistry
from canvasai.backends.scan_index import ScanIndex, hash_file

SD1_KEYS = {
    "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
}
SDXL_KEYS = {
    "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (1280,),
}


def _save(path: Path, shapes: dict) -> Path:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.zeros(s, np.float16) for k, s in shapes.items()}, str(path))
    return path


def _reads(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = models.inspect_path

    def counting(p, *a, **k):
        calls.append(str(p))
        return real(p, *a, **k)

    monkeypatch.setattr(models, "inspect_path", counting)
    return calls


def _registry(root: Path, index_path: Path) -> ModelRegistry:
    return ModelRegistry([root], include_hf_cache=False, index=ScanIndex(index_path))


def test_unchanged_files_are_not_read_again_and_a_changed_one_is(tmp_path, monkeypatch):
    root = tmp_path / "models"
    a = _save(root / "a.safetensors", SD1_KEYS)
    _save(root / "sub" / "b.safetensors", SDXL_KEYS)
    (root / "half.safetensors").write_bytes(a.read_bytes()[:100])  # a half-downloaded file
    idx = tmp_path / "index.json"
    first = _registry(root, idx).rescan()
    reads = _reads(monkeypatch)
    reg = _registry(root, idx)  # a new process: the index comes from its file
    second = reg.rescan()
    assert reads == []
    assert [(m.name, m.family, m.kind, m.note) for m in second] == [
        (m.name, m.family, m.kind, m.note) for m in first
    ]
    half = next(m for m in second if m.name == "half")
    assert half.kind == REFUSED and "interrupted" in half.note
    assert any("half" in e for e in reg.errors)  # still reported as a problem
    # the file changes (another model saved over it): read again, new classification
    _save(root / "a.safetensors", SDXL_KEYS)
    third = reg.rescan()
    assert reads == [str(root / "a.safetensors")]
    assert next(m for m in third if m.name == "a").family == SDXL
    assert next(m for m in first if m.name == "a").family == SD1


def test_removed_files_leave_the_index(tmp_path):
    root = tmp_path / "models"
    _save(root / "a.safetensors", SD1_KEYS)
    _save(root / "b.safetensors", SD1_KEYS)
    index = ScanIndex(tmp_path / "index.json")
    reg = ModelRegistry([root], include_hf_cache=False, index=index)
    reg.rescan()
    assert len(index) == 2
    (root / "b.safetensors").unlink()
    reg.rescan()
    assert len(index) == 1


def test_links_loops_and_unreadable_folders_with_the_index(tmp_path, monkeypatch):
    root = tmp_path / "models"
    _save(root / "real" / "m.safetensors", SD1_KEYS)
    os.symlink(root / "real", root / "again")  # a duplicate path to the same model
    os.symlink(root, root / "real" / "loop")  # a link back up: must not loop
    (root / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path=".", *a, **k):
        if Path(os.fspath(path)) == root / "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path, *a, **k)

    monkeypatch.setattr(os, "scandir", scandir)
    idx = tmp_path / "index.json"
    for _ in range(2):  # cold, then from the index
        found = _registry(root, idx).rescan()
        usable = [m for m in found if m.usable]
        assert [m.name for m in usable] == ["real/m"]
        locked = [m for m in found if m.name == "locked"]
        assert locked and locked[0].kind == REFUSED and "Permission denied" in locked[0].note


def test_corrupt_index_file_reads_as_empty(tmp_path):
    root = tmp_path / "models"
    _save(root / "a.safetensors", SD1_KEYS)
    idx = tmp_path / "index.json"
    idx.write_text("{not json")
    assert [m.name for m in _registry(root, idx).rescan()] == ["a"]
    assert idx.read_text().startswith("{")  # rewritten


def test_sha256_is_cached_until_the_file_changes(tmp_path):
    f = _save(tmp_path / "a.safetensors", SD1_KEYS)
    index = ScanIndex(tmp_path / "index.json")
    assert index.sha256(f) is None
    digest = hash_file(f)
    index.set_sha256(f, digest)
    index.save()
    assert ScanIndex(tmp_path / "index.json").sha256(f) == digest
    _save(f, SDXL_KEYS)
    assert index.sha256(f) is None


def test_hash_file_can_be_cancelled(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"x" * 100)
    with pytest.raises(InterruptedError):
        hash_file(f, cancelled=lambda: True)
