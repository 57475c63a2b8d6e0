"""Pick the backend for a request: the classic OpenCV one, or diffusers.

Importing this module imports neither torch nor diffusers; backends are created
on first use (on the generation worker thread) and cached, so loaded pipelines
survive between jobs.

`settings` may be None, a mapping or an object with any of these (attribute or
key): ``registry`` (a ModelRegistry to use as is), ``models_dirs`` (list of
folders), ``include_hf_cache`` (bool), ``allow_pickle`` (paths the person allowed).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from canvasai.backends.api import CLASSIC_MODEL, Backend, GenerationRequest
from canvasai.backends.models import ModelRegistry
from canvasai.core.errors import ModelError

if TYPE_CHECKING:
    from canvasai.backends.diffusion.backend import DiffusersBackend

_lock = threading.Lock()
_classic: Backend | None = None
_diffusers: dict[tuple[Any, ...], DiffusersBackend] = {}


def _setting(settings: Any, name: str, default: Any = None) -> Any:
    if settings is None:
        return default
    if isinstance(settings, Mapping):
        return settings.get(name, default)
    return getattr(settings, name, default)


def _registry_key(settings: Any) -> tuple[Any, ...]:
    reg = _setting(settings, "registry")
    if reg is not None:
        return ("registry", id(reg))
    dirs = _setting(settings, "models_dirs")
    return (
        "dirs",
        tuple(str(d) for d in dirs) if dirs is not None else None,
        bool(_setting(settings, "include_hf_cache", True)),
        tuple(sorted(str(p) for p in _setting(settings, "allow_pickle", ()) or ())),
    )


def registry_from_settings(settings: Any = None) -> ModelRegistry:
    reg = _setting(settings, "registry")
    if reg is not None:
        return reg
    return ModelRegistry(
        _setting(settings, "models_dirs"),
        include_hf_cache=bool(_setting(settings, "include_hf_cache", True)),
        allow_pickle=_setting(settings, "allow_pickle", ()) or (),
    )


def diffusers_backend(settings: Any = None) -> DiffusersBackend:
    """The cached diffusers backend for these settings (one per registry configuration)."""
    from canvasai.backends.diffusion.backend import DiffusersBackend

    key = _registry_key(settings)
    with _lock:
        backend = _diffusers.get(key)
        if backend is None:
            # one set of loaded pipelines at a time: drop backends of old settings
            _diffusers.clear()
            backend = DiffusersBackend(registry_from_settings(settings))
            _diffusers[key] = backend
        return backend


def backend_for(request: GenerationRequest, settings: Any = None) -> Backend:
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
    backend = diffusers_backend(settings)
    backend.resolve(request)  # fail early, with the model's own explanation
    return backend


def reset() -> None:
    """Forget cached backends (and with them loaded pipelines); for tests and settings changes."""
    global _classic
    with _lock:
        _classic = None
        _diffusers.clear()
