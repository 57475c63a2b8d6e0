"""Per-document generation history: each finished job's settings, seed and a thumbnail.

Kept in `doc.metadata["generation_history"]` (saved inside the .ora by the files
layer) so "use these settings again" works after reopening a project.
"""

from __future__ import annotations

import time
from dataclasses import asdict, fields
from typing import Any

import numpy as np

from canvasai.document.document import Document
from canvasai.generation.flows import FlowParams

HISTORY_KEY = "generation_history"
MAX_ENTRIES = 200
THUMBNAIL_SIDE = 96


def small_copy(rgba: np.ndarray, size: int = THUMBNAIL_SIDE) -> np.ndarray:
    """A small uint8 copy (nearest sampling) to keep as a thumbnail."""
    h, w = rgba.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / size)))
    return np.ascontiguousarray(rgba[::step, ::step]).copy()


def record(doc: Document, flow: str, params: FlowParams, seed: int, image: np.ndarray,
           backend: str) -> dict[str, Any]:
    """Append one finished job to the document's generation history and return the entry."""
    p = asdict(params)
    p["seed"] = int(seed)
    p.pop("extra", None)
    entry = {
        "time": time.time(), "flow": flow, "params": p, "seed": int(seed), "backend": backend,
        "thumbnail": small_copy(image),
    }
    history = doc.metadata.setdefault(HISTORY_KEY, [])
    history.append(entry)
    del history[:-MAX_ENTRIES]
    return entry


def params_from(entry: dict[str, Any]) -> FlowParams:
    """FlowParams from a stored entry, ignoring keys this version doesn't know."""
    known = {f.name for f in fields(FlowParams)}
    p = {k: v for k, v in dict(entry.get("params") or {}).items() if k in known}
    if p.get("margins") is not None:
        p["margins"] = tuple(int(v) for v in p["margins"])
    return FlowParams(**p)
