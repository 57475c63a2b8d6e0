"""CanvasAI's own data inside an .ora: JSON with binary values moved to zip members.

Generation history, layer generation parameters and document metadata are
plain JSON-like values, except that they may hold images (numpy arrays, e.g.
thumbnails of past generations) or raw bytes. `pack` replaces each such value
by a small reference object and returns the members to store next to the JSON:

- uint8 arrays of shape (h, w) or (h, w, 1..4) -> ``{"$png": member, "shape": [...]}``
- other arrays -> ``{"$array": nested lists, "dtype": str}`` (small values only)
- bytes -> ``{"$bytes": member}``
- enums -> their value, tuples -> lists, numpy scalars -> Python numbers,
  anything else -> `str(value)` (never fatal: a save must not fail on metadata).

`unpack` reverses this given a function that reads members (with the reader's
size caps). Unknown or broken references unpack to None.
"""

from __future__ import annotations

import enum
import io
import math
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

import numpy as np
from PIL import Image

from canvasai.core.errors import FileFormatError
from canvasai.document.image_io import decode_image

EXTRAS_DIR = "canvasai/"
BLOB_DIR = "canvasai/blobs/"

_PNG_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def encode_png(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of a uint8 (h, w) or (h, w, 1..4) array."""
    a = np.ascontiguousarray(pixels)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    mode = "L" if a.ndim == 2 else _PNG_MODES[a.shape[2]]
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, "PNG", compress_level=compress_level)
    return buf.getvalue()


class Packer:
    """Collects binary members while turning values into JSON-safe ones."""

    def __init__(self, prefix: str = BLOB_DIR, compress_level: int = 1) -> None:
        self.prefix = prefix
        self.compress_level = compress_level
        self.members: dict[str, bytes] = {}

    def _member(self, suffix: str) -> str:
        return f"{self.prefix}{len(self.members):05d}{suffix}"

    def pack(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, enum.Enum):
            return self.pack(value.value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if isinstance(value, np.generic):
            return self.pack(value.item())
        if isinstance(value, dict):
            return {
                str(k.value if isinstance(k, enum.Enum) else k): self.pack(v)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.pack(v) for v in value]
        if isinstance(value, (bytes, bytearray, memoryview)):
            name = self._member(".bin")
            self.members[name] = bytes(value)
            return {"$bytes": name}
        if isinstance(value, np.ndarray):
            if (
                value.dtype == np.uint8
                and value.size
                and (value.ndim == 2 or (value.ndim == 3 and 1 <= value.shape[2] <= 4))
            ):
                name = self._member(".png")
                self.members[name] = encode_png(value, self.compress_level)
                return {"$png": name, "shape": list(value.shape)}
            return {"$array": value.tolist(), "dtype": str(value.dtype)}
        if isinstance(value, PurePath):
            return str(value)
        return str(value)


def unpack(value: Any, read_member: Callable[[str], bytes], max_pixels: int) -> Any:
    """Inverse of `Packer.pack`; `read_member(name)` must enforce the archive's caps."""
    if isinstance(value, list):
        return [unpack(v, read_member, max_pixels) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"$bytes"} and isinstance(value["$bytes"], str):
        try:
            return read_member(value["$bytes"])
        except FileFormatError:
            return None
    if set(value) == {"$png", "shape"} and isinstance(value["$png"], str):
        return _unpack_png(value, read_member, max_pixels)
    if set(value) == {"$array", "dtype"}:
        try:
            return np.asarray(value["$array"], dtype=np.dtype(str(value["dtype"])))
        except (TypeError, ValueError):
            return None
    return {k: unpack(v, read_member, max_pixels) for k, v in value.items()}


def _unpack_png(
    ref: dict[str, Any], read_member: Callable[[str], bytes], max_pixels: int
) -> np.ndarray | None:
    shape = ref.get("shape")
    try:
        rgba = decode_image(read_member(ref["$png"]), ref["$png"], max_pixels, frozenset({"PNG"}))
    except FileFormatError:
        return None
    if (
        not isinstance(shape, list)
        or len(shape) not in (2, 3)
        or tuple(shape[:2]) != rgba.shape[:2]
    ):
        return rgba
    if len(shape) == 2:
        return rgba[:, :, 0].copy()
    channels = shape[2]
    pick = {1: [0], 2: [0, 3], 3: [0, 1, 2], 4: [0, 1, 2, 3]}.get(channels)
    return rgba if pick is None else np.ascontiguousarray(rgba[:, :, pick])
