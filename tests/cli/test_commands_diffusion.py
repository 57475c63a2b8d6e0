"""The command line with diffusion models: tiny model folders passed by path."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from canvasai.backends import masking  # noqa: E402
from canvasai.backends.api import BlendSettings  # noqa: E402
from canvasai.cli import main  # noqa: E402
from tests.support.fixtures import tiny_models  # noqa: E402, F401

pytest.importorskip("diffusers")


def save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture
def picture(tmp_path):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    mask = np.zeros((64, 80), np.uint8)
    mask[20:40, 30:50] = 255
    return save(tmp_path / "in.png", img), save(tmp_path / "mask.png", mask), img, mask


def test_inpaint_with_model_folder(tmp_path, picture, tiny_models, capsys):  # noqa: F811
    image, mask_path, img, mask = picture
    out = tmp_path / "out.png"
    previews = tmp_path / "previews"
    args = ["inpaint", str(image), "--mask", str(mask_path), "-o", str(out), "--seed", "3"]
    args += ["--model", str(tiny_models.sd1_inpaint), "--steps", "2", "--prompt", "a cat"]
    rc = main([*args, "--previews", str(previews)])
    assert rc == 0, capsys.readouterr().err
    res = load(out)
    assert res.shape == img.shape
    outside = masking.paste_alpha(mask, BlendSettings()) == 0
    np.testing.assert_array_equal(res[outside], img[outside])
    assert sorted(p.name for p in previews.iterdir())  # one preview per step
    rc2 = main([*args[:5], str(tmp_path / "again.png"), *args[6:]])
    assert rc2 == 0
    np.testing.assert_array_equal(load(tmp_path / "again.png"), res)  # same seed, same picture


def test_outpaint_with_single_file(tmp_path, picture, tiny_models, capsys):  # noqa: F811
    image, _, img, _ = picture
    out = tmp_path / "out.png"
    rc = main(
        ["outpaint", str(image), "--right", "16", "-o", str(out), "--seed", "1", "--steps", "2"]
        + ["--model", str(tiny_models.sd1_inpaint_file), "--prompt", "more"]
    )
    assert rc == 0, capsys.readouterr().err
    res = load(out)
    assert res.shape == (64, 96, 3)
    np.testing.assert_array_equal(res[:, :64], img[:, :64])


def test_sketch_with_controlnet(tmp_path, tiny_models, capsys):  # noqa: F811
    sketch = np.full((64, 64, 3), 255, np.uint8)
    sketch[10:54, 30:34] = 0
    path = save(tmp_path / "sketch.png", sketch)
    out = tmp_path / "render.png"
    rc = main(
        ["sketch", str(path), "--control", "scribble", "-o", str(out), "--prompt", "a tree"]
        + ["--model", str(tiny_models.sd1), "--controlnet", str(tiny_models.controlnet_scribble)]
        + ["--steps", "2", "--seed", "4"]
    )
    assert rc == 0, capsys.readouterr().err
    assert load(out).shape[:2] == (64, 64)


def test_upscale_with_x4_model(tmp_path, picture, tiny_models, capsys):  # noqa: F811
    small = np.asarray(Image.open(picture[0]))[:16, :20]
    path = save(tmp_path / "small.png", small)
    out = tmp_path / "big.png"
    rc = main(
        ["upscale", str(path), "--scale", "4", "-o", str(out), "--steps", "2", "--seed", "1"]
        + ["--model", str(tiny_models.upscaler)]
    )
    assert rc == 0, capsys.readouterr().err
    assert load(out).shape[:2] == (64, 80)


def test_wrong_model_kind_is_a_clean_failure(tmp_path, picture, tiny_models, capsys):  # noqa: F811
    image, mask_path, _, _ = picture
    rc = main(
        ["inpaint", str(image), "--mask", str(mask_path), "-o", str(tmp_path / "o.png")]
        + ["--model", str(tiny_models.controlnet_scribble), "--steps", "2"]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "ControlNet" in err and "Traceback" not in err
