"""The PNG codec of the .ora writer, and a header reader for untrusted PNGs.

`encode_png` is a small encoder of our own instead of Pillow's (see its
docstring). `read_png_header` reads only the signature and IHDR chunk (the
first 33 bytes), so a reader can know how many pixels a PNG will decode to
before any pixel is inflated.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from canvasai.core.errors import FileFormatError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_HEADER_BYTES = 33  # signature (8) + IHDR chunk (4 length + 4 type + 13 body + 4 crc)

_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_CHUNK = 4 << 20  # bytes of filtered rows per deflate job
_IDAT_MAX = 8 << 20


def _png_chunk(kind: bytes, body: bytes | memoryview) -> bytes:
    return b"".join(
        (
            struct.pack(">I", len(body)),
            kind,
            body,
            struct.pack(">I", zlib.crc32(body, zlib.crc32(kind))),
        )
    )


def default_workers() -> int:
    """Deflate threads for saving: leave one core to the GUI thread."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def encode_png(pixels: np.ndarray, compress_level: int = 1, workers: int | None = None) -> bytes:
    """PNG bytes of a uint8 (h, w) or (h, w, 1..4) array.

    A small encoder of our own instead of Pillow's: every row uses the "Sub"
    filter (computed with numpy), and the deflate stream is compressed in
    independent 4 MiB pieces, pigz-style (each primed with the previous 32 KiB),
    on `workers` threads; zlib releases the GIL. Same size as Pillow at level 1
    on painted content, about twice as fast on one core (see benchmarks/files.py).
    """
    a = np.ascontiguousarray(pixels, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    if c not in _COLOR_TYPES or h <= 0 or w <= 0:
        raise ValueError(f"cannot encode an array of shape {pixels.shape} as PNG")
    raw = a.reshape(h, w * c)
    filtered = np.empty((h, w * c + 1), np.uint8)
    filtered[:, 0] = 1  # Sub: each byte minus the same channel of the pixel to its left
    filtered[:, 1 : c + 1] = raw[:, :c]
    np.subtract(raw[:, c:], raw[:, :-c], out=filtered[:, c + 1 :])
    data = memoryview(filtered.reshape(-1))
    pieces = [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)]
    last = len(pieces) - 1

    def deflate(i: int) -> bytes:
        if i:
            prev = pieces[i - 1]
            comp = zlib.compressobj(compress_level, zlib.DEFLATED, -15, zdict=bytes(prev[-32768:]))
        else:
            comp = zlib.compressobj(compress_level, zlib.DEFLATED, -15)
        return comp.compress(pieces[i]) + comp.flush(
            zlib.Z_FINISH if i == last else zlib.Z_SYNC_FLUSH
        )

    n = workers if workers is not None else default_workers()
    if n > 1 and len(pieces) > 1:
        with ThreadPoolExecutor(min(n, len(pieces))) as pool:
            parts = list(pool.map(deflate, range(len(pieces))))
    else:
        parts = [deflate(i) for i in range(len(pieces))]
    stream = b"".join([b"\x78\x01", *parts, struct.pack(">I", zlib.adler32(data))])
    del parts
    out = [
        PNG_SIGNATURE,
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPES[c], 0, 0, 0)),
    ]
    view = memoryview(stream)
    out += [_png_chunk(b"IDAT", view[i : i + _IDAT_MAX]) for i in range(0, len(view), _IDAT_MAX)]
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    bit_depth: int
    color_type: int
    interlaced: bool

    @property
    def channels(self) -> int:
        return _CHANNELS[self.color_type]


def read_png_header(head: bytes, name: str = "") -> PngHeader:
    """Parse the signature and IHDR chunk at the start of a PNG (33 bytes are enough).

    Raises FileFormatError when `head` is not the start of a well-formed PNG.
    """
    what = f"“{name}”" if name else "The image"
    if len(head) < PNG_HEADER_BYTES or head[:8] != PNG_SIGNATURE:
        raise FileFormatError(f"{what} is not an image CanvasAI can read here (a PNG is expected).")
    length, kind = struct.unpack(">I4s", head[8:16])
    body = head[16:29]
    (crc,) = struct.unpack(">I", head[29:33])
    if length != 13 or kind != b"IHDR" or zlib.crc32(body, zlib.crc32(kind)) != crc:
        raise FileFormatError(f"{what} is a damaged PNG (its IHDR header is invalid).")
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", body)
    if ctype not in _BIT_DEPTHS or depth not in _BIT_DEPTHS[ctype] or comp or filt or interlace > 1:
        raise FileFormatError(f"{what} is a damaged PNG (unknown colour type or bit depth).")
    return PngHeader(w, h, depth, ctype, bool(interlace))

