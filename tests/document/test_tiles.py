import numpy as np
import pytest

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


def test_snapshot_shares_tiles_until_written():
    s = TiledSurface(4)
    s.write(0, 0, np.full((64, 128, 4), 5, np.uint8))
    snap = s.snapshot()
    assert snap.tile((0, 0)) is s.tile((0, 0))
    s.write(10, 10, np.full((4, 4, 4), 9, np.uint8))
    assert (snap.read(Rect(0, 0, 128, 64)) == 5).all()
    assert s.read(Rect(10, 10, 1, 1))[0, 0, 0] == 9
    assert snap.tile((1, 0)) is s.tile((1, 0))  # untouched tile still shared


def test_stroke_and_undo_after_snapshot_leave_snapshot_intact():
    from canvasai.document.document import Document
    from canvasai.document.stroke import Stroke

    doc = Document(128, 128, background=None)
    layer = doc.active_layer
    doc.write_pixels(layer, 0, 0, np.full((128, 128, 4), 7, np.uint8))
    snap = layer.surface.snapshot()
    st = Stroke(layer.surface, doc.rect, color=(255, 0, 0))
    st.dab(64, 64, 30)
    doc.push_tiles_command(layer, st.finish(), st.rect, "stroke")
    doc.undo()
    doc.redo()
    st = Stroke(layer.surface, doc.rect, color=(0, 255, 0))
    st.dab(64, 64, 30)
    st.finish()
    assert (snap.read(doc.rect) == 7).all()


@pytest.mark.parametrize("fill", [0, (255, 255, 255, 255)])
def test_sample_is_every_nth_pixel_of_read(fill):
    rng = np.random.default_rng(0)
    surf = TiledSurface(4, fill=fill)
    surf.write(37, 11, rng.integers(0, 256, (300, 400, 4), dtype=np.uint8))
    rects = [Rect(0, 0, 500, 400), Rect(13, 7, 251, 97), Rect(64, 0, 450, 333),
             Rect(0, 128, 1000, 1000), Rect(600, 600, 50, 50)]
    for rect in rects:
        for step in (1, 2, 3, 4, 32, 64, 100):
            got = surf.sample(rect, step)
            full = surf.read(rect)
            if got is None:
                assert not fill and not full.any()
            else:
                assert np.array_equal(got, full[::step, ::step]), (rect, step)
