"""`RemoteBackend`: runs a request on the ComfyUI servers of a pool, with local guarantees.

On our side, as a local job does (diffusion/inpaint.py): the context rectangle around the
mask (`masking.inpaint_context`), the scale to the family's work size, and the paste-back
through the feathered mask (`masking.composite`), so pixels outside it stay
byte-identical. Only the job's region, at work size, is uploaded. Each candidate of a
batch is one prompt with its own seed (seed + i, as everywhere), sent to a free server
that has the model; several servers work on one batch at once.

Threads: `run` is called on the generation worker. One helper thread per server in use
talks to it (HTTP + WebSocket) and hands events back through a queue; only `run`'s
thread calls the `JobContext`, so previews, progress and notes reach the service exactly
as a local job's do. Cancel: `run` sees `check_cancelled` raise within ~20 ms, the helper
threads then interrupt the running prompt (`/interrupt`) and drop queued ones
(`/queue` delete) within one step. A server that drops mid-job has its candidate put
back and run on another server, and the person is told through `ctx.note`. A failed job
raises and returns nothing, so the canvas never changes.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from canvasai.backends import masking
from canvasai.backends.api import (
    GenerationRequest,
    GenerationResult,
    JobContext,
    Task,
    request_seeds,
)
from canvasai.backends.diffusion import families
from canvasai.backends.remote import catalog, extras, graphs
from canvasai.backends.remote.pool import ServerPool, ServerState
from canvasai.backends.remote.protocol import (
    ServerError,
    ServerGone,
    decode_image,
    history_images,
    new_id,
    parse_message,
)
from canvasai.core.errors import GenerationError, JobCancelled, ModelError
from canvasai.core.geometry import Rect

POLL_S = 0.02  # how often run() looks at the cancel flag and the event queue
SOCKET_POLL_S = 0.05  # how often a server thread looks at the cancel flag between frames


# ------------------------------------------------------------------------------ pixels


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if (img.shape[1], img.shape[0]) == (w, h):
        return img
    shrinking = w * h < img.shape[0] * img.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    return cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=interp)


def _rgba(rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    h, w = rgb.shape[:2]
    a = np.full((h, w, 1), 255, np.uint8) if alpha is None else alpha.reshape(h, w, 1)
    return np.concatenate([rgb[..., :3], a], axis=2)


def _round_to(n: float, multiple: int) -> int:
    return max(multiple, int(round(n / multiple)) * multiple)


# ------------------------------------------------------------------------------ plans


@dataclass
class Plan:
    """One job, prepared on our side: what to upload, which graph, and how results return."""

    steps: int  # sampling steps per candidate (0: no sampler, e.g. upscale)
    uploads: dict[str, np.ndarray]  # key -> picture to upload (at work size)
    graph: Callable[[ServerState, int, dict[str, str]], dict]  # (server, seed, names) -> graph
    finish: Callable[[np.ndarray], np.ndarray]  # server image -> result (request's area)
    preview: Callable[[np.ndarray], np.ndarray]  # preview image -> H x W x 4 frame
    meta: dict[str, Any] = field(default_factory=dict)
    preview_size: tuple[int, int] | None = None  # (w, h) previews are shown at, if smaller
    notes: list[str] = field(default_factory=list)  # for the person (ctx.note) when it runs


#: (server) -> the server's files for the job's LoRAs, control layers and references
Resolver = Callable[[ServerState], graphs.Extras]


def _work_size(size: tuple[int, int], fam: Any, native: bool) -> tuple[int, int]:
    if native:
        return masking.native_scale(size, fam.native_side, fam.multiple)
    return _round_to(size[0], fam.multiple), _round_to(size[1], fam.multiple)


def _sampling(request: GenerationRequest, seed: int, denoise: float = 1.0) -> graphs.Sampling:
    return graphs.Sampling(request.prompt, request.negative_prompt, int(request.steps),
                           float(request.guidance), int(seed), request.scheduler, float(denoise))


def _fit(cmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A control map at `size` (w, h): control layers cover the job's picture."""
    return _resize(np.ascontiguousarray(cmap), size)


