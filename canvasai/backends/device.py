"""Pick the compute device and dtype for diffusion: cuda, then mps, then cpu.

torch is imported inside the functions so that importing this module stays cheap
(the window must appear before any model library is loaded).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeviceChoice:
    """Where a pipeline runs: a torch device name and the dtype its weights use."""

    device: str  # "cuda", "mps" or "cpu"
    dtype: Any  # a torch.dtype

    @property
    def is_gpu(self) -> bool:
        return self.device != "cpu"

    def describe(self) -> str:
        return f"{self.device} ({str(self.dtype).removeprefix('torch.')})"


def _cuda_ok(torch: Any) -> bool:
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # broken driver installs raise instead of returning False
        return False


def _mps_ok(torch: Any) -> bool:
    backend = getattr(torch.backends, "mps", None)
    try:
        return bool(backend is not None and backend.is_available())
    except Exception:
        return False


def gpu_dtype(torch: Any, device: str) -> Any:
    """Half precision on a GPU: bf16 where the card supports it well, else fp16.

    fp16 SD/SDXL VAEs overflow to NaN on some checkpoints; bf16 has fp32's range,
    so prefer it on CUDA cards that have native bf16 (Ampere and newer). MPS
    bf16 support is patchy across macOS versions: fp16 there.
    """
    if device == "cuda":
        try:
            if torch.cuda.is_bf16_supported():
                return torch.bfloat16
        except Exception:
            pass
        return torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def choose_device(preferred: str | None = None) -> DeviceChoice:
    """The best available device, or `preferred` ("cuda"/"mps"/"cpu") when it is usable.

    The `models/device` setting ($CANVASAI_DEVICE, e.g. ``cpu`` to force the CPU on a GPU
    machine) overrides the automatic choice when `preferred` is None.
    """
    import torch

    from canvasai.core import settings

    wanted = (preferred or settings.current().models.device or "").strip().lower() or None
    available = []
    if _cuda_ok(torch):
        available.append("cuda")
    if _mps_ok(torch):
        available.append("mps")
    available.append("cpu")
    device = wanted if wanted in available else available[0]
    precision = (settings.current().models.precision or "").strip().lower()
    return DeviceChoice(device=device, dtype=chosen_dtype(torch, device, precision))


def chosen_dtype(torch: Any, device: str, precision: str) -> Any:
    """The `models/precision` setting's dtype ("" = automatic: `gpu_dtype`).

    Half precision on the CPU is refused (CPU kernels for it are slow or missing): fp32
    there whatever the setting; bf16 on a card without it falls back to fp16.
    """
    if not precision or device == "cpu":
        return gpu_dtype(torch, device)
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        try:
            if device == "cuda" and torch.cuda.is_bf16_supported():
                return torch.bfloat16
        except Exception:  # noqa: BLE001 - unknown: the safe half type
            pass
        return torch.float16
    return torch.float16


def free_memory(device: str | None = None) -> None:
    """Drop Python garbage and the allocator caches so an out-of-memory retry has room."""
    import gc

    import torch

    gc.collect()
    if device in (None, "cuda") and _cuda_ok(torch):
        torch.cuda.empty_cache()
        with contextlib.suppress(Exception):
            torch.cuda.ipc_collect()
    if device in (None, "mps") and _mps_ok(torch):
        with contextlib.suppress(Exception):
            torch.mps.empty_cache()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's OOM error and the RuntimeError texts CUDA/MPS/CPU allocators raise."""
    try:
        import torch

        oom_type = getattr(torch, "OutOfMemoryError", None)
        if oom_type is not None and isinstance(exc, oom_type):
            return True
    except ImportError:
        pass
    if isinstance(exc, (RuntimeError, MemoryError)):
        text = str(exc).lower()
        return (
            isinstance(exc, MemoryError)
            or "out of memory" in text
            or "can't allocate memory" in text
        )
    return False


# ------------------------------------------------------------------------- placement
#: where a model's weights live while it runs (`plan_placement`)
ON_DEVICE = "on_device"
MODEL_OFFLOAD = "model_cpu_offload"  # each component moves to the GPU while it runs
SEQUENTIAL_OFFLOAD = "sequential_cpu_offload"  # layer by layer: slowest, least memory


def plan_placement(total_bytes: int, largest_bytes: int, free_bytes: int | None) -> str:
    """How to place a model of `total_bytes` (its largest component `largest_bytes`) on a
    GPU with `free_bytes` free (None: not a GPU, or unknown).

    Everything on the GPU when it fits with room for activations (~15 %); else one
    component at a time (text encoders run once and go back, the transformer stays
    while denoising) when the largest component fits; else layer by layer.
    """
    if free_bytes is None or total_bytes <= 0.85 * free_bytes:
        return ON_DEVICE
    if largest_bytes <= 0.8 * free_bytes:
        return MODEL_OFFLOAD
    return SEQUENTIAL_OFFLOAD


def free_device_bytes(device: str) -> int | None:
    """Free memory on a CUDA device, else None."""
    if device != "cuda":
        return None
    import torch

    try:
        free, _total = torch.cuda.mem_get_info()
    except Exception:  # noqa: BLE001 - no answer means: do not plan around it
        return None
    return int(free)

