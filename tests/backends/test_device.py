"""Device choice and out-of-memory recognition."""

from __future__ import annotations

import types

import pytest

from canvasai.backends.device import choose_device, gpu_dtype, is_out_of_memory

torch = pytest.importorskip("torch")


def _fake_torch(cuda: bool, bf16: bool, mps: bool) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        cuda=types.SimpleNamespace(is_available=lambda: cuda, is_bf16_supported=lambda: bf16),
        backends=types.SimpleNamespace(mps=types.SimpleNamespace(is_available=lambda: mps)),
        float16="fp16",
        bfloat16="bf16",
        float32="fp32",
    )


def test_cpu_machine_gets_fp32_and_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANVASAI_DEVICE", raising=False)
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    choice = choose_device()
    assert (choice.device, choice.dtype, choice.is_gpu) == ("cpu", torch.float32, False)
    assert choose_device("cuda").device == "cpu"  # unavailable preference falls back
    monkeypatch.setenv("CANVASAI_DEVICE", "cpu")
    assert choose_device().describe() == "cpu (float32)"


def test_gpu_dtypes() -> None:
    assert gpu_dtype(_fake_torch(True, True, False), "cuda") == "bf16"
    assert gpu_dtype(_fake_torch(True, False, False), "cuda") == "fp16"
    assert gpu_dtype(_fake_torch(False, False, True), "mps") == "fp16"
    assert gpu_dtype(_fake_torch(False, False, False), "cpu") == "fp32"


def test_out_of_memory_recognised() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 8 GB)"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_placement_steps_down_to_offload_when_a_model_does_not_fit() -> None:
    from canvasai.backends.device import (
        MODEL_OFFLOAD,
        ON_DEVICE,
        SEQUENTIAL_OFFLOAD,
        plan_placement,
    )

    gb = 1 << 30
    assert plan_placement(30 * gb, 24 * gb, None) == ON_DEVICE  # CPU: nothing to plan
    assert plan_placement(12 * gb, 8 * gb, 24 * gb) == ON_DEVICE
    # Flux dev bf16 on a 16 GB card: 24 GB transformer + 9 GB T5 does not fit
    assert plan_placement(33 * gb, 11 * gb, 16 * gb) == MODEL_OFFLOAD
    assert plan_placement(33 * gb, 24 * gb, 16 * gb) == SEQUENTIAL_OFFLOAD


def test_precision_setting_is_honoured_where_it_makes_sense() -> None:
    import torch

    from canvasai.backends.device import choose_device, chosen_dtype
    from canvasai.core import settings

    assert chosen_dtype(torch, "cpu", "fp16") is torch.float32  # no half precision on the CPU
    assert chosen_dtype(torch, "cuda", "fp32") is torch.float32
    assert chosen_dtype(torch, "mps", "fp16") is torch.float16
    assert chosen_dtype(torch, "mps", "bf16") is torch.float16  # no bf16 there: fp16
    settings.update(**{"models/precision": "fp16", "models/device": "cpu"})
    assert choose_device().dtype is torch.float32
