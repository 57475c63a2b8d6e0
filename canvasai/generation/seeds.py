"""Seed conventions shared by the service, the CLI and every backend.

- A request whose ``seed`` is None gets a random seed chosen by the service before a
  backend sees it, so backends always receive a concrete seed.
- Batch item ``i`` (0-based) of a request with seed ``s`` uses seed ``s + i``
  (wrapping at 2**32), so any single candidate of a batch can be re-run alone with
  ``batch_size=1, seed=s + i`` and give the same picture.
- The seeds actually used are reported in ``GenerationResult.seeds``.
"""

from __future__ import annotations

import dataclasses
import secrets

from canvasai.generation.requests import GenerationRequest

SEED_MODULUS = 2**32


def random_seed() -> int:
    """A fresh seed in [0, 2**32) (fits torch.Generator.manual_seed and numpy)."""
    return secrets.randbelow(SEED_MODULUS)


def batch_seeds(seed: int, batch_size: int) -> tuple[int, ...]:
    """The seeds of a batch: seed, seed + 1, ... (mod 2**32)."""
    return tuple((int(seed) + i) % SEED_MODULUS for i in range(int(batch_size)))


def with_seed(request: GenerationRequest) -> GenerationRequest:
    """`request` unchanged if it has a seed, else a copy with a random one."""
    if request.seed is not None:
        return request
    return dataclasses.replace(request, seed=random_seed())
