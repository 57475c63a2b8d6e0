"""Layer roles from the document to a tiny diffusion model: what a person sets in the
layers panel (control layers, a region prompt, hiding one) changes the picture made."""

from __future__ import annotations

import numpy as np
import pytest

from canvasai.core.geometry import Rect
from canvasai.document.document import Document
from canvasai.document.layer import ControlRole, RegionRole
from canvasai.generation import flows
from canvasai.generation.params import FlowParams
from tests.support.fixtures import RecordingContext, tiny_models  # noqa: F401


@pytest.fixture(scope="module")
def backend(tiny_models, tmp_path_factory):  # noqa: F811
    pytest.importorskip("torch")
    from canvasai.backends.diffusion.backend import DiffusersBackend
    from canvasai.backends.models import ModelRegistry
    from tests.support.tiny_controlnets import build_tiny_controlnets

    nets = build_tiny_controlnets(tmp_path_factory.getbasetemp() / "tiny-controlnets-flows")
    return DiffusersBackend(ModelRegistry([tiny_models.root, nets.root], include_hf_cache=False,
                                          index=False))


def _doc() -> Document:
    doc = Document(64, 64)
    lines = doc.add_layer("Lines")
    px = np.zeros((64, 64, 4), np.uint8)
    px[20:24, 8:56] = (0, 0, 0, 255)
    px[8:56, 30:34] = (0, 0, 0, 255)
    lines.surface.write(0, 0, px)
    lines.role = ControlRole(kind="canny", model="controlnet/sd1-tiny-control-canny")
    photo = doc.add_layer("Photo")
    photo.surface.write(0, 0, np.random.default_rng(3).integers(0, 256, (64, 64, 4), np.uint8)
                        | np.uint8(255))
    photo.role = ControlRole(kind="lineart", strength=0.8,
                             model="controlnet/sd1-tiny-control-lineart")
    sky = doc.add_layer("Sky")
    sky.surface.write(0, 0, np.full((24, 64, 4), 200, np.uint8))
    sky.role = RegionRole("a red sunset sky")
    doc.history.clear()
    return doc


def _render(backend, doc: Document) -> np.ndarray:
    job = flows.plan(doc, "sketch", FlowParams(prompt="a house", model="sd1-tiny", steps=3,
                                               seed=11, sketch_use_mask=False))
    return np.asarray(backend.run(job.request, RecordingContext()).images[0])[..., :3].astype(int)


def test_hiding_a_role_layer_changes_the_picture_and_showing_it_brings_it_back(backend):
    doc = _doc()
    whole = _render(backend, doc)
    for name in ("Lines", "Photo", "Sky"):
        layer = next(la for la in doc.layers if la.name == name)
        doc.set_layer_properties(layer, visible=False)
        without = _render(backend, doc)
        assert np.abs(without - whole).mean() > 0.5, f"hiding “{name}” changed nothing"
        doc.undo()
    assert np.array_equal(_render(backend, doc), whole)  # all shown again: the same picture
    # the region's prompt acts inside it: another prompt changes the sky more than the rest
    sky = next(la for la in doc.layers if la.name == "Sky")
    doc.set_layer_properties(sky, role=RegionRole("green grass"))
    other = _render(backend, doc)
    inside = np.abs(other - whole)[Rect(0, 0, 64, 20).slices()].mean()
    outside = np.abs(other - whole)[Rect(0, 40, 64, 24).slices()].mean()
    assert inside > outside
