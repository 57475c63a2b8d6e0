"""ComfyUI's HTTP + WebSocket API, as a small synchronous client (worker threads only).

Message shapes follow ComfyUI's own server code (Comfy-Org/ComfyUI; files and commits
named in tests/support/fake_comfyui.py):

- ``GET /ws?clientId=<id>``: JSON text frames ``{"type": ..., "data": {...}}`` (``status``,
  ``execution_start``, ``execution_cached``, ``executing``, ``progress``, ``executed``,
  ``execution_success``, ``execution_error``, ``execution_interrupted``, ...) and binary
  frames: a big-endian u32 event type, then its payload. Event 1 (PREVIEW_IMAGE) carries a
  u32 image type (1 = JPEG, 2 = PNG) and the encoded image; event 4
  (PREVIEW_IMAGE_WITH_METADATA) a u32 length, that much JSON, then the image.
- ``POST /prompt`` ``{"prompt": graph, "client_id": id, "prompt_id": uuid}`` ->
  ``{"prompt_id", "number", "node_errors"}``; a bad graph answers 400 with
  ``{"error": {"type", "message", "details", "extra_info"}, "node_errors": {...}}``.
- ``POST /upload/image`` (multipart ``image``, ``type``, ``overwrite``) -> ``{"name",
  "subfolder", "type"}``; ``GET /view?filename&subfolder&type`` -> the file.
- ``GET /history/<prompt_id>`` -> ``{prompt_id: {"prompt", "outputs", "status", "meta"}}``.
- ``POST /interrupt`` ``{"prompt_id"}`` (running) and ``POST /queue`` ``{"delete": [ids]}``
  (waiting); ``GET /system_stats``; ``GET /object_info/<NodeClass>``.

Nothing here touches Qt; every call blocks, so it belongs on the generation worker or a
pool thread, never on the GUI thread.
"""

from __future__ import annotations

import io
import json
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from canvasai.core.errors import GenerationError

# binary WebSocket event types (ComfyUI protocol.py BinaryEventTypes)
PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4
# image types inside a PREVIEW_IMAGE payload (server.py send_image)
IMAGE_JPEG = 1
IMAGE_PNG = 2

#: model folders listed through the loader node that reads them: folder -> (node, input)
MODEL_LOADERS: dict[str, tuple[str, str]] = {
    "checkpoints": ("CheckpointLoaderSimple", "ckpt_name"),
    "diffusion_models": ("UNETLoader", "unet_name"),
    "text_encoders": ("CLIPLoader", "clip_name"),
    "vae": ("VAELoader", "vae_name"),
    "controlnet": ("ControlNetLoader", "control_net_name"),
    "upscale_models": ("UpscaleModelLoader", "model_name"),
    "loras": ("LoraLoader", "lora_name"),
    "clip_vision": ("CLIPVisionLoader", "clip_name"),
    # ComfyUI_IPAdapter_plus (a custom node pack): absent on a plain install
    "ipadapter": ("IPAdapterModelLoader", "ipadapter_file"),
}
#: nodes of custom node packs a job may need; `ComfyClient.models` lists those a server has
#: under the key "nodes" (GET /object_info/<node> answers {} for a node it lacks)
OPTIONAL_NODES: tuple[str, ...] = ("IPAdapterModelLoader", "IPAdapterAdvanced")


class ServerError(GenerationError):
    """A server answered, but not with what a job needs; the message says what and where."""


class ServerGone(ServerError):
    """The server could not be reached or dropped the connection (the job may run elsewhere)."""


@dataclass(frozen=True)
class ServerConfig:
    """One server as the person entered it: http(s) URL and an optional access token."""

    url: str
    token: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalize_url(self.url))

    @property
    def label(self) -> str:
        parts = urlsplit(self.url)
        return parts.netloc + (parts.path.rstrip("/") or "")

    def ws_url(self, client_id: str) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/ws"
        return urlunsplit((scheme, parts.netloc, path, f"clientId={client_id}", ""))


def normalize_url(url: str) -> str:
    """``host:port`` or ``http(s)://host:port/prefix`` -> ``scheme://host:port/prefix``;
    `ServerError` for anything that is not an http(s) address."""
    text = (url or "").strip()
    if not text:
        raise ServerError("A server needs an address, e.g. http://192.168.1.20:8188.")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ServerError(f"“{url}” is not an http:// or https:// server address.")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def new_id() -> str:
    """A prompt or client id in the canonical form ComfyUI validates (lowercase UUID4)."""
    return str(uuid.uuid4())


# ------------------------------------------------------------------------------- events


