from canvasai.core.events import EventEmitter
from canvasai.core.geometry import Rect


def test_intersect_union_and_empty():
    a, b = Rect(0, 0, 10, 10), Rect(5, 5, 10, 10)
    assert a.intersect(b) == Rect(5, 5, 5, 5)
    assert a.union(b) == Rect(0, 0, 15, 15)
    assert a.intersect(Rect(20, 20, 5, 5)).is_empty()
    assert Rect(0, 0, 0, 0).union(b) == b


def test_tiles_cover_exactly_the_overlapping_tiles():
    assert list(Rect(60, 0, 10, 10).tiles(64)) == [(0, 0), (1, 0)]
    assert list(Rect(64, 64, 64, 64).tiles(64)) == [(1, 1)]
    assert list(Rect(-1, 0, 1, 1).tiles(64)) == [(-1, 0)]


def test_snapped_out_contains_and_is_aligned():
    r = Rect(13, 7, 50, 30).snapped_out(8)
    assert r == Rect(8, 0, 56, 40)
    assert r.contains(Rect(13, 7, 50, 30))


def test_emitter_connect_disconnect_and_block():
    seen = []
    e = EventEmitter()
    cb = e.connect(lambda *a: seen.append(a))
    e.emit(1, 2)
    with e.blocked():
        e.emit(3)
    e.disconnect(cb)
    e.emit(4)
    assert seen == [(1, 2)]
