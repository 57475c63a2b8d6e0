"""The GUI-thread stall probe the benchmarks share: a 10 ms QTimer on the GUI thread.

The gaps between its ticks are how long the GUI thread could not run (the issues'
`gui_gap_ms_max` < 50 ms target). Qt is imported when a probe is made, never torch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

GAP_TARGET_MS = 50.0


class GapProbe:
    """A 10 ms QTimer on the GUI thread; `gaps` are the times between its ticks (ms)."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1000)
        self._last = now

    def start(self) -> None:
        self.gaps = []
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> dict[str, Any]:
        self.timer.stop()
        g = np.array(self.gaps[1:] or [0.0])
        return {"gui_gap_ms_max": round(float(g.max()), 1),
                "gui_gap_ms_p95": round(float(np.percentile(g, 95)), 1),
                "gaps_over_50ms": int((g > GAP_TARGET_MS).sum()), "ticks": len(g)}
