"""Generation service benchmark: what the service adds on top of a bare diffusers call.

    python benchmarks/generation.py [--repeats 5] [--size 256] [--steps 8]

Same tiny random-weight SD 1.x inpainting model (tests/support/tiny_models.py), same
size, steps and seed, runs alternated:

- bare:     StableDiffusionInpaintPipeline(...) called directly on this thread;
- service:  the same inpaint request submitted to `GenerationService` (worker QThread,
            queued signals, throttled live previews, paste-back), waited for on a Qt
            event loop; also once per round with previews off.

Reported (medians over `--repeats` rounds):
- overhead_ratio      service job time (previews on) / bare call time   (target <= 1.05);
                      `overhead_ratio_min` is the same from the fastest run of each
- preview_cost_ratio  extra time per step with previews on / step time  (target <= 0.05):
                      the worker's step-callback time from progress() to the next
                      check_cancelled() (preview made and handed over), previews on minus
                      off, over the median interval between steps with previews off.
                      `preview_cost_ratio_wall` is the same from whole step intervals
                      (on minus off): honest too, but noisy on a shared CPU
- cancel_steps        steps the worker finished after cancel() was called (target <= 1);
                      worst of a cancel at a step boundary and two mid-step ones
- first_preview_s     submit -> first preview frame delivered to the GUI thread
- job_s               submit -> finished delivered to the GUI thread

Prints a table, and as the last line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Offline and isolated: no hub calls, no models of the person's picked up by the router.
_EMPTY = tempfile.mkdtemp(prefix="canvasai-bench-empty-")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["CANVASAI_MODELS_DIR"] = _EMPTY
os.environ["HF_HUB_CACHE"] = _EMPTY

import numpy as np  # noqa: E402
from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer  # noqa: E402

from canvasai.backends.api import GenerationRequest, Task  # noqa: E402
from canvasai.generation.runner import default_backend_factory  # noqa: E402
from canvasai.generation.service import GenerationService  # noqa: E402

SEED = 1234
PROMPT = "a red apple on a table"


# ---------------------------------------------------------------------------- inputs & models


def make_inputs(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[:size, :size]
    img = np.stack([xs * 255 // size, ys * 255 // size, (xs + ys) % 256], -1).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    q = size // 4
    mask[q : size - q, q : size - q] = 255  # with 50% padding the context is the whole image
    return img, mask


def build_models() -> Any:
    from tests.support.tiny_models import build_tiny_models

    root = Path(tempfile.gettempdir()) / "canvasai-bench-tiny-models"
    return build_tiny_models(root)


def load_bare_pipeline(folder: Path) -> Any:
    import diffusers

    diffusers.utils.logging.disable_progress_bar()
    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(
        folder,
        local_files_only=True,
        use_safetensors=True,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_bare(pipe: Any, img: np.ndarray, mask: np.ndarray, steps: int) -> float:
    import torch
    from PIL import Image

    h, w = img.shape[:2]
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = pipe(
            prompt=PROMPT,
            image=Image.fromarray(img),
            mask_image=Image.fromarray(mask),
            height=h,
            width=w,
            num_inference_steps=steps,
            guidance_scale=7.0,
            strength=1.0,
            generator=torch.Generator("cpu").manual_seed(SEED),
            output_type="np",
        ).images[0]
    dt = time.perf_counter() - t0
    assert out.shape[:2] == (h, w)
    return dt


# ---------------------------------------------------------------------------- instrumented service


class _TimedContext:
    """Forwards to the service's JobContext, timestamping the worker's step callbacks.

    `log` gets the time of every progress() call. `tails` gets, per step, the time from
    progress() to the next check_cancelled(): a step callback reports progress, makes
    and hands over a preview when wanted, then checks for cancel, so this is the
    per-step preview work (about zero with previews off).
    """

    def __init__(self, inner: Any, log: list[float], tails: list[float]) -> None:
        self._inner = inner
        self._log = log
        self._tails = tails
        self._since: float | None = None
        self.job_id = inner.job_id

    def check_cancelled(self) -> None:
        if self._since is not None:
            self._tails.append(time.perf_counter() - self._since)
            self._since = None
        self._inner.check_cancelled()

    def progress(self, step: int, total: int) -> None:
        now = time.perf_counter()
        self._log.append(now)
        self._since = now
        self._inner.progress(step, total)

    def wants_preview(self) -> bool:
        return self._inner.wants_preview()

    def preview(self, step: int, rgba: np.ndarray) -> None:
        self._inner.preview(step, rgba)

    def note(self, message: str) -> None:
        self._inner.note(message)


class _TimedBackend:
    def __init__(
        self, inner: Any, logs: dict[int, list[float]], tails: dict[int, list[float]]
    ) -> None:
        self._inner = inner
        self._logs = logs
        self._tails = tails
        self.name = getattr(inner, "name", "backend")

    def run(self, request: GenerationRequest, ctx: Any) -> Any:
        log = self._logs.setdefault(ctx.job_id, [])
        tails = self._tails.setdefault(ctx.job_id, [])
        return self._inner.run(request, _TimedContext(ctx, log, tails))


def diffusers_factory() -> Any:
    """The app's path: the router picks the diffusers backend for the request."""
    return default_backend_factory(None), "router"


