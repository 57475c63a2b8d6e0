"""Read the tensor names and shapes of a GGUF file (a quantized transformer), nothing else.

GGUF files (``flux1-dev-Q4_K_S.gguf`` and the like, as ComfyUI-GGUF users keep them)
start with a header: magic ``GGUF``, a version, the tensor and metadata counts, the
metadata key/value pairs, then one entry per tensor (name, dimensions, type,
offset). The registry only needs the names and shapes to tell the family, so this
reads the header with hard limits and never the tensor data. Shapes are returned
in torch order (GGUF stores dimensions innermost first). Loading goes through
diffusers' GGUF support (the ``gguf`` package) on the worker thread.

Every malformed header raises `ModelError` with the reason.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from canvasai.core.errors import ModelError

MAGIC = b"GGUF"
_MAX_TENSORS = 100_000
_MAX_KV = 100_000
_MAX_STRING = 16 * 1024 * 1024
_MAX_DIMS = 8
_MAX_HEADER = 256 * 1024 * 1024

# value types -> struct format of a scalar (8: string, 9: array are handled apart)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}


class _Reader:
    def __init__(self, f: BinaryIO, name: str) -> None:
        self.f = f
        self.name = name

    def take(self, n: int) -> bytes:
        if self.f.tell() + n > _MAX_HEADER:
            raise ModelError(f"{self.name}: the GGUF header is larger than any real model's.")
        data = self.f.read(n)
        if len(data) != n:
            raise ModelError(f"{self.name} is truncated (its GGUF header ends early).")
        return data

    def unpack(self, fmt: str) -> int | float | bool:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self, limit: int, what: str) -> int:
        n = int(self.unpack("<Q"))
        if n > limit:
            raise ModelError(f"{self.name}: {n:,} {what} is not a plausible GGUF header.")
        return n

    def string(self) -> str:
        n = self.count(_MAX_STRING, "bytes of text")
        return self.take(n).decode("utf-8", errors="replace")

    def skip_value(self, vtype: int, depth: int = 0) -> None:
        if vtype in _SCALARS:
            self.take(struct.calcsize(_SCALARS[vtype]))
        elif vtype == 8:
            self.string()
        elif vtype == 9 and depth == 0:
            inner = int(self.unpack("<I"))
            for _ in range(self.count(50_000_000, "array items")):
                self.skip_value(inner, depth + 1)
        else:
            raise ModelError(f"{self.name}: unknown GGUF value type {vtype}.")


def read_gguf_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape (torch order) from the header of a GGUF file."""
    name = os.path.basename(os.fspath(path))
    with open(path, "rb") as f:
        r = _Reader(f, name)
        if r.take(4) != MAGIC:
            raise ModelError(f"{name} is not a GGUF file (wrong magic bytes).")
        version = int(r.unpack("<I"))
        if version not in (2, 3):
            raise ModelError(f"{name}: GGUF version {version} is not supported.")
        n_tensors = r.count(_MAX_TENSORS, "tensors")
        n_kv = r.count(_MAX_KV, "metadata entries")
        for _ in range(n_kv):
            r.string()
            r.skip_value(int(r.unpack("<I")))
        shapes: dict[str, tuple[int, ...]] = {}
        for _ in range(n_tensors):
            tname = r.string()
            n_dims = int(r.unpack("<I"))
            if not 0 < n_dims <= _MAX_DIMS:
                raise ModelError(f"{name}: tensor {tname!r} has {n_dims} dimensions.")
            dims = [int(r.unpack("<Q")) for _ in range(n_dims)]
            r.take(12)  # type (uint32) + offset (uint64)
            shapes[tname] = tuple(reversed(dims))
        return shapes
