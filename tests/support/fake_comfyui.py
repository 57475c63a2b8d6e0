"""A loopback server that speaks ComfyUI's HTTP and WebSocket protocol (tests, benchmarks).

Message shapes are taken from ComfyUI's own source (Comfy-Org/ComfyUI), read file by file:

- server.py @ 002c3fb9a504255ccb3edb668c08b8f56e63d14a: the routes (``/ws?clientId``,
  ``/prompt`` GET+POST with ``prompt_id`` validation and its 400 payloads, ``/upload/image``,
  ``/view``, ``/history/{id}``, ``/queue`` delete, ``/interrupt`` with ``prompt_id``,
  ``/system_stats``, ``/object_info/{node}``), ``send_json`` (``{"type", "data"}``),
  ``encode_bytes`` (big-endian u32 event type + payload), ``send_image`` (a u32 image
  type, 1 = JPEG, 2 = PNG, then the encoded image), the ``status`` message on connect;
- execution.py @ 04e2a914334246661a77665aa14068a0670e3321: ``execution_start``,
  ``execution_cached``, ``executing``, ``executed``, ``execution_success``,
  ``execution_error`` and ``execution_interrupted`` payloads (``add_message`` adds a
  millisecond ``timestamp``), validation errors (``missing_node_type``,
  ``value_not_in_list``, ``prompt_outputs_failed_validation``), and the history entry
  (``PromptQueue.task_done``: ``prompt``, ``outputs``, ``status`` with ``status_str``,
  ``completed``, ``messages``, plus ``meta``);
- main.py ``hijack_progress`` (same repository): ``progress`` ``{value, max, prompt_id,
  node}`` followed by the preview frame of that step (BinaryEventTypes 1 for a client
  that did not negotiate ``supports_preview_metadata``) and the final ``executing``
  with ``node: None``;
- comfy_execution/progress.py @ 1b71f2753280380bb6bbce53e5787dca42b30be1: the
  ``progress_state`` message; latent_preview.py @ 2d619ed9d647511be7ffcab614d86aff75bf69a6:
  previews are JPEG, at most ``preview_size`` (512) a side.

What it computes is not diffusion: each output is a deterministic function of the graph
(the uploaded picture tinted by the seed, or a flat colour from the seed), so tests can
check what came back and where it went. Knobs make it fail the ways real servers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web
from PIL import Image

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4

#: class_type -> (required inputs {name: type}, optional inputs, output types), as the nodes'
#: INPUT_TYPES / RETURN_TYPES declare them (ComfyUI nodes.py, comfy_extras; IPAdapter nodes
#: from cubiq/ComfyUI_IPAdapter_plus IPAdapterPlus.py). "COMBO" inputs take a value from a
#: list; the others of upper-case type take a link [node_id, output_index] to an output of
#: that type; INT/FLOAT/STRING/BOOLEAN take a value.
NodeSpec = tuple[dict[str, str], dict[str, str], tuple[str, ...]]
_C = "CONDITIONING"
NODE_SPECS: dict[str, NodeSpec] = {
    "CheckpointLoaderSimple": ({"ckpt_name": "COMBO"}, {}, ("MODEL", "CLIP", "VAE")),
    "UNETLoader": ({"unet_name": "COMBO", "weight_dtype": "COMBO"}, {}, ("MODEL",)),
    "CLIPLoader": ({"clip_name": "COMBO", "type": "COMBO"}, {}, ("CLIP",)),
    "DualCLIPLoader": ({"clip_name1": "COMBO", "clip_name2": "COMBO", "type": "COMBO"}, {},
                       ("CLIP",)),
    "VAELoader": ({"vae_name": "COMBO"}, {}, ("VAE",)),
    "LoraLoader": ({"model": "MODEL", "clip": "CLIP", "lora_name": "COMBO",
                    "strength_model": "FLOAT", "strength_clip": "FLOAT"}, {}, ("MODEL", "CLIP")),
    "LoraLoaderModelOnly": ({"model": "MODEL", "lora_name": "COMBO", "strength_model": "FLOAT"},
                            {}, ("MODEL",)),
    "CLIPTextEncode": ({"text": "STRING", "clip": "CLIP"}, {}, (_C,)),
    "FluxGuidance": ({"conditioning": _C, "guidance": "FLOAT"}, {}, (_C,)),
    "EmptyLatentImage": ({"width": "INT", "height": "INT", "batch_size": "INT"}, {}, ("LATENT",)),
    "EmptySD3LatentImage": ({"width": "INT", "height": "INT", "batch_size": "INT"}, {},
                            ("LATENT",)),
    "LoadImage": ({"image": "COMBO"}, {}, ("IMAGE", "MASK")),
    "VAEEncode": ({"pixels": "IMAGE", "vae": "VAE"}, {}, ("LATENT",)),
    "VAEEncodeForInpaint": ({"pixels": "IMAGE", "vae": "VAE", "mask": "MASK",
                             "grow_mask_by": "INT"}, {}, ("LATENT",)),
    "InpaintModelConditioning": ({"positive": _C, "negative": _C, "vae": "VAE", "pixels": "IMAGE",
                                  "mask": "MASK"}, {"noise_mask": "BOOLEAN"}, (_C, _C, "LATENT")),
    "ControlNetLoader": ({"control_net_name": "COMBO"}, {}, ("CONTROL_NET",)),
    "ControlNetApplyAdvanced": ({"positive": _C, "negative": _C, "control_net": "CONTROL_NET",
                                 "image": "IMAGE", "strength": "FLOAT", "start_percent": "FLOAT",
                                 "end_percent": "FLOAT"}, {"vae": "VAE"}, (_C, _C)),
    "KSampler": ({"model": "MODEL", "seed": "INT", "steps": "INT", "cfg": "FLOAT",
                  "sampler_name": "COMBO", "scheduler": "COMBO", "positive": _C, "negative": _C,
                  "latent_image": "LATENT", "denoise": "FLOAT"}, {}, ("LATENT",)),
    "VAEDecode": ({"samples": "LATENT", "vae": "VAE"}, {}, ("IMAGE",)),
    "UpscaleModelLoader": ({"model_name": "COMBO"}, {}, ("UPSCALE_MODEL",)),
    "ImageUpscaleWithModel": ({"upscale_model": "UPSCALE_MODEL", "image": "IMAGE"}, {},
                              ("IMAGE",)),
    "ImageScale": ({"image": "IMAGE", "upscale_method": "COMBO", "width": "INT", "height": "INT",
                    "crop": "COMBO"}, {}, ("IMAGE",)),
    "CLIPVisionLoader": ({"clip_name": "COMBO"}, {}, ("CLIP_VISION",)),
    "PreviewImage": ({"images": "IMAGE"}, {}, ()),
    "SaveImage": ({"images": "IMAGE"}, {"filename_prefix": "STRING"}, ()),
}
#: ComfyUI_IPAdapter_plus (IPAdapterPlus.py): only on servers made with `custom_nodes`
IPADAPTER_SPECS: dict[str, NodeSpec] = {
    "IPAdapterModelLoader": ({"ipadapter_file": "COMBO"}, {}, ("IPADAPTER",)),
    "IPAdapterAdvanced": ({"model": "MODEL", "ipadapter": "IPADAPTER", "image": "IMAGE",
                           "weight": "FLOAT", "weight_type": "COMBO", "combine_embeds": "COMBO",
                           "start_at": "FLOAT", "end_at": "FLOAT", "embeds_scaling": "COMBO"},
                          {"image_negative": "IMAGE", "attn_mask": "MASK",
                           "clip_vision": "CLIP_VISION"}, ("MODEL",)),
}
IPADAPTER_NODES = frozenset(IPADAPTER_SPECS)
CORE_NODES = set(NODE_SPECS)
VALUE_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
OUTPUT_NODES = {"PreviewImage", "SaveImage"}
#: loader node -> (input, folder) as in nodes.py (and the IPAdapter pack)
LOADERS = {
    "CheckpointLoaderSimple": ("ckpt_name", "checkpoints"),
    "UNETLoader": ("unet_name", "diffusion_models"),
    "CLIPLoader": ("clip_name", "text_encoders"),
    "VAELoader": ("vae_name", "vae"),
    "ControlNetLoader": ("control_net_name", "controlnet"),
    "UpscaleModelLoader": ("model_name", "upscale_models"),
    "LoraLoader": ("lora_name", "loras"),
    "LoraLoaderModelOnly": ("lora_name", "loras"),
    "CLIPVisionLoader": ("clip_name", "clip_vision"),
    "IPAdapterModelLoader": ("ipadapter_file", "ipadapter"),
}


def _ms() -> int:
    return int(time.time() * 1000)


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def seed_colour(seed: int) -> np.ndarray:
    rng = np.random.default_rng(int(seed) % (2**32))
    return rng.integers(0, 256, 3, dtype=np.uint8)


@dataclass
class Knobs:
    """How the server misbehaves (all off by default)."""

    step_time: float = 0.0  # seconds per sampling step
    fail_node: str = ""  # class_type that raises during execution (execution_error)
    drop_after_steps: int = -1  # close sockets and stop listening after this many steps
    bad_history: bool = False  # /history answers with a non-object
    no_image: bool = False  # the output node returns no image
    prompt_status: int = 0  # answer POST /prompt with this status (with an error payload)
    upload_status: int = 0  # answer /upload/image with this status
    broken_preview: bool = False  # preview frames carry bytes that are no image
    preview_metadata: bool = False  # send BinaryEventTypes 4 (with metadata) instead of 1
    non_json_frame: bool = False  # one text frame that is not JSON


@dataclass
class _Prompt:
    number: int
    prompt_id: str
    graph: dict
    extra: dict
    outputs: list[str]


class FakeComfyUI:
    """Runs on its own thread and event loop; ``url`` once started. Use as a context manager."""

    def __init__(self, models: dict[str, list[str]] | None = None, *, name: str = "NVIDIA Fake 24G",
                 vram_total: int = 24 * 2**30, vram_free: int = 20 * 2**30, token: str = "",
                 knobs: Knobs | None = None, custom_nodes: frozenset[str] | set[str] = frozenset()
                 ) -> None:
        self.nodes: dict[str, NodeSpec] = dict(NODE_SPECS)
        self.nodes.update({n: IPADAPTER_SPECS[n] for n in custom_nodes})
        self.models = models if models is not None else {
            "checkpoints": ["sd15.safetensors", "sdxl_base.safetensors", "sd15-inpainting.safetensors"],
            "diffusion_models": ["flux1-dev.safetensors"],
            "text_encoders": ["clip_l.safetensors", "t5xxl_fp16.safetensors"],
            "vae": ["ae.safetensors"],
            "controlnet": ["control_sd15_scribble.safetensors", "control_sd15_canny.safetensors"],
            "upscale_models": ["4x-UltraSharp.pth"],
            "loras": ["ink_style.safetensors", "sd15/paper_texture.safetensors"],
        }
        self.device = {"name": name, "vram_total": vram_total, "vram_free": vram_free}
        self.token = token
        self.knobs = knobs or Knobs()
        self.uploads: dict[str, np.ndarray] = {}
        self.files: dict[str, bytes] = {}
        self.prompts: list[_Prompt] = []  # every accepted prompt, in order
        self.history: dict[str, dict] = {}
        self.interrupts: list[str] = []
        self.deletes: list[str] = []
        self.steps_run = 0
        self.port = 0
        self._queue: list[_Prompt] = []
        self._running: _Prompt | None = None
        self._interrupt = False
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._number = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._wake: asyncio.Event | None = None
        self._dropped = False

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeComfyUI:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._cleanup())
            loop.close()

        self._thread = threading.Thread(target=main, daemon=True, name="fake-comfyui")
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def drop(self) -> None:
        """Disappear as a crashed server does: sockets closed, port no longer listening."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(10)

    async def _start(self) -> None:
        self._wake = asyncio.Event()
        app = web.Application(client_max_size=64 * 2**20, middlewares=[self._auth])
        app.add_routes([
            web.get("/ws", self._ws),
            web.get("/system_stats", self._system_stats),
            web.get("/object_info/{node_class}", self._object_info),
            web.get("/models/{folder}", self._models_folder),
            web.get("/prompt", self._get_prompt),
            web.post("/prompt", self._post_prompt),
            web.post("/upload/image", self._upload),
            web.get("/view", self._view),
            web.get("/history/{prompt_id}", self._history),
            web.post("/queue", self._post_queue),
            web.post("/interrupt", self._post_interrupt),
        ])
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port or 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        asyncio.get_running_loop().create_task(self._worker())

    async def _cleanup(self) -> None:
        for ws in list(self._sockets.values()):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _drop(self) -> None:
        self._dropped = True
        for ws in list(self._sockets.values()):
            await ws.close()
        self._sockets.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, text="Unauthorized")
        return await handler(request)

    # -- messages --------------------------------------------------------------------------
    def queue_info(self) -> dict:
        remaining = len(self._queue) + (1 if self._running else 0)
        return {"exec_info": {"queue_remaining": remaining}}

    async def send(self, event: str, data: dict, sid: str | None) -> None:
        targets = [self._sockets[sid]] if sid in self._sockets else (
            list(self._sockets.values()) if sid is None else [])
        for ws in targets:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_json({"type": event, "data": data})

    async def send_bytes(self, event: int, payload: bytes, sid: str | None) -> None:
        ws = self._sockets.get(sid or "")
        if ws is None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_bytes(struct.pack(">I", event) + payload)

    async def send_preview(self, img: np.ndarray, sid: str | None, node: str, prompt_id: str) -> None:
        if self.knobs.broken_preview:
            encoded = b"not an image"
        else:
            pil = Image.fromarray(img)
            pil.thumbnail((512, 512))
            buf = io.BytesIO()
            pil.save(buf, format="JPEG", quality=95)
            encoded = buf.getvalue()
        if self.knobs.preview_metadata:
            meta = json.dumps({"node_id": node, "prompt_id": prompt_id, "display_node_id": node,
                               "parent_node_id": None, "real_node_id": node,
                               "image_type": "image/jpeg"}).encode()
            await self.send_bytes(PREVIEW_IMAGE_WITH_METADATA,
                                  struct.pack(">I", len(meta)) + meta + encoded, sid)
        else:
            await self.send_bytes(PREVIEW_IMAGE, struct.pack(">I", 1) + encoded, sid)

    # -- routes ----------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "") or uuid.uuid4().hex
        self._sockets[sid] = ws
        try:
            await self.send("status", {"status": self.queue_info(), "sid": sid}, sid)
            if self.knobs.non_json_frame:
                await ws.send_str("this is not json")
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            if self._sockets.get(sid) is ws:
                self._sockets.pop(sid, None)
        return ws

    async def _system_stats(self, request: web.Request) -> web.Response:
        d = self.device
        return web.json_response({
            "system": {"os": "linux", "ram_total": 64 * 2**30, "ram_free": 48 * 2**30,
                       "comfyui_version": "0.3.99-fake", "python_version": "3.11",
                       "pytorch_version": "2.13.0", "embedded_python": False, "argv": ["main.py"]},
            "devices": [{"name": d["name"], "type": "cuda", "index": 0,
                         "vram_total": d["vram_total"], "vram_free": d["vram_free"],
                         "torch_vram_total": d["vram_total"], "torch_vram_free": d["vram_free"]}],
        })

    async def _object_info(self, request: web.Request) -> web.Response:
        node = request.match_info["node_class"]
        spec = self.nodes.get(node)
        if spec is None:
            return web.json_response({})
        required, optional, outputs = spec
        inputs: dict[str, Any] = {"required": {}, "optional": {}}
        for section, names in (("required", required), ("optional", optional)):
            for name, kind in names.items():
                inputs[section][name] = [kind, {}]
        if node in LOADERS:
            name, folder = LOADERS[node]
            # the newer COMBO form for one loader, the older list form for the others
            if node == "UNETLoader":
                inputs["required"][name] = ["COMBO", {"options": list(self.models.get(folder, []))}]
            else:
                inputs["required"][name] = [list(self.models.get(folder, [])), {}]
        return web.json_response({node: {"input": inputs, "output": list(outputs), "name": node,
                                         "output_node": node in OUTPUT_NODES}})

    async def _models_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in self.models:
            return web.Response(status=404)
        return web.json_response(self.models[folder])

    async def _get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self.queue_info())

    def _validate(self, graph: Any) -> tuple[dict | None, dict]:
        if not isinstance(graph, dict):
            return {"type": "invalid_prompt", "message": "Invalid prompt", "details": "",
                    "extra_info": {}}, {}
        outputs = []
        node_errors: dict[str, Any] = {}
        for node_id, node in graph.items():
            if "class_type" not in node:
                return {"type": "missing_node_type",
                        "message": f"Node 'ID #{node_id}' has no class_type. The workflow may be corrupted or a custom node is missing.",
                        "details": f"Node ID '#{node_id}'", "extra_info": {"node_id": node_id}}, {}
            ct = node["class_type"]
            if ct not in self.nodes:
                return {"type": "missing_node_type",
                        "message": f"Node '{ct}' not found. The custom node may not be installed.",
                        "details": f"Node ID '#{node_id}'",
                        "extra_info": {"node_id": node_id, "class_type": ct, "node_title": ct}}, {}
            if ct in OUTPUT_NODES:
                outputs.append(node_id)
            errors = self._input_errors(graph, node_id, ct, node.get("inputs") or {})
            if errors:
                node_errors[node_id] = {"errors": errors, "dependent_outputs": [], "class_type": ct}
                continue
            if ct in LOADERS:
                name, folder = LOADERS[ct]
                val = node["inputs"].get(name)
                options = self.models.get(folder, [])
                if val not in options:
                    node_errors[node_id] = {"errors": [{
                        "type": "value_not_in_list", "message": "Value not in list",
                        "details": f"{name}: '{val}' not in {options}",
                        "extra_info": {"input_name": name, "received_value": val}}],
                        "dependent_outputs": [], "class_type": ct}
            if ct == "LoadImage" and node["inputs"].get("image") not in self.uploads:
                node_errors[node_id] = {"errors": [{
                    "type": "custom_validation_failed", "message": "Custom validation failed for node",
                    "details": f"image - Invalid image file: {node['inputs'].get('image')}",
                    "extra_info": {"input_name": "image"}}], "dependent_outputs": [], "class_type": ct}
        if not outputs:
            return {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                    "extra_info": {}}, {}
        if node_errors:
            details = "\n".join(f"{e['message']}: {e['details']}"
                                for n in node_errors.values() for e in n["errors"])
            for n in node_errors.values():
                n["dependent_outputs"] = outputs
            return {"type": "prompt_outputs_failed_validation",
                    "message": "Prompt outputs failed validation", "details": details,
                    "extra_info": {}}, node_errors
        return None, {}

    def _input_errors(self, graph: dict, node_id: str, ct: str, inputs: dict) -> list[dict]:
        """execution.py validate_inputs' checks of one node's inputs: required ones present
        (``required_input_missing``), links pointing at an existing node's output
        (``bad_linked_input``) of the type the input takes (``return_type_mismatch``),
        values where a value is expected, no unknown inputs."""
        required, optional, _ = self.nodes[ct]
        errors = []

        def error(kind: str, message: str, name: str, details: str) -> None:
            errors.append({"type": kind, "message": message, "details": details,
                           "extra_info": {"input_name": name}})

        for name in required:
            if name not in inputs:
                error("required_input_missing", "Required input is missing", name, name)
        for name, value in inputs.items():
            kind = required.get(name) or optional.get(name)
            if kind is None:
                error("unknown_input", "Input is not an input of this node", name,
                      f"{ct} has no input {name}")
                continue
            is_link = isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            if kind in VALUE_TYPES:
                if is_link:  # no node here outputs plain values
                    error("bad_linked_input", "Bad linked input, must be a length-2 list of "
                          "[node_id, slot_index]", name, f"{name} takes a value, not a link")
                continue
            if not is_link or not isinstance(value[1], int):
                error("bad_linked_input", "Bad linked input, must be a length-2 list of "
                      "[node_id, slot_index]", name, f"{name}, {value!r}")
                continue
            src = graph.get(value[0])
            src_spec = self.nodes.get(src.get("class_type")) if isinstance(src, dict) else None
            if src_spec is None or not 0 <= value[1] < len(src_spec[2]):
                error("bad_linked_input", "Bad linked input", name,
                      f"{name} links to output {value[1]} of node {value[0]!r}, which has none")
                continue
            received = src_spec[2][value[1]]
            if received != kind:
                error("return_type_mismatch", "Return type mismatch between linked nodes", name,
                      f"{name}, received_type({received}) mismatch input_type({kind})")
        return errors

    async def _post_prompt(self, request: web.Request) -> web.Response:
        data = await request.json()
        if self.knobs.prompt_status:
            return web.json_response({"error": {"type": "server_error", "message": "The fake server is told to refuse",
                                                 "details": "", "extra_info": {}}, "node_errors": {}},
                                     status=self.knobs.prompt_status)
        if "prompt" not in data:
            return web.json_response({"error": {"type": "no_prompt", "message": "No prompt provided",
                                                "details": "No prompt provided", "extra_info": {}},
                                      "node_errors": {}}, status=400)
        pid = data.get("prompt_id")
        if pid is None:
            pid = str(uuid.uuid4())
        else:
            try:
                ok = str(uuid.UUID(pid)) == pid
            except (ValueError, TypeError, AttributeError):
                ok = False
            if not ok:
                return web.json_response({"error": {
                    "type": "invalid_prompt_id", "message": "prompt_id must be a valid UUID",
                    "details": "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the server generate one",
                    "extra_info": {}}, "node_errors": {}}, status=400)
        error, node_errors = self._validate(data["prompt"])
        if error is not None:
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        extra = dict(data.get("extra_data") or {})
        if "client_id" in data:
            extra["client_id"] = data["client_id"]
        extra["create_time"] = _ms()
        number = self._number
        self._number += 1
        outputs = [k for k, v in data["prompt"].items() if v["class_type"] in OUTPUT_NODES]
        item = _Prompt(number, pid, data["prompt"], extra, outputs)
        self.prompts.append(item)
        self._queue.append(item)
        await self.send("status", {"status": self.queue_info()}, None)
        assert self._wake is not None
        self._wake.set()
        return web.json_response({"prompt_id": pid, "number": number, "node_errors": {}})

    async def _upload(self, request: web.Request) -> web.Response:
        post = await request.post()
        if self.knobs.upload_status:
            return web.Response(status=self.knobs.upload_status)
        image = post.get("image")
        if image is None or not getattr(image, "filename", ""):
            return web.Response(status=400)
        raw = image.file.read()
        with Image.open(io.BytesIO(raw)) as im:
            self.uploads[image.filename] = np.asarray(im.convert("RGBA")).copy()
        return web.json_response({"name": image.filename, "subfolder": "", "type": post.get("type", "input")})

    async def _view(self, request: web.Request) -> web.Response:
        name = request.rel_url.query.get("filename", "")
        if name not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[name], content_type="image/png")

    async def _history(self, request: web.Request) -> web.Response:
        if self.knobs.bad_history:
            return web.json_response(["not", "a", "history"])
        pid = request.match_info["prompt_id"]
        return web.json_response({pid: self.history[pid]} if pid in self.history else {})

    async def _post_queue(self, request: web.Request) -> web.Response:
        data = await request.json()
        for pid in data.get("delete", []):
            self.deletes.append(pid)
            self._queue = [p for p in self._queue if p.prompt_id != pid]
        return web.Response(status=200)

    async def _post_interrupt(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except json.JSONDecodeError:
            data = {}
        pid = data.get("prompt_id")
        self.interrupts.append(pid or "")
        if not pid or (self._running is not None and self._running.prompt_id == pid):
            self._interrupt = True
        return web.Response(status=200)

    # -- execution -------------------------------------------------------------------------
    async def _worker(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._dropped:
                return
            item = self._queue.pop(0)
            self._running = item
            try:
                await self._execute(item)
            finally:
                self._running = None
            await self.send("status", {"status": self.queue_info()}, None)

    def _order(self, graph: dict) -> list[str]:
        done: list[str] = []

        def visit(nid: str) -> None:
            if nid in done:
                return
            for v in graph[nid]["inputs"].values():
                if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
                    visit(v[0])
            done.append(nid)

        for nid in graph:
            visit(nid)
        return done

    async def _execute(self, item: _Prompt) -> None:
        sid = item.extra.get("client_id")
        pid, graph = item.prompt_id, item.graph
        messages: list = []

        async def message(event: str, data: dict) -> None:
            data = {**data, "timestamp": _ms()}
            messages.append((event, data))
            await self.send(event, data, sid)

        self._interrupt = False
        await message("execution_start", {"prompt_id": pid})
        await message("execution_cached", {"nodes": [], "prompt_id": pid})
        values: dict[str, Any] = {}
        executed: list[str] = []
        outputs: dict[str, Any] = {}
        status = "success"
        for nid in self._order(graph):
            node = graph[nid]
            ct, inputs = node["class_type"], node["inputs"]
            await self.send("executing", {"node": nid, "display_node": nid, "prompt_id": pid}, sid)
            if ct == self.knobs.fail_node:
                await message("execution_error", {
                    "prompt_id": pid, "node_id": nid, "node_type": ct, "executed": executed,
                    "exception_message": "CUDA out of memory. Tried to allocate 2.00 GiB\n",
                    "exception_type": "torch.OutOfMemoryError",
                    "traceback": ["  File \"execution.py\", line 1, in execute\n"],
                    "current_inputs": {}, "current_outputs": executed})
                status = "error"
                break

            def arg(name: str, inputs: dict = inputs) -> Any:
                v = inputs.get(name)
                return values[v[0]] if isinstance(v, list) and len(v) == 2 else v

            if ct == "LoadImage":
                rgba = self.uploads[inputs["image"]]
                values[nid] = {"image": rgba[..., :3], "mask": 255 - rgba[..., 3]}
            elif ct in ("EmptyLatentImage", "EmptySD3LatentImage"):
                values[nid] = {"size": (inputs["width"], inputs["height"]), "image": None}
            elif ct in ("VAEEncode",):
                values[nid] = {"image": arg("pixels")["image"], "mask": None}
            elif ct in ("VAEEncodeForInpaint",) or ct == "InpaintModelConditioning":
                src = arg("pixels")
                values[nid] = {"image": src["image"], "mask": src["mask"]}
            elif ct == "KSampler":
                lat_link = inputs["latent_image"]
                lat = values[lat_link[0]]
                steps, seed = int(inputs["steps"]), int(inputs["seed"])
                colour = seed_colour(seed)
                if lat.get("image") is None:
                    w, h = lat["size"]
                    base = np.empty((h, w, 3), np.uint8)
                    base[...] = colour
                else:
                    base = lat["image"].copy()
                    mask = lat.get("mask")
                    tint = ((base.astype(np.int16) + colour) // 2).astype(np.uint8)
                    if mask is not None:
                        base[mask > 0] = tint[mask > 0]
                    else:
                        base = tint
                interrupted = False
                for step in range(steps):
                    if self._interrupt:
                        interrupted = True
                        break
                    await asyncio.sleep(self.knobs.step_time)
                    if self._interrupt:
                        interrupted = True
                        break
                    self.steps_run += 1
                    if self.knobs.drop_after_steps >= 0 and self.steps_run > self.knobs.drop_after_steps:
                        await self._drop()
                        return
                    progress = {"value": step + 1, "max": steps, "prompt_id": pid, "node": nid}
                    await self.send("progress_state", {"prompt_id": pid, "nodes": {nid: {
                        "value": step + 1, "max": steps, "state": "running", "node_id": nid,
                        "prompt_id": pid, "display_node_id": nid, "parent_node_id": None,
                        "real_node_id": nid}}}, sid)
                    await self.send("progress", progress, sid)
                    await self.send_preview(base, sid, nid, pid)
                if interrupted:
                    await message("execution_interrupted", {"prompt_id": pid, "node_id": nid,
                                                            "node_type": ct, "executed": executed})
                    status = "error"
                    break
                values[nid] = {"image": base}
            elif ct == "VAEDecode":
                values[nid] = {"image": arg("samples")["image"]}
            elif ct == "ImageUpscaleWithModel":
                img = arg("image")["image"]
                values[nid] = {"image": np.repeat(np.repeat(img, 4, 0), 4, 1)}
            elif ct == "ImageScale":
                img = arg("image")["image"]
                pil = Image.fromarray(img).resize((int(inputs["width"]), int(inputs["height"])),
                                                  Image.LANCZOS)
                values[nid] = {"image": np.asarray(pil)}
            elif ct in OUTPUT_NODES:
                images = []
                if not self.knobs.no_image:
                    name = f"ComfyUI_temp_{uuid.uuid4().hex[:5]}_00001_.png"
                    self.files[name] = png_bytes(arg("images")["image"])
                    images.append({"filename": name, "subfolder": "", "type": "temp"})
                outputs[nid] = {"images": images}
                await self.send("executed", {"node": nid, "display_node": nid,
                                             "output": {"images": images}, "prompt_id": pid}, sid)
            else:
                values[nid] = {}
            executed.append(nid)
        else:
            await message("execution_success", {"prompt_id": pid})
        self.history[pid] = {
            "prompt": [item.number, pid, graph, {k: v for k, v in item.extra.items()}, item.outputs],
            "outputs": outputs,
            "status": {"status_str": status, "completed": status == "success", "messages": messages},
            "meta": {k: {"node_id": k, "display_node": k, "parent_node": None, "real_node_id": k}
                     for k in outputs},
        }
        await self.send("executing", {"node": None, "prompt_id": pid}, sid)
