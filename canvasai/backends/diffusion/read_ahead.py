"""Read a model's weight files into the OS page cache before diffusers loads them.

Why: safetensors maps a weight file and, for every tensor, touches its first page from
inside one call that holds the GIL. When the file is not in the page cache yet (the first
load after a boot, or a model not used for a while), each touch is a disk read done with
the GIL held, and the GUI thread waited 50-100 ms at a time behind it
(``benchmarks/editing.py`` with a full-size model). Reading the files first with calls
that release the GIL (``sendfile`` to /dev/null, else ``readinto``) turns those touches
into page-cache hits; the bytes are read from disk once either way. Nothing is kept in
this process: the pages belong to the OS cache, which the load then maps.

A model larger than half the memory available now is not read ahead: its first files
would be evicted by its last ones before the load reached them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from canvasai.backends.models import ModelInfo, pipeline_components
from canvasai.formats.budget import available_memory

log = logging.getLogger(__name__)

CHUNK_BYTES = 32 << 20  # one read: short enough (~30 ms from disk) to check for cancel often
MEMORY_FRACTION = 0.5


def weight_files(info: ModelInfo) -> list[Path]:
    """The ``.safetensors`` files loading `info` will read (its parts included)."""
    if info.path.is_file():
        files = [info.path]
    elif info.path.is_dir():
        files = _folder_weights(info.path)
    else:
        files = []
    files += [p for _role, p in info.parts if p.is_file()]
    return [p for p in files if p.suffix == ".safetensors"]


def _folder_weights(folder: Path) -> list[Path]:
    """The weights of a diffusers folder: a component folder's files without a variant
    infix (``diffusion_pytorch_model.fp16.safetensors`` is loaded only when asked for),
    unless it has nothing else; only the components ``model_index.json`` names."""
    components = pipeline_components(folder)
    # else a single component folder (a ControlNet, a VAE)
    subs = [folder / k for k in components] if components else [folder]
    files: list[Path] = []
    for sub in subs:
        if not sub.is_dir():
            continue
        found = sorted(sub.glob("*.safetensors"))
        plain = [p for p in found if "." not in p.stem]
        files += plain or found
    return files


def read_ahead(paths: Sequence[Path], checkpoint: Callable[[], None] = lambda: None,
               available: int | None = None) -> int:
    """Read `paths` once, end to end, so that their pages are in the OS cache; returns the
    bytes read (0 when skipped: too big for the memory available, or nothing to read).

    `checkpoint` is called between chunks: a cancelled load stops here (it raises).
    A file that cannot be read is left to the load, which reports it properly.
    """
    sizes = [_size(p) for p in paths]
    total = sum(sizes)
    if total == 0:
        return 0
    limit = (available_memory() if available is None else available) * MEMORY_FRACTION
    if total > limit:
        log.info("not reading %.1f GB of weights ahead: %.1f GB of memory is available",
                 total / 1e9, limit / MEMORY_FRACTION / 1e9)
        return 0
    started = time.perf_counter()
    done = 0
    for path in (p for p, size in zip(paths, sizes, strict=True) if size):
        try:
            done += _read_once(path, checkpoint)
        except OSError:
            log.debug("reading %s ahead failed", path, exc_info=True)
    log.info("read %.2f GB of weights ahead in %.1f s", done / 1e9,
             time.perf_counter() - started)
    return done


_sendfile_works = [hasattr(os, "sendfile")]


def _read_once(path: Path, checkpoint: Callable[[], None]) -> int:
    """Read `path` into the page cache, calling `checkpoint` after each chunk.

    Linux's ``sendfile`` to /dev/null reads the file into the cache without copying it
    out (0.05 s instead of 0.25 s for 1.7 GB already cached; both release the GIL);
    where it cannot write to /dev/null (macOS wants a socket) ``readinto`` does it.
    """
    done = 0
    with open(path, "rb", buffering=0) as fh:
        if _sendfile_works[0]:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                while n := os.sendfile(null, fh.fileno(), done, CHUNK_BYTES):
                    done += n
                    checkpoint()
                return done
            except OSError:
                if done:
                    raise
                _sendfile_works[0] = False
            finally:
                os.close(null)
        buf = memoryview(bytearray(CHUNK_BYTES))
        while n := fh.readinto(buf):
            done += n
            checkpoint()
    return done


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
