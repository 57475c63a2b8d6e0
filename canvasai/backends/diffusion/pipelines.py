"""Load, keep and run diffusers pipelines: the one place the task modules share.

- Loading: a diffusers folder with ``from_pretrained`` (safetensors only), a single
  file with ``from_single_file(path, config=<local config folder>)`` fully offline.
  The config folder is ``<file stem>.config`` next to the file when present (custom
  architectures), else the bundled ``resources/model_configs/<family>-<kind>``.
- Keeping: the last main model stays loaded between jobs; a task switch reuses its
  weights through ``from_pipe`` (~0.03 s). ControlNets and TAESD are cached too.
- Loading off the job: a main model loads on its own thread while the job waits for
  it cancellably (`PipelineManager.load(info, ctx)`), so a cancelled job ends at once.
  The load then finishes in the background and is kept for the next job, or, when the
  next job wants another model, is abandoned at its next checkpoint (between its
  stages: imports, building the pipeline, placing it on the device).
- Sharing the interpreter: the first job's imports (torch, diffusers, transformers)
  and a model build would stall the GUI thread for up to ~0.9 s at a time (holding the
  GIL in dlopen and in full garbage-collection passes over the freshly imported
  objects). `warm_imports` maps torch's shared libraries with the GIL released, pauses
  the cyclic garbage collector during the imports and freezes what they created;
  model loads run with the collector paused (see `gc_paused`), after their weight files
  were read into the OS cache with the GIL released (see `read_ahead`); tokenizers are
  built in short GIL holds and kept (see `tokenizer_loading`).
- Schedulers are rebuilt for every job from the pipeline's *original* scheduler
  config: ``X.from_config(pipe.scheduler.config)`` would carry options of an
  earlier swap over (e.g. Karras sigmas).
- Running: `run_steps` wires ``callback_on_step_end`` to the job context (progress,
  previews when wanted, cancel by raising so no VAE decode runs for a cancelled job)
  and steps down on out-of-memory: free caches, then VAE tiling + attention
  slicing, then model CPU offload (GPU only).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from canvasai.backends import models
from canvasai.backends.api import JobContext
from canvasai.backends.device import (
    MODEL_OFFLOAD,
    ON_DEVICE,
    DeviceChoice,
    choose_device,
    free_device_bytes,
    free_memory,
    is_out_of_memory,
    plan_placement,
)
from canvasai.backends.diffusion import families
from canvasai.backends.diffusion.families.base import Family, Route
from canvasai.backends.diffusion.read_ahead import read_ahead, weight_files
from canvasai.backends.diffusion.tokenizer_loading import folder_tokenizers, load_tokenizer
from canvasai.backends.loras import LoraSpec
from canvasai.backends.models import (
    BASE,
    CONTROLNET,
    EDIT,
    INPAINT,
    LORA,
    SD1,
    SD2,
    SDXL,
    TAESD,
    UNKNOWN,
    UPSCALER,
    ModelInfo,
    ModelRegistry,
)
from canvasai.backends.previews import Previewer
from canvasai.core.errors import GenerationError, ModelError
from canvasai.core.paths import resource
from canvasai.core.threads import background_priority

log = logging.getLogger(__name__)

SCHEDULERS = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpmpp_2m_karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
    ),
    "ddim": ("DDIMScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
}


def configs_root() -> Path:
    """Folder holding the config-only model folders for single-file checkpoints: the
    ``models/configs_dir`` setting ($CANVASAI_MODEL_CONFIGS) when set, else the ones
    bundled as package data."""
    from canvasai.core import settings

    override = settings.current().models.configs_dir
    if override:
        return Path(override).expanduser()
    return resource("model_configs")


def config_folder_for(info: ModelInfo) -> Path:
    """The local config folder `from_single_file` needs for `info` (never a hub lookup)."""
    sidecar = info.path.with_suffix(".config")
    if sidecar.is_dir():
        return sidecar
    kind = (
        "inpaint" if info.kind == INPAINT else "controlnet" if info.kind == CONTROLNET else "base"
    )
    folder = configs_root() / f"{info.family}-{kind}"
    if not folder.is_dir():
        raise ModelError(
            f"{info.name}: single-file {info.family} {kind} checkpoints are not supported yet "
            f"(no bundled config in {folder.parent}). Use the model as a diffusers folder."
        )
    return folder


def shared_tokenizers(config: Path, family: str) -> dict[str, Any]:
    """Tokenizers to pass to `from_single_file` with the config folder `config`.

    The bundled config folders share one CLIP BPE tokenizer (``<configs>/tokenizer``)
    instead of carrying a copy each; SDXL's second tokenizer is the same vocabulary
    padded with "!" (as in the published SDXL repos). A config folder with tokenizers
    of its own (a ``<checkpoint>.config`` beside the file) gives those.
    """
    if (config / "tokenizer").is_dir():
        return folder_tokenizers(config)
    folder = configs_root() / "tokenizer"
    if not folder.is_dir():
        raise ModelError(f"The CLIP tokenizer files are missing from {folder.parent}.")
    from transformers import CLIPTokenizer

    out = {"tokenizer": load_tokenizer(CLIPTokenizer, folder, pad_token="<|endoftext|>")}
    if family == SDXL:
        out["tokenizer_2"] = load_tokenizer(CLIPTokenizer, folder, pad_token="!")
    return out


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_paused_state: dict[str, bool] = {"enabled": True, "freeze": False}
_warm_lock = threading.Lock()
_warmed = False


@contextlib.contextmanager
def gc_paused(freeze: bool = False) -> Any:
    """No cyclic garbage collection while the block runs (any thread); on leaving the
    outermost block, with `freeze`, everything alive is moved out of the collector's
    reach (``gc.freeze``) before it is enabled again.

    Why: importing torch + diffusers creates ~1.5 M objects and a model build many more;
    CPython runs a full collection each time the long-lived objects grew by a quarter,
    each one a single GIL-holding pass (36 ms up to 330 ms here) that stalls every other
    thread, the GUI's included. Freezing after the imports makes later full passes skip
    those objects (they live as long as the process anyway). The cost: objects alive at
    that moment are never cycle-collected (refcounting still frees them).
    """
    global _gc_depth
    with _gc_lock:
        _gc_depth += 1
        if _gc_depth == 1:
            was_enabled = gc.isenabled()
            gc.disable()
            _gc_paused_state["enabled"] = was_enabled
            _gc_paused_state["freeze"] = False
        _gc_paused_state["freeze"] = bool(_gc_paused_state["freeze"] or freeze)
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0:
                if _gc_paused_state["freeze"]:
                    gc.freeze()
                if _gc_paused_state["enabled"]:
                    gc.enable()


def _preload_torch_libraries() -> None:
    """Map torch's big native libraries with the GIL released.

    ``import torch`` dlopens libtorch_cpu (hundreds of MB, static initialisers that
    register thousands of operators) from inside the import, holding the GIL for
    ~0.3-0.9 s. Calling libc's ``dlopen`` through ctypes releases the GIL for the call;
    the import then finds the libraries mapped and only links against them.
    """
    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return
    try:
        spec = importlib.util.find_spec("torch")
        if spec is None or not spec.origin:
            return
        lib = os.path.join(os.path.dirname(spec.origin), "lib")
        libc = ctypes.CDLL(None)
        dlopen = libc.dlopen
        dlopen.restype = ctypes.c_void_p
        dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
        # the global deps as torch loads them (RTLD_GLOBAL), the rest as its _C links them
        for name, mode in (("libtorch_global_deps.so", os.RTLD_GLOBAL),
                           ("libc10.so", os.RTLD_LOCAL), ("libtorch_cpu.so", os.RTLD_LOCAL)):
            path = os.path.join(lib, name)
            if os.path.exists(path):
                dlopen(path.encode(), os.RTLD_NOW | mode)
    except (OSError, AttributeError, ValueError):  # nothing lost: the import maps them
        log.debug("preloading torch's libraries failed", exc_info=True)


def warm_imports() -> None:
    """Import what a first diffusers job needs, without stalling the other threads.

    Safe to call from any non-GUI thread, more than once (only the first call works);
    `_diffusers()` calls it, so a first job gets it even without an earlier warm-up.
    """
    global _warmed
    if _warmed:
        return
    with _warm_lock:
        if _warmed:
            return
        started = time.perf_counter()
        _preload_torch_libraries()
        with gc_paused(freeze=True):
            import diffusers
            import torch  # noqa: F401
            import transformers

            # what a Stable Diffusion job touches first (lazy modules import on access)
            for name in ("StableDiffusionPipeline", "StableDiffusionInpaintPipeline",
                         "AutoencoderKL", "UNet2DConditionModel"):
                getattr(diffusers, name, None)
            for name in ("CLIPTextModel", "CLIPTokenizer"):
                getattr(transformers, name, None)
        _warmed = True
        log.info("torch/diffusers imported in %.1f s", time.perf_counter() - started)


def _diffusers() -> Any:
    warm_imports()
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    return diffusers


def dtype_kwargs(dtype: Any) -> dict[str, Any]:
    """``dtype=`` for diffusers versions that renamed it, ``torch_dtype=`` for older ones."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def pipeline_class(name: str) -> Any:
    """The diffusers pipeline class called `name` (names come from the family modules)."""
    cls = getattr(_diffusers(), name, None)
    if cls is None:
        import diffusers

        raise ModelError(f"This diffusers ({diffusers.__version__}) has no {name}: update diffusers.")
    return cls


