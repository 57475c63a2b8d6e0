import numpy as np

from canvasai.core.geometry import Rect
from canvasai.document.tiles import TILE_SIZE, TiledSurface


def test_unwritten_surface_allocates_nothing_and_reads_fill():
    s = TiledSurface(4, fill=(255, 255, 255, 255))
    px = s.read(Rect(-100, -100, 300, 300))
    assert s.nbytes == 0 and (px == 255).all()


def test_write_read_round_trip_across_tile_borders():
    s = TiledSurface(4)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (100, 130, 4), dtype=np.uint8)
    s.write(50, 30, data)
    assert np.array_equal(s.read(Rect(50, 30, 130, 100)), data)
    assert len(s.tile_keys()) == len(list(Rect(50, 30, 130, 100).tiles(TILE_SIZE)))


def test_writing_zeros_over_whole_tile_frees_it():
    s = TiledSurface(4)
    s.write(0, 0, np.full((64, 64, 4), 9, np.uint8))
    s.write(0, 0, np.zeros((64, 64, 4), np.uint8))
    assert s.nbytes == 0


def test_swap_tiles_is_its_own_inverse():
    s = TiledSurface(1)
    s.write(0, 0, np.full((10, 10), 7, np.uint8))
    before = s.take_tiles([(0, 0), (1, 0)])
    s.write(0, 0, np.full((10, 80), 200, np.uint8))
    after_px = s.read(Rect(0, 0, 80, 10)).copy()
    other = s.swap_tiles(before)
    assert (s.read(Rect(0, 0, 10, 10)) == 7).all() and not s.has_tile((1, 0))
    s.swap_tiles(other)
    assert np.array_equal(s.read(Rect(0, 0, 80, 10)), after_px)


def test_bounds_are_tight():
    s = TiledSurface(4)
    px = np.zeros((5, 5, 4), np.uint8)
    px[2, 3] = (1, 2, 3, 255)
    s.write(100, 200, px)
    assert s.bounds() == Rect(103, 202, 1, 1)