def _extra_uploads(maps: list[np.ndarray], refs: list[np.ndarray],
                   fit: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """Uploads for the control maps (through `fit`: to the work area) and references."""
    out = {extras.control_key(i): fit(m) for i, m in enumerate(maps)}
    out.update({extras.reference_key(i): r for i, r in enumerate(refs)})
    return out


def _inpaint_plan(request: GenerationRequest, model: catalog.ServerModel, fam: Any,
                  image: np.ndarray, mask: np.ndarray, resolve: Resolver,
                  maps: list[np.ndarray], refs: list[np.ndarray]) -> Plan:
    mask = (mask > 0).astype(np.uint8) * np.uint8(255)
    if not mask.any():
        raise GenerationError("the mask is empty: paint the area to regenerate first")
    h, w = image.shape[:2]
    region = masking.inpaint_context(masking.mask_bbox(mask), Rect(0, 0, w, h),
                                     padding_frac=request.blend.padding, multiple=fam.multiple)
    rows, cols = region.slices()
    crop, crop_mask = image[rows, cols], mask[rows, cols]
    size = (region.w, region.h)
    work = _work_size(size, fam, request.native_resolution)
    work_rgb = _resize(np.ascontiguousarray(crop[..., :3]), work)
    work_mask = cv2.resize(crop_mask, work, interpolation=cv2.INTER_NEAREST)
    work_mask = masking.grow_mask(work_mask, 1)  # resampling never shrinks the mask
    # LoadImage's MASK output is 1 - alpha: the part to regenerate is transparent
    upload = _rgba(work_rgb, (255 - work_mask).astype(np.uint8))
    alpha = image[..., 3].copy() if image.shape[2] == 4 else None
    uploads = {"image": upload}
    uploads.update(_extra_uploads(maps, refs, lambda m: _fit(_fit(m, (w, h))[rows, cols], work)))

    def graph(server: ServerState, seed: int, names: dict[str, str]) -> dict:
        return graphs.inpaint(model, server.listing, _sampling(request, seed, request.strength),
                              names["image"], resolve(server).named(names))

    def finish(gen: np.ndarray) -> np.ndarray:
        gen = _resize(np.ascontiguousarray(gen[..., :3]), size)
        full = image.copy()
        full[rows, cols] = masking.composite(crop, gen, crop_mask, request.blend)
        return full if full.shape[2] == 4 else _rgba(full, alpha)

    frame: list[np.ndarray] = []  # one buffer for every step (the service copies what it keeps)

    def preview(small: np.ndarray) -> np.ndarray:
        if not frame:
            frame.append(image.copy() if image.shape[2] == 4 else _rgba(image))
        frame[0][rows, cols, :3] = _resize(np.ascontiguousarray(small[..., :3]), size)
        return frame[0]

    meta = {"region": [region.x, region.y, region.w, region.h], "work_size": list(work)}
    return Plan(int(request.steps), uploads, graph, finish, preview, meta, size)


def _pad_to_canvas(cmap: np.ndarray, image: np.ndarray, s: Any, canvas: np.ndarray) -> np.ndarray:
    """A control map of the original picture placed in the outpainted canvas (no control
    in the new margins); a map of another size is stretched over the whole canvas."""
    ch, cw = canvas.shape[:2]
    if cmap.shape[:2] == image.shape[:2]:
        out = np.zeros((ch, cw, 3), np.uint8)
        out[s.top:s.top + image.shape[0], s.left:s.left + image.shape[1]] = cmap
        return out
    return _fit(cmap, (cw, ch))


def make_plan(request: GenerationRequest, model: catalog.ServerModel,
              resolve: Resolver | None = None) -> Plan:
    """The plan for `request` on `model`; `resolve(server)` gives the server's files for
    the job's LoRAs, control layers and references (default: `extras.resolve`).

    Control maps are preprocessed here, on our side, and uploaded at the work size of
    the area they cover; reference images go up at most `extras.REFERENCE_SIDE` a side.
    """
    fam = families.find(model.family) or families.get("sd1")
    task = request.task
    if task == Task.EDIT:
        raise ModelError("Edit is not available on ComfyUI servers yet: use a local edit model.")
    extras.check_supported(request, model)
    if resolve is None:
        def resolve(server: ServerState) -> graphs.Extras:
            return extras.resolve(server, model, request)
    if task == Task.UPSCALE:
        maps, notes, refs = [], [], []
    else:
        maps, notes = extras.control_maps(request)
        refs = extras.reference_images(request)
    if task in (Task.INPAINT, Task.OUTPAINT):
        image = request.image
        assert image is not None
        if task == Task.OUTPAINT:
            s = request.outpaint
            assert s is not None
            canvas, mask = masking.outpaint_canvas(image, s.left, s.right, s.top, s.bottom,
                                                   s.prefill)
            maps = [_pad_to_canvas(m, image, s, canvas) for m in maps]
            plan = _inpaint_plan(request, model, fam, canvas, mask, resolve, maps, refs)
            plan.meta.update(margins=[s.left, s.right, s.top, s.bottom], prefill=s.prefill,
                             offset=[s.left, s.top])
            plan.notes += notes
            return plan
        assert request.mask is not None
        plan = _inpaint_plan(request, model, fam, image, request.mask, resolve, maps, refs)
        plan.notes += notes
        return plan
    if task == Task.IMG2IMG:
        image = request.image
        assert image is not None
        size = (image.shape[1], image.shape[0])
        work = _work_size(size, fam, request.native_resolution)
        alpha = image[..., 3].copy() if image.shape[2] == 4 else None
        uploads = {"image": _resize(np.ascontiguousarray(image[..., :3]), work)}
        uploads.update(_extra_uploads(maps, refs, lambda m: _fit(m, work)))

        def graph(server: ServerState, seed: int, names: dict[str, str]) -> dict:
            return graphs.img2img(model, server.listing, _sampling(request, seed, request.strength),
                                  names["image"], resolve(server).named(names))

        return Plan(int(request.steps), uploads,
                    graph, lambda g: _rgba(_resize(g[..., :3], size), alpha),
                    lambda p: _rgba(_resize(p[..., :3], size), alpha), {"work_size": list(work)},
                    notes=notes)
    if task == Task.UPSCALE:
        image = request.image
        assert image is not None
        f = (request.upscale.scale if request.upscale else 2)
        h, w = image.shape[:2]
        out = (w * f, h * f)

        def graph(server: ServerState, seed: int, names: dict[str, str]) -> dict:
            um = catalog.pick_file(list(server.listing.get("upscale_models") or ()),
                                   f"x{f}", f"{f}x", "")
            return graphs.upscale(names["image"], out[0], out[1], um)

        def finish(g: np.ndarray) -> np.ndarray:
            rgb = _resize(g[..., :3], out)
            alpha = (cv2.resize(image[..., 3], out, interpolation=cv2.INTER_CUBIC)
                     if image.shape[2] == 4 else None)
            return _rgba(rgb, alpha)

        return Plan(0, {"image": np.ascontiguousarray(image[..., :3])}, graph, finish,
                    lambda p: _rgba(_resize(p[..., :3], out)), {"scale": f})
    # txt2img and sketch (the sketch is the first control layer)
    if request.width:
        base = (request.width, request.height)
    elif maps:
        base = (maps[0].shape[1], maps[0].shape[0])
    else:
        base = (fam.native_side, fam.native_side)
    size = (int(base[0]), int(base[1]))
    work = (_round_to(size[0], fam.multiple), _round_to(size[1], fam.multiple))
    target = request.image if (task == Task.SKETCH and request.mask is not None) else None
    if target is not None and (target.shape[1], target.shape[0]) != size:
        size = (target.shape[1], target.shape[0])
    uploads = _extra_uploads(maps, refs, lambda m: _fit(m, work))

    def graph(server: ServerState, seed: int, names: dict[str, str]) -> dict:
        return graphs.txt2img(model, server.listing, _sampling(request, seed), work[0], work[1],
                              resolve(server).named(names))

    def finish(g: np.ndarray) -> np.ndarray:
        rgb = _resize(np.ascontiguousarray(g[..., :3]), size)
        if target is not None:  # sketch inside a mask: the paste-back limits it to the mask
            assert request.mask is not None
            full = masking.composite(target, rgb, request.mask, request.blend)
            return full if full.shape[2] == 4 else _rgba(full)
        return _rgba(rgb)

    def preview(p: np.ndarray) -> np.ndarray:
        return _rgba(_resize(np.ascontiguousarray(p[..., :3]), size))

    return Plan(int(request.steps), uploads, graph, finish, preview, {"work_size": list(work)},
                notes=notes)


# ------------------------------------------------------------------------------ one prompt


def run_prompt(server: ServerState, graph: dict, emit: Callable[..., None],
               cancel: threading.Event) -> np.ndarray:
    """Queue `graph` on `server`, relay its events through `emit`, return its image.

    emit("progress", value, max) and emit("preview", encoded_image) while it runs.
    Raises JobCancelled (after /interrupt and the queue delete), ServerGone (connection
    lost: the caller may run it elsewhere) or ServerError (the server failed the job).
    """
    import websocket

    client = server.client
    client_id, prompt_id = new_id(), new_id()
    ws = client.open_socket(client_id)
    try:
        ws.settimeout(SOCKET_POLL_S)
        client.queue_prompt(graph, prompt_id, client_id)
        running = False
        while True:
            if cancel.is_set():
                try:
                    client.interrupt(prompt_id)
                    client.delete_queued([prompt_id])
                except ServerError:
                    pass  # gone anyway: nothing left to stop
                raise JobCancelled("cancelled")
            try:
                message = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError) as exc:
                raise ServerGone(f"The server {server.label} closed the connection mid-job "
                                 f"({type(exc).__name__}).") from exc
            if message in ("", b""):
                raise ServerGone(f"The server {server.label} closed the connection mid-job.")
            event = parse_message(message)
            if event is None:
                continue
            data, pid = event.data, event.data.get("prompt_id")
            if event.type == "preview":
                if running and event.image:
                    emit("preview", event.image)
            elif event.type == "execution_start" and pid == prompt_id:
                running = True
            elif event.type == "progress" and pid in (None, prompt_id) and running:
                emit("progress", int(data.get("value", 0)), int(data.get("max", 1) or 1))
            elif event.type == "execution_error" and pid == prompt_id:
                node = data.get("node_type") or data.get("node_id") or "?"
                msg = str(data.get("exception_message") or "no message").strip()
                raise ServerError(f"The server {server.label} failed the job in {node}: {msg}")
            elif event.type == "execution_interrupted" and pid == prompt_id:
                if cancel.is_set():
                    raise JobCancelled("cancelled")
                raise ServerGone(f"The job was interrupted on the server {server.label} "
                                 "(someone else stopped it there).")
            elif event.type == "execution_success" and pid == prompt_id or event.type == "executing" and pid == prompt_id and data.get("node") is None:
                break
    finally:
        with contextlib.suppress(Exception):  # closing a dead socket
            ws.close()
    entry = client.history(prompt_id)
    if entry is None:
        raise ServerError(f"The server {server.label} finished the job but has no history of it.")
    status = entry.get("status") or {}
    if isinstance(status, dict) and status.get("status_str") == "error":
        raise ServerError(f"The server {server.label} reports the job failed.")
    images = history_images(entry)
    if not images:
        raise ServerError(f"The server {server.label} finished the job without an image.")
    first = images[0]
    data = client.view(first["filename"], first["subfolder"], first["type"])
    return decode_image(data, "result")


