"""The remote engine: run jobs on one or more ComfyUI servers (their HTTP + WebSocket API).

- `protocol`: the client (httpx for HTTP, websocket-client for the event stream) and
  the message shapes, taken from ComfyUI's server code;
- `catalog`: server model names (``comfyui:<folder>/<file>``) and their families;
- `graphs`: API-format graphs per task and family, from core nodes only;
- `pool`: the configured servers, their models, queues and GPUs;
- `backend`: `RemoteBackend`, which prepares the region, distributes candidates over
  the pool, streams previews and composites the results on our side.

With no server configured there is no remote backend (`pool.shared_pool()` is None) and
nothing here is imported by the app until a server model is used or listed.
"""