@dataclass
class Event:
    """One WebSocket message: a JSON event (`type`, `data`) or a preview image."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    image: bytes | None = None  # encoded JPEG/PNG of a preview frame


def parse_message(message: str | bytes) -> Event | None:
    """Decode one WebSocket frame; None for frames CanvasAI does not use (text output...)."""
    if isinstance(message, (bytes, bytearray)):
        if len(message) < 4:
            raise ServerError("The server sent a binary message shorter than its header.")
        (kind,) = struct.unpack(">I", message[:4])
        body = bytes(message[4:])
        if kind == PREVIEW_IMAGE:
            if len(body) < 4:
                raise ServerError("The server sent a preview frame without an image.")
            return Event("preview", {}, body[4:])
        if kind == PREVIEW_IMAGE_WITH_METADATA:
            if len(body) < 4:
                raise ServerError("The server sent a preview frame without metadata.")
            (n,) = struct.unpack(">I", body[:4])
            try:
                meta = json.loads(body[4 : 4 + n].decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ServerError(f"The server sent unreadable preview metadata ({exc}).") from exc
            return Event("preview", meta if isinstance(meta, dict) else {}, body[4 + n :])
        return None
    try:
        obj = json.loads(message)
    except ValueError as exc:
        raise ServerError(f"The server sent a message that is not JSON: {message[:80]!r}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ServerError(f"The server sent a message without a type: {str(message)[:80]}")
    data = obj.get("data")
    return Event(obj["type"], data if isinstance(data, dict) else {})


def decode_image(data: bytes, what: str = "image", fit: tuple[int, int] | None = None) -> np.ndarray:
    """Encoded PNG/JPEG -> H x W x 3|4 uint8 (Pillow; `ServerError` if it is not one).

    `fit` (w, h): a JPEG may be decoded at a reduced scale no smaller than that (previews
    shown smaller than the server sent them cost less)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if fit is not None and im.format == "JPEG":
                im.draft("RGB", fit)
            im.load()
            mode = "RGBA" if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info else "RGB"
            return np.asarray(im.convert(mode)).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ServerError(f"The server's {what} could not be decoded ({exc}).") from exc


def encode_png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def error_text(payload: Any) -> str:
    """A sentence from ComfyUI's error payload (`/prompt` 400s, `execution_error`)."""
    if not isinstance(payload, Mapping):
        return str(payload)[:300]
    err = payload.get("error", payload)
    parts: list[str] = []
    if isinstance(err, Mapping):
        msg = str(err.get("message") or err.get("exception_message") or "").strip()
        details = str(err.get("details") or "").strip()
        parts.append(msg + (f": {details}" if details and details not in msg else ""))
    elif err:
        parts.append(str(err))
    for node_id, info in (payload.get("node_errors") or {}).items():
        if not isinstance(info, Mapping):
            continue
        for e in info.get("errors") or ():
            if isinstance(e, Mapping):
                parts.append(f"node {node_id} ({info.get('class_type', '?')}): "
                             f"{e.get('message', '')} {e.get('details', '')}".strip())
    text = "; ".join(p for p in parts if p)
    return text[:600] or "no reason given"


def combo_options(spec: Any) -> list[str]:
    """The choices of a combo input in `/object_info` (old ``[[...], {...}]`` or new
    ``["COMBO", {"options": [...]}]`` form)."""
    if isinstance(spec, (list, tuple)) and spec:
        first = spec[0]
        if isinstance(first, list):
            return [str(x) for x in first]
        if first == "COMBO" and len(spec) > 1 and isinstance(spec[1], Mapping):
            return [str(x) for x in spec[1].get("options", [])]
    return []


# ------------------------------------------------------------------------------- client


