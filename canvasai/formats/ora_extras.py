"""CanvasAI's own data inside an .ora: JSON with binary values moved to zip members.

Generation history, layer generation parameters and document metadata are
plain JSON-like values, except that they may hold images (numpy arrays, e.g.
thumbnails of past generations) or raw bytes. `pack` replaces each such value
by a small reference object and returns the members to store next to the JSON:

- uint8 arrays of shape (h, w) or (h, w, 1..4) -> ``{"$png": member, "shape": [...]}``
- other numeric arrays (dtype in `ARRAY_DTYPES`) -> ``{"$array": nested lists, "dtype": str}``
  (small values only); arrays of other dtypes are written as plain lists
- bytes -> ``{"$bytes": member}``
- enums -> their value, tuples -> lists, numpy scalars -> Python numbers,
  anything else -> `str(value)` (never fatal: a save must not fail on metadata).

`unpack` reverses this given a function that reads members (with the reader's
size caps). `iter_references` lists the references first, so a reader can
charge every image, array and blob to its memory budget before decoding any
(`array_spec` validates an array's dtype against `ARRAY_DTYPES` and its shape
without building it). A broken reference is an error, or, where the caller
says the extra is optional, unpacks to None with a recorded warning.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator
from pathlib import PurePath
from typing import Any

import numpy as np

from canvasai.core.errors import FileFormatError

# The PNG encoder lives in png_codec; these names stay importable from here
# (benchmarks/files.py and older callers use them).
from canvasai.formats.png_codec import default_workers, encode_png

__all__ = [
    "ARRAY_DTYPES",
    "BLOB_DIR",
    "EXTRAS_DIR",
    "Packer",
    "array_spec",
    "default_workers",
    "encode_png",
    "iter_references",
    "unpack",
]

EXTRAS_DIR = "canvasai/"
BLOB_DIR = "canvasai/blobs/"

# Dtypes an ``$array`` may declare: plain numbers only. Anything else (strings,
# objects, structured or sub-array dtypes such as "(1000,1000,500)f8", whose
# single element is 4 GB) is refused before numpy sees it.
ARRAY_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float16",
        "float32",
        "float64",
    }
)
MAX_ARRAY_DIMS = 8


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
            if value.dtype.name in ARRAY_DTYPES:
                return {"$array": value.tolist(), "dtype": value.dtype.name}
            return self.pack(value.tolist())  # strings, objects...: plain JSON values
        if isinstance(value, PurePath):
            return str(value)
        return str(value)


def iter_references(value: Any) -> Iterator[dict[str, Any]]:
    """Every ``$png`` / ``$array`` / ``$bytes`` reference inside a packed value, in the
    order `unpack` meets them (a reference used twice is yielded twice)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            if _ref_kind(v) is not None:
                yield v
            else:
                stack.extend(reversed(list(v.values())))


def _ref_kind(value: dict[str, Any]) -> str | None:
    keys = set(value)
    if keys == {"$bytes"} and isinstance(value["$bytes"], str):
        return "$bytes"
    if keys == {"$png", "shape"} and isinstance(value["$png"], str):
        return "$png"
    if keys == {"$array", "dtype"}:
        return "$array"
    return None


def array_spec(ref: dict[str, Any]) -> tuple[np.dtype, tuple[int, ...]]:
    """The validated dtype and shape of an ``$array`` reference, without building it.

    Raises FileFormatError for a dtype outside `ARRAY_DTYPES`, ragged or too
    deeply nested lists, or non-numeric items.
    """
    name = ref.get("dtype")
    if not isinstance(name, str) or name not in ARRAY_DTYPES:
        raise FileFormatError(f"an array declares the dtype {str(name)[:40]!r}, which is refused")
    dtype = np.dtype(name)
    shape: list[int] = []
    level: list[Any] = [ref.get("$array")]
    while True:
        lists = [v for v in level if isinstance(v, list)]
        if not lists:
            break
        if len(lists) != len(level) or len({len(v) for v in lists}) != 1:
            raise FileFormatError("an array's nested lists are ragged")
        shape.append(len(lists[0]))
        if len(shape) > MAX_ARRAY_DIMS:
            raise FileFormatError(f"an array has more than {MAX_ARRAY_DIMS} dimensions")
        level = [item for v in lists for item in v]
    for item in level:
        if not isinstance(item, (int, float)):  # bool is an int
            raise FileFormatError(f"an array holds a non-numeric item ({type(item).__name__})")
    return dtype, tuple(shape)


def array_nbytes(ref: dict[str, Any]) -> int:
    dtype, shape = array_spec(ref)
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


ErrorSink = Callable[[str], None]


def unpack(
    value: Any,
    read_member: Callable[[str], bytes],
    max_pixels: int,
    on_error: ErrorSink | None = None,
    decode_png: Callable[[str], np.ndarray] | None = None,
) -> Any:
    """Inverse of `Packer.pack`; `read_member(name)` must enforce the archive's caps.

    A reference that cannot be read or decoded raises FileFormatError, or, when
    `on_error` is given, unpacks to None after `on_error(message)` is called
    (an optional extra dropped with a recorded warning). `decode_png(name)`,
    when given, decodes a ``$png`` member (the .ora loader passes one that
    checks the member against what it budgeted).
    """

    def fail(message: str) -> None:
        if on_error is None:
            raise FileFormatError(message)
        on_error(message)

    def png(name: str) -> np.ndarray:
        if decode_png is not None:
            return decode_png(name)
        from canvasai.formats.image_io import decode_image

        return decode_image(read_member(name), name, max_pixels, frozenset({"PNG"}))

    def walk(v: Any) -> Any:
        if isinstance(v, list):
            return [walk(x) for x in v]
        if not isinstance(v, dict):
            return v
        kind = _ref_kind(v)
        if kind == "$bytes":
            try:
                return read_member(v["$bytes"])
            except FileFormatError as exc:
                fail(f"could not read {v['$bytes'][:200]!r}: {exc}")
                return None
        if kind == "$png":
            try:
                return _shape_png(png(v["$png"]), v.get("shape"))
            except FileFormatError as exc:
                fail(f"could not decode {v['$png'][:200]!r}: {exc}")
                return None
        if kind == "$array":
            try:
                dtype, shape = array_spec(v)
                return np.asarray(v["$array"], dtype=dtype).reshape(shape)
            except (FileFormatError, TypeError, ValueError, OverflowError) as exc:
                fail(f"could not read an array: {exc}")
                return None
        return {k: walk(x) for k, x in v.items()}

    return walk(value)


def _shape_png(rgba: np.ndarray, shape: Any) -> np.ndarray:
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
