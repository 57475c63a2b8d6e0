"""Message parsing and error payloads, byte for byte as ComfyUI sends them.

Binary frames: server.py (Comfy-Org/ComfyUI @ 002c3fb9a504255ccb3edb668c08b8f56e63d14a)
``encode_bytes`` packs ``>I`` event type + payload; ``send_image`` adds ``>I`` image type
(1 JPEG, 2 PNG); ``send_image_with_metadata`` adds ``>I`` JSON length + JSON. Error
payloads: execution.py @ 04e2a914334246661a77665aa14068a0670e3321 ``validate_prompt``.
"""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from PIL import Image

from canvasai.backends.remote import catalog
from canvasai.backends.remote.protocol import (
    ServerConfig,
    ServerError,
    combo_options,
    decode_image,
    error_text,
    history_images,
    normalize_url,
    parse_message,
)


def jpeg(w: int = 8, h: int = 6) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def test_json_events():
    ev = parse_message(json.dumps({"type": "progress", "data": {"value": 3, "max": 20,
                                                                "prompt_id": "p", "node": "8"}}))
    assert ev.type == "progress" and ev.data["value"] == 3 and ev.image is None
    ev = parse_message('{"type": "executing", "data": {"node": null, "prompt_id": "p"}}')
    assert ev.type == "executing" and ev.data["node"] is None


def test_binary_preview_frames():
    img = jpeg()
    ev = parse_message(struct.pack(">I", 1) + struct.pack(">I", 1) + img)
    assert ev.type == "preview" and ev.image == img
    assert decode_image(ev.image).shape == (6, 8, 3)
    meta = json.dumps({"node_id": "8", "prompt_id": "p", "image_type": "image/jpeg"}).encode()
    ev = parse_message(struct.pack(">I", 4) + struct.pack(">I", len(meta)) + meta + img)
    assert ev.type == "preview" and ev.image == img and ev.data["prompt_id"] == "p"
    assert parse_message(struct.pack(">I", 3) + b"\x00\x00\x00\x01" + b"8" + b"text") is None


@pytest.mark.parametrize("bad", [b"\x00\x01", struct.pack(">I", 1) + b"\x00", "not json", "[1, 2]"])
def test_malformed_frames_raise_a_server_error(bad):
    with pytest.raises(ServerError):
        parse_message(bad)


def test_validation_error_payload_reads_as_a_sentence():
    payload = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                  "details": "Value not in list: ckpt_name: 'x' not in []", "extra_info": {}},
        "node_errors": {"4": {"errors": [{"type": "value_not_in_list", "message": "Value not in list",
                                          "details": "ckpt_name: 'x' not in []", "extra_info": {}}],
                              "dependent_outputs": ["9"], "class_type": "CheckpointLoaderSimple"}},
    }
    text = error_text(payload)
    assert text.startswith("Prompt outputs failed validation: Value not in list")
    assert "node 4 (CheckpointLoaderSimple): Value not in list" in text


def test_combo_options_both_forms():
    assert combo_options([["a", "b"], {}]) == ["a", "b"]
    assert combo_options(["COMBO", {"options": ["c"]}]) == ["c"]
    assert combo_options(["INT", {}]) == []


def test_urls():
    assert normalize_url("gpu-box:8188") == "http://gpu-box:8188"
    assert normalize_url(" https://x.example/comfy/ ") == "https://x.example/comfy"
    cfg = ServerConfig("https://x.example/comfy")
    assert cfg.ws_url("abc") == "wss://x.example/comfy/ws?clientId=abc"
    assert cfg.label == "x.example/comfy"
    for bad in ("", "ftp://x", "http://"):
        with pytest.raises(ServerError):
            normalize_url(bad)


def test_history_images_in_node_order():
    entry = {"outputs": {"12": {"images": [{"filename": "b.png", "subfolder": "", "type": "temp"}]},
                         "9": {"images": [{"filename": "a.png", "subfolder": "s", "type": "output"}]},
                         "3": {"text": ["x"]}}}
    assert [i["filename"] for i in history_images(entry)] == ["a.png", "b.png"]


@pytest.mark.parametrize(
    ("folder", "name", "family", "kind"),
    [
        ("checkpoints", "v1-5-pruned-emaonly.safetensors", "sd1", "base"),
        ("checkpoints", "sd_xl_base_1.0.safetensors", "sdxl", "base"),
        ("checkpoints", "juggernautXL_v9.safetensors", "sdxl", "base"),
        ("checkpoints", "sd-v1-5-inpainting.ckpt", "sd1", "inpaint"),
        ("diffusion_models", "flux1-fill-dev.safetensors", "flux", "inpaint"),
        ("diffusion_models", "flux-2-klein-4b.safetensors", "flux2", "base"),
        ("diffusion_models", "z_image_turbo_bf16.safetensors", "zimage", "base"),
        ("diffusion_models", "qwen_image_edit_2509.safetensors", "qwen", "edit"),
        ("checkpoints", "sd3.5_medium_incl_clips.safetensors", "sd3", "base"),
    ],
)
def test_server_model_families_from_names(folder, name, family, kind):
    m = catalog.classify(folder, name)
    assert (m.family, m.kind) == (family, kind)
    assert catalog.split_id(m.id) == (folder, name) and catalog.is_remote_model(m.id)
