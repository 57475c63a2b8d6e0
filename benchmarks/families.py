"""Family benchmark: what CanvasAI adds on top of a bare diffusers pipeline, per model family.

    python benchmarks/families.py [--families flux,sd3] [--repeats 15] [--size 128]
                                  [--steps 8] [--threads 1]

One tiny random-weight model per family kind (tests/support/tiny_families.py, built
once into a temp folder), the same inpaint job done two ways, alternated in one run:

- bare:     the family's inpaint pipeline (``tiny_families.load(folder, "inpaint")``)
            called directly on this thread, with the arguments CanvasAI passes for that
            model (the family's ``call_kwargs`` / ``extra_kwargs``: max_sequence_length,
            guidance_scale or true_cfg_scale and the negative prompt, Kontext's
            ``max_area``), same image, mask, size, strength (1.0), steps and seed, and
            diffusers' default output (a PIL image, so 8-bit conversion included);
- canvasai: a ``GenerationRequest(task=INPAINT, model=<folder>, ...)`` submitted to
            ``GenerationService`` (worker QThread, queued signals, throttled previews,
            paste-back) running ``DiffusersBackend(ModelRegistry([root]))``, timed from
            submit() to the ``finished`` signal on a Qt event loop; with previews on (as
            the app runs) and once per round with previews off.

The mask covers the whole image and the size is a multiple of 16, so CanvasAI's
context rectangle is the whole image and its work size equals the bare call's: both
run the very same denoising (the warm-up checks that the two pictures are equal: the
``diff`` column). Model loading is not measured: both sides are warmed up first, and
CanvasAI keeps the pipeline loaded between jobs. Qwen-Image-Edit's pipeline works at
~1 MP whatever it is given; for both sides its working area is capped at the job's
size (``tiny_families.qwen_edit_area``). torch runs on `--threads` threads (1 by
default: steady on a shared 2-core machine; the setting is global, so the service's
worker thread uses it too).

Reported per family kind (medians over `--repeats` rounds; each round runs bare,
previews on and previews off, in an order reversed every other round):

- ratio           CanvasAI job wall time (previews on) / bare call wall time, the median
                  of the rounds' ratios (target <= 1.05). Also: ``ratio_min`` (fastest /
                  fastest), ``ratio_cpu`` (process CPU time, both threads: blind to
                  other processes on a busy machine), ``ratio_off`` (previews off), and
                  ``extra_ms`` / ``extra_cpu_ms``: CanvasAI's extra time per job, which
                  is what carries over to real models, whose steps take far longer.
- preview_share   one preview's cost / step time (target <= 0.05), in the worker thread's
                  CPU time: the step callback's progress() -> check_cancelled() on steps
                  that made a preview (latents -> RGB, frame assembled, handed to the
                  GUI thread), median, minus the median of the same on steps of jobs with
                  previews off, over the median step interval with previews off.
                  ``preview_share_wall`` is the same in wall time (noisy on a shared
                  CPU). The service throttles previews to 30/s, so a job pays this on
                  some steps only: ``preview_share_job`` is a whole job's extra callback
                  CPU over its steps' CPU.
- previewer_share ``Previewer(latents)`` alone (built as ``PipelineManager.previewer``
                  builds it, on step latents captured from a bare run) / step CPU time

Prints a table, and as the last line `RESULT {json}` keyed by family kind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Offline and isolated: no hub calls, no models of the person's picked up.
_EMPTY = tempfile.mkdtemp(prefix="canvasai-bench-empty-")
os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["CANVASAI_MODELS_DIR"] = _EMPTY
os.environ["HF_HUB_CACHE"] = _EMPTY

import numpy as np  # noqa: E402
from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer  # noqa: E402

from canvasai.backends.api import GenerationRequest, Task  # noqa: E402
from canvasai.backends.diffusion import families  # noqa: E402
from canvasai.backends.diffusion.backend import DiffusersBackend  # noqa: E402
from canvasai.backends.models import ModelInfo, ModelRegistry  # noqa: E402
from canvasai.generation.service import GenerationService  # noqa: E402
from tests.support import tiny_families as tf  # noqa: E402

SEED = 1234
PROMPT = "a red apple on a table"
#: the family kinds with an inpaint flow (qwen-edit-plus only edits)
DEFAULT_KINDS = tuple(k for k in tf.KINDS if "inpaint" in tf.TASKS[k])
MODELS = Path(tempfile.gettempdir()) / "canvasai-bench-tiny-families"
Times = tuple[float, float]  # (wall seconds, CPU seconds)


# ---------------------------------------------------------------------------- inputs


def make_inputs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB gradient and a mask over all of it (context = whole image = work size)."""
    ys, xs = np.mgrid[:size, :size]
    img = np.stack([xs * 255 // size, ys * 255 // size, (xs + ys) % 256], -1).astype(np.uint8)
    return img, np.full((size, size), 255, np.uint8)


@contextlib.contextmanager
def sized(kind: str, size: int) -> Iterator[None]:
    """Qwen's edit pipelines work at ~1 MP whatever they get: cap them at the job's size."""
    if kind.startswith("qwen-edit"):
        with tf.qwen_edit_area(size * size):
            yield
    else:
        yield


# ---------------------------------------------------------------------------- bare side


@dataclass
class Bare:
    """The bare pipeline and the arguments CanvasAI would pass it for this job."""

    pipe: Any
    kwargs: dict[str, Any]

    def run(self) -> tuple[Times, np.ndarray]:
        """One call: ((wall s, process CPU s), the picture as H x W x 3 uint8).

        The pipeline's default output (a PIL image): the float -> 8-bit conversion
        CanvasAI does itself is inside the bare call too.
        """
        import torch

        kw = dict(self.kwargs, generator=torch.Generator("cpu").manual_seed(SEED))
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            out = self.pipe(**kw).images[0]
        dt = (time.perf_counter() - t0, time.process_time() - c0)
        return dt, np.asarray(out)


def bare_for(
    kind: str,
    folder: Path,
    info: ModelInfo,
    img: np.ndarray,
    mask: np.ndarray,
    steps: int,
    guidance: float,
    strength: float,
) -> Bare:
    from PIL import Image

    fam = families.get(info.family)
    pipe = tf.load(folder, "inpaint")
    name = type(pipe).__name__
    route = fam.route("inpaint", info.kind, info.variant).pipeline
    if name != route:
        raise RuntimeError(f"{kind}: the bare pipeline is {name}, CanvasAI runs {route}")
    h, w = img.shape[:2]
    kwargs = (
        # what CanvasAI passes for this model: same prompt, steps, guidance mapping
        fam.call_kwargs(PROMPT, "", steps, guidance, info.variant, info.kind)
        | {
            "image": Image.fromarray(img),
            "mask_image": Image.fromarray(mask),
            "height": h,
            "width": w,
            "strength": strength,
            "output_type": "pil",
        }
        | fam.extra_kwargs(name, w, h)
    )
    return Bare(pipe, kwargs)


# ---------------------------------------------------------------------------- service side


class _TimedContext:
    """Forwards to the service's JobContext, timestamping the worker's step callbacks.

    A step callback reports progress, makes and hands over a preview when wanted, then
    checks for cancel: progress() -> check_cancelled() is the per-step callback work.
    """

    def __init__(self, inner: Any, rec: JobRecord) -> None:
        self._inner = inner
        self._rec = rec
        self._since: tuple[float, float] | None = None
        self._previewed = False
        self.job_id = inner.job_id

    def check_cancelled(self) -> None:
        if self._since is not None:
            wall, cpu = time.perf_counter() - self._since[0], time.thread_time() - self._since[1]
            (self._rec.preview_tails if self._previewed else self._rec.plain_tails).append(
                (wall, cpu)
            )
            self._since = None
        self._inner.check_cancelled()

    def progress(self, step: int, total: int) -> None:
        now = (time.perf_counter(), time.thread_time())
        self._rec.steps.append(now)
        self._since = now
        self._previewed = False
        self._inner.progress(step, total)

    def wants_preview(self) -> bool:
        return bool(self._inner.wants_preview())

    def preview(self, step: int, rgba: np.ndarray) -> None:
        self._previewed = True
        self._inner.preview(step, rgba)

    def note(self, message: str) -> None:
        self._inner.note(message)


@dataclass
class JobRecord:
    """One service job's step callbacks, each as (wall, worker-thread CPU) times."""

    steps: list[Times] = field(default_factory=list)  # at each progress()
    preview_tails: list[Times] = field(default_factory=list)  # callback time, preview made
    plain_tails: list[Times] = field(default_factory=list)  # callback time, no preview

    def intervals(self, which: int) -> list[float]:
        """Step intervals: wall (0) or worker CPU (1)."""
        ts = [t[which] for t in self.steps]
        return [b - a for a, b in zip(ts, ts[1:], strict=False)]


class _TimedBackend:
    def __init__(self, inner: DiffusersBackend, records: dict[int, JobRecord]) -> None:
        self._inner = inner
        self._records = records
        self.name = inner.name

    def run(self, request: GenerationRequest, ctx: Any) -> Any:
        rec = self._records.setdefault(ctx.job_id, JobRecord())
        return self._inner.run(request, _TimedContext(ctx, rec))


class Harness:
    """A GenerationService on one DiffusersBackend, driven from a Qt event loop."""

    def __init__(self, backend: DiffusersBackend) -> None:
        self.app = QCoreApplication.instance() or QCoreApplication([])
        self.records: dict[int, JobRecord] = {}
        timed = _TimedBackend(backend, self.records)
        self.svc = GenerationService(backend_factory=lambda request: timed)
        self.ended: dict[int, str] = {}
        self.results: dict[int, Any] = {}
        self.messages: dict[int, str] = {}
        self.finish_time: dict[int, Times] = {}
        self.previews: dict[int, int] = {}
        self._loop: QEventLoop | None = None
        s = self.svc
        s.preview.connect(self._on_preview)
        s.finished.connect(lambda j, r: (self.results.__setitem__(j, r), self._end(j, "finished")))
        s.failed.connect(lambda j, m: (self.messages.__setitem__(j, m), self._end(j, "failed")))
        s.cancelled.connect(lambda j: self._end(j, "cancelled"))

    def _on_preview(self, job: int, step: int, frame: np.ndarray) -> None:
        self.previews[job] = self.previews.get(job, 0) + 1
        _ = int(frame[0, 0, 0])  # the GUI touches the frame

    def _end(self, job: int, how: str) -> None:
        self.finish_time[job] = (time.perf_counter(), time.process_time())
        self.ended[job] = how
        if self._loop is not None:
            self._loop.quit()

    def run(self, request: GenerationRequest) -> tuple[int, Times]:
        """Submit and wait for the end: (job id, submit -> finished (wall s, process CPU s)).

        Process CPU time counts both threads: the worker's and this (GUI) thread's.
        """
        t0, c0 = time.perf_counter(), time.process_time()
        job = self.svc.submit(request)
        self._loop = QEventLoop()
        guard = QTimer()
        guard.setSingleShot(True)
        guard.timeout.connect(self._loop.quit)
        guard.start(600_000)
        while job not in self.ended and guard.isActive():
            self._loop.exec()
        self._loop = None
        if self.ended.get(job) != "finished":
            raise RuntimeError(f"job {self.ended.get(job)}: {self.messages.get(job, 'timeout')}")
        t1, c1 = self.finish_time[job]
        return job, (t1 - t0, c1 - c0)

    def close(self) -> None:
        self.svc.shutdown(10_000)


# ---------------------------------------------------------------------------- one family


def time_previewer(
    backend: DiffusersBackend, info: ModelInfo, bare: Bare, work: tuple[int, int]
) -> float:
    """Median CPU seconds of `Previewer(latents)` on step latents of a bare run."""
    import torch

    manager = backend.manager
    loaded = manager.load(info)  # already loaded by the service's jobs: no reload
    pipe = manager.variant(loaded, loaded.route("inpaint").pipeline)
    previewer = manager.previewer(loaded, pipe, work)
    captured: list[Any] = []

    def grab(p: Any, i: int, t: Any, k: dict[str, Any]) -> dict[str, Any]:
        captured.append(k["latents"].detach().clone())
        return {}

    kw = dict(bare.kwargs, generator=torch.Generator("cpu").manual_seed(SEED))
    kw["callback_on_step_end"] = grab
    kw["output_type"] = "latent"
    with torch.inference_mode():
        bare.pipe(**kw)
    times = []
    with torch.inference_mode():
        for _ in range(5):
            for lat in captured:
                c0 = time.thread_time()
                previewer(lat)
                times.append(time.thread_time() - c0)
    return statistics.median(times)


def bench_kind(
    kind: str,
    root: Path,
    backend: DiffusersBackend,
    h: Harness,
    args: argparse.Namespace,
    say: Callable[[str], None],
) -> dict[str, Any]:
    med = statistics.median
    folder = tf.cached(kind, root)
    info = backend.registry.resolve(str(folder))
    fam = families.get(info.family)
    guidance = fam.defaults(info.variant, info.kind).guidance
    strength = 1.0  # all `steps` denoising steps run on both sides
    img, mask = make_inputs(args.size)
    bare = bare_for(kind, folder, info, img, mask, args.steps, guidance, strength)

    def request(previews: bool) -> GenerationRequest:
        return GenerationRequest(
            Task.INPAINT,
            image=img,
            mask=mask,
            prompt=PROMPT,
            model=str(folder),
            steps=args.steps,
            seed=SEED,
            guidance=guidance,
            strength=strength,
            native_resolution=False,  # run at --size, like the bare call
            previews=previews,
        )

    with sized(kind, args.size):
        # warm-up: model load and first-call allocations on both sides
        _, bare_img = bare.run()
        bare.run()
        job, _ = h.run(request(True))
        h.run(request(False))
        res = h.results[job]
        work = tuple(res.metadata.get("work_size") or (args.size, args.size))
        if work != (args.size, args.size):
            raise RuntimeError(f"{kind}: CanvasAI worked at {work}, the bare call at {args.size}")
        same = int(np.abs(res.images[0][..., :3].astype(int) - bare_img.astype(int)).max())

        bare_t: list[Times] = []
        on_t: list[Times] = []
        off_t: list[Times] = []
        on_recs: list[JobRecord] = []
        off_recs: list[JobRecord] = []
        n_previews: list[int] = []

        def bare_round() -> None:
            bare_t.append(bare.run()[0])

        def on_round() -> None:
            job, dt = h.run(request(True))
            on_t.append(dt)
            on_recs.append(h.records[job])
            n_previews.append(h.previews.get(job, 0))

        def off_round() -> None:
            job, dt = h.run(request(False))
            off_t.append(dt)
            off_recs.append(h.records[job])

        for i in range(args.repeats):
            # alternate, and reverse the order every other round so drift cancels out
            order = (bare_round, on_round, off_round)
            for fn in order if i % 2 == 0 else order[::-1]:
                fn()
        previewer_s = time_previewer(backend, info, bare, (args.size, args.size))

    def ratio(a: list[Times], b: list[Times], which: int = 0) -> float:
        """Median of the per-round ratios (wall: which=0, CPU: which=1)."""
        return round(med([x[which] / y[which] for x, y in zip(a, b, strict=True)]), 4)

    def preview_cost(which: int) -> tuple[float, float, float]:
        """(one preview's cost s, / step time, a job's preview cost / its step time)."""
        step = med([d for r in off_recs for d in r.intervals(which)])
        plain = med([t[which] for r in off_recs for t in r.plain_tails])
        made = [t[which] for r in on_recs for t in r.preview_tails]
        one = max(0.0, med(made) - plain) if made else 0.0
        extra = med(
            [
                sum(t[which] for t in r.preview_tails + r.plain_tails) - plain * len(r.steps)
                for r in on_recs
            ]
        )
        return one, one / step, max(0.0, extra) / (step * args.steps)

    step_wall = med([d for r in off_recs for d in r.intervals(0)])
    step_cpu = med([d for r in off_recs for d in r.intervals(1)])
    one_wall, share_wall, _ = preview_cost(0)
    one_cpu, share_cpu, share_job = preview_cost(1)
    row = {
        "family": info.family,
        "variant": info.variant or info.kind,
        "pipeline": type(bare.pipe).__name__,
        "canvasai_ms": round(med([t[0] for t in on_t]) * 1000, 2),
        "canvasai_off_ms": round(med([t[0] for t in off_t]) * 1000, 2),
        "bare_ms": round(med([t[0] for t in bare_t]) * 1000, 2),
        "ratio": ratio(on_t, bare_t),
        "ratio_off": ratio(off_t, bare_t),
        "ratio_min": round(min(t[0] for t in on_t) / min(t[0] for t in bare_t), 4),
        "ratio_cpu": ratio(on_t, bare_t, 1),
        # CanvasAI's extra time per job (median of the rounds' differences), wall and CPU
        "extra_ms": round(med([a[0] - b[0] for a, b in zip(on_t, bare_t, strict=True)]) * 1e3, 2),
        "extra_cpu_ms": round(
            med([a[1] - b[1] for a, b in zip(on_t, bare_t, strict=True)]) * 1e3, 2
        ),
        "ratio_off_cpu": ratio(off_t, bare_t, 1),
        "step_ms": round(step_wall * 1000, 3),
        "step_cpu_ms": round(step_cpu * 1000, 3),
        "preview_cpu_ms": round(one_cpu * 1000, 3),
        "preview_share": round(share_cpu, 4),
        "preview_wall_ms": round(one_wall * 1000, 3),
        "preview_share_wall": round(share_wall, 4),
        "preview_share_job": round(share_job, 4),
        "previewer_ms": round(previewer_s * 1000, 3),
        "previewer_share": round(previewer_s / step_cpu, 4),
        "previews_per_job": med(n_previews),
        "max_pixel_diff": same,
    }
    say(
        f"  {kind}: canvasai {row['canvasai_ms']:.1f} ms, bare {row['bare_ms']:.1f} ms, "
        f"ratio {row['ratio']:.3f}, preview share {row['preview_share']:.3f}"
    )
    return row


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument(
        "--families",
        default=",".join(DEFAULT_KINDS),
        help=f"comma-separated kinds (default: {','.join(DEFAULT_KINDS)})",
    )
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--size", type=int, default=128, help="image side, a multiple of 16")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--models", type=Path, default=MODELS, help="where the tiny models are built")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for both sides (0: torch's default). 1 by default: the tiny "
        "models' ops are too small to gain from a second thread, and on a shared 2-core "
        "machine a thread team waiting at a barrier for a preempted thread costs 10-100 ms",
    )
    args = ap.parse_args(argv)
    kinds = [k.strip() for k in args.families.split(",") if k.strip()]
    for k in kinds:
        if k not in DEFAULT_KINDS:
            ap.error(f"unknown or inpaint-less kind {k!r}; choose from {', '.join(DEFAULT_KINDS)}")
    if args.size % 16 or args.size < 32:
        ap.error("--size must be a multiple of 16, at least 32 (the DiTs' size multiple)")

    import diffusers
    import torch
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if args.threads > 0:
        torch.set_num_threads(args.threads)  # global: the service's worker thread uses it too

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t = time.perf_counter()
    for k in kinds:
        tf.cached(k, args.models)
    build_s = time.perf_counter() - t
    backend = DiffusersBackend(ModelRegistry([args.models], include_hf_cache=False))
    h = Harness(backend)
    rows: dict[str, dict[str, Any]] = {}
    t = time.perf_counter()
    try:
        for k in kinds:
            rows[k] = bench_kind(k, args.models, backend, h, args, say)
    finally:
        h.close()
    total_s = time.perf_counter() - t

    cols = [
        ("family", "family", "{}"),
        ("kind", None, "{}"),
        ("pipeline", "pipeline", "{}"),
        ("canvasai ms", "canvasai_ms", "{:.1f}"),
        ("bare ms", "bare_ms", "{:.1f}"),
        ("ratio", "ratio", "{:.3f}"),
        ("min", "ratio_min", "{:.3f}"),
        ("cpu", "ratio_cpu", "{:.3f}"),
        ("off", "ratio_off", "{:.3f}"),
        ("+ms", "extra_ms", "{:.1f}"),
        ("+cpu ms", "extra_cpu_ms", "{:.1f}"),
        ("step ms", "step_cpu_ms", "{:.2f}"),
        ("preview ms", "preview_cpu_ms", "{:.3f}"),
        ("preview share", "preview_share", "{:.3f}"),
        ("wall", "preview_share_wall", "{:.3f}"),
        ("job", "preview_share_job", "{:.3f}"),
        ("previewer", "previewer_share", "{:.3f}"),
        ("pv/job", "previews_per_job", "{:g}"),
        ("diff", "max_pixel_diff", "{}"),
    ]
    table = [[c[0] for c in cols]]
    for k, r in rows.items():
        table.append([k if key is None else fmt.format(r[key]) for _, key, fmt in cols])
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    print(
        f"inpaint {args.size}x{args.size} (whole-image mask), {args.steps} steps, seed {SEED}, "
        f"median of {args.repeats} alternated rounds; torch {torch.__version__} on "
        f"{torch.get_num_threads()} thread(s), diffusers {diffusers.__version__}"
    )
    for i, line in enumerate(table):
        cells = [c.ljust(widths[j]) if j < 3 else c.rjust(widths[j]) for j, c in enumerate(line)]
        print("  " + "  ".join(cells))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    print(
        "  ratio: CanvasAI service job (previews on) / bare pipeline call, wall time, median of\n"
        "    the rounds' ratios (target <= 1.05); min: fastest / fastest; cpu: the same in\n"
        "    process CPU time (both threads; blind to other processes); off: previews off;\n"
        "    +ms / +cpu ms: CanvasAI's extra wall / CPU time per job (previews on)\n"
        "  step ms: worker CPU per step; preview ms / preview share: worker CPU of one preview\n"
        "    / step CPU (target <= 0.05); wall: the same in wall time; job: a whole job's\n"
        "    preview CPU / its step CPU (previews throttled to 30/s); previewer: Previewer()\n"
        "    alone / step CPU; pv/job: previews delivered per job\n"
        "  diff: max |CanvasAI - bare| of the warm-up pictures (0: the same work was done)\n"
        f"  models built in {build_s:.1f} s, benchmark {total_s:.1f} s"
    )
    keys = (
        "ratio",
        "preview_share",
        "ratio_min",
        "ratio_cpu",
        "ratio_off",
        "extra_ms",
        "extra_cpu_ms",
        "preview_share_wall",
        "preview_share_job",
        "preview_cpu_ms",
        "previewer_share",
        "canvasai_ms",
        "bare_ms",
        "step_cpu_ms",
    )
    result: dict[str, Any] = {k: {key: r[key] for key in keys} for k, r in rows.items()}
    result["_meta"] = {
        "size": args.size,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
    }
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
