"""Tokenizers for the pipelines: each built once per process, in pieces the GUI can wait out.

Building a tokenizer is CPU work inside transformers and the Rust ``tokenizers``
library, and it holds the GIL while it runs: 60-180 ms in one piece here for the CLIP
tokenizer every Stable Diffusion model uses, more for bigger vocabularies. The GUI
thread cannot run a line of Python meanwhile (issue 11: no stall over 50 ms while a
model loads). Two things keep that off the GUI:

- `load_tokenizer` keeps what it built (at most `TOKENIZERS_KEPT`) while the files are
  unchanged, so only a model's first load in a process pays: switching back to a model,
  the load after a cancelled one and a reload after an out-of-memory step-down do not.
- For a BPE tokenizer in its published layout (``vocab.json`` + ``merges.txt``, no
  ``tokenizer.json``: the CLIP tokenizers of SD 1.x, SDXL, SD 3 and Flux, and the one
  bundled for single files), the vocabulary and merges are read here and handed to
  ``from_pretrained`` (see `_ItemByItem` for the form the merges take), where
  transformers would have the Rust side parse both files in one call. Measured on the
  bundled CLIP tokenizer alone: the longest hold 66-94 ms -> 21-31 ms, the whole build
  70-90 -> 130-145 ms; in a full-size SD 1.5 cold job (benchmarks/editing.py) the
  longest GUI stall went 78-114 -> 51-54 ms. The tokenizer is the same (a test
  compares them).

A folder with a ``tokenizer.json`` goes through transformers' own path (it reads that
file, whatever else is passed), and still holds the GIL while ``json`` parses it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from canvasai.backends import models

TOKENIZERS_KEPT = 8
_kept: dict[tuple, Any] = {}


def load_tokenizer(cls: Any, folder: Path, **kwargs: Any) -> Any:
    """``cls.from_pretrained(folder, **kwargs)`` offline, built once while the folder's
    files (names, times, sizes) are unchanged; `kwargs` values must be hashable."""
    folder = Path(folder)
    stats = [(f.name, f.stat()) for f in folder.iterdir() if f.is_file()]
    stamp = tuple(sorted((name, st.st_mtime_ns, st.st_size) for name, st in stats))
    key = (cls.__module__, cls.__qualname__, str(folder.resolve()), stamp,
           tuple(sorted(kwargs.items())))
    tok = _kept.pop(key, None)
    if tok is None:
        pieces = _bpe_in_pieces(cls, folder)
        tok = cls.from_pretrained(folder, local_files_only=True, **(pieces | kwargs))
        if isinstance(merges := pieces.get("merges"), _ItemByItem):
            merges.release()  # the tokenizer keeps a reference; the Rust side has its copy
    _kept[key] = tok  # the most recently used last
    while len(_kept) > TOKENIZERS_KEPT:
        del _kept[next(iter(_kept))]
    return tok


def folder_tokenizers(folder: Path) -> dict[str, Any]:
    """The tokenizers of a diffusers folder (as ``model_index.json`` names them), through
    `load_tokenizer`; pass them to the pipeline's ``from_pretrained``. A tokenizer whose
    class or folder is missing is left out (diffusers then says what is wrong)."""
    out: dict[str, Any] = {}
    for name, (library, class_name) in models.pipeline_components(folder).items():
        sub = folder / name
        if not name.startswith("tokenizer") or library != "transformers" or not sub.is_dir():
            continue
        import transformers

        cls = getattr(transformers, class_name, None)
        if cls is not None:
            out[name] = load_tokenizer(cls, sub)
    return out


def _bpe_in_pieces(cls: Any, folder: Path) -> dict[str, Any]:
    """``vocab`` and ``merges`` for `cls.from_pretrained`, read in short GIL holds, when
    `cls` is a BPE tokenizer and `folder` holds its vocab and merges files (and no
    ``tokenizer.json``, which transformers would read instead); else nothing."""
    from tokenizers.models import BPE

    names = getattr(cls, "vocab_files_names", {})
    vocab_name, merges_name = names.get("vocab_file"), names.get("merges_file")
    if getattr(cls, "model", None) is not BPE or not vocab_name or not merges_name:
        return {}
    vocab_file, merges_file = folder / vocab_name, folder / merges_name
    if (folder / names.get("tokenizer_file", "tokenizer.json")).exists() or not (
            vocab_file.is_file() and merges_file.is_file()):
        return {}
    try:
        return {"vocab": read_vocab(vocab_file), "merges": _ItemByItem(read_merges(merges_file))}
    except (OSError, ValueError):
        return {}  # transformers reads the files itself and reports what is wrong


def _int(text: str) -> int:
    # A Python function: json's C parser calls it for every number, and each call is a
    # point where the interpreter may hand the GIL to a waiting thread.
    return int(text)


def read_vocab(path: Path) -> dict[str, int]:
    """A BPE ``vocab.json`` (token -> id), parsed with a GIL hand-over point per entry."""
    vocab = json.loads(path.read_text(encoding="utf-8"), parse_int=_int)
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise ValueError(f"{path.name} is not a token -> id mapping")
    return vocab


def read_merges(path: Path) -> list[tuple[str, str]]:
    """A BPE ``merges.txt`` as the Rust reader takes it: one ``a b`` pair a line, lines
    starting with ``#version`` skipped (blank lines are skipped too)."""
    merges = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        line = line.removesuffix("\r")
        if not line or line.startswith("#version"):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{path.name}: {line!r} is not a pair")
        merges.append((parts[0], parts[1]))
    return merges


class _ItemByItem(Sequence):
    """The merges as a sequence that is neither a list nor a tuple.

    Why: ``from_pretrained`` rewrites every list and tuple among its arguments into
    lists (its added-token conversion), and the Rust BPE only takes a sequence of
    tuples, so a plain list of pairs would be refused. A sequence of another type
    passes through unchanged, and the Rust side reads it pair by pair.
    """

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def release(self) -> None:
        """Drop the pairs (~8 MB of Python objects for CLIP's 48,894)."""
        self._items = []

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        yield from self._items
