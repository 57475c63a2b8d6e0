"""A pool of ComfyUI servers: what each one has, whether it is up and busy.

`ServerPool.refresh` asks every server at once (one thread each) for its models
(`/object_info/<loader>`), its queue (`GET /prompt`) and its hardware (`/system_stats`);
a server that does not answer is marked down with the reason and never holds up the
others. Jobs ask `servers_for(model)` for the servers that list the model, free ones
first. The shared pool follows the settings (`shared_pool`); nothing here runs on the
GUI thread (the Servers page and the model picker call it from pool threads).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from canvasai.backends.remote import catalog
from canvasai.backends.remote.protocol import ComfyClient, ServerConfig, ServerError


@dataclass
class ServerState:
    """What the last check of one server found."""

    config: ServerConfig
    client: ComfyClient
    alive: bool = False
    checked: bool = False
    queue_remaining: int = 0
    listing: dict[str, list[str]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    checked_at: float = 0.0

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def busy(self) -> bool:
        return self.queue_remaining > 0

    def has(self, model_id: str) -> bool:
        try:
            folder, filename = catalog.split_id(model_id)
        except ValueError:
            return False
        return filename in (self.listing.get(folder) or ())

    def gpu(self) -> str:
        """“NVIDIA RTX 4090, 18.2 of 24.0 GB free” from /system_stats, or ""."""
        devices = self.stats.get("devices") or []
        if not devices or not isinstance(devices[0], dict):
            return ""
        d = devices[0]
        name = str(d.get("name") or d.get("type") or "?")
        try:
            free, total = float(d.get("vram_free", 0)) / 1e9, float(d.get("vram_total", 0)) / 1e9
        except (TypeError, ValueError):
            return name
        return f"{name}, {free:.1f} of {total:.1f} GB free" if total else name

    def describe(self) -> str:
        if not self.checked:
            return "not checked yet"
        if not self.alive:
            return f"not connected: {self.error}"
        n = len(catalog.main_models(self.listing))
        state = f"busy ({self.queue_remaining} queued)" if self.busy else "connected, idle"
        gpu = self.gpu()
        return f"{state} · {n} model(s)" + (f" · {gpu}" if gpu else "")


class ServerPool:
    def __init__(self, configs: Iterable[ServerConfig], timeout: float = 10.0,
                 connect_timeout: float = 3.0) -> None:
        self.configs = tuple(configs)
        self.states = [
            ServerState(c, ComfyClient(c, timeout=timeout, connect_timeout=connect_timeout))
            for c in self.configs
        ]
        self._lock = threading.Lock()

    def close(self) -> None:
        for s in self.states:
            s.client.close()

    def check(self, state: ServerState, models: bool = True) -> ServerState:
        """Ask one server for its state (its models too, unless `models` is False)."""
        try:
            stats = state.client.system_stats()
            queue = state.client.queue_remaining()
            listing = state.client.models() if models else state.listing
        except ServerError as exc:
            with self._lock:
                state.alive, state.error = False, str(exc)
                state.checked, state.checked_at = True, time.monotonic()
            return state
        with self._lock:
            state.alive, state.error = True, ""
            state.stats, state.queue_remaining, state.listing = stats, queue, listing
            state.checked, state.checked_at = True, time.monotonic()
        return state

    def refresh(self, models: bool = True) -> list[ServerState]:
        """Check every server at once; returns the states in the configured order."""
        if not self.states:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(self.states))) as ex:
            list(ex.map(lambda s: self.check(s, models), self.states))
        return list(self.states)

    def ensure_listed(self, everyone: bool = False) -> None:
        """Refresh servers never checked, and those down for longer than `RETRY_DOWN_S`
        (a dead address costs its connect timeout, so not on every job); `everyone`:
        refresh all (a model the lists do not know may have been added since)."""
        now = time.monotonic()
        stale = [s for s in self.states if everyone or not s.checked
                 or (not s.alive and now - s.checked_at > RETRY_DOWN_S)]
        if stale:
            with ThreadPoolExecutor(max_workers=min(8, len(stale))) as ex:
                list(ex.map(self.check, stale))

    def servers_for(self, model_id: str) -> list[ServerState]:
        """Servers that are up and list `model_id`, idle ones first (queue state re-read)."""
        self.ensure_listed()
        found = [s for s in self.states if s.alive and s.has(model_id)]
        if not found:
            self.ensure_listed(everyone=True)
            found = [s for s in self.states if s.alive and s.has(model_id)]
        for s in found:
            try:
                s.queue_remaining = s.client.queue_remaining()
            except ServerError as exc:
                s.alive, s.error = False, str(exc)
        found = [s for s in found if s.alive]
        return sorted(found, key=lambda s: s.queue_remaining)

    def mark_down(self, state: ServerState, reason: str) -> None:
        with self._lock:
            state.alive, state.error = False, reason


RETRY_DOWN_S = 10.0  # a server found down is asked again by a job after this long

_shared_lock = threading.Lock()
_shared: ServerPool | None = None


def configs_from(remote: Any) -> tuple[ServerConfig, ...]:
    """The servers of a `RemoteSettings` (URLs and tokens side by side); bad URLs are skipped."""
    urls = tuple(getattr(remote, "servers", ()) or ())
    tokens = tuple(getattr(remote, "tokens", ()) or ())
    out = []
    for i, url in enumerate(urls):
        try:
            out.append(ServerConfig(url, tokens[i] if i < len(tokens) else ""))
        except ServerError:
            continue
    return tuple(out)


def shared_pool(configs: tuple[ServerConfig, ...] | None = None) -> ServerPool | None:
    """The pool for `configs` (default: the settings' servers); None when there are none.
    The same pool is kept while the configured servers stay the same."""
    global _shared
    if configs is None:
        from canvasai.core import settings

        configs = configs_from(settings.current().remote)
    with _shared_lock:
        if not configs:
            return None
        if _shared is None or _shared.configs != configs:
            old, _shared = _shared, ServerPool(configs)
            if old is not None:
                old.close()
        return _shared


def reset() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
        _shared = None


def picker_entries(
    pool: ServerPool | None = None,
) -> tuple[list[tuple[str, str, str]], dict[str, tuple], list[tuple[str, str]], str]:
    """What the model picker lists for the servers: ((group, label, value) triples,
    name -> (family, kind, variant, size, memory), ControlNets, a note about servers down).

    Groups are "<server> · <family label> · <kind>". Blocks on the network: call it from
    a pool thread (the picker's scan), never from the GUI thread.
    """
    from canvasai.backends.diffusion import families

    pool = pool if pool is not None else shared_pool()
    if pool is None:
        return [], {}, [], ""
    found: list[tuple[str, str, str]] = []
    kinds: dict[str, tuple] = {}
    controlnets: list[tuple[str, str]] = []
    down = []
    for state in pool.refresh():
        if not state.alive:
            down.append(f"{state.label} ({state.error})")
            continue
        for m in catalog.main_models(state.listing):
            label = families.label(m.family)
            found.append((f"{state.label} · {label} · {m.kind}", m.filename, m.id))
            kinds.setdefault(m.id, (m.family, m.kind, m.variant, 0, 0))
        for f in state.listing.get("controlnet") or ():
            entry = (f"{f} (on {state.label})", catalog.model_id("controlnet", f))
            if entry not in controlnets:
                controlnets.append(entry)
    note = f"Server(s) not connected: {'; '.join(down)}." if down else ""
    return found, kinds, controlnets, note
