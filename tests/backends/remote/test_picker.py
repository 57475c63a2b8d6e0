"""Server models in the same picker as local ones, grouped under their server."""

from __future__ import annotations

import pytest

from canvasai.backends import router
from canvasai.backends.remote.pool import ServerPool, picker_entries
from canvasai.backends.remote.protocol import ServerConfig
from canvasai.core import settings


def test_picker_entries_group_models_under_their_server(make_server):
    a = make_server()
    b = make_server()
    b.drop()
    pool = ServerPool([ServerConfig(a.url), ServerConfig(b.url)], connect_timeout=1.0)
    found, kinds, controlnets, note = picker_entries(pool)
    label = a.url[len("http://"):]
    assert (f"{label} · SDXL · base", "sdxl_base.safetensors",
            "comfyui:checkpoints/sdxl_base.safetensors") in found
    assert (f"{label} · SD 1.x · inpaint", "sd15-inpainting.safetensors",
            "comfyui:checkpoints/sd15-inpainting.safetensors") in found
    assert kinds["comfyui:diffusion_models/flux1-dev.safetensors"][:3] == ("flux", "base", "dev")
    assert ("control_sd15_scribble.safetensors (on " + label + ")",
            "comfyui:controlnet/control_sd15_scribble.safetensors") in controlnets
    assert b.url[len("http://"):] in note and "not connected" in note
    pool.close()


def test_the_panel_scan_lists_server_models_beside_local_ones(qtbot, tmp_path, monkeypatch, server):
    from canvasai.ui.generation_controller import _ModelScan, _ScanTask

    monkeypatch.setenv("CANVASAI_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    settings.reset(settings.MemoryStore({"remote/servers": [server.url]}))
    router.reset()
    try:
        signals = _ModelScan()
        got = []
        signals.done.connect(lambda *a: got.append(a))
        _ScanTask(signals).run()
        models, controlnets, note, kinds = got[0]
        values = {v for _, _, v in models}
        assert "comfyui:checkpoints/sd15.safetensors" in values
        assert all(g.startswith(server.url[7:]) for g, _, v in models if v.startswith("comfyui:"))
    finally:
        settings.reset(settings.MemoryStore())
        router.reset()


@pytest.mark.parametrize("servers", [[], ["http://127.0.0.1:9"]])
def test_no_or_dead_servers_leave_the_local_list_alone(tmp_path, monkeypatch, servers):
    from canvasai.ui.generation_controller import _ModelScan, _ScanTask

    monkeypatch.setenv("CANVASAI_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    settings.reset(settings.MemoryStore({"remote/servers": servers}))
    router.reset()
    try:
        signals = _ModelScan()
        got = []
        signals.done.connect(lambda *a: got.append(a))
        _ScanTask(signals).run()
        models, _, note, _ = got[0]
        assert not any(v.startswith("comfyui:") for _, _, v in models)
        assert ("not connected" in note) == bool(servers)
    finally:
        settings.reset(settings.MemoryStore())
        router.reset()


def test_a_slow_server_does_not_hold_up_the_local_list(tmp_path, monkeypatch):
    import threading

    from canvasai.backends.remote import pool as pool_module
    from canvasai.ui.generation_controller import _ModelScan, _ScanTask

    monkeypatch.setenv("CANVASAI_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))

    listed_locally = threading.Event()

    def slow_entries(pool=None):
        # the server answers only once the local models were shown (no wall-clock race)
        listed_locally.wait(20)
        return [("srv · SD 1.x · base", "m.safetensors", "comfyui:checkpoints/m.safetensors")], {}, [], ""

    monkeypatch.setattr(pool_module, "picker_entries", slow_entries)
    signals = _ModelScan()
    got = []
    signals.done.connect(lambda *a: (got.append(a), listed_locally.set()))
    _ScanTask(signals).run()
    assert len(got) == 2
    assert not any(v.startswith("comfyui:") for _, _, v in got[0][0])
    assert any(v == "comfyui:checkpoints/m.safetensors" for _, _, v in got[1][0])
