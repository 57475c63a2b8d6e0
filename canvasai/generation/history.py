"""What a job was made with, recorded once: `GenerationRecord`.

One record, one set of key names, three uses:
- an accepted layer carries `record.to_dict()` as `layer.generation` (saved in the .ora);
- export writes it as AUTOMATIC1111-style ``parameters`` text (`canvasai.formats.export`
  reads the same keys: prompt, negative_prompt, steps, sampler, cfg_scale, seed, strength,
  width, height, model);
- the document's generation history keeps the same dict plus a thumbnail, in
  ``doc.metadata["generation_history"]``, so "Use these settings again" works after
  reopening a project (`params_from`).

Recording goes through `Document.add_metadata_entry`: it marks the document changed (the
revision counter moves, closing asks to save, autosave writes it) without an undo step.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from canvasai.backends.api import CLASSIC_MODEL, GenerationRequest
from canvasai.document.document import Document
from canvasai.generation.params import FlowParams

HISTORY_KEY = "generation_history"
MAX_ENTRIES = 200
THUMBNAIL_SIDE = 96


@dataclass(frozen=True)
class GenerationRecord:
    """One finished candidate: the flow, every panel setting, and what actually ran."""

    flow: str
    params: FlowParams  # the panel's settings, with this candidate's seed
    seed: int
    task: str
    model: str  # what ran (the backend may resolve a path to a registry name)
    backend: str
    sampler: str
    width: int  # the size of the area the result covers
    height: int
    time: float = field(default_factory=time.time)

    @classmethod
    def of(cls, flow: str, params: FlowParams, request: GenerationRequest, seed: int,
           size: tuple[int, int], metadata: Mapping[str, Any] | None = None) -> GenerationRecord:
        meta = dict(metadata or {})
        backend = meta.get("backend") or ("classic" if request.model == CLASSIC_MODEL
                                           else "diffusers")
        return cls(
            flow=flow,
            params=_with_seed(params, seed),
            seed=int(seed),
            task=request.task.value,
            model=str(meta.get("model") or request.model),
            backend=str(backend),
            sampler=str(meta.get("sampler") or request.scheduler),
            width=int(size[0]),
            height=int(size[1]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The layer's `generation` dict (A1111 key names first, then CanvasAI's)."""
        p = self.params
        return {
            "prompt": p.prompt,
            "negative_prompt": p.negative_prompt,
            "steps": p.steps,
            "sampler": self.sampler,
            "cfg_scale": p.guidance,
            "seed": self.seed,
            "strength": p.strength,
            "width": self.width,
            "height": self.height,
            "model": self.model,
            "task": self.task,
            "flow": self.flow,
            "backend": self.backend,
            "time": self.time,
            "params": p.to_dict(),
        }


def _with_seed(params: FlowParams, seed: int) -> FlowParams:
    from dataclasses import replace

    return replace(params, seed=int(seed))


def small_copy(rgba: np.ndarray, size: int = THUMBNAIL_SIDE) -> np.ndarray:
    """A small uint8 copy (nearest sampling) to keep as a thumbnail."""
    h, w = rgba.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / size)))
    return np.ascontiguousarray(rgba[::step, ::step]).copy()


def record(doc: Document, rec: GenerationRecord, image: np.ndarray) -> dict[str, Any]:
    """Add one finished candidate to the document's generation history; returns the entry.

    The document counts as changed (unsaved, due for autosave); there is no undo step.
    """
    entry = rec.to_dict() | {"thumbnail": small_copy(image)}
    doc.add_metadata_entry(HISTORY_KEY, entry, MAX_ENTRIES)
    return entry


def entries(doc: Document | None) -> list[dict[str, Any]]:
    """The history entries of `doc`, oldest first (malformed ones skipped)."""
    if doc is None:
        return []
    raw = doc.metadata.get(HISTORY_KEY) or []
    return [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []


def params_from(entry: Mapping[str, Any]) -> FlowParams:
    """FlowParams from a stored entry or a layer's `generation` dict, tolerating other versions."""
    params = entry.get("params") if isinstance(entry, Mapping) else None
    return FlowParams.from_dict(params if isinstance(params, Mapping) else {})
