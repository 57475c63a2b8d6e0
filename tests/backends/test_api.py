"""The request contract validates sizes, counts and numbers, in plain words, before any work."""

import math
import tracemalloc

import numpy as np
import pytest

from canvasai.backends.api import (
    MAX_GENERATED_PIXELS,
    BlendSettings,
    GenerationRequest,
    OutpaintSettings,
    RequestError,
    Task,
    UpscaleSettings,
    batch_seeds,
    request_seeds,
    with_seed,
)
from canvasai.core.errors import GenerationError
from canvasai.core.settings import GenerationDefaults

IMG = np.zeros((16, 16, 4), np.uint8)
MASK = np.zeros((16, 16), np.uint8)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"task": Task.TXT2IMG, "width": 20000, "height": 20000}, "width must be between 8 and 16384"),
        ({"task": Task.TXT2IMG, "width": 8000, "height": 8000}, "too large to generate"),
        ({"task": Task.TXT2IMG, "width": 1, "height": 64}, "width must be between 8"),
        ({"task": Task.TXT2IMG, "width": 64}, "both a width and a height"),
        ({"task": Task.TXT2IMG, "guidance": math.nan}, "guidance must be a finite number"),
        ({"task": Task.TXT2IMG, "guidance": math.inf}, "guidance must be a finite number"),
        ({"task": Task.TXT2IMG, "steps": 0}, "number of steps must be between 1"),
        ({"task": Task.TXT2IMG, "steps": 2.5}, "whole number"),
        ({"task": Task.TXT2IMG, "batch_size": 1000}, "batch size must be between 1"),
        ({"task": Task.TXT2IMG, "strength": -0.1}, "strength must be between 0"),
        ({"task": Task.TXT2IMG, "seed": -1}, "seed must be between 0"),
        ({"task": Task.TXT2IMG, "seed": 2**32}, "seed must be between 0"),
        ({"task": Task.TXT2IMG, "scheduler": "warp"}, "Unknown sampler"),
        ({"task": Task.INPAINT, "image": IMG, "mask": MASK,
          "blend": BlendSettings(grow_px=30000)}, "mask grow must be between 0 and 512"),
        ({"task": Task.INPAINT, "image": IMG, "mask": MASK,
          "blend": BlendSettings(feather_px=-1)}, "feather must be between 0"),
        ({"task": Task.INPAINT, "image": IMG}, "inpaint needs a mask"),
        ({"task": Task.INPAINT, "image": IMG, "mask": np.zeros((8, 8), np.uint8)},
         "mask is 8×8 but the image is 16×16"),
        ({"task": Task.IMG2IMG, "image": np.zeros((4, 4, 4), np.float32)}, "8-bit"),
        ({"task": Task.OUTPAINT, "image": IMG, "outpaint": OutpaintSettings()}, "at least one"),
        ({"task": Task.OUTPAINT, "image": IMG, "outpaint": OutpaintSettings(left=10**6)},
         "left margin must be between 0"),
        ({"task": Task.UPSCALE, "image": IMG, "upscale": UpscaleSettings(scale=3)}, "2× or 4×"),
        ({"task": Task.UPSCALE, "image": IMG, "upscale": UpscaleSettings(tile=256, overlap=256)},
         "overlap must be smaller"),
    ],
)
def test_out_of_range_requests_are_refused_in_plain_words(kwargs, words):
    with pytest.raises(RequestError, match=words):
        GenerationRequest(**kwargs)


