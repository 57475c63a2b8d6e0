"""Tokenizers are built once (a build holds the GIL), and a BPE tokenizer in its
published layout is built from vocab and merges read in short pieces, into the same
tokenizer transformers builds from the files."""

from __future__ import annotations

import gc
import json
import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Folders whose tokenizer was built (transformers' from_pretrained) in this test."""
    import transformers

    from canvasai.backends.diffusion import tokenizer_loading

    monkeypatch.setattr(tokenizer_loading, "_kept", {})
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
    from canvasai.backends.diffusion import tokenizer_loading
    from canvasai.backends.diffusion.tokenizer_loading import folder_tokenizers

    copy = tmp_path / "sd1"
    shutil.copytree(tiny_models.sd1, copy)
    a = folder_tokenizers(copy)["tokenizer"]
    assert folder_tokenizers(copy)["tokenizer"] is a and built == ["tokenizer"]
    cfg = copy / "tokenizer" / "tokenizer_config.json"
    st = cfg.stat()
    os.utime(cfg, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # edited
    b = folder_tokenizers(copy)["tokenizer"]
    assert b is not a and len(built) == 2

    monkeypatch.setattr(tokenizer_loading, "TOKENIZERS_KEPT", 2)
    others = []
    for i in range(3):
        other = tmp_path / f"other{i}"
        shutil.copytree(tiny_models.sd1, other)
        others.append(folder_tokenizers(other)["tokenizer"])
    assert len(tokenizer_loading._kept) == 2  # the two used last
    assert folder_tokenizers(tmp_path / "other2")["tokenizer"] is others[2]
    assert folder_tokenizers(copy)["tokenizer"] is not b  # dropped: built again
    assert folder_tokenizers(tmp_path / "no-such-model") == {}


@pytest.fixture
def pieces_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Merges files read by the pieces path in this test."""
    from canvasai.backends.diffusion import tokenizer_loading

    monkeypatch.setattr(tokenizer_loading, "_kept", {})
    seen: list[str] = []
    real = tokenizer_loading.read_merges

    def spy(path: Path) -> list[tuple[str, str]]:
        seen.append(path.parent.name)
        return real(path)

    monkeypatch.setattr(tokenizer_loading, "read_merges", spy)
    return seen


@pytest.mark.parametrize("pad", ["<|endoftext|>", "!"])
def test_the_clip_tokenizer_built_from_pieces_is_the_one_transformers_builds(
        pad: str, pieces_read: list[str]) -> None:
    from transformers import CLIPTokenizer

    from canvasai.backends.diffusion import tokenizer_loading
    from canvasai.backends.diffusion.pipelines import configs_root

    folder = configs_root() / "tokenizer"  # the published SD 1.5 layout: vocab + merges
    ours = tokenizer_loading.load_tokenizer(CLIPTokenizer, folder, pad_token=pad)
    assert pieces_read == ["tokenizer"]
    theirs = CLIPTokenizer.from_pretrained(folder, pad_token=pad)
    # the whole backend (vocab, merges, normaliser, pre-tokeniser, post-processor)
    assert ours.backend_tokenizer.to_str() == theirs.backend_tokenizer.to_str()
    assert (ours.pad_token, ours.pad_token_id, ours.model_max_length, len(ours)) == (
        theirs.pad_token, theirs.pad_token_id, theirs.model_max_length, len(theirs))
    for text in ["A photo of a café in 東京, 🎨", "don't   STOP", "<|startoftext|>x y"]:
        ids = ours(text, padding="max_length", truncation=True, max_length=77).input_ids
        assert ids == theirs(text, padding="max_length", truncation=True,
                             max_length=77).input_ids
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(
            ids, skip_special_tokens=True)
    # the ~8 MB of merge pairs are not kept alive by the tokenizer
    gc.collect()
    assert not [o for o in gc.get_objects()
                if isinstance(o, tokenizer_loading._ItemByItem) and len(o)]


def _published_layout(folder: Path, merges: str) -> Path:
    from tests.support.tiny_models import tiny_tokenizer

    vocab = tiny_tokenizer().get_vocab()
    vocab |= {"ca": len(vocab), "cat</w>": len(vocab) + 1}  # what the merges below make
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text(merges, encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "CLIPTokenizer", "model_max_length": 77}))
    return folder


def test_a_folder_in_the_published_layout_is_read_in_pieces_and_tokenizer_json_is_not(
        tmp_path: Path, pieces_read: list[str]) -> None:
    from transformers import CLIPTokenizer

    from canvasai.backends.diffusion.tokenizer_loading import load_tokenizer

    merges = "#version: 0.2\nc a\nca t</w>\r\n\n"  # a CRLF line and a blank line
    folder = _published_layout(tmp_path / "published", merges)
    ours = load_tokenizer(CLIPTokenizer, folder)
    assert pieces_read == ["published"]
    assert ours.tokenize("cat cab") == ["cat</w>", "ca", "b</w>"]  # both merges applied

    # with a tokenizer.json beside them transformers reads that one, so pieces are not read
    ours.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "tokenizer.json").is_file()
    _published_layout(tmp_path / "both", merges)
    shutil.copy(tmp_path / "saved" / "tokenizer.json", tmp_path / "both")
    again = load_tokenizer(CLIPTokenizer, tmp_path / "both")
    assert pieces_read == ["published"]
    assert again.tokenize("cat cab") == ours.tokenize("cat cab")


def test_files_the_pieces_reader_cannot_take_are_left_to_transformers(tmp_path: Path) -> None:
    from transformers import CLIPTokenizer

    from canvasai.backends.diffusion import tokenizer_loading

    bad = _published_layout(tmp_path / "bad", "#version: 0.2\nc a t\n")
    with pytest.raises(ValueError, match="not a pair"):
        tokenizer_loading.read_merges(bad / "merges.txt")
    assert tokenizer_loading._bpe_in_pieces(CLIPTokenizer, bad) == {}
    with pytest.raises(Exception, match="(?i)merges"):  # transformers' own message
        tokenizer_loading.load_tokenizer(CLIPTokenizer, bad)

    (bad / "merges.txt").write_text("c a\n")
    (bad / "vocab.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="token -> id"):
        tokenizer_loading.read_vocab(bad / "vocab.json")
    assert tokenizer_loading._bpe_in_pieces(CLIPTokenizer, bad) == {}
