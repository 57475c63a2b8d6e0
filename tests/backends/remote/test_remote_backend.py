"""The remote engine against loopback servers that speak ComfyUI's protocol.

The protocol server (tests/support/fake_comfyui.py) takes its message shapes from
Comfy-Org/ComfyUI server.py @ 002c3fb9a504255ccb3edb668c08b8f56e63d14a, execution.py @
04e2a914334246661a77665aa14068a0670e3321, comfy_execution/progress.py @
1b71f2753280380bb6bbce53e5787dca42b30be1, latent_preview.py @
2d619ed9d647511be7ffcab614d86aff75bf69a6 and main.py's ``hijack_progress``. Nothing here
leaves the loopback address.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from canvasai.backends import masking
from canvasai.backends.api import (
    BlendSettings,
    ControlKind,
    ControlSettings,
    GenerationRequest,
    OutpaintSettings,
    Task,
    UpscaleSettings,
)
from canvasai.backends.remote import catalog
from canvasai.backends.remote.protocol import ServerError
from canvasai.core.errors import GenerationError, JobCancelled, ModelError
from tests.backends.remote.conftest import Ctx, backend_for
from tests.support.fake_comfyui import Knobs, seed_colour

SD15 = "comfyui:checkpoints/sd15.safetensors"
FLUX = "comfyui:diffusion_models/flux1-dev.safetensors"


def picture(h: int = 96, w: int = 128) -> np.ndarray:
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    img[..., 3] = 255
    return img


def nodes_of(graph: dict) -> dict[str, dict]:
    """class_type -> inputs (the last node of each type)."""
    return {n["class_type"]: n["inputs"] for n in graph.values()}


# ----------------------------------------------------------------------------- tasks


def test_txt2img_streams_every_step_and_uses_our_ids(server):
    ctx = Ctx()
    req = GenerationRequest(Task.TXT2IMG, prompt="a red fox", negative_prompt="blurry", model=SD15,
                            seed=11, steps=5, guidance=6.5, width=80, height=56)
    result = backend_for(server).run(req, ctx)
    (img,) = result.images
    assert img.shape == (56, 80, 4) and result.seeds == (11,)
    assert (img[..., :3] == seed_colour(11)).all()  # the server's picture, unchanged
    assert ctx.progress_calls == [(i, 5) for i in range(1, 6)]
    assert [s for s, _ in ctx.frames] == [1, 2, 3, 4, 5]  # a preview every step
    assert all(f.shape == (56, 80, 4) for _, f in ctx.frames)
    assert ctx.foreign_calls == 0  # the JobContext is only called on the job's thread
    (prompt,) = server.prompts
    assert str(uuid.UUID(prompt.prompt_id)) == prompt.prompt_id  # our own canonical id
    assert prompt.extra["client_id"]
    n = nodes_of(prompt.graph)
    assert n["CheckpointLoaderSimple"]["ckpt_name"] == "sd15.safetensors"
    assert n["KSampler"]["seed"] == 11 and n["KSampler"]["steps"] == 5
    assert n["KSampler"]["cfg"] == 6.5
    assert n["EmptyLatentImage"] == {"width": 80, "height": 56, "batch_size": 1}
    texts = sorted(v["inputs"]["text"] for v in prompt.graph.values()
                   if v["class_type"] == "CLIPTextEncode")
    assert texts == ["a red fox", "blurry"]
    assert result.metadata["backend"] == "comfyui" and result.metadata["family"] == "sd1"
    assert server.uploads == {}  # nothing to upload for txt2img


def test_inpaint_uploads_only_the_region_and_keeps_outside_pixels(server):
    img = picture(200, 240)
    mask = np.zeros((200, 240), np.uint8)
    mask[90:110, 100:130] = 255
    blend = BlendSettings(grow_px=4, feather_px=8)
    req = GenerationRequest(Task.INPAINT, image=img, mask=mask, prompt="x", model=SD15, seed=5,
                            steps=3, blend=blend)
    ctx = Ctx()
    result = backend_for(server).run(req, ctx)
    out = result.images[0]
    assert out.shape == img.shape
    alpha = masking.paste_alpha(mask, blend)
    outside = alpha == 0.0
    assert np.array_equal(out[outside], img[outside])  # bit-identical outside the feather
    assert not np.array_equal(out[mask > 0], img[mask > 0])  # the masked part changed
    (uploaded,) = server.uploads.values()
    x, y, w, h = result.metadata["region"]
    assert (w, h) != (240, 200)  # only the job's region travelled ...
    ww, wh = result.metadata["work_size"]
    assert uploaded.shape[:2] == (wh, ww)  # ... at the model's work size
    assert (uploaded[..., 3] < 255).any()  # the mask rides in the alpha (LoadImage MASK)
    n = nodes_of(server.prompts[0].graph)
    assert "VAEEncodeForInpaint" in n and n["LoadImage"]["image"] in server.uploads
    assert all(f.shape == img.shape for _, f in ctx.frames) and len(ctx.frames) == 3
    # previews show the original outside the region
    frame = ctx.frames[-1][1]
    assert np.array_equal(frame[:y], img[:y])


def test_inpaint_with_partial_strength_uses_inpaint_model_conditioning(server):
    img, mask = picture(64, 64), np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    req = GenerationRequest(Task.INPAINT, image=img, mask=mask, model=SD15, seed=1, steps=2,
                            strength=0.6)
    backend_for(server).run(req, Ctx())
    n = nodes_of(server.prompts[0].graph)
    assert n["InpaintModelConditioning"]["noise_mask"] is True
    assert n["KSampler"]["denoise"] == pytest.approx(0.6)


def test_outpaint_grows_the_canvas_and_keeps_the_original(server):
    img = picture(64, 64)
    req = GenerationRequest(Task.OUTPAINT, image=img, model=SD15, seed=2, steps=2,
                            outpaint=OutpaintSettings(right=32, prefill="edge"))
    result = backend_for(server).run(req, Ctx())
    out = result.images[0]
    assert out.shape == (64, 96, 4)
    b = req.blend
    keep = 64 - (b.grow_px + b.feather_px) - 1
    assert np.array_equal(out[:, :keep], img[:, :keep])
    assert result.metadata["offset"] == [0, 0] and result.metadata["margins"] == [0, 32, 0, 0]


def test_sketch_renders_through_a_controlnet(server):
    sketch = np.full((64, 96, 4), 255, np.uint8)
    sketch[30:34, 10:80, :3] = 0
    req = GenerationRequest(Task.SKETCH, prompt="a bridge", model=SD15, seed=9, steps=2,
                            controls=(ControlSettings(ControlKind.SCRIBBLE, sketch, scale=0.8),))
    result = backend_for(server).run(req, Ctx())
    assert result.images[0].shape == (64, 96, 4)
    n = nodes_of(server.prompts[0].graph)
    assert n["ControlNetLoader"]["control_net_name"] == "control_sd15_scribble.safetensors"
    assert n["ControlNetApplyAdvanced"]["strength"] == pytest.approx(0.8)
    assert n["LoadImage"]["image"] in server.uploads


def test_refine_encodes_the_picture(server):
    img = picture(64, 64)
    req = GenerationRequest(Task.IMG2IMG, image=img, model=SD15, seed=4, steps=2, strength=0.4,
                            native_resolution=False)
    result = backend_for(server).run(req, Ctx())
    assert result.images[0].shape == img.shape
    n = nodes_of(server.prompts[0].graph)
    assert "VAEEncode" in n and n["KSampler"]["denoise"] == pytest.approx(0.4)


def test_upscale_uses_the_servers_upscale_model(server):
    img = picture(32, 48)
    req = GenerationRequest(Task.UPSCALE, image=img, model=SD15, seed=1,
                            upscale=UpscaleSettings(scale=4))
    ctx = Ctx()
    result = backend_for(server).run(req, ctx)
    assert result.images[0].shape == (128, 192, 4)
    n = nodes_of(server.prompts[0].graph)
    assert n["UpscaleModelLoader"]["model_name"] == "4x-UltraSharp.pth"
    assert n["ImageScale"]["width"] == 192 and n["ImageScale"]["height"] == 128
    assert ctx.progress_calls == [(1, 1)]


def test_flux_split_files_get_their_loaders_and_distilled_guidance(server):
    req = GenerationRequest(Task.TXT2IMG, prompt="p", negative_prompt="ignored", model=FLUX,
                            seed=1, steps=2, guidance=3.5, width=64, height=64)
    backend_for(server).run(req, Ctx())
    n = nodes_of(server.prompts[0].graph)
    assert n["UNETLoader"]["unet_name"] == "flux1-dev.safetensors"
    assert n["DualCLIPLoader"] == {"clip_name1": "clip_l.safetensors",
                                   "clip_name2": "t5xxl_fp16.safetensors", "type": "flux"}
    assert n["VAELoader"]["vae_name"] == "ae.safetensors"
    assert n["FluxGuidance"]["guidance"] == 3.5 and n["KSampler"]["cfg"] == 1.0


def test_previews_with_metadata_frames(make_server):
    srv = make_server(knobs=Knobs(preview_metadata=True))
    ctx = Ctx()
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=3, width=64, height=64)
    backend_for(srv).run(req, ctx)
    assert len(ctx.frames) == 3


def test_edit_is_refused_with_a_reason(server):
    req = GenerationRequest(Task.EDIT, image=picture(32, 32), prompt="make it night", model=SD15,
                            seed=1)
    with pytest.raises(ModelError, match="Edit is not available"):
        backend_for(server).run(req, Ctx())


# ----------------------------------------------------------------------------- cancel


def test_cancel_interrupts_the_running_prompt_within_a_step(make_server):
    step = 1.0  # long enough that "within one step" holds on a loaded CI machine
    srv = make_server(knobs=Knobs(step_time=step))
    ctx = Ctx(cancel_when=lambda c: len(c.progress_calls) >= 1)
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=40, width=64, height=64)
    with pytest.raises(JobCancelled):
        backend_for(srv).run(req, ctx)
    stopped = time.perf_counter()
    assert stopped - ctx.cancelled_at < step  # run() returns within one step
    pid = srv.prompts[0].prompt_id
    deadline = time.time() + 2
    while pid not in srv.history and time.time() < deadline:
        time.sleep(0.02)
    assert pid in srv.interrupts  # targeted /interrupt
    assert srv.history[pid]["status"]["status_str"] == "error"
    assert srv.steps_run <= 3  # the server stopped within a step too


def test_cancel_removes_a_waiting_prompt_from_the_queue(make_server):
    from canvasai.backends.remote.graphs import Sampling, txt2img
    from canvasai.backends.remote.protocol import ComfyClient, ServerConfig, new_id

    srv = make_server(knobs=Knobs(step_time=0.05))
    other = ComfyClient(ServerConfig(srv.url))
    model = catalog.classify("checkpoints", "sd15.safetensors")
    long_job = txt2img(model, srv.models, Sampling("", "", 40, 5.0, 1), 64, 64)
    other.queue_prompt(long_job, new_id(), new_id())  # someone else's job keeps it busy
    ctx = Ctx(cancel_when=lambda c: len(srv.prompts) >= 2 and time.sleep(0.1) is None)
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=2, width=64, height=64)
    with pytest.raises(JobCancelled):
        backend_for(srv).run(req, ctx)
    ours = srv.prompts[1].prompt_id
    assert ours in srv.deletes
    assert ctx.progress_calls == []  # it never ran
    other.interrupt("")
    other.close()


# ----------------------------------------------------------------------------- the pool


def test_batch_candidates_spread_over_free_servers(make_server):
    a, b = make_server(knobs=Knobs(step_time=0.03)), make_server(knobs=Knobs(step_time=0.03))
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=100, steps=3, batch_size=4,
                            width=32, height=32)
    ctx = Ctx()
    result = backend_for(a, b).run(req, ctx)
    assert result.seeds == (100, 101, 102, 103)
    for seed, img in zip(result.seeds, result.images, strict=True):
        assert (img[..., :3] == seed_colour(seed)).all()  # each candidate in its place
    assert len(a.prompts) >= 1 and len(b.prompts) >= 1
    assert len(a.prompts) + len(b.prompts) == 4
    assert sorted(result.metadata["servers"]) == sorted([a.url[7:], b.url[7:]])
    assert ctx.progress_calls[-1] == (12, 12)


def test_only_servers_with_the_model_get_the_job(make_server):
    a = make_server(models={"checkpoints": ["other.safetensors"]})
    b = make_server()
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=2, batch_size=2,
                            width=32, height=32)
    backend_for(a, b).run(req, Ctx())
    assert a.prompts == [] and len(b.prompts) == 2


def test_a_busy_server_is_passed_over(make_server):
    from canvasai.backends.remote.graphs import Sampling, txt2img
    from canvasai.backends.remote.protocol import ComfyClient, ServerConfig, new_id

    a, b = make_server(knobs=Knobs(step_time=0.05)), make_server()
    busy = ComfyClient(ServerConfig(a.url))
    model = catalog.classify("checkpoints", "sd15.safetensors")
    busy.queue_prompt(txt2img(model, a.models, Sampling("", "", 30, 5.0, 1), 64, 64), new_id(), new_id())
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=2, width=32, height=32)
    result = backend_for(a, b).run(req, Ctx())
    assert result.metadata["servers"] == [b.url[7:]]
    busy.interrupt("")
    busy.close()


def test_a_server_that_drops_mid_job_is_replaced_and_the_person_told(make_server):
    a = make_server(knobs=Knobs(drop_after_steps=2, step_time=0.01))
    b = make_server()
    ctx = Ctx()
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=3, steps=5, width=32, height=32)
    backend = backend_for(a, b)
    result = backend.run(req, ctx)
    assert (result.images[0][..., :3] == seed_colour(3)).all()
    assert result.metadata["servers"] == [b.url[7:]]
    assert len(ctx.notes) == 1 and a.url[7:] in ctx.notes[0] and b.url[7:] in ctx.notes[0]
    assert "re-running" in ctx.notes[0]
    assert not backend.pool.states[0].alive


def test_the_only_server_dropping_fails_the_job_cleanly(make_server):
    a = make_server(knobs=Knobs(drop_after_steps=1))
    img, mask = picture(64, 64), np.zeros((64, 64), np.uint8)
    mask[10:20, 10:20] = 255
    before = img.copy()
    req = GenerationRequest(Task.INPAINT, image=img, mask=mask, model=SD15, seed=3, steps=4)
    ctx = Ctx()
    with pytest.raises(ServerError, match="job stopped; the picture is unchanged"):
        backend_for(a).run(req, ctx)
    assert np.array_equal(img, before) and np.array_equal(req.image, before)


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        (Knobs(fail_node="KSampler"), "failed the job in KSampler: CUDA out of memory"),
        (Knobs(prompt_status=500), "refused the job: The fake server is told to refuse"),
        (Knobs(bad_history=True), "malformed /history"),
        (Knobs(no_image=True), "without an image"),
        (Knobs(upload_status=500), "answered 500 to /upload/image"),
        (Knobs(non_json_frame=True), "not JSON"),
    ],
)
def test_bad_server_responses_fail_with_a_clear_message(make_server, knobs, message):
    srv = make_server(knobs=knobs)
    img, mask = picture(64, 64), np.zeros((64, 64), np.uint8)
    mask[10:30, 10:30] = 255
    req = GenerationRequest(Task.INPAINT, image=img, mask=mask, model=SD15, seed=1, steps=2)
    before = img.copy()
    with pytest.raises(GenerationError, match=message):
        backend_for(srv).run(req, Ctx())  # raises: no result, so nothing is staged or pasted
    assert np.array_equal(req.image, before)


def test_validation_errors_name_the_node(server):
    from canvasai.backends.remote.protocol import ComfyClient, ServerConfig, new_id

    client = ComfyClient(ServerConfig(server.url))
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.ckpt"}},
             "2": {"class_type": "EmptyLatentImage",
                   "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
             "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    with pytest.raises(ServerError, match=r"Value not in list.*node 1 \(CheckpointLoaderSimple\)"):
        client.queue_prompt(graph, new_id(), new_id())
    with pytest.raises(ServerError, match="NoSuchNode"):
        client.queue_prompt({"1": {"class_type": "NoSuchNode", "inputs": {}}}, new_id(), new_id())
    client.close()


def test_broken_preview_frames_are_skipped_not_fatal(make_server):
    srv = make_server(knobs=Knobs(broken_preview=True))
    ctx = Ctx()
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=2, width=32, height=32)
    result = backend_for(srv).run(req, ctx)
    assert ctx.frames == [] and result.images[0].shape == (32, 32, 4)


def test_a_wrong_token_is_named(make_server):
    srv = make_server(token="s3cret")
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=2, width=32, height=32)
    with pytest.raises(ModelError, match="refused access"):
        backend_for(srv, token="wrong").run(req, Ctx())
    result = backend_for(srv, token="s3cret").run(req, Ctx())
    assert result.images[0].shape == (32, 32, 4)


def test_an_unreachable_server_says_so(make_server):
    srv = make_server()
    srv.drop()
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, steps=2, width=32, height=32)
    with pytest.raises(ModelError, match="No connected server has sd15.safetensors.*cannot be reached"):
        backend_for(srv).run(req, Ctx())


def test_a_model_no_server_has(server):
    req = GenerationRequest(Task.TXT2IMG, model="comfyui:checkpoints/nope.safetensors", seed=1,
                            steps=2, width=32, height=32)
    with pytest.raises(ModelError, match="No connected server has nope.safetensors"):
        backend_for(server).run(req, Ctx())