@dataclass
class LoadedModel:
    """A main model's pipeline plus the task variants made from it with `from_pipe`."""

    info: ModelInfo
    pipe: Any  # the pipeline as loaded (txt2img class, or the upscale pipeline)
    scheduler_class: str
    scheduler_config: dict[str, Any]
    variants: dict[tuple[str, str], Any] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)  # OOM measures applied so far
    #: LoRAs loaded into the model's modules (adapter name -> file), kept between jobs
    adapters: dict[str, Path] = field(default_factory=dict)
    #: the adapters and weights last made active ((): LoRAs off; None: not known), so an
    #: unchanged set costs nothing (enable_lora + set_adapters: ~25 ms a job on tiny models)
    lora_state: tuple[tuple[str, float], ...] | None = None

    @property
    def family(self) -> Family:
        return families.get(self.info.family)

    @property
    def native_size(self) -> int:
        """Side length of the area the model was trained at (512 for SD 1.x, 1024 for SDXL/DiTs)."""
        return self.family.native_size(self.pipe)

    @property
    def multiple(self) -> int:
        return self.family.multiple

    @property
    def is_true_inpaint(self) -> bool:
        """Trained to inpaint (a 9-channel SD UNet, Flux Fill): the registry says INPAINT."""
        return self.info.kind == INPAINT

    def route(self, task: str) -> Route:
        return self.family.route(task, self.info.kind, self.info.variant)


