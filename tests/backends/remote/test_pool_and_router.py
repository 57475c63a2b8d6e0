"""The pool's view of servers, the router's choice, and a whole job through the service."""

from __future__ import annotations

import numpy as np
import pytest

from canvasai.backends import router
from canvasai.backends.api import GenerationRequest, Task
from canvasai.backends.remote.backend import RemoteBackend
from canvasai.backends.remote.pool import ServerPool, configs_from, shared_pool
from canvasai.backends.remote.protocol import ServerConfig
from canvasai.core import settings
from canvasai.core.errors import ModelError
from tests.support.fake_comfyui import Knobs

SD15 = "comfyui:checkpoints/sd15.safetensors"


@pytest.fixture
def remote_settings():
    def use(*urls: str) -> None:
        settings.reset(settings.MemoryStore({"remote/servers": list(urls)}))
        router.reset()

    yield use
    settings.reset(settings.MemoryStore())
    router.reset()


def test_refresh_reads_models_queue_and_gpu(make_server):
    up = make_server(name="NVIDIA GeForce RTX 4090", vram_total=24 * 10**9, vram_free=18 * 10**9)
    down = make_server()
    down.drop()
    pool = ServerPool([ServerConfig(up.url), ServerConfig(down.url)], connect_timeout=1.0)
    a, b = pool.refresh()
    assert a.alive and a.has(SD15) and not a.busy
    assert a.gpu() == "NVIDIA GeForce RTX 4090, 18.0 of 24.0 GB free"
    assert a.describe().startswith("connected, idle · 4 model(s)")
    assert not b.alive and "cannot be reached" in b.error
    assert b.describe().startswith("not connected: ")
    pool.close()


def test_no_server_configured_means_no_remote_backend(remote_settings):
    remote_settings()
    assert shared_pool() is None
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, width=32, height=32)
    with pytest.raises(ModelError, match="no server is configured"):
        router.backend_for(req)
    # local models are unaffected
    assert router.backend_for(GenerationRequest(Task.TXT2IMG, model="classic")).name == "classic"


def test_router_sends_server_models_to_the_remote_backend(remote_settings, server):
    remote_settings(server.url)
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=1, width=32, height=32)
    backend = router.backend_for(req)
    assert isinstance(backend, RemoteBackend)
    assert router.backend_for(req) is backend  # kept between jobs (its pool knows the models)
    remote_settings(server.url, "http://127.0.0.1:9")
    assert router.backend_for(req) is not backend  # a settings change takes effect


def test_configs_pair_urls_with_tokens_and_skip_bad_ones():
    r = settings.RemoteSettings(servers=("a:1", "ftp://b", "https://c"), tokens=("t1", "", "t3"))
    assert [(c.url, c.token) for c in configs_from(r)] == [("http://a:1", "t1"), ("https://c", "t3")]


def test_a_job_through_the_service_streams_previews_and_finishes(qtbot, remote_settings, make_server):
    from canvasai.generation.service import GenerationService

    srv = make_server(knobs=Knobs(step_time=0.01))
    remote_settings(srv.url)
    svc = GenerationService(preview_interval=0.0)
    frames, notes = [], []
    svc.preview.connect(lambda job, step, frame: frames.append(frame.shape))
    svc.note.connect(lambda job, text: notes.append(text))
    img, mask = np.zeros((64, 64, 4), np.uint8), np.zeros((64, 64), np.uint8)
    img[..., 3] = 255
    mask[20:40, 20:40] = 255
    req = GenerationRequest(Task.INPAINT, image=img, mask=mask, model=SD15, seed=8, steps=4)
    with qtbot.waitSignal(svc.finished, timeout=10000) as done:
        svc.submit(req)
    result = done.args[1]
    assert result.images[0].shape == (64, 64, 4)
    assert (result.images[0][30, 30, :3] != 0).any()
    assert frames and all(s == (64, 64, 4) for s in frames)
    assert svc.shutdown(5000)


def test_a_failed_job_through_the_service_reports_and_changes_nothing(qtbot, remote_settings, make_server):
    from canvasai.generation.service import GenerationService

    srv = make_server(knobs=Knobs(fail_node="KSampler"))
    remote_settings(srv.url)
    svc = GenerationService(preview_interval=0.0)
    finished = []
    svc.finished.connect(lambda *a: finished.append(a))
    req = GenerationRequest(Task.TXT2IMG, model=SD15, seed=8, steps=2, width=32, height=32)
    with qtbot.waitSignal(svc.failed, timeout=10000) as failed:
        svc.submit(req)
    assert failed.args[1].startswith("Out of GPU memory")  # the server's OOM, said as locally
    assert finished == []
    assert svc.shutdown(5000)


def test_a_model_added_on_the_server_after_the_listing_is_found(make_server):
    srv = make_server()
    pool = ServerPool([ServerConfig(srv.url)])
    pool.refresh()
    srv.models["checkpoints"] = [*srv.models["checkpoints"], "new_model.safetensors"]
    (found,) = pool.servers_for("comfyui:checkpoints/new_model.safetensors")
    assert found.label == srv.url[7:]
    pool.close()


def test_a_server_found_down_is_not_asked_again_on_every_job(make_server, monkeypatch):
    from canvasai.backends.remote import pool as pool_module

    srv = make_server()
    srv.drop()
    pool = ServerPool([ServerConfig(srv.url)], connect_timeout=1.0)
    pool.refresh()
    calls = []
    monkeypatch.setattr(pool, "check", lambda s, models=True: calls.append(s) or s)
    assert pool.servers_for(SD15) == [] and len(calls) == 1  # the "maybe new model" retry
    monkeypatch.setattr(pool_module, "RETRY_DOWN_S", 0.0)
    pool.ensure_listed()
    assert len(calls) == 2
    pool.close()
