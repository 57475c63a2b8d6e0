"""numpy <-> Qt conversions: thumbnails of big results are made from thinned pixels and
keep their colours, transparent edges included."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from canvasai.ui.images import qimage_from_rgba, rgba_from_qimage, thumbnail


def _pixels(pixmap) -> np.ndarray:  # noqa: ANN001
    return rgba_from_qimage(pixmap.toImage())


def test_a_big_thumbnail_matches_an_area_average_of_every_pixel(qapp) -> None:  # noqa: ANN001
    h, w = 2048, 4096
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 4), np.uint8)
    img[..., 0] = xx * 255 / w
    img[..., 1] = yy * 255 / h
    img[..., 2] = 127 + 120 * np.sin(xx / 300) * np.cos(yy / 200)
    img[..., 3] = 255
    got = _pixels(thumbnail(img, 96))
    assert got.shape == (48, 96, 4)
    want = cv2.resize(img, (96, 48), interpolation=cv2.INTER_AREA)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.mean() < 1.5 and diff.max() <= 8
    assert (got[..., 3] == 255).all()


def test_transparent_edges_keep_their_colour(qapp) -> None:  # noqa: ANN001
    n = 1024
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    img = np.zeros((n, n, 4), np.uint8)  # transparent black around ...
    img[..., :3] = 255  # ... a white disc with a soft edge
    img[..., 3] = np.clip((300 - np.hypot(xx - n / 2, yy - n / 2)) / 60 * 255, 0, 255)
    img[img[..., 3] == 0] = 0
    got = _pixels(thumbnail(img, 64))
    edge = (got[..., 3] > 40) & (got[..., 3] < 215)
    assert edge.sum() > 10
    assert got[edge][:, :3].min() >= 235  # white, not darkened by the black around it


@pytest.mark.parametrize("shape", [(1, 1, 4), (30, 50, 4), (40, 20, 3), (40, 20)])
def test_small_rgb_and_grey_pictures(qapp, shape) -> None:  # noqa: ANN001
    img = np.full(shape, 200, np.uint8)
    if len(shape) == 3 and shape[2] == 4:
        img[..., 3] = 255
    pm = thumbnail(img, 48)
    h, w = shape[:2]
    scale = min(1.0, 48 / max(h, w))
    assert (pm.width(), pm.height()) == (max(1, round(w * scale)), max(1, round(h * scale)))
    got = _pixels(pm)
    assert (np.abs(got[..., :3].astype(int) - 200) <= 1).all() and (got[..., 3] >= 254).all()


def test_round_trip_through_qimage(qapp) -> None:  # noqa: ANN001
    px = np.random.default_rng(1).integers(0, 255, (7, 9, 4), dtype=np.uint8)
    assert (rgba_from_qimage(qimage_from_rgba(px)) == px).all()
