"""A model's tokenizers are built once (the build holds the GIL in one piece): a later
load of the same folder reuses them, a changed tokenizer file is built again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Folders whose tokenizer was built (transformers' from_pretrained) in this test."""
    import transformers

    from canvasai.backends.diffusion import pipelines

    monkeypatch.setattr(pipelines, "_folder_tokenizers", {})
    seen: list[str] = []
    real = transformers.CLIPTokenizer.from_pretrained.__func__

    def spy(cls, path, *a, **kw):  # noqa: ANN001, ANN202
        seen.append(Path(path).name)
        return real(cls, path, *a, **kw)

    monkeypatch.setattr(transformers.CLIPTokenizer, "from_pretrained", classmethod(spy))
    return seen


def test_a_reload_of_the_same_model_reuses_its_tokenizer(tiny_models, tiny_registry,
                                                         built) -> None:  # noqa: ANN001
    from canvasai.backends.diffusion.pipelines import PipelineManager

    manager = PipelineManager(tiny_registry)
    info = tiny_registry.resolve(str(tiny_models.sd1))
    first = manager.load(info).pipe
    assert built == ["tokenizer"]
    manager.unload()
    second = manager.load(info).pipe
    assert second is not first and second.text_encoder is not first.text_encoder
    assert second.tokenizer is first.tokenizer and built == ["tokenizer"]
    ids = second.tokenizer("a red fox", padding="max_length", truncation=True,
                           max_length=second.tokenizer.model_max_length).input_ids
    assert len(ids) == second.tokenizer.model_max_length


def test_changed_tokenizer_files_are_built_again_and_the_cache_is_bounded(
        tiny_models, tmp_path: Path, built, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from canvasai.backends.diffusion import pipelines

    copy = tmp_path / "sd1"
    shutil.copytree(tiny_models.sd1, copy)
    a = pipelines.folder_tokenizers(copy)["tokenizer"]
    assert pipelines.folder_tokenizers(copy)["tokenizer"] is a and built == ["tokenizer"]
    cfg = copy / "tokenizer" / "tokenizer_config.json"
    st = cfg.stat()
    os.utime(cfg, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # edited
    b = pipelines.folder_tokenizers(copy)["tokenizer"]
    assert b is not a and len(built) == 2

    monkeypatch.setattr(pipelines, "TOKENIZERS_KEPT", 2)
    others = []
    for i in range(3):
        other = tmp_path / f"other{i}"
        shutil.copytree(tiny_models.sd1, other)
        others.append(pipelines.folder_tokenizers(other)["tokenizer"])
    assert len(pipelines._folder_tokenizers) == 2  # the two used last
    assert pipelines.folder_tokenizers(tmp_path / "other2")["tokenizer"] is others[2]
    assert pipelines.folder_tokenizers(copy)["tokenizer"] is not b  # dropped: built again
    assert pipelines.folder_tokenizers(tmp_path / "no-such-model") == {}
