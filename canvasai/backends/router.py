"""Pick the backend for a request: the classic OpenCV one, diffusers, or a ComfyUI server.

Importing this module imports neither torch nor diffusers; backends are created
on first use (on the generation worker thread) and cached, so loaded pipelines
survive between jobs.

Models are resolved against THE registry (`canvasai.backends.models.registry()`),
the same instance the generation panel lists and ``canvasai models`` prints: a
rescan anywhere is seen here at once, and a settings change (other models folders)
takes effect on the next job. Callers choose the registry with:

- nothing (the app, the CLI): the shared registry for ``settings.current().models``;
- a `ModelSettings`: the shared registry for those settings;
- ``registry=`` a `ModelRegistry` (tests, scripts): that registry as is.

The older duck-typed form (a mapping or object with ``registry`` / ``models_dirs`` /
``include_hf_cache`` / ``allow_pickle``) is still accepted by `registry_for`; it
builds a private registry from those values (an empty ``models_dirs`` there means
*no* folder, not the default one).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from canvasai.backends import models
from canvasai.backends.api import CLASSIC_MODEL, Backend, GenerationRequest
from canvasai.backends.models import ModelRegistry
from canvasai.core.errors import ModelError
from canvasai.core.settings import ModelSettings

if TYPE_CHECKING:
    from canvasai.backends.diffusion.backend import DiffusersBackend

_lock = threading.Lock()
_classic: Backend | None = None
#: the backend following the shared registry, under key None; backends pinned to an
#: explicit registry under ``id(registry)`` (value keeps the registry, so ids are not reused)
_diffusers: dict[int | None, tuple[ModelRegistry | None, DiffusersBackend]] = {}
_MAX_PINNED = 16  # tests and scripts; the app only uses the shared one
#: private registries of the legacy mapping form, by their values
_legacy: dict[tuple[Any, ...], ModelRegistry] = {}


def _legacy_value(settings: Any, name: str, default: Any = None) -> Any:
    if isinstance(settings, Mapping):
        return settings.get(name, default)
    return getattr(settings, name, default)


def _legacy_registry(settings: Any) -> ModelRegistry | None:
    """The registry for the older duck-typed settings; None means "the shared one"."""
    reg = _legacy_value(settings, "registry")
    if reg is not None:
        return reg
    dirs = _legacy_value(settings, "models_dirs")
    if dirs is None and not isinstance(settings, Mapping):
        return None
    include_hf = bool(_legacy_value(settings, "include_hf_cache", True))
    allowed = tuple(str(p) for p in (_legacy_value(settings, "allow_pickle", ()) or ()))
    key = (tuple(str(d) for d in dirs) if dirs is not None else None, include_hf, allowed)
    with _lock:
        found = _legacy.get(key)
        if found is None:
            found = ModelRegistry(dirs, include_hf_cache=include_hf, allow_pickle=allowed)
            _legacy.clear()  # one at a time: they only serve tests and scripts
            _legacy[key] = found
        return found


def registry_for(settings: Any = None, *, registry: ModelRegistry | None = None) -> ModelRegistry:
    """The registry a job resolves its model against (see the module docstring)."""
    if registry is not None:
        return registry
    if settings is None:
        return models.registry()
    if isinstance(settings, ModelSettings):
        return models.registry(settings)
    if isinstance(settings, ModelRegistry):
        return settings
    legacy = _legacy_registry(settings)
    return legacy if legacy is not None else models.registry()


#: the older name
registry_from_settings = registry_for


def diffusers_backend(
    settings: Any = None, *, registry: ModelRegistry | None = None
) -> DiffusersBackend:
    """The cached diffusers backend (loaded pipelines stay between jobs).

    With the shared registry (no settings, or `ModelSettings`) there is one backend,
    and it re-reads `models.registry()` on every job, so it never holds a stale copy.
    """
    from canvasai.backends.diffusion.backend import DiffusersBackend

    pinned: ModelRegistry | None = registry_for(settings, registry=registry)
    if pinned is models.registry():
        pinned = None  # follow the shared registry, whatever it becomes
    key = None if pinned is None else id(pinned)
    with _lock:
        entry = _diffusers.get(key)
        if entry is None or entry[0] is not pinned:
            pinned_keys = [k for k in _diffusers if k is not None]
            while len(pinned_keys) >= _MAX_PINNED and key is not None:
                del _diffusers[pinned_keys.pop(0)]
            entry = (pinned, DiffusersBackend(pinned))
            _diffusers[key] = entry
        return entry[1]


def backend_for(
    request: GenerationRequest, settings: Any = None, *, registry: ModelRegistry | None = None
) -> Backend:
    """The backend that runs `request`; raises `ModelError` for a model that cannot run it."""
    global _classic
    model = (request.model or "").strip()
    if model == CLASSIC_MODEL:
        with _lock:
            if _classic is None:
                from canvasai.backends.classic import ClassicBackend

                _classic = ClassicBackend()
            return _classic
    if not model:
        raise ModelError("No model was chosen.")
    if model.startswith(REMOTE_PREFIX):
        return remote_backend()
    backend = diffusers_backend(settings, registry=registry)
    backend.resolve(request)  # fail early, with the model's own explanation
    return backend


#: server models are named ``comfyui:<folder>/<file>`` (canvasai.backends.remote.catalog)
REMOTE_PREFIX = "comfyui:"
_remote: dict[tuple[Any, ...], Backend] = {}


def remote_backend() -> Backend:
    """The backend for the configured ComfyUI servers; `ModelError` when none is configured.

    One backend per set of servers (the pool keeps their model lists between jobs); a
    change in Preferences ▸ Servers takes effect on the next job.
    """
    from canvasai.backends.remote.backend import RemoteBackend
    from canvasai.backends.remote.pool import shared_pool

    pool = shared_pool()
    if pool is None:
        raise ModelError(
            "This is a model on a ComfyUI server, but no server is configured: add one in "
            "Preferences ▸ Servers."
        )
    with _lock:
        backend = _remote.get(pool.configs)
        if backend is None or getattr(backend, "pool", None) is not pool:
            _remote.clear()
            backend = RemoteBackend(pool)
            _remote[pool.configs] = backend
        return backend


def reset() -> None:
    """Forget cached backends (and with them loaded pipelines) and the shared registry."""
    global _classic
    with _lock:
        _classic = None
        _diffusers.clear()
        _legacy.clear()
        _remote.clear()
    models.reset_registry()