class LoadAbandoned(Exception):
    """A background model load stopped at a checkpoint: another model is wanted now."""


@dataclass(eq=False)
class _PendingLoad:
    info: ModelInfo
    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)
    abandon: threading.Event = field(default_factory=threading.Event)
    result: Any = None  # a LoadedModel (main loads) or the loaded network (side loads)
    error: BaseException | None = None

    def checkpoint(self) -> None:
        if self.abandon.is_set():
            raise LoadAbandoned(self.info.name)


class PipelineManager:
    """Owns the device and the loaded pipelines; used on the generation worker thread."""

    def __init__(
        self, registry: ModelRegistry | None = None, device: DeviceChoice | None = None
    ) -> None:
        self._registry = registry  # None: THE registry, looked up on each use
        self._device = device
        self._loaded: LoadedModel | None = None
        self._controlnets: dict[str, Any] = {}
        self._taesd: dict[str, Any] = {}
        self._placement: dict[str, str] = {}  # model path -> how it was placed (device.py)
        self._pending: _PendingLoad | None = None  # the main model load in progress
        self._side_loads: dict[str, _PendingLoad] = {}  # ControlNet loads, by path
        self._lock = threading.RLock()

    @property
    def registry(self) -> ModelRegistry:
        return self._registry if self._registry is not None else models.registry()

    @registry.setter
    def registry(self, value: ModelRegistry | None) -> None:
        self._registry = value

    @property
    def device(self) -> DeviceChoice:
        if self._device is None:
            self._device = choose_device()
        return self._device

    # -- loading ------------------------------------------------------------------------------

    def load(self, info: ModelInfo, ctx: JobContext | None = None) -> LoadedModel:
        """The loaded pipeline for `info`, loading it (and unloading the previous) if needed.

        The load runs on its own thread; this waits for it, and with `ctx` checks
        ``ctx.check_cancelled()`` every few milliseconds meanwhile, so a cancelled job
        returns at once (`JobCancelled`) while the load goes on and is kept for the
        next job. A load of another model still running is abandoned at its next
        checkpoint first (or waited for, past its last one).
        """
        while True:
            with self._lock:
                loaded, pending = self._loaded, self._pending
                if pending is None:
                    if loaded is not None and loaded.info.path == info.path:
                        return loaded
                    self.unload()
                    pending = self._pending = _PendingLoad(info)
                    pending.thread = threading.Thread(
                        target=self._load_in_background, args=(pending,),
                        name="canvasai-model-load", daemon=True)
                    pending.thread.start()
                elif pending.info.path != info.path:
                    pending.abandon.set()  # not what this job needs
                else:
                    pending.abandon.clear()  # wanted again
            self._wait(pending, ctx)
            with self._lock:
                if self._pending is pending:
                    self._pending = None
            if pending.info.path != info.path or isinstance(pending.error, LoadAbandoned):
                continue  # that load is over: start (again) the one this job needs
            if pending.error is not None:
                raise pending.error
            assert pending.result is not None
            return pending.result

    @staticmethod
    def _wait(pending: _PendingLoad, ctx: JobContext | None) -> None:
        while not pending.done.wait(0.02):
            if ctx is not None:
                ctx.check_cancelled()

    def _load_in_background(self, pending: _PendingLoad) -> None:
        """The loader thread: build the pipeline; install it unless abandoned."""
        background_priority()
        try:
            pending.checkpoint()
            warm_imports()
            pending.checkpoint()
            with gc_paused():
                pipe = self._load_pipe(pending.info, pending.checkpoint)
            sched = pipe.scheduler
            loaded = LoadedModel(
                info=pending.info,
                pipe=pipe,
                scheduler_class=type(sched).__name__,
                scheduler_config=dict(sched.config),
            )
            how = self._placement.get(str(pending.info.path), ON_DEVICE)
            if how != ON_DEVICE:
                loaded.degraded.append(how)
            pending.checkpoint()
            with self._lock:
                self._loaded = loaded
            pending.result = loaded
        except BaseException as exc:  # noqa: BLE001 - handed to the job that waits
            pending.error = exc
        finally:
            pending.done.set()

    def unload(self) -> None:
        with self._lock:
            if self._loaded is not None:
                self._loaded = None
                free_memory(self.device.device if self._device else None)

    def is_loading(self) -> bool:
        """A model load is still running (e.g. one its cancelled job left behind)."""
        with self._lock:
            return self._pending is not None and not self._pending.done.is_set()

    def _load_pipe(self, info: ModelInfo, checkpoint: Callable[[], None] = lambda: None) -> Any:
        import torch

        d = _diffusers()
        dev = self.device
        is_sd = info.family in (SD1, SD2, SDXL)
        if info.kind == UPSCALER:
            cls: Any = d.StableDiffusionUpscalePipeline
        elif is_sd and info.kind in (BASE, INPAINT):
            cls = pipeline_class(families.get(info.family).pipelines["txt2img"])
        elif info.kind in (BASE, INPAINT, EDIT) and families.find(info.family) is not None:
            cls = pipeline_class(families.get(info.family).loader_pipeline(info.kind, info.variant))
        else:
            raise ModelError(f"{info.name} is a {info.kind} model, not a main model.")
        extra: dict[str, Any] = {}
        if info.kind == UPSCALER:
            extra = {"safety_checker": None, "feature_extractor": None, "watermarker": None}
        elif info.family in (SD1, SD2):
            extra = {"safety_checker": None, "feature_extractor": None}
            extra["requires_safety_checker"] = False
        read_ahead(weight_files(info), checkpoint)  # see read_ahead: no disk reads under the GIL
        try:
            if info.parts:
                from canvasai.backends.diffusion.assembly import load_split

                pipe = load_split(cls, info, dev, self.registry)
            elif not is_sd and info.format != "diffusers":
                raise ModelError(
                    f"{info.name}: a single {families.get(info.family).label} file needs its "
                    "text encoders and VAE beside it (see the models list for what is missing)."
                )
            elif info.format == "diffusers":
                if not is_sd and info.kind != UPSCALER:
                    extra |= families.get(info.family).load_kwargs(info.path)
                extra = folder_tokenizers(info.path) | extra
                pipe = cls.from_pretrained(
                    info.path,
                    **dtype_kwargs(dev.dtype),
                    local_files_only=True,
                    use_safetensors=True,
                    **extra,
                )
            else:
                if info.format == "pickle" and not self.registry.is_pickle_allowed(info.path):
                    raise ModelError(f"{info.name}: {info.note}")
                config = config_folder_for(info)
                extra |= shared_tokenizers(config, info.family)
                pipe = cls.from_single_file(
                    str(info.path),
                    config=str(config),
                    **dtype_kwargs(dev.dtype),
                    local_files_only=True,
                    **extra,
                )
        except ModelError:
            raise
        except Exception as exc:  # corrupt tensors, shape mismatches, missing files, ...
            if is_out_of_memory(exc):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"Could not load {info.name} ({info.path}): {first}") from exc
        pipe.set_progress_bar_config(disable=True)
        if torch.device(dev.device).type != "cpu":
            checkpoint()
            self._place(pipe, info)
        return pipe

    def _place(self, pipe: Any, info: ModelInfo) -> None:
        """Move `pipe` to the GPU, or offload parts of it when it would not fit."""
        sizes = component_bytes(pipe)
        total, largest = sum(sizes.values()), max(sizes.values(), default=0)
        how = plan_placement(total, largest, free_device_bytes(self.device.device))
        self._placement[str(info.path)] = how
        if how == ON_DEVICE:
            pipe.to(self.device.device)
        elif how == MODEL_OFFLOAD:
            pipe.enable_model_cpu_offload()
        else:
            pipe.enable_sequential_cpu_offload()
        if how != ON_DEVICE:
            log.info("%s (%.1f GB) does not fit: %s", info.name, total / 1e9, how)

    def apply_loras(self, loaded: LoadedModel, specs: Sequence[LoraSpec]) -> list[dict[str, Any]]:
        """Make exactly `specs` active on `loaded` (none: LoRAs off); returns what was applied.

        Each LoRA file is loaded into the model's modules once (diffusers'
        ``load_lora_weights``: kohya/A1111, diffusers and PEFT layouts) and kept: a later
        job with the same LoRA only sets its weight. The task pipelines made with
        ``from_pipe`` share those modules. A LoRA of another family is refused before
        anything is loaded.
        """
        pipe = loaded.pipe
        if not specs:
            if loaded.adapters and loaded.lora_state != ():
                pipe.disable_lora()
                loaded.lora_state = ()
            return []
        if not hasattr(pipe, "load_lora_weights"):
            raise ModelError(f"LoRAs cannot be applied to {loaded.info.name} ({loaded.family.label}).")
        names, weights, applied = [], [], []
        for spec in specs:
            info = self.registry.resolve(spec.name)
            if info.kind != LORA:
                raise ModelError(f"{info.name} is not a LoRA ({models.describe(info)}).")
            fam = loaded.info.family
            if info.family not in (fam, UNKNOWN) and families.get(fam).tae_family != info.family:
                other = families.find(info.family)
                raise ModelError(
                    f"LoRA {info.name} is for {other.label if other else info.family} models; "
                    f"{loaded.info.name} is a {loaded.family.label} model."
                )
            key = "lora_" + hashlib.sha1(str(info.path).encode()).hexdigest()[:12]
            if key not in loaded.adapters:
                try:
                    pipe.load_lora_weights(str(info.path), adapter_name=key)
                except Exception as exc:  # noqa: BLE001 - keys that fit nothing, bad files
                    if is_out_of_memory(exc):
                        raise
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                    raise ModelError(
                        f"LoRA {info.name} could not be applied to {loaded.info.name}: {first}"
                    ) from exc
                loaded.adapters[key] = info.path
                loaded.lora_state = None  # loading changes which adapters are active
            names.append(key)
            weights.append(float(spec.weight))
            applied.append({"name": info.name, "weight": float(spec.weight)})
        state = tuple(zip(names, weights, strict=True))
        if state != loaded.lora_state:
            pipe.enable_lora()
            pipe.set_adapters(names, adapter_weights=weights)
            loaded.lora_state = state
        return applied

    def variant(
        self, loaded: LoadedModel, pipeline: str, controlnet: Any = None, key: str = ""
    ) -> Any:
        """`loaded`'s pipeline as the class named `pipeline` (shared weights via from_pipe).

        `pipeline` is a diffusers class name, or a family task key ("txt2img", "inpaint",
        "controlnet", ...) that the model's family maps to one.
        """
        if loaded.info.kind == UPSCALER:
            return loaded.pipe
        name = loaded.family.pipelines.get(pipeline, pipeline)
        cls = pipeline_class(name)
        vkey = (cls.__name__, key)
        pipe = loaded.variants.get(vkey)
        if pipe is None:
            if type(loaded.pipe) is cls:
                pipe = loaded.pipe
            elif controlnet is not None:
                pipe = cls.from_pipe(loaded.pipe, controlnet=controlnet)
            else:
                pipe = cls.from_pipe(loaded.pipe)
            pipe.set_progress_bar_config(disable=True)
            loaded.family.prepare(pipe)
            loaded.variants[vkey] = pipe
        return pipe

    def _side_load(self, info: ModelInfo, build: Callable[[], Any], ctx: JobContext | None) -> Any:
        """`build()` on its own thread, waited for like a main model (`load`): a job
        cancelled meanwhile returns at once (`JobCancelled`) while the load finishes in
        the background; the next job that wants the same model takes its result."""
        key = str(info.path)
        with self._lock:
            pending = self._side_loads.get(key)
            if pending is None:
                pending = self._side_loads[key] = _PendingLoad(info)

                def run() -> None:
                    background_priority()
                    try:
                        with gc_paused():
                            pending.result = build()
                    except BaseException as exc:  # noqa: BLE001 - handed to the waiting job
                        pending.error = exc
                    finally:
                        pending.done.set()

                pending.thread = threading.Thread(target=run, name="canvasai-side-load",
                                                  daemon=True)
                pending.thread.start()
        self._wait(pending, ctx)
        with self._lock:
            if self._side_loads.get(key) is pending:
                del self._side_loads[key]
        if pending.error is not None:
            raise pending.error
        return pending.result

    def controlnet(self, info: ModelInfo, ctx: JobContext | None = None) -> Any:
        """The ControlNet of `info`, loaded once (cancellably with `ctx`, see `_side_load`)."""
        key = str(info.path)
        net = self._controlnets.get(key)
        if net is None:
            net = self._side_load(info, lambda: self._load_controlnet(info), ctx)
            # keep one: they are as big as a UNet. Task pipelines built around an
            # older ControlNet would keep it alive, so drop them too.
            self._controlnets = {key: net}
            if self._loaded is not None:
                for vkey in [k for k in self._loaded.variants if k[1] not in ("", key)]:
                    del self._loaded.variants[vkey]
        return net

    def _load_controlnet(self, info: ModelInfo) -> Any:
        """Build the ControlNet of `info` (any thread: it touches no manager state)."""
        d = _diffusers()
        read_ahead(weight_files(info))
        try:
            if info.format == "diffusers":
                fam = families.find(info.family)
                cn_cls = getattr(d, fam.controlnet_class if fam and fam.controlnet_class
                                 else "ControlNetModel")
                net = cn_cls.from_pretrained(
                    info.path,
                    **dtype_kwargs(self.device.dtype),
                    local_files_only=True,
                    use_safetensors=True,
                )
            else:
                net = d.ControlNetModel.from_single_file(
                    str(info.path),
                    config=str(config_folder_for(info)),
                    **dtype_kwargs(self.device.dtype),
                    local_files_only=True,
                )
        except ModelError:
            raise
        except Exception as exc:
            if is_out_of_memory(exc):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ModelError(f"Could not load ControlNet {info.name}: {first}") from exc
        if self.device.device != "cpu":
            net.to(self.device.device)
        return net

    def taesd(self, family: str) -> Any | None:
        """An installed TAESD for `family`, loaded once; None when there is none."""
        fam = families.find(family)
        family = fam.tae_family if fam is not None and fam.tae_family else family
        if family in self._taesd:
            return self._taesd[family]
        info = self.registry.find(TAESD, family=family)
        net = None
        if info is not None and info.format == "diffusers":
            try:
                net = _diffusers().AutoencoderTiny.from_pretrained(
                    info.path, **dtype_kwargs(self.device.dtype), local_files_only=True
                )
                if self.device.device != "cpu":
                    net.to(self.device.device)
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("TAESD %s not usable: %s", info.path, exc)
                net = None
        self._taesd[family] = net
        return net

    def previewer(self, loaded: LoadedModel, pipe: Any = None, size: tuple[int, int] = (0, 0)) -> Previewer:
        """Step-latent previews for `loaded` running in `pipe` at work `size` (w, h)."""
        fam = loaded.info.family
        vae_cfg = loaded.pipe.vae.config
        return Previewer(
            fam,
            self.taesd(fam) if loaded.info.kind != UPSCALER else None,
            float(getattr(vae_cfg, "scaling_factor", 0.18215) or 1.0),
            shift_factor=float(getattr(vae_cfg, "shift_factor", 0.0) or 0.0),
            pipe=pipe if pipe is not None else loaded.pipe,
            size=size,
        )

    # -- per job ------------------------------------------------------------------------------

    def set_scheduler(self, loaded: LoadedModel, pipe: Any, name: str) -> str:
        """Give `pipe` a fresh scheduler built from the model's original config; returns its name."""
        d = _diffusers()
        key = (name or "default").lower()
        if key != "default" and loaded.scheduler_class.startswith("FlowMatch"):
            # rectified-flow models (Flux, SD3, Z-Image, Qwen, Chroma) sample with their own
            # flow-matching scheduler; the SD samplers would give noise
            pipe.scheduler = getattr(d, loaded.scheduler_class).from_config(loaded.scheduler_config)
            return f"default ({loaded.scheduler_class}; {key} does not apply to this model)"
        if key == "default":
            cls_name, extra = loaded.scheduler_class, {}
        elif key in SCHEDULERS:
            cls_name, extra = SCHEDULERS[key]
        else:
            raise GenerationError(
                f"Unknown sampler {name!r}. Choose one of: default, {', '.join(SCHEDULERS)}."
            )
        cls = getattr(d, cls_name)
        pipe.scheduler = cls.from_config(loaded.scheduler_config, **extra)
        return key if key != "default" else f"default ({cls_name})"


