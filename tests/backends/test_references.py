"""Reference images outside Edit: IP-Adapter (SD 1.x, SDXL), Flux Redux (Flux.1), notes.

Tiny random adapters and image encoders (tests/support/tiny_adapters.py) in ComfyUI's
folders (``ipadapter/``, ``clip_vision/``, ``style_models/``) and h94's layout, found by
the registry as a person's files are, applied to the tiny SD 1.x / SDXL / Flux models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from canvasai.backends import model_roles
from canvasai.backends.api import (
    BlendSettings,
    GenerationRequest,
    ReferenceImage,
    ReferenceKind,
    Task,
)
from canvasai.backends.diffusion import references
from canvasai.backends.diffusion.backend import DiffusersBackend
from canvasai.backends.models import IMAGE_ENCODER, IPADAPTER, REDUX, ModelRegistry, inspect_path
from canvasai.core.errors import ModelError
from tests.support.fixtures import RecordingContext

torch = pytest.importorskip("torch")
ta = pytest.importorskip("tests.support.tiny_adapters")
tf = pytest.importorskip("tests.support.tiny_families")


def _picture(seed: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.kron(small, np.ones((size // 4, size // 4, 1), np.uint8))


RED, BLUE = _picture(1), _picture(2)


@pytest.fixture(scope="module")
def ref_dir(tmp_path_factory: pytest.TempPathFactory, tiny_models) -> Path:
    d = tmp_path_factory.mktemp("refs")
    ta.save_ip_adapter(tiny_models.sd1, d / "ipadapter" / "ip-adapter_tiny-sd15.safetensors")
    ta.save_ip_adapter(tiny_models.sdxl, d / "ipadapter" / "ip-adapter_tiny-sdxl.safetensors", seed=1)
    ta.save_ip_adapter(tiny_models.sd1, d / "ipadapter" / "ip-adapter_sdxl-sized.safetensors",
                       cross_dim=2048)
    ta.save_clip_vision(d / "clip_vision" / "tiny-clip-vision.safetensors")
    (d / "sd1").symlink_to(tiny_models.sd1, target_is_directory=True)
    return d


@pytest.fixture(scope="module")
def families_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny DiT families, built once per session (shared by the tests that need them)."""
    return tmp_path_factory.getbasetemp() / "tiny-families"


@pytest.fixture(scope="module")
def backend(ref_dir) -> DiffusersBackend:
    return DiffusersBackend(ModelRegistry([ref_dir], include_hf_cache=False))


def _run(backend, model, refs=(), task=Task.TXT2IMG, **kw):
    req = GenerationRequest(task=task, model=str(model), prompt="a fox", width=32, height=32,
                            steps=2, seed=1, references=tuple(refs), native_resolution=False, **kw)
    return backend.run(req, RecordingContext())


def test_adapters_and_encoders_are_listed_by_kind_and_family(ref_dir, tmp_path, tiny_models) -> None:
    found = {m.name: m for m in ModelRegistry([ref_dir], include_hf_cache=False).models()}
    sd15 = found["ipadapter/ip-adapter_tiny-sd15"]
    assert sd15.kind == IPADAPTER and sd15.variant == "" and sd15.usable
    assert found["ipadapter/ip-adapter_sdxl-sized"].family == "sdxl"
    enc = found["clip_vision/tiny-clip-vision"]
    assert enc.kind == IMAGE_ENCODER and enc.variant == "clip"
    # h94's layout: the encoder as a transformers folder beside the adapters
    ta.save_clip_vision(tmp_path / "IP-Adapter" / "models" / "image_encoder")
    ta.save_siglip(tmp_path / "clip_vision" / "sigclip.safetensors")
    ta.save_redux(tmp_path / "style_models" / "flux1-redux.safetensors", text_dim=32)
    listed = {m.name: m for m in ModelRegistry([tmp_path], include_hf_cache=False).models()}
    assert listed["IP-Adapter/models/image_encoder"].kind == IMAGE_ENCODER
    assert listed["clip_vision/sigclip"].variant == "siglip"
    redux = listed["style_models/flux1-redux"]
    assert (redux.kind, redux.family) == (REDUX, "flux")
    assert inspect_path(ref_dir / "ipadapter" / "ip-adapter_tiny-sd15.safetensors").kind == IPADAPTER
    # the Models window groups them together and says what each is for
    assert {model_roles.group_of(listed[n]) for n in ("clip_vision/sigclip", "style_models/flux1-redux")} == {
        "reference"}
    assert model_roles.flows_for(found["ipadapter/ip-adapter_sdxl-sized"]) == [
        "Reference images with SDXL models (IP-Adapter)"]