class Harness:
    def __init__(self, factory: Any) -> None:
        self.app = QCoreApplication.instance() or QCoreApplication([])
        self.step_logs: dict[int, list[float]] = {}
        self.step_tails: dict[int, list[float]] = {}
        lock = threading.Lock()
        wrapped: dict[int, _TimedBackend] = {}

        def timed_factory(request: GenerationRequest) -> Any:
            inner = factory(request)
            with lock:
                if id(inner) not in wrapped:
                    wrapped[id(inner)] = _TimedBackend(inner, self.step_logs, self.step_tails)
                return wrapped[id(inner)]

        self.svc = GenerationService(backend_factory=timed_factory)
        self.ended: dict[int, str] = {}
        self.first_preview: dict[int, float] = {}
        self.finish_time: dict[int, float] = {}
        self.previews: dict[int, int] = {}
        self.messages: dict[int, str] = {}
        self.cancel_at_step: dict[int, int] = {}
        self.cancel_time: dict[int, float] = {}
        self._loop: QEventLoop | None = None
        s = self.svc
        s.preview.connect(self._on_preview)
        s.progress.connect(self._on_progress)
        s.finished.connect(lambda j, r: self._end(j, "finished"))
        s.failed.connect(lambda j, m: (self.messages.__setitem__(j, m), self._end(j, "failed")))
        s.cancelled.connect(lambda j: self._end(j, "cancelled"))

    def _on_preview(self, job: int, step: int, frame: np.ndarray) -> None:
        self.first_preview.setdefault(job, time.perf_counter())
        self.previews[job] = self.previews.get(job, 0) + 1
        _ = int(frame[0, 0, 0])  # the GUI touches the frame

    def _on_progress(self, job: int, step: int, total: int) -> None:
        if job in self.cancel_at_step and step >= self.cancel_at_step[job]:
            self._cancel(job)

    def _cancel(self, job: int) -> None:
        if job not in self.cancel_time and job not in self.ended:
            self.cancel_time[job] = time.perf_counter()
            self.svc.cancel(job)

    def _end(self, job: int, how: str) -> None:
        self.finish_time[job] = time.perf_counter()
        self.ended[job] = how
        if self._loop is not None:
            self._loop.quit()

    def run(
        self,
        request: GenerationRequest,
        cancel_at: int | None = None,
        cancel_after: float | None = None,
    ) -> tuple[int, float]:
        """Submit and wait; optionally cancel at progress `cancel_at` or `cancel_after` s."""
        t0 = time.perf_counter()
        job = self.svc.submit(request)
        if cancel_at is not None:
            self.cancel_at_step[job] = cancel_at
        if cancel_after is not None:
            QTimer.singleShot(int(cancel_after * 1000), lambda: self._cancel(job))
        self._loop = QEventLoop()
        guard = QTimer()
        guard.setSingleShot(True)
        guard.timeout.connect(self._loop.quit)
        guard.start(600_000)
        while job not in self.ended and guard.isActive():
            self._loop.exec()
        self._loop = None
        if self.ended.get(job) == "failed":
            raise RuntimeError(f"job failed: {self.messages[job]}")
        return job, self.finish_time[job] - t0

    def close(self) -> None:
        self.svc.shutdown(10_000)


# ---------------------------------------------------------------------------- main


