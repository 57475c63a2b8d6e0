import numpy as np

from canvasai.core.geometry import Rect
from canvasai.document.document import Document
from canvasai.document.selection import (
    clear_mask,
    feather_selection,
    grow_selection,
    invert_selection,
    mask_to_selection,
    select_all,
    select_none,
    select_rect,
    selection_bounds,
    selection_to_mask,
    shrink_selection,
)


def sel(doc):
    return doc.selection.read(doc.rect)[..., 0]


def test_grow_shrink_feather_invert():
    doc = Document(100, 100)
    select_rect(doc, Rect(40, 40, 20, 20))
    grow_selection(doc, 5)
    assert selection_bounds(doc) == Rect(35, 35, 30, 30)
    shrink_selection(doc, 10)
    assert selection_bounds(doc) == Rect(45, 45, 10, 10)
    feather_selection(doc, 4)
    s = sel(doc)
    assert 0 < s[50, 43] < 255 and s[50, 50] > 200
    invert_selection(doc)
    assert sel(doc)[0, 0] == 255 and sel(doc)[50, 50] < 60
    for _ in range(4):
        doc.undo()
    assert selection_bounds(doc) == Rect(40, 40, 20, 20)


def test_select_all_costs_nothing_and_select_none():
    doc = Document(20000, 20000)
    select_all(doc)
    assert doc.selection.nbytes == 0 and selection_bounds(doc) == doc.rect
    select_none(doc)
    assert doc.selection is None


def test_mask_and_selection_convert_both_ways():
    doc = Document(64, 64)
    select_rect(doc, Rect(8, 8, 16, 16))
    selection_to_mask(doc)
    m = doc.mask.read(doc.rect)[..., 0]
    assert m[10, 10] == 255 and m[30, 30] == 0
    select_none(doc)
    mask_to_selection(doc)
    assert np.array_equal(sel(doc), m)
    clear_mask(doc)
    assert doc.mask.is_blank
    doc.undo()
    assert not doc.mask.is_blank
