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
from collections.abc import Iterator
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


def decode_workers() -> int:
    """Decode threads for opening: every core (the person is waiting for the file)."""
    return max(1, min(4, os.cpu_count() or 2))


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


# -- decoding straight into tiles ----------------------------------------------------------
class NotStreamable(Exception):
    """The PNG uses something `decode_png_tiles` does not handle (palette, 16-bit,
    interlace, Average/Paeth filters, ...): decode it another way."""


def _png_chunks(data: bytes | memoryview, name: str) -> tuple[PngHeader, list[memoryview]]:
    """The header and the IDAT chunk bodies (CRC-checked) of a whole PNG."""
    what = f"“{name}”" if name else "The image"
    header = read_png_header(bytes(data[:PNG_HEADER_BYTES]), name)
    mv = memoryview(data)
    pos, end = PNG_HEADER_BYTES, len(mv)
    idats: list[memoryview] = []
    while True:
        if pos + 12 > end:
            raise FileFormatError(f"{what} is a truncated PNG.")
        length, kind = struct.unpack(">I4s", mv[pos : pos + 8])
        if pos + 12 + length > end:
            raise FileFormatError(f"{what} is a truncated PNG.")
        body = mv[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            (crc,) = struct.unpack(">I", mv[pos + 8 + length : pos + 12 + length])
            if zlib.crc32(body, zlib.crc32(kind)) != crc:
                raise FileFormatError(f"{what} is a damaged PNG (a data chunk fails its CRC).")
            idats.append(body)
        elif kind == b"IEND":
            return header, idats
        elif kind in (b"tRNS", b"PLTE") or not kind[0] & 0x20:
            raise NotStreamable(kind.decode("latin-1"))  # colour key, palette, unknown critical
        pos += 12 + length


_FEED = 256 << 10  # compressed bytes handed to zlib at a time
_SPILL = 4 << 20  # most inflated bytes taken from one call


def _rows(idats: list[memoryview], stride: int, height: int, first_band: int, band: int,
          what: str) -> Iterator[np.ndarray]:
    """The filtered rows of the image as (n, stride) arrays: `first_band` rows, then
    `band` rows at a time, inflating the IDAT data as it goes (zlib releases the GIL).
    Input goes to zlib in small pieces and output comes back in bounded amounts, so
    memory stays at about one band whatever the compression ratio."""
    inflater = zlib.decompressobj()
    pieces = (chunk[i : i + _FEED] for chunk in idats for i in range(0, len(chunk), _FEED))
    pending: list[bytes] = []
    have = 0
    done = 0
    want = min(first_band, height)
    tail: bytes | memoryview = b""
    truncated = f"{what} is a truncated PNG (its pixel data ends early)."
    while done < height:
        need = want * stride
        while have < need:
            if not tail:
                nxt = next(pieces, None)
                if nxt is None or inflater.eof:
                    raise FileFormatError(truncated)
                tail = nxt
            out = inflater.decompress(tail, _SPILL)
            tail = inflater.unconsumed_tail
            if out:
                pending.append(out)
                have += len(out)
            elif inflater.eof:
                raise FileFormatError(truncated)
        buf = b"".join(pending) if len(pending) != 1 else pending[0]
        yield np.frombuffer(buf, np.uint8, need).reshape(want, stride)
        rest = buf[need:]
        pending = [rest] if rest else []
        have = len(rest)
        done += want
        want = min(band, height - done)


def _unfilter(rows: np.ndarray, prev: np.ndarray | None, w: int, c: int) -> np.ndarray:
    """Undo the PNG row filters None, Sub and Up; (n, w, c) uint8."""
    kinds = rows[:, 0]
    data = rows[:, 1:].reshape(len(rows), w, c)
    if (kinds == 1).all():  # Sub everywhere (what encode_png writes): a running sum per row
        return np.cumsum(data, axis=1, dtype=np.uint8)
    out = np.empty_like(data)
    for i, kind in enumerate(kinds.tolist()):
        if kind == 0:
            out[i] = data[i]
        elif kind == 1:
            np.cumsum(data[i], axis=0, dtype=np.uint8, out=out[i])
        elif kind == 2:
            above = out[i - 1] if i else prev
            if above is None:
                out[i] = data[i]
            else:
                np.add(data[i], above, out=out[i])
        else:
            raise NotStreamable(f"filter {kind}")
    return out


def decode_png_tiles(data: bytes | memoryview, x: int, y: int, bounds: tuple[int, int, int, int],
                     tile_size: int, name: str = ""
                     ) -> tuple[dict[tuple[int, int], np.ndarray], np.ndarray | None]:
    """Decode an 8-bit RGB(A) PNG placed at (x, y) straight into RGBA tiles.

    Returns ({tile key: (tile_size, tile_size, 4) uint8}, uniform) where tiles with
    no visible pixel (alpha 0 everywhere) are left out, only what lies inside
    `bounds` = (x0, y0, x1, y1) is kept, and `uniform` is the one RGBA value of an
    image that covers `bounds` with a single colour (else None). The image is
    inflated and unfiltered one tile row at a time, so no full-size array ever
    exists. Raises NotStreamable for PNGs it does not handle, FileFormatError for
    damaged ones.
    """
    what = f"“{name}”" if name else "The image"
    header, idats = _png_chunks(data, name)
    if header.bit_depth != 8 or header.interlaced or header.color_type not in (2, 6):
        raise NotStreamable("format")
    w, h, c = header.width, header.height, header.channels
    ts = tile_size
    bx0, by0, bx1, by1 = bounds
    cx0, cx1 = max(x, bx0), min(x + w, bx1)
    covers = x <= bx0 and y <= by0 and x + w >= bx1 and y + h >= by1
    uniform: np.ndarray | None = None
    tiles: dict[tuple[int, int], np.ndarray] = {}
    kx0 = cx0 // ts
    nk = -(-cx1 // ts) - kx0 if cx1 > cx0 else 0
    first = ts - y % ts
    prev: np.ndarray | None = None
    row = 0
    for filtered in _rows(idats, w * c + 1, h, first, ts, what):
        n = len(filtered)
        pix = _unfilter(filtered, prev, w, c)
        prev = pix[-1]
        top, row = y + row, row + n
        if c == 3:
            rgba = np.empty((n, w, 4), np.uint8)
            rgba[..., :3] = pix
            rgba[..., 3] = 255
            pix = rgba
        if covers and (row == n or uniform is not None):
            ref = pix[0, 0] if uniform is None else uniform
            uniform = ref.copy() if ref[3] == 255 and (pix == ref).all() else None
            covers = uniform is not None
        r0, r1 = max(top, by0), min(top + n, by1)
        if nk == 0 or r0 >= r1:
            continue
        ky = r0 // ts
        band = np.zeros((ts, nk * ts, 4), np.uint8)
        band[r0 - ky * ts : r1 - ky * ts, cx0 - kx0 * ts : cx1 - kx0 * ts] = pix[
            r0 - top : r1 - top, cx0 - x : cx1 - x
        ]
        grid = band.reshape(ts, nk, ts, 4)
        visible = grid[..., 3].any(axis=(0, 2))
        for k in np.flatnonzero(visible).tolist():
            tiles[(kx0 + k, ky)] = np.ascontiguousarray(grid[:, k])
    if uniform is not None and row < h:
        uniform = None
    return tiles, uniform
