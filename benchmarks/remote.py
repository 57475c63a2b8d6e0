"""The remote engine against loopback ComfyUI protocol servers (tests/support/fake_comfyui.py).

Measures, with the servers' own time per step fixed (``--step-ms``):

1. overhead: CanvasAI's wall time for one txt2img job (`RemoteBackend.run`: queue check,
   WebSocket, ``POST /prompt``, progress and previews, ``/history``, ``/view``, decode)
   divided by posting the same graph by hand (httpx + websocket-client: connect, post,
   wait for ``executing`` with ``node: null``, ``/history``, ``/view``). Target <= 1.05.
   Also for an inpaint job (region crop, upload, paste-back) against the hand-posted graph
   with the same upload. CanvasAI's side also builds the previews, throttled as the
   app's service does (30 fps), which the hand-posted run skips; the same job with
   previews off isolates the protocol's own overhead.
2. preview latency: from a preview frame's arrival on the WebSocket (parsed) to
   ``ctx.preview`` holding the frame at the request's size (what the canvas then paints,
   the same path as a local preview), median and p95.
3. batch of 8 candidates on two servers vs one: throughput ratio (target >= 1.8 when the
   servers' time dominates).

Each server runs in its own process, as a real one would. Run:
``.venv/bin/python benchmarks/remote.py`` (``--step-ms 20 --steps 20 --repeats 5``).
Prints a table and, as its last line, ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canvasai.backends.api import GenerationRequest, Task  # noqa: E402
from canvasai.backends.remote import backend as backend_module  # noqa: E402
from canvasai.backends.remote import catalog, graphs  # noqa: E402
from canvasai.backends.remote.backend import RemoteBackend  # noqa: E402
from canvasai.backends.remote.pool import ServerPool  # noqa: E402
from canvasai.backends.remote.protocol import ServerConfig, new_id  # noqa: E402
from tests.support.fake_comfyui import FakeComfyUI  # noqa: E402

MODEL = "comfyui:checkpoints/sd15.safetensors"
APP_INTERVAL = 1.0 / 30.0  # GenerationService's default preview interval


class Ctx:
    """A JobContext; `interval` throttles previews as the service does (30 fps by default
    in the app); 0 takes every frame."""

    job_id = 1

    def __init__(self, interval: float = 0.0) -> None:
        self.preview_times: list[float] = []
        self.interval = interval

    def check_cancelled(self) -> None:
        pass

    def progress(self, step: int, total: int) -> None:
        pass

    def wants_preview(self) -> bool:
        last = self.preview_times[-1] if self.preview_times else 0.0
        return time.perf_counter() - last >= self.interval

    def preview(self, step: int, rgba: np.ndarray) -> None:
        self.preview_times.append(time.perf_counter())

    def note(self, message: str) -> None:
        pass


_clients: dict[str, Any] = {}


def by_hand(url: str, graph: dict, upload: tuple[str, np.ndarray] | None = None) -> float:
    """Post `graph` the way a script would (encode and upload its picture, post, wait,
    fetch and decode the result); returns the wall time."""
    import httpx
    import websocket
    from PIL import Image

    from canvasai.backends.remote.protocol import encode_png

    http = _clients.get(url)
    if http is None:  # one client per server, kept as a script would (no reconnect per job)
        http = _clients[url] = httpx.Client(base_url=url, timeout=30)
    t0 = time.perf_counter()
    if True:
        if upload is not None:
            png = encode_png(upload[1])
            http.post("/upload/image", files={"image": (upload[0], png, "image/png")},
                      data={"type": "input", "overwrite": "true"})
        cid, pid = new_id(), new_id()
        ws = websocket.create_connection(url.replace("http", "ws") + f"/ws?clientId={cid}")
        http.post("/prompt", json={"prompt": graph, "client_id": cid, "prompt_id": pid})
        while True:
            msg = ws.recv()
            if isinstance(msg, str):
                m = json.loads(msg)
                if m["type"] == "executing" and m["data"].get("node") is None \
                        and m["data"].get("prompt_id") == pid:
                    break
        ws.close()
        entry = http.get(f"/history/{pid}").json()[pid]
        img = next(iter(entry["outputs"].values()))["images"][0]
        data = http.get("/view", params={"filename": img["filename"], "subfolder": "",
                                         "type": img["type"]}).content
        import io

        np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return time.perf_counter() - t0


class Server:
    """A loopback server in its own process (as a real server is: its work does not
    compete with CanvasAI's for this interpreter's lock)."""

    CODE = (
        "import sys, time\n"
        "sys.path.insert(0, {root!r})\n"
        "from tests.support.fake_comfyui import FakeComfyUI, Knobs\n"
        "s = FakeComfyUI(knobs=Knobs(step_time={step}))\n"
        "s.start()\n"
        "print(s.url, flush=True)\n"
        "sys.stdin.read()\n"
    )

    def __init__(self, step_s: float) -> None:
        import subprocess

        root = str(Path(__file__).resolve().parents[1])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.CODE.format(root=root, step=step_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        self.models = FakeComfyUI().models  # what it lists (the defaults)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # its stdin closes: it exits
        self.proc.wait(10)


def overhead(srv: Server, steps: int, repeats: int, size: int) -> dict[str, Any]:
    pool = ServerPool([ServerConfig(srv.url)])
    backend = RemoteBackend(pool)
    pool.refresh()
    model = catalog.classify("checkpoints", "sd15.safetensors")
    req = GenerationRequest(Task.TXT2IMG, prompt="p", model=MODEL, seed=1, steps=steps,
                            width=size, height=size)
    graph = graphs.txt2img(model, srv.models, graphs.Sampling("p", "", steps, 7.0, 1),
                           size, size)
    quiet = GenerationRequest(Task.TXT2IMG, prompt="p", model=MODEL, seed=1, steps=steps,
                              width=size, height=size, previews=False)
    ours, hand, ours_quiet = [], [], []
    backend.run(req, Ctx())  # warm both paths once
    by_hand(srv.url, graph)
    for _ in range(repeats):
        t = time.perf_counter()
        backend.run(req, Ctx(APP_INTERVAL))
        ours.append(time.perf_counter() - t)
        hand.append(by_hand(srv.url, graph))
        t = time.perf_counter()
        backend.run(quiet, Ctx())
        ours_quiet.append(time.perf_counter() - t)
    # inpaint: the same server work plus region, upload and paste-back on our side
    img = np.random.default_rng(0).integers(0, 256, (1024, 1024, 4), dtype=np.uint8)
    img[..., 3] = 255
    mask = np.zeros((1024, 1024), np.uint8)
    mask[400:600, 400:600] = 255
    ireq = GenerationRequest(Task.INPAINT, image=img, mask=mask, prompt="p", model=MODEL, seed=1,
                             steps=steps)
    plan = backend_module.make_plan(ireq, model, lambda s: "")
    igraph = graphs.inpaint(model, srv.models, graphs.Sampling("p", "", steps, 7.0, 1, "default", 1.0),
                            "bench.png")
    iours, ihand = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        backend.run(ireq, Ctx(APP_INTERVAL))
        iours.append(time.perf_counter() - t)
        ihand.append(by_hand(srv.url, igraph, ("bench.png", plan.uploads["image"])))
    pool.close()
    return {
        "canvasai_s": statistics.median(ours), "hand_s": statistics.median(hand),
        "ratio": statistics.median(ours) / statistics.median(hand),
        "quiet_s": statistics.median(ours_quiet),
        "quiet_ratio": statistics.median(ours_quiet) / statistics.median(hand),
        "inpaint_canvasai_s": statistics.median(iours), "inpaint_hand_s": statistics.median(ihand),
        "inpaint_ratio": statistics.median(iours) / statistics.median(ihand),
    }


def preview_latency(srv: Server, steps: int, size: int) -> dict[str, Any]:
    arrivals: list[float] = []
    original = backend_module.parse_message

    def timed(message: Any) -> Any:
        ev = original(message)
        if ev is not None and ev.type == "preview":
            arrivals.append(time.perf_counter())
        return ev

    backend_module.parse_message = timed
    try:
        pool = ServerPool([ServerConfig(srv.url)])
        ctx = Ctx()
        req = GenerationRequest(Task.TXT2IMG, prompt="p", model=MODEL, seed=1, steps=steps,
                                width=size, height=size)
        RemoteBackend(pool).run(req, ctx)
        pool.close()
    finally:
        backend_module.parse_message = original
    lat = [(b - a) * 1000 for a, b in zip(arrivals, ctx.preview_times, strict=False)]
    lat.sort()
    return {"frames": len(ctx.preview_times), "of_steps": steps,
            "median_ms": statistics.median(lat), "p95_ms": lat[int(0.95 * (len(lat) - 1))]}


def batch(servers: list[Server], steps: int, n: int) -> float:
    pool = ServerPool([ServerConfig(s.url) for s in servers])
    pool.refresh()
    req = GenerationRequest(Task.TXT2IMG, prompt="p", model=MODEL, seed=1, steps=steps,
                            batch_size=n, width=256, height=256)
    t = time.perf_counter()
    RemoteBackend(pool).run(req, Ctx())
    dt = time.perf_counter() - t
    pool.close()
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step-ms", type=float, default=20.0, help="server time per step")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    a, b = Server(args.step_ms / 1000.0), Server(args.step_ms / 1000.0)
    try:
        ov = overhead(a, args.steps, args.repeats, args.size)
        pv = preview_latency(a, args.steps, args.size)
        one = batch([a], args.steps, 8)
        two = batch([a, b], args.steps, 8)
    finally:
        a.close()
        b.close()
    throughput = one / two
    rows = [
        ("txt2img: CanvasAI / by hand", f"{ov['canvasai_s'] * 1000:.0f} / {ov['hand_s'] * 1000:.0f} ms",
         f"{ov['ratio']:.3f}", "<= 1.05"),
        ("txt2img, previews off: CanvasAI / by hand", f"{ov['quiet_s'] * 1000:.0f} / "
         f"{ov['hand_s'] * 1000:.0f} ms", f"{ov['quiet_ratio']:.3f}", "<= 1.05"),
        ("inpaint 1024²: CanvasAI / by hand", f"{ov['inpaint_canvasai_s'] * 1000:.0f} / "
         f"{ov['inpaint_hand_s'] * 1000:.0f} ms", f"{ov['inpaint_ratio']:.3f}", "<= 1.05"),
        ("preview: frame received -> ctx.preview", f"{pv['frames']}/{pv['of_steps']} frames",
         f"median {pv['median_ms']:.1f} ms, p95 {pv['p95_ms']:.1f} ms", ""),
        ("batch of 8: one server / two servers", f"{one:.2f} / {two:.2f} s",
         f"{throughput:.2f}x", ">= 1.8"),
    ]
    print(f"step {args.step_ms:g} ms x {args.steps} steps, {args.size}px, {args.repeats} repeats")
    print(f"{'measure':42} {'times':24} {'value':32} target")
    for r in rows:
        print(f"{r[0]:42} {r[1]:24} {r[2]:32} {r[3]}")
    result = {
        "ratio": round(ov["ratio"], 4), "ratio_previews_off": round(ov["quiet_ratio"], 4),
        "inpaint_ratio": round(ov["inpaint_ratio"], 4),
        "canvasai_ms": round(ov["canvasai_s"] * 1000, 1), "hand_ms": round(ov["hand_s"] * 1000, 1),
        "preview_median_ms": round(pv["median_ms"], 2), "preview_p95_ms": round(pv["p95_ms"], 2),
        "preview_frames": pv["frames"], "steps": args.steps,
        "batch8_one_s": round(one, 3), "batch8_two_s": round(two, 3),
        "throughput_ratio": round(throughput, 3), "step_ms": args.step_ms,
    }
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