class ComfyClient:
    """HTTP calls to one server (httpx); `open_socket` starts a WebSocket (websocket-client)."""

    def __init__(self, config: ServerConfig, timeout: float = 10.0, connect_timeout: float = 3.0):
        import httpx

        self.config = config
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self._headers = headers
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._http = httpx.Client(
            base_url=config.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
        )

    def close(self) -> None:
        self._http.close()

    # -- plumbing ----------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        where = self.config.label
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.TimeoutException as exc:
            raise ServerGone(f"The server {where} did not answer in time ({path}).") from exc
        except httpx.HTTPError as exc:
            raise ServerGone(f"The server {where} cannot be reached: {exc}.") from exc
        if resp.status_code in (401, 403):
            raise ServerError(f"The server {where} refused access ({resp.status_code}): "
                              "check the token in Preferences ▸ Servers.")
        if resp.status_code >= 400:
            try:
                detail = error_text(resp.json())
            except ValueError:
                detail = resp.text.strip()[:200] or resp.reason_phrase
            raise ServerError(f"The server {where} answered {resp.status_code} to {path}: {detail}")
        return resp

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self._request(method, path, **kw)
        try:
            return resp.json()
        except ValueError as exc:
            raise ServerError(f"The server {self.config.label} answered {path} with something "
                              f"that is not JSON: {resp.text[:80]!r}") from exc

    # -- API ---------------------------------------------------------------------------------
    def system_stats(self) -> dict[str, Any]:
        data = self._json("GET", "/system_stats")
        if not isinstance(data, dict):
            raise ServerError(f"The server {self.config.label} sent malformed /system_stats.")
        return data

    def queue_remaining(self) -> int:
        data = self._json("GET", "/prompt")
        try:
            return int(data["exec_info"]["queue_remaining"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerError(f"The server {self.config.label} sent a malformed queue state.") from exc

    def node_input_options(self, node: str, name: str) -> list[str] | None:
        """The choices of `node`'s input `name`; None when the server has no such node."""
        data = self._json("GET", f"/object_info/{node}")
        info = data.get(node) if isinstance(data, dict) else None
        if not isinstance(info, dict):
            return None
        inputs = info.get("input") or {}
        for section in ("required", "optional"):
            spec = (inputs.get(section) or {}).get(name)
            if spec is not None:
                return combo_options(spec)
        return []

    def has_node(self, node: str) -> bool:
        data = self._json("GET", f"/object_info/{node}")
        return isinstance(data, dict) and isinstance(data.get(node), dict)

    def models(self) -> dict[str, list[str]]:
        """Model files by folder (see `MODEL_LOADERS`), read from the loader nodes' inputs,
        and under "nodes" the `OPTIONAL_NODES` the server has."""
        out: dict[str, list[str]] = {}
        present: list[str] = []
        for folder, (node, name) in MODEL_LOADERS.items():
            found = self.node_input_options(node, name)
            out[folder] = found or []
            if found is not None and node in OPTIONAL_NODES:
                present.append(node)
        if "IPAdapterModelLoader" in present and self.has_node("IPAdapterAdvanced"):
            present.append("IPAdapterAdvanced")
        out["nodes"] = present
        return out

    def upload_image(self, image: np.ndarray, name: str) -> str:
        files = {"image": (name, encode_png(image), "image/png")}
        data = self._json("POST", "/upload/image", files=files,
                          data={"type": "input", "overwrite": "true"})
        if not isinstance(data, dict) or not data.get("name"):
            raise ServerError(f"The server {self.config.label} did not accept the upload.")
        sub = str(data.get("subfolder") or "")
        return f"{sub}/{data['name']}" if sub else str(data["name"])

    def queue_prompt(self, graph: Mapping[str, Any], prompt_id: str, client_id: str) -> dict:
        body = {"prompt": graph, "client_id": client_id, "prompt_id": prompt_id}
        import httpx

        try:
            resp = self._http.post("/prompt", json=body)
        except httpx.HTTPError as exc:
            raise ServerGone(f"The server {self.config.label} cannot be reached: {exc}.") from exc
        try:
            data = resp.json()
        except ValueError:
            data = {"error": resp.text[:200]}
        if resp.status_code >= 400:
            raise ServerError(f"The server {self.config.label} refused the job: {error_text(data)}")
        if not isinstance(data, dict) or "prompt_id" not in data:
            raise ServerError(f"The server {self.config.label} answered /prompt without a prompt id.")
        if data["prompt_id"] != prompt_id:
            raise ServerError(f"The server {self.config.label} queued the job under another id "
                              f"({data['prompt_id']}); it is too old for CanvasAI's protocol.")
        return data

    def interrupt(self, prompt_id: str) -> None:
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id})

    def delete_queued(self, prompt_ids: list[str]) -> None:
        self._request("POST", "/queue", json={"delete": list(prompt_ids)})

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        data = self._json("GET", f"/history/{prompt_id}")
        if not isinstance(data, dict):
            raise ServerError(f"The server {self.config.label} sent a malformed /history entry.")
        entry = data.get(prompt_id)
        return entry if isinstance(entry, dict) else None

    def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes:
        params = {"filename": filename, "subfolder": subfolder, "type": kind}
        return self._request("GET", "/view", params=params).content

    def open_socket(self, client_id: str) -> Any:
        """A connected `websocket.WebSocket` on ``/ws?clientId=client_id``."""
        import websocket

        header = [f"{k}: {v}" for k, v in self._headers.items()]
        try:
            ws = websocket.create_connection(
                self.config.ws_url(client_id), timeout=self._connect_timeout, header=header,
                enable_multithread=True,
            )
        except (OSError, websocket.WebSocketException) as exc:
            raise ServerGone(f"The server {self.config.label} refused its WebSocket: {exc}.") from exc
        return ws


def history_images(entry: Mapping[str, Any]) -> list[dict[str, str]]:
    """The image files a finished prompt's `/history` entry lists, in node order."""
    out: list[dict[str, str]] = []
    outputs = entry.get("outputs") or {}
    if not isinstance(outputs, Mapping):
        return out
    for node_id in sorted(outputs, key=lambda k: (len(str(k)), str(k))):
        node = outputs[node_id]
        for img in (node.get("images") or []) if isinstance(node, Mapping) else []:
            if isinstance(img, Mapping) and img.get("filename"):
                out.append({"filename": str(img["filename"]), "subfolder": str(img.get("subfolder") or ""),
                            "type": str(img.get("type") or "output")})
    return out