def intervals(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--cancel-steps", type=int, default=40, help="steps of the cancelled job")
    args = ap.parse_args(argv)

    import torch

    t = time.perf_counter()
    models = build_models()
    build_s = time.perf_counter() - t
    img, mask = make_inputs(args.size)
    bare_pipe = load_bare_pipeline(models.sd1_inpaint)
    factory, route = diffusers_factory()
    h = Harness(factory)

    def request(previews: bool, steps: int = args.steps) -> GenerationRequest:
        return GenerationRequest(
            Task.INPAINT,
            image=img,
            mask=mask,
            prompt=PROMPT,
            model=str(models.sd1_inpaint),
            steps=steps,
            seed=SEED,
            guidance=7.0,
            strength=1.0,
            native_resolution=False,  # run at 256 like the bare call (tiny model's native is 64)
            previews=previews,
        )

    try:
        # warm-up: model load, first-call allocations, both paths
        run_bare(bare_pipe, img, mask, args.steps)
        h.run(request(True))
        h.run(request(False))

        bare, on, off, first, n_previews = [], [], [], [], []
        gaps_on: list[float] = []
        gaps_off: list[float] = []
        tails_on: list[float] = []
        tails_off: list[float] = []

        def bare_round() -> None:
            bare.append(run_bare(bare_pipe, img, mask, args.steps))

        def on_round() -> None:
            nonlocal gaps_on, tails_on
            job, dt = h.run(request(True))
            on.append(dt)
            first.append(h.first_preview.get(job, float("nan")) - (h.finish_time[job] - dt))
            gaps_on += intervals(h.step_logs[job])
            tails_on += h.step_tails[job]
            n_previews.append(h.previews.get(job, 0))

        def off_round() -> None:
            nonlocal gaps_off, tails_off
            job, dt = h.run(request(False))
            off.append(dt)
            gaps_off += intervals(h.step_logs[job])
            tails_off += h.step_tails[job]

        for i in range(args.repeats):
            # alternate, and reverse the order every other round so drift cancels out
            order = (bare_round, on_round, off_round)
            for fn in order if i % 2 == 0 else order[::-1]:
                fn()

        # Cancel at a step boundary (as the GUI sees progress 3) and at arbitrary
        # moments inside a step (timers), counting steps the worker finished afterwards.
        med = statistics.median
        step_guess = med(gaps_off)
        cancel_counts = []
        for at_step, after_s in ((3, None), (None, 3.3 * step_guess), (None, 5.7 * step_guess)):
            job, _dt = h.run(
                request(True, steps=args.cancel_steps), cancel_at=at_step, cancel_after=after_s
            )
            assert h.ended[job] == "cancelled", h.ended[job]
            t_cancel = h.cancel_time[job]
            cancel_counts.append(sum(1 for ts in h.step_logs[job] if ts > t_cancel))
    finally:
        h.close()

    step_off = med(gaps_off)
    step_on = med(gaps_on)
    preview_work = max(0.0, med(tails_on) - med(tails_off))
    result = {
        "overhead_ratio": round(med(on) / med(bare), 4),
        # best-of ratio: less sensitive to other processes on a shared CPU
        "overhead_ratio_min": round(min(on) / min(bare), 4),
        "preview_cost_ratio": round(preview_work / step_off, 4),
        "preview_cost_ratio_wall": round(max(0.0, step_on - step_off) / step_off, 4),
        "cancel_steps": max(cancel_counts),
        "first_preview_s": round(med(first), 4),
        "job_s": round(med(on), 4),
        "job_previews_off_s": round(med(off), 4),
        "bare_s": round(med(bare), 4),
        "step_s": round(step_off, 5),
        "preview_work_ms": round(preview_work * 1000, 3),
        "previews_per_job": med(n_previews),
        "repeats": args.repeats,
        "size": args.size,
        "steps": args.steps,
        "route": route,
        "torch_threads": torch.get_num_threads(),
        "tiny_models_build_s": round(build_s, 2),
    }
    rows = [
        ("bare pipeline call", f"{result['bare_s']:.4f} s"),
        ("service job, previews on", f"{result['job_s']:.4f} s"),
        ("service job, previews off", f"{result['job_previews_off_s']:.4f} s"),
        ("overhead_ratio (target <= 1.05)", f"{result['overhead_ratio']:.3f}"),
        ("  same from best-of runs", f"{result['overhead_ratio_min']:.3f}"),
        ("step time (previews off)", f"{step_off * 1000:.2f} ms"),
        ("step time (previews on)", f"{step_on * 1000:.2f} ms"),
        ("preview work per step", f"{result['preview_work_ms']:.2f} ms"),
        ("preview_cost_ratio (target <= 0.05)", f"{result['preview_cost_ratio']:.3f}"),
        ("  same from step wall times (noisier)", f"{result['preview_cost_ratio_wall']:.3f}"),
        ("previews delivered per job", f"{result['previews_per_job']}"),
        ("first_preview_s", f"{result['first_preview_s']:.4f} s"),
        ("cancel_steps (target <= 1)", f"{result['cancel_steps']} (runs: {cancel_counts})"),
        ("backend route", route),
    ]
    width = max(len(r[0]) for r in rows)
    print(
        f"inpaint {args.size}x{args.size}, {args.steps} steps, seed {SEED}, median of "
        f"{args.repeats} alternated rounds"
    )
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