def test_a_huge_txt2img_is_refused_before_anything_is_allocated():
    tracemalloc.start()
    try:
        with pytest.raises(GenerationError):
            GenerationRequest(Task.TXT2IMG, width=20000, height=20000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20
    GenerationRequest(Task.TXT2IMG, width=4096, height=MAX_GENERATED_PIXELS // 4096)  # the limit


def test_defaults_come_from_the_settings_model():
    r = GenerationRequest(Task.INPAINT, image=IMG, mask=MASK)
    assert (r.steps, r.guidance, r.scheduler) == (
        GenerationDefaults.steps, GenerationDefaults.guidance, GenerationDefaults.scheduler)
    assert (r.blend.grow_px, r.blend.feather_px) == (
        GenerationDefaults.grow_px, GenerationDefaults.feather_px)


def test_requests_are_frozen_snapshots():
    img = IMG.copy()
    r = GenerationRequest(Task.IMG2IMG, image=img)
    img[:] = 7
    assert not r.image.any() and not r.image.flags.writeable
    view = img[:8]
    view.flags.writeable = False  # read-only, but a view of writable memory: still copied
    assert GenerationRequest(Task.IMG2IMG, image=view).image.base is None
    seeded = with_seed(r)  # the frozen snapshot itself is shared, not copied again
    assert seeded.image is r.image


def test_seeds_are_chosen_once_and_batches_count_up():
    r = with_seed(GenerationRequest(Task.TXT2IMG, batch_size=3))
    assert r.seed is not None and with_seed(r) is r
    assert request_seeds(r) == batch_seeds(r.seed, 3)
    assert batch_seeds(2**32 - 1, 2) == (2**32 - 1, 0)
    with pytest.raises(GenerationError, match="without a seed"):
        request_seeds(GenerationRequest(Task.TXT2IMG))


# ------------------------------------------------- control layers, references, regions


def _rgb(h: int = 8, w: int = 8) -> np.ndarray:
    return np.zeros((h, w, 3), np.uint8)


def test_control_layers_carry_a_start_end_range_and_are_checked() -> None:
    from canvasai.backends.api import MAX_CONTROLS, ControlKind, ControlSettings

    c = ControlSettings(ControlKind.POSE, _rgb(), start=0.2, end=0.8)
    req = GenerationRequest(Task.TXT2IMG, prompt="x", width=8, height=8, controls=(c, c))
    assert req.control is req.controls[0] and len(req.controls) == 2
    with pytest.raises(RequestError, match="start before it ends"):
        GenerationRequest(Task.TXT2IMG, width=8, height=8,
                          controls=(ControlSettings(ControlKind.CANNY, _rgb(), start=0.5, end=0.5),))
    with pytest.raises(RequestError, match=f"At most {MAX_CONTROLS} control layers"):
        GenerationRequest(Task.TXT2IMG, width=8, height=8, controls=(c,) * (MAX_CONTROLS + 1))
    with pytest.raises(RequestError, match="sketch needs a control image"):
        GenerationRequest(Task.SKETCH, width=8, height=8)


def test_references_wrap_bare_arrays_and_check_strength() -> None:
    from canvasai.backends.api import ReferenceImage, ReferenceKind

    req = GenerationRequest(Task.EDIT, image=_rgb(), prompt="night", references=(_rgb(4, 4),))
    assert isinstance(req.references[0], ReferenceImage) and req.references[0].strength == 1.0
    assert not req.references[0].image.flags.writeable
    with pytest.raises(RequestError, match="strength of reference image 1"):
        GenerationRequest(Task.TXT2IMG, width=8, height=8,
                          references=(ReferenceImage(_rgb(), strength=3.0),))
    ok = ReferenceImage(_rgb(), kind=ReferenceKind.STYLE)
    assert GenerationRequest(Task.TXT2IMG, width=8, height=8, references=(ok,)).references[0].kind \
        == ReferenceKind.STYLE


def test_regions_must_match_the_output_and_be_painted() -> None:
    from canvasai.backends.api import RegionPrompt

    m = np.zeros((8, 16), np.uint8)
    m[:, :8] = 255
    req = GenerationRequest(Task.TXT2IMG, prompt="a park", width=16, height=8,
                            regions=(RegionPrompt("a red kite", m),))
    assert req.regions[0].mask.shape == (8, 16)
    with pytest.raises(RequestError, match="mask of region 1 is 16×8 but the picture is 8×8"):
        GenerationRequest(Task.IMG2IMG, image=_rgb(), regions=(RegionPrompt("kite", m),))
    with pytest.raises(RequestError, match="is empty"):
        GenerationRequest(Task.TXT2IMG, width=16, height=8,
                          regions=(RegionPrompt("kite", np.zeros((8, 16), np.uint8)),))
    with pytest.raises(RequestError, match="needs a prompt"):
        GenerationRequest(Task.TXT2IMG, width=16, height=8, regions=(RegionPrompt(" ", m),))