def generators(seeds: tuple[int, ...] | list[int]) -> list[Any]:
    """One CPU torch.Generator per batch item: identical results on every device."""
    import torch

    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


PreviewSink = Callable[[int, np.ndarray], None]


class StepReporter:
    """Maps a pipeline's step callbacks to the job context across a whole job.

    A job may run the pipeline several times (batch items, tiles): `segment` says
    which run this is, so progress counts monotonically over the job.
    """

    def __init__(
        self,
        ctx: JobContext,
        runs: int,
        previews: bool,
        previewer: Previewer | None,
        sink: PreviewSink | None,
    ) -> None:
        self.ctx = ctx
        self.runs = max(1, runs)
        self.run_index = 0
        self.previews = previews and previewer is not None and sink is not None
        self.previewer = previewer
        self.sink = sink
        self.steps_per_run = 0
        self.asked = 0  # num_inference_steps of the current run
        self.last_step = 0

    def start_run(self, index: int, steps_hint: int) -> None:
        self.run_index = index
        self.asked = max(0, int(steps_hint))
        if self.steps_per_run == 0:
            self.steps_per_run = max(1, steps_hint)

    def on_step(self, i: int, latents: Any, total_steps: int | None = None) -> None:
        if total_steps:
            total_steps = int(total_steps)
            if total_steps == self.asked + 1:
                # PNDM runs N + 1 callbacks (it repeats a timestep): count the N asked for,
                # never "1/61" for 60
                total_steps -= 1
            self.steps_per_run = max(1, total_steps)
        per = self.steps_per_run
        local = min(i + 1, per)
        step = self.run_index * per + local
        total = self.runs * per
        self.last_step = step
        self.ctx.progress(step, total)
        if self.previews and self.ctx.wants_preview():
            assert self.previewer is not None and self.sink is not None
            self.sink(step, self.previewer(latents))
        self.ctx.check_cancelled()

    def diffusers_callback(self) -> Callable[..., dict[str, Any]]:
        def callback(pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            self.on_step(i, kwargs["latents"], getattr(pipe, "_num_timesteps", None))
            return {}

        return callback

    def legacy_callback(self) -> Callable[[int, Any, Any], None]:
        def callback(i: int, t: Any, latents: Any) -> None:
            self.on_step(i, latents)

        return callback


def component_bytes(pipe: Any) -> dict[str, int]:
    """Bytes of weights per torch component of a pipeline (transformer, text encoders, VAE)."""
    out = {}
    for name, comp in getattr(pipe, "components", {}).items():
        params = getattr(comp, "parameters", None)
        if callable(params):
            out[name] = sum(p.numel() * p.element_size() for p in params())
    return out


_OOM_LEVELS = (
    "out of memory: freed caches, retrying",
    "out of memory: retrying with VAE tiling and attention slicing",
    "out of memory: retrying with model CPU offload",
    "out of memory: retrying with sequential CPU offload (slow, least memory)",
)


def _apply_oom_level(manager: PipelineManager, loaded: LoadedModel, pipe: Any, level: int) -> bool:
    """Apply step-down `level` (1-based) to `pipe`; False when it does not apply here."""
    free_memory(manager.device.device)
    if level == 1:
        return True
    if level == 2:
        with contextlib.suppress(AttributeError, NotImplementedError):
            pipe.vae.enable_tiling()
        with contextlib.suppress(AttributeError, NotImplementedError):
            pipe.enable_attention_slicing()
        loaded.degraded.append("vae_tiling+attention_slicing")
        return True
    if level == 3:
        if manager.device.device != "cuda" or "model_cpu_offload" in loaded.degraded:
            return False
        pipe.enable_model_cpu_offload()
        loaded.degraded.append("model_cpu_offload")
        return True
    if level == 4:
        if manager.device.device != "cuda" or "sequential_cpu_offload" in loaded.degraded:
            return False
        with contextlib.suppress(Exception):
            pipe.remove_all_hooks()
        pipe.enable_sequential_cpu_offload()
        loaded.degraded.append("sequential_cpu_offload")
        return True
    return False


def run_with_oom_stepdown(
    manager: PipelineManager, loaded: LoadedModel, pipe: Any, ctx: JobContext, fn: Callable[[], Any]
) -> Any:
    """Call `fn`; on out-of-memory free caches and retry, then tile/slice, then offload."""
    level = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            level += 1
            while level <= len(_OOM_LEVELS) and not _apply_oom_level(manager, loaded, pipe, level):
                level += 1
            if level > len(_OOM_LEVELS):
                free_memory(manager.device.device)
                raise GenerationError(
                    "Out of memory even after freeing caches, VAE tiling, attention slicing"
                    + (" and CPU offload" if manager.device.device == "cuda" else "")
                    + ". Try a smaller region or image, fewer batch items, or a smaller model."
                ) from exc
            ctx.note(_OOM_LEVELS[level - 1])
            log.info("%s (%s)", _OOM_LEVELS[level - 1], exc)