def test_a_reference_changes_the_picture_and_strength_zero_is_none(backend, ref_dir, monkeypatch) -> None:
    model = ref_dir / "sd1"
    base = _run(backend, model).images[0]
    red = _run(backend, model, [ReferenceImage(RED, 1.0)])
    blue = _run(backend, model, [ReferenceImage(BLUE, 1.0)]).images[0]
    assert not np.array_equal(base, red.images[0])
    assert not np.array_equal(red.images[0], blue)  # another reference, another picture
    assert red.metadata["reference_method"] == "IP-Adapter"
    assert red.metadata["reference_images"] == [
        {"kind": "content", "strength": 1.0, "model": "ipadapter/ip-adapter_tiny-sd15"}]
    assert red.metadata["image_encoder"] == "clip_vision/tiny-clip-vision"
    # the adapter stays loaded while unchanged: a weaker reference only changes the scale
    pipe_cls = type(backend.manager._loaded.pipe)
    calls = []
    real = pipe_cls.load_ip_adapter
    monkeypatch.setattr(pipe_cls, "load_ip_adapter",
                        lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    weak = _run(backend, model, [ReferenceImage(RED, 0.3)]).images[0]
    assert calls == [] and not np.array_equal(weak, red.images[0])
    # strength 0 is no reference, and a job without references unloads the adapter
    zero = _run(backend, model, [ReferenceImage(RED, 0.0)]).images[0]
    np.testing.assert_array_equal(zero, base)
    assert references.loaded_adapters(backend.manager._loaded) == ()
    np.testing.assert_array_equal(_run(backend, model).images[0], base)


def test_two_references_and_inpaint(backend, ref_dir) -> None:
    model = ref_dir / "sd1"
    one = _run(backend, model, [ReferenceImage(RED, 1.0)]).images[0]
    two = _run(backend, model, [ReferenceImage(RED, 1.0), ReferenceImage(BLUE, 0.5)]).images[0]
    assert not np.array_equal(one, two)
    assert len(references.loaded_adapters(backend.manager._loaded)) == 2  # a slot each
    image = np.full((32, 32, 3), 90, np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    kw = {"image": image, "mask": mask, "strength": 1.0,
          "blend": BlendSettings(grow_px=0, feather_px=0, color_match=False)}
    plain = _run(backend, model, task=Task.INPAINT, **kw).images[0]
    ref = _run(backend, model, [ReferenceImage(RED, 1.0)], task=Task.INPAINT, **kw).images[0]
    assert not np.array_equal(plain, ref)
    np.testing.assert_array_equal(ref[mask == 0][:, :3], image[mask == 0])  # outside: untouched


def test_style_on_sd1_is_noted_and_differs_from_content(backend, ref_dir) -> None:
    model = ref_dir / "sd1"
    content = _run(backend, model, [ReferenceImage(RED, 1.0)]).images[0]
    style = _run(backend, model, [ReferenceImage(RED, 1.0, ReferenceKind.STYLE)])
    assert not np.array_equal(style.images[0], content)
    assert "InstantStyle" in style.metadata["note"]
    comp = _run(backend, model, [ReferenceImage(RED, 1.0, ReferenceKind.COMPOSITION)])
    assert "composition references are not supported for SD 1.x" in comp.metadata["note"]
    np.testing.assert_array_equal(comp.images[0], content)  # used as content


def test_sdxl_style_and_composition_use_instantstyle_blocks(backend, tiny_models) -> None:
    model = tiny_models.sdxl
    base = _run(backend, model).images[0]
    pics = {k: _run(backend, model, [ReferenceImage(RED, 1.0, k)]) for k in ReferenceKind}
    for k, res in pics.items():
        assert not np.array_equal(res.images[0], base), k
        assert "not supported" not in res.metadata.get("note", "")
    c, s, p = (pics[k].images[0] for k in ReferenceKind)
    assert not np.array_equal(c, s) and not np.array_equal(s, p) and not np.array_equal(c, p)


def test_an_adapter_of_another_family_is_refused_before_loading(backend, ref_dir, monkeypatch) -> None:
    model = ref_dir / "sd1"
    _run(backend, model)
    pipe_cls = type(backend.manager._loaded.pipe)
    monkeypatch.setattr(pipe_cls, "load_ip_adapter",
                        lambda *a, **k: pytest.fail("load_ip_adapter must not be called"))
    with pytest.raises(ModelError, match="is for SDXL models; .* is a SD 1.x model"):
        _run(backend, model, [ReferenceImage(RED, 1.0, model="ipadapter/ip-adapter_sdxl-sized")])
    with pytest.raises(ModelError, match="does not fit"):  # an adapter for another UNet
        _run(backend, model, [ReferenceImage(RED, 1.0, model="ipadapter/ip-adapter_tiny-sdxl")])
    with pytest.raises(ModelError, match="not an IP-Adapter"):
        _run(backend, model, [ReferenceImage(RED, 1.0, model="clip_vision/tiny-clip-vision")])


def test_missing_adapter_and_encoder_are_named(tmp_path, tiny_models) -> None:
    empty = DiffusersBackend(ModelRegistry([tmp_path], include_hf_cache=False))
    with pytest.raises(ModelError) as err:
        _run(empty, tiny_models.sd1, [ReferenceImage(RED, 1.0)])
    text = str(err.value)
    assert "need an IP-Adapter" in text and "ip-adapter_sd15.safetensors" in text
    assert str(tmp_path / "ipadapter") in text and "clip_vision" in text
    ta.save_ip_adapter(tiny_models.sd1, tmp_path / "ipadapter" / "ip-adapter_tiny.safetensors")
    empty.registry.rescan()
    with pytest.raises(ModelError, match=r"needs its image encoder.*clip_vision"):
        _run(empty, tiny_models.sd1, [ReferenceImage(RED, 1.0)])


def test_flux_redux_changes_the_picture(tmp_path_factory, families_root, tiny_models) -> None:
    d = tmp_path_factory.mktemp("redux")
    flux = tf.cached("flux", families_root)
    ta.save_siglip(d / "clip_vision" / "sigclip_tiny.safetensors")
    ta.save_redux(d / "style_models" / "flux1-redux-tiny.safetensors", text_dim=tf.T5_DIM)
    backend = DiffusersBackend(ModelRegistry([d], include_hf_cache=False))
    base = _run(backend, flux).images[0]
    red = _run(backend, flux, [ReferenceImage(RED, 1.0)])
    blue = _run(backend, flux, [ReferenceImage(BLUE, 1.0)]).images[0]
    assert not np.array_equal(base, red.images[0]) and not np.array_equal(red.images[0], blue)
    assert red.metadata["reference_method"] == "Flux Redux"
    both = _run(backend, flux, [ReferenceImage(RED, 1.0), ReferenceImage(BLUE, 0.5)]).images[0]
    assert not np.array_equal(both, red.images[0])
    np.testing.assert_array_equal(_run(backend, flux, [ReferenceImage(RED, 0.0)]).images[0], base)
    style = _run(backend, flux, [ReferenceImage(RED, 1.0, ReferenceKind.STYLE)])
    assert "Flux Redux has no style" in style.metadata["note"]
    # adapters of the other kind are refused, both ways, before loading
    sd_adapter = ta.save_ip_adapter(tiny_models.sd1, d / "ipadapter" / "ip-adapter_sd.safetensors")
    with pytest.raises(ModelError, match="is a Flux.1 model, which takes Flux Redux"):
        _run(backend, flux, [ReferenceImage(RED, 1.0, model=str(sd_adapter))])
    redux_file = str(d / "style_models" / "flux1-redux-tiny.safetensors")
    with pytest.raises(ModelError, match="is Flux Redux, for Flux.1 models"):
        _run(backend, tiny_models.sd1, [ReferenceImage(RED, 1.0, model=redux_file)])


def test_flux2_klein_reads_references_as_images(tmp_path_factory, families_root) -> None:
    klein = tf.cached("flux2-klein", families_root)
    backend = DiffusersBackend(ModelRegistry([tmp_path_factory.mktemp("none")], include_hf_cache=False))
    base = _run(backend, klein).images[0]
    red = _run(backend, klein, [ReferenceImage(RED, 0.5, ReferenceKind.STYLE)])
    blue = _run(backend, klein, [ReferenceImage(BLUE, 1.0)]).images[0]
    assert not np.array_equal(base, red.images[0]) and not np.array_equal(red.images[0], blue)
    assert red.metadata["reference_method"] == "image inputs"
    assert "strength and style/composition setting are not used" in red.metadata["note"]
    # the inpaint pipeline takes them as image_reference
    image = _picture(4, 32)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    kw = {"image": image, "mask": mask, "strength": 1.0}
    plain = _run(backend, klein, task=Task.INPAINT, **kw).images[0]
    assert not np.array_equal(plain, _run(backend, klein, [ReferenceImage(RED)], task=Task.INPAINT,
                                          **kw).images[0])


class _Pipe:  # stands in for a loaded pipeline (references keep per-model state by it)
    pass


def test_families_without_references_say_so_and_upscale_ignores_them() -> None:
    from canvasai.backends.diffusion.pipelines import LoadedModel
    from canvasai.backends.models import ModelInfo

    info = ModelInfo("z", Path("z"), "zimage", "base", "diffusers")
    loaded = LoadedModel(info=info, pipe=_Pipe(), scheduler_class="", scheduler_config={})
    req = GenerationRequest(task=Task.TXT2IMG, prompt="a", width=32, height=32, seed=1,
                            references=(ReferenceImage(RED, 1.0),))
    plan = references.prepare(None, loaded, req)  # type: ignore[arg-type]
    assert plan.refs == () and "Z-Image models take no reference images" in plan.notes[0]
    up = GenerationRequest(task=Task.UPSCALE, image=RED, seed=1, references=(ReferenceImage(RED),))
    assert references.prepare(None, loaded, up).notes == [  # type: ignore[arg-type]
        "reference images are not used when upscaling"]
    assert references.finish(loaded, {"note": "x"}) == {"note": "x; reference images are not used when upscaling"}


def test_edit_models_read_references_and_strength_zero_is_none(families_root) -> None:
    klein = tf.cached("flux2-klein", families_root)
    backend = DiffusersBackend(ModelRegistry([families_root / "none"], include_hf_cache=False))
    picture = _picture(3, 32)

    def edit(*refs: ReferenceImage):
        req = GenerationRequest(task=Task.EDIT, model=str(klein), image=picture, prompt="night",
                                steps=2, seed=1, references=refs, native_resolution=False)
        return backend.run(req, RecordingContext())

    none = edit().images[0]
    red = edit(ReferenceImage(RED, 1.0)).images[0]
    assert not np.array_equal(none, red)
    assert not np.array_equal(red, edit(ReferenceImage(BLUE, 1.0)).images[0])
    zero = edit(ReferenceImage(RED, 0.0))
    np.testing.assert_array_equal(zero.images[0], none)
    assert "strength 0 left out" in zero.metadata["note"]


def test_adapters_come_back_after_attention_slicing(backend, ref_dir) -> None:
    """The out-of-memory step-down's attention slicing replaces every attention processor,
    the IP-Adapter's too: the next reference job turns slicing off and loads them again."""
    model = ref_dir / "sd1"
    red = _run(backend, model, [ReferenceImage(RED, 1.0)]).images[0]
    backend.manager._loaded.pipe.enable_attention_slicing()
    again = _run(backend, model, [ReferenceImage(RED, 1.0)])
    np.testing.assert_array_equal(again.images[0], red)
    assert "attention slicing is off" in again.metadata["note"]


def test_diffusers_layouts_h94_and_redux_folder(tmp_path, tiny_models, families_root) -> None:
    """h94/IP-Adapter's layout (adapter files beside an image_encoder folder) and a
    FLUX.1-Redux-dev-style FluxPriorReduxPipeline folder load like ComfyUI's files."""
    import diffusers
    from transformers import SiglipImageProcessor, SiglipVisionModel

    h94 = tmp_path / "IP-Adapter" / "models"
    ta.save_ip_adapter(tiny_models.sd1, h94 / "ip-adapter_tiny.safetensors")
    ta.save_clip_vision(h94 / "image_encoder", seed=3)
    ta.save_clip_vision(tmp_path / "clip_vision" / "other.safetensors", seed=4)  # not this one
    sig = ta.save_siglip(tmp_path / "work" / "siglip")
    red = ta.save_redux(tmp_path / "work" / "redux", text_dim=tf.T5_DIM)
    diffusers.FluxPriorReduxPipeline(
        image_encoder=SiglipVisionModel.from_pretrained(sig),
        feature_extractor=SiglipImageProcessor(size={"height": 32, "width": 32}),
        image_embedder=diffusers.ReduxImageEncoder.from_pretrained(red),
    ).save_pretrained(tmp_path / "FLUX.1-Redux-tiny")
    import shutil

    shutil.rmtree(tmp_path / "work")
    backend = DiffusersBackend(ModelRegistry([tmp_path], include_hf_cache=False))
    assert backend.registry.get("FLUX.1-Redux-tiny").kind == REDUX
    sd = _run(backend, tiny_models.sd1, [ReferenceImage(RED, 1.0)])
    assert sd.metadata["image_encoder"] == "IP-Adapter/models/image_encoder"
    flux = tf.cached("flux", families_root)
    res = _run(backend, flux, [ReferenceImage(RED, 1.0)])
    assert res.metadata["reference_images"][0]["model"] == "FLUX.1-Redux-tiny"
    assert not np.array_equal(res.images[0], _run(backend, flux).images[0])


def test_readiness_says_what_is_missing_without_loading(ref_dir, tmp_path) -> None:
    full = ModelRegistry([ref_dir], include_hf_cache=False)
    assert references.readiness(full, "sd1") == "" and references.readiness(full, "flux2") == ""
    assert "need Flux Redux" in references.readiness(full, "flux")
    assert "take no reference images" in references.readiness(full, "zimage")
    ta.save_redux(tmp_path / "style_models" / "redux.safetensors", text_dim=32)
    bare = ModelRegistry([tmp_path], include_hf_cache=False)
    assert "ipadapter/" in references.readiness(bare, "sdxl")
    assert "SigLIP" in references.readiness(bare, "flux")