# ------------------------------------------------------------------------------ backend


class RemoteBackend:
    """Runs requests whose model is a server model (``comfyui:...``) on a `ServerPool`."""

    name = "comfyui"

    def __init__(self, pool: ServerPool) -> None:
        self.pool = pool

    def run(self, request: GenerationRequest, ctx: JobContext) -> GenerationResult:
        try:
            folder, filename = catalog.split_id(request.model)
        except ValueError as exc:
            raise ModelError(str(exc)) from exc
        model = catalog.classify(folder, filename)
        request = extras.with_prompt_loras(request)
        if request.task == Task.EDIT:
            raise ModelError("Edit is not available on ComfyUI servers yet: use a local edit model.")
        extras.check_supported(request, model)  # before any network call
        servers = self.pool.servers_for(model.id)
        if not servers:
            down = [f"{s.label} ({s.error})" for s in self.pool.states if not s.alive]
            raise ModelError(
                f"No connected server has {filename}."
                + (f" Not reachable: {'; '.join(down)}." if down else "")
            )
        servers, resolved = self._with_extras(servers, model, request)
        plan = make_plan(request, model, lambda server: resolved[id(server)])
        if request.task == Task.UPSCALE and (request.loras or request.controls or request.references):
            ctx.note("Upscale on a server runs no diffusion: its LoRAs, control layers and "
                     "reference images are not used.")
        for note in plan.notes:
            ctx.note(note)
        seeds = request_seeds(request)
        started = time.perf_counter()
        images, used = self._dispatch(plan, servers, seeds, ctx, request.previews)
        first = next((s for s in servers if used and s.label == used[0]), servers[0])
        applied = resolved[id(first)]  # what the first candidate's server used
        meta = {
            "backend": "comfyui",
            "task": request.task.value,
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "steps": request.steps,
            "sampler": "/".join(graphs.sampler_for(request.scheduler, model.family)),
            "cfg": request.guidance,
            "seed": seeds[0],
            "seeds": list(seeds),
            "size": [int(images[0].shape[1]), int(images[0].shape[0])],
            "model": model.id,
            "family": model.family,
            "variant": model.variant,
            "strength": request.strength,
            "device": "ComfyUI " + ", ".join(sorted(set(used))),
            "servers": list(used),
            "preview": "server",
            "seconds": round(time.perf_counter() - started, 3),
        } | plan.meta
        if applied.loras:
            meta["loras"] = [{"name": u.filename, "weight": u.weight} for u in applied.loras]
        if applied.controls:
            meta["controls"] = [
                {"kind": c.kind.value, "model": u.controlnet, "scale": u.strength,
                 "start": u.start, "end": u.end}
                for c, u in zip(request.controls, applied.controls, strict=True)
            ]
        if applied.references:
            meta["references"] = [
                {"kind": r.kind.value, "model": u.ipadapter, "strength": u.weight}
                for r, u in zip(request.references, applied.references, strict=True)
            ]
        frozen = []
        for img in images:
            img = np.ascontiguousarray(img)
            img.setflags(write=False)
            frozen.append(img)
        return GenerationResult(images=tuple(frozen), seeds=tuple(seeds), metadata=meta)

    def _with_extras(self, servers: list[ServerState], model: catalog.ServerModel,
                     request: GenerationRequest
                     ) -> tuple[list[ServerState], dict[int, graphs.Extras]]:
        """The servers that have every LoRA, ControlNet and adapter the job needs, with
        those files; raises `ModelError` naming what is missing when none has them all
        (after asking the servers again once: a file may have been added since)."""
        for attempt in range(2):
            resolved: dict[int, graphs.Extras] = {}
            problems: list[str] = []
            for server in servers:
                try:
                    resolved[id(server)] = extras.resolve(server, model, request)
                except ModelError as exc:
                    problems.append(str(exc))
            usable = [s for s in servers if id(s) in resolved]
            if usable:
                return usable, resolved
            if attempt == 0:
                for server in servers:
                    self.pool.check(server)
                servers = [s for s in servers if s.alive and s.has(model.id)] or servers
        raise ModelError(" ".join(dict.fromkeys(problems)))

    # -- the batch over the pool ----------------------------------------------------------
    def _dispatch(self, plan: Plan, servers: list[ServerState], seeds: tuple[int, ...],
                  ctx: JobContext, previews: bool) -> tuple[list[np.ndarray], list[str]]:
        n = len(seeds)
        todo: collections.deque[int] = collections.deque(range(n))
        lock = threading.Lock()
        events: queue.Queue[tuple] = queue.Queue()
        cancel = threading.Event()
        results: dict[int, np.ndarray] = {}
        used: list[str] = []
        threads: dict[int, threading.Thread] = {}
        live = list(servers)

        def worker(server: ServerState) -> None:
            names: dict[str, str] | None = None
            while not cancel.is_set():
                with lock:
                    if not todo:
                        return
                    idx = todo.popleft()
                try:
                    if names is None:
                        tag = new_id()
                        names = {k: server.client.upload_image(img, f"canvasai-{tag}-{k}.png")
                                 for k, img in plan.uploads.items()}
                    graph = plan.graph(server, seeds[idx], names)
                    events.put(("start", idx, server))

                    def emit(kind: str, *args: Any, idx: int = idx) -> None:
                        events.put((kind, idx, *args))

                    image = run_prompt(server, graph, emit, cancel)
                    events.put(("done", idx, image, server))
                except ServerGone as exc:
                    with lock:
                        todo.appendleft(idx)
                    events.put(("gone", idx, server, str(exc)))
                    return
                except JobCancelled:
                    with lock:
                        todo.appendleft(idx)
                    return
                except Exception as exc:  # noqa: BLE001 - handed to run()'s thread
                    events.put(("error", idx, exc))
                    return

        def start(server: ServerState) -> None:
            t = threading.Thread(target=worker, args=(server,), daemon=True,
                                 name=f"comfyui-{server.label}")
            threads[id(server)] = t
            t.start()

        for server in servers[: max(1, min(n, len(servers)))]:
            start(server)
        progress: dict[int, tuple[int, int]] = {}
        per_item = max(1, plan.steps)
        frame_step = 0
        try:
            while len(results) < n:
                ctx.check_cancelled()
                try:
                    ev = events.get(timeout=POLL_S)
                except queue.Empty:
                    if not any(t.is_alive() for t in threads.values()) and events.empty():
                        with lock:
                            pending = bool(todo)
                        if pending:
                            self._restart(live, threads, start, ctx, None)
                            if not any(t.is_alive() for t in threads.values()):
                                raise ServerGone(
                                    "Every server that has the model dropped out."
                                ) from None
                    continue
                kind, idx = ev[0], ev[1]
                if kind == "progress":
                    progress[idx] = (ev[2], ev[3])
                    done = sum(v for v, _ in progress.values()) + per_item * len(results)
                    total = sum(m for _, m in progress.values()) + per_item * (n - len(progress))
                    frame_step = done
                    ctx.progress(min(done, total), total)
                elif kind == "preview":
                    if previews and ctx.wants_preview():
                        try:
                            small = decode_image(ev[2], "preview", plan.preview_size)
                        except ServerError:
                            continue  # a broken preview frame is not worth failing a job for
                        ctx.preview(max(1, frame_step), plan.preview(small))
                elif kind == "done":
                    results[idx] = plan.finish(ev[2])
                    progress[idx] = (per_item, per_item)
                    if ev[3].label not in used:
                        used.append(ev[3].label)
                    if plan.steps == 0:
                        ctx.progress(len(results), n)
                elif kind == "gone":
                    server, reason = ev[2], ev[3]
                    self.pool.mark_down(server, reason)
                    if server in live:
                        live.remove(server)
                    progress.pop(idx, None)
                    other = self._restart(live, threads, start, ctx, server)
                    where = f"re-running it on {other}" if other else "no other server has the model"
                    ctx.note(f"{reason} Candidate {idx + 1} is lost there: {where}.")
                    if other is None and not any(t.is_alive() for t in threads.values()):
                        raise ServerGone(f"{reason} No other server with the model is connected, "
                                         "so the job stopped; the picture is unchanged.")
                elif kind == "error":
                    raise ev[2]
        except BaseException:
            cancel.set()
            for t in threads.values():
                t.join(timeout=2.0)
            raise
        return [results[i] for i in range(n)], used

    @staticmethod
    def _restart(live: list[ServerState], threads: dict[int, threading.Thread],
                 start: Callable[[ServerState], None], ctx: JobContext,
                 lost: ServerState | None) -> str | None:
        """Make sure a live server picks up put-back candidates; returns its label."""
        for server in live:
            t = threads.get(id(server))
            if t is None or not t.is_alive():
                start(server)
                return server.label
        return live[0].label if live else None
