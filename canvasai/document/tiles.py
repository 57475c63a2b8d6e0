"""Sparse tiled pixel storage.

A surface is a dict of fixed-size tiles keyed by tile index. A tile never
written is not allocated and reads as the surface's fill value, so memory grows
with the painted area, not with the canvas area (a filled background layer costs
nothing until it is painted on).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from canvasai.core.geometry import Rect

TILE_SIZE = 64
TileKey = tuple[int, int]


class TiledSurface:
    """An unbounded plane of uint8 pixels with `channels` channels, stored in tiles.

    RGBA surfaces hold straight (non-premultiplied) colour; 1-channel surfaces hold
    coverage (masks, selections) where 255 = fully selected.
    """

    def __init__(self, channels: int = 4, fill: Iterable[int] | int = 0,
                 tile_size: int = TILE_SIZE) -> None:
        self.channels = channels
        self.tile_size = tile_size
        fill_arr = np.zeros(channels, np.uint8)
        fill_arr[:] = np.asarray(fill, np.uint8) if not isinstance(fill, int) else fill
        self.fill = fill_arr
        self._tiles: dict[TileKey, np.ndarray] = {}
        self._fill_tile: np.ndarray | None = None

    # -- tile level ---------------------------------------------------------------
    @property
    def is_blank(self) -> bool:
        return not self._tiles and not self.fill.any()

    def fill_tile(self) -> np.ndarray:
        """A read-only tile of the fill value (shared)."""
        if self._fill_tile is None:
            t = np.empty((self.tile_size, self.tile_size, self.channels), np.uint8)
            t[:] = self.fill
            t.setflags(write=False)
            self._fill_tile = t
        return self._fill_tile

    def has_tile(self, key: TileKey) -> bool:
        return key in self._tiles

    def tile(self, key: TileKey) -> np.ndarray | None:
        """The allocated tile, or None where the surface is just its fill value."""
        return self._tiles.get(key)

    def tile_or_fill(self, key: TileKey) -> np.ndarray:
        t = self._tiles.get(key)
        return t if t is not None else self.fill_tile()

    def writable_tile(self, key: TileKey) -> np.ndarray:
        """The tile at `key`, allocating it (from the fill value) if needed.

        A tile frozen by `snapshot` is copied first (copy-on-write), so the snapshot
        keeps the pixels it was taken with.
        """
        t = self._tiles.get(key)
        if t is None:
            t = self.fill_tile().copy()
            self._tiles[key] = t
        elif not t.flags.writeable:
            t = t.copy()
            self._tiles[key] = t
        return t

    def snapshot(self) -> TiledSurface:
        """A copy that shares every tile with this surface until one of them is written.

        O(number of tiles), no pixel copies: the tiles are frozen (made read-only) and
        `writable_tile` copies a frozen tile before the first write. Background saves
        take a snapshot on the GUI thread and write it out on another thread.
        """
        s = TiledSurface(self.channels, self.fill, self.tile_size)
        for t in self._tiles.values():
            t.flags.writeable = False
        s._tiles = dict(self._tiles)
        return s

    def tile_keys(self) -> list[TileKey]:
        return list(self._tiles)

    def set_tile(self, key: TileKey, data: np.ndarray | None) -> None:
        """Put `data` (owned by the surface from now on) at `key`; None frees the tile."""
        if data is None:
            self._tiles.pop(key, None)
        else:
            self._tiles[key] = data

    def take_tiles(self, keys: Iterable[TileKey]) -> dict[TileKey, np.ndarray | None]:
        """Copies of the given tiles (None for unallocated): the 'before' state for undo."""
        return {k: (None if (t := self._tiles.get(k)) is None else t.copy()) for k in keys}

    def swap_tiles(self, tiles: dict[TileKey, np.ndarray | None]) -> dict[TileKey, np.ndarray | None]:
        """Install `tiles` and return what they replaced, without copying.

        Undo and redo are the same swap, so an undo entry holds one copy of the
        touched tiles, never two.
        """
        old: dict[TileKey, np.ndarray | None] = {}
        for k, t in tiles.items():
            old[k] = self._tiles.get(k)
            self.set_tile(k, t)
        return old

    def key_rect(self, key: TileKey) -> Rect:
        t = self.tile_size
        return Rect(key[0] * t, key[1] * t, t, t)

    def keys_in(self, rect: Rect) -> Iterator[TileKey]:
        return rect.tiles(self.tile_size)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self._tiles.values())

    # -- pixel level --------------------------------------------------------------
    def read(self, rect: Rect) -> np.ndarray:
        """A new (h, w, channels) array with the pixels of `rect`."""
        out = np.empty((rect.h, rect.w, self.channels), np.uint8)
        if rect.is_empty():
            return out
        ts = self.tile_size
        tiles = self._tiles
        fill = self.fill
        x0, y0, x1, y1 = rect.x, rect.y, rect.x + rect.w, rect.y + rect.h
        for ky in range(y0 // ts, (y1 - 1) // ts + 1):
            ty = ky * ts
            a, b = max(y0, ty), min(y1, ty + ts)
            dst_rows = out[a - y0:b - y0]
            for kx in range(x0 // ts, (x1 - 1) // ts + 1):
                tx = kx * ts
                c, d = max(x0, tx), min(x1, tx + ts)
                src = tiles.get((kx, ky))
                if src is None:
                    dst_rows[:, c - x0:d - x0] = fill
                else:
                    dst_rows[:, c - x0:d - x0] = src[a - ty:b - ty, c - tx:d - tx]
        return out

    def sample(self, rect: Rect, step: int) -> np.ndarray | None:
        """Every `step`-th pixel of `rect` (rows and columns from its top-left corner):
        a new (ceil(h / step), ceil(w / step), channels) array, or None when `rect`
        holds only a transparent fill (nothing to composite there).

        Reduced-resolution views read layers through this: it touches each allocated
        tile once with a strided slice, never the full-resolution pixels in between.
        """
        if step <= 1:
            if not self.fill.any() and not self._any_tile_in(rect):
                return None
            return self.read(rect)
        ny, nx = -(-rect.h // step), -(-rect.w // step)
        ts = self.tile_size
        if ts % step == 0 and rect.x % ts == 0 and rect.y % ts == 0:
            return self._sample_blocks(rect, step, ny, nx)
        if not self.fill.any():
            keys = self._keys_in(rect)
            if not keys:
                return None
            out = np.zeros((ny, nx, self.channels), np.uint8)
        else:
            keys = [k for k in rect.tiles(ts) if k in self._tiles]
            out = np.empty((ny, nx, self.channels), np.uint8)
            out[:] = self.fill
        for key in keys:
            tile = self._tiles[key]
            tx, ty = key[0] * ts, key[1] * ts
            # sample indices whose position rect.x + i * step falls inside this tile
            i0 = max(0, -(-(tx - rect.x) // step))
            i1 = min(nx, -(-(min(tx + ts, rect.x1) - rect.x) // step))
            j0 = max(0, -(-(ty - rect.y) // step))
            j1 = min(ny, -(-(min(ty + ts, rect.y1) - rect.y) // step))
            if i0 >= i1 or j0 >= j1:
                continue
            lx = rect.x + i0 * step - tx
            ly = rect.y + j0 * step - ty
            out[j0:j1, i0:i1] = tile[ly:ly + (j1 - j0 - 1) * step + 1:step,
                                     lx:lx + (i1 - i0 - 1) * step + 1:step]
        return out

    def _sample_blocks(self, rect: Rect, step: int, ny: int, nx: int) -> np.ndarray | None:
        """`sample` for a rect on the tile grid: every tile gives a whole block of
        samples, gathered with one slice per tile and placed with one array assignment."""
        ts = self.tile_size
        k = ts // step
        kx0, ky0 = rect.x // ts, rect.y // ts
        nbx, nby = -(-rect.w // ts), -(-rect.h // ts)
        keys = self._keys_in(rect)
        if not keys and not self.fill.any():
            return None
        big = np.empty((nby * k, nbx * k, self.channels), np.uint8)
        big[:] = self.fill
        if keys:
            tiles = self._tiles
            blocks = np.stack([tiles[key][::step, ::step] for key in keys])
            iy = np.fromiter((key[1] - ky0 for key in keys), np.intp, len(keys))
            ix = np.fromiter((key[0] - kx0 for key in keys), np.intp, len(keys))
            grid = big.reshape(nby, k, nbx, k, self.channels).transpose(0, 2, 1, 3, 4)
            grid[iy, ix] = blocks
        return big[:ny, :nx]

    def _keys_in(self, rect: Rect) -> list[TileKey]:
        """Allocated tiles overlapping `rect`, by whichever is smaller to walk."""
        ts = self.tile_size
        kx0, ky0 = rect.x // ts, rect.y // ts
        kx1, ky1 = -(-rect.x1 // ts), -(-rect.y1 // ts)
        if (kx1 - kx0) * (ky1 - ky0) <= len(self._tiles):
            return [k for k in rect.tiles(ts) if k in self._tiles]
        return [k for k in self._tiles if kx0 <= k[0] < kx1 and ky0 <= k[1] < ky1]

    def _any_tile_in(self, rect: Rect) -> bool:
        return bool(self._keys_in(rect))

    def write(self, x: int, y: int, pixels: np.ndarray) -> Rect:
        """Copy `pixels` (h, w, channels) with its top-left at (x, y). Returns the rect."""
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        h, w = pixels.shape[:2]
        rect = Rect(x, y, w, h)
        for key in rect.tiles(self.tile_size):
            tr = self.key_rect(key)
            part = tr.intersect(rect)
            src = pixels[part.y - y:part.y1 - y, part.x - x:part.x1 - x]
            if tr == part and not src.any() and not self.fill.any():
                self._tiles.pop(key, None)  # a fully cleared tile costs nothing
                continue
            t = self.writable_tile(key)
            t[part.y - tr.y:part.y1 - tr.y, part.x - tr.x:part.x1 - tr.x] = src
        return rect

    def clear(self, rect: Rect | None = None) -> None:
        """Reset `rect` (or everything) to transparent / unselected, freeing whole tiles."""
        if rect is None:
            self._tiles.clear()
            self.fill = np.zeros(self.channels, np.uint8)
            self._fill_tile = None
            return
        zeros = np.zeros((rect.h, rect.w, self.channels), np.uint8)
        self.write(rect.x, rect.y, zeros)

    def bounds(self) -> Rect:
        """Tight bounds of the non-zero pixels in allocated tiles (alpha for RGBA)."""
        x0 = y0 = 1 << 60
        x1 = y1 = -(1 << 60)
        for key, t in self._tiles.items():
            a = t[:, :, -1]
            rows = np.flatnonzero(a.any(axis=1))
            if rows.size == 0:
                continue
            cols = np.flatnonzero(a.any(axis=0))
            tr = self.key_rect(key)
            x0 = min(x0, tr.x + int(cols[0]))
            x1 = max(x1, tr.x + int(cols[-1]) + 1)
            y0 = min(y0, tr.y + int(rows[0]))
            y1 = max(y1, tr.y + int(rows[-1]) + 1)
        if x1 < x0:
            return Rect(0, 0, 0, 0)
        return Rect.from_bounds(x0, y0, x1, y1)

    def copy(self) -> TiledSurface:
        s = TiledSurface(self.channels, self.fill, self.tile_size)
        s._tiles = {k: t.copy() for k, t in self._tiles.items()}
        return s

    def prune(self) -> None:
        """Free tiles that equal the fill value."""
        fill = self.fill
        for k in [k for k, t in self._tiles.items() if (t == fill).all()]:
            del self._tiles[k]
