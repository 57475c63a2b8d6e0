"""GenerationService: queue order, signals, cancel, failures, seeds, GUI responsiveness."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import QElapsedTimer, QTimer

from canvasai.backends import masking
from canvasai.backends.api import BlendSettings, GenerationRequest, Task
from canvasai.core.errors import GenerationError
from canvasai.generation.service import GenerationService

WAIT_MS = 10_000


def req(steps: int = 4, **kw) -> GenerationRequest:
    kw.setdefault("model", "fake")
    return GenerationRequest(Task.TXT2IMG, steps=steps, **kw)


def wait_ended(qtbot, recorder, *job_ids: int) -> None:
    qtbot.waitUntil(lambda: all(recorder.ended(j) for j in job_ids), timeout=WAIT_MS)


def test_jobs_run_in_fifo_order_with_increasing_ids(qtbot, service, recorder, fake_backend):
    ids = [service.submit(req(steps=3)) for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    wait_ended(qtbot, recorder, *ids)

    assert fake_backend.jobs_seen == ids
    lifecycle = [(n, a[0]) for n, a, _ in recorder.events if n in ("started", "finished")]
    assert lifecycle == [(e, j) for j in ids for e in ("started", "finished")]
    for j in ids:
        names = recorder.names(j)
        assert names[0] == "queued" and names[1] == "started" and names[-1] == "finished"
    # every signal reaches the GUI (test) thread, though the backend runs on another
    assert {t for _, _, t in recorder.events} == {threading.get_ident()}
    assert threading.get_ident() not in fake_backend.threads


def test_progress_and_previews_arrive_in_step_order(qtbot, service, recorder):
    job = service.submit(req(steps=8))
    wait_ended(qtbot, recorder, job)

    events = recorder.of(job)
    steps = [a[1] for n, a in events if n == "progress"]
    assert steps == list(range(1, 9))
    assert all(a[2] == 8 for n, a in events if n == "progress")
    last_progress = 0
    previews = []
    for name, args in events:
        if name == "progress":
            last_progress = args[1]
        elif name == "preview":
            _, step, frame = args
            assert step <= last_progress  # never a frame from a step not yet reported
            assert frame.shape == (32, 32, 4) and frame.dtype == np.uint8
            assert int(frame[0, 0, 0]) == step  # the frame of that step, copied
            previews.append(step)
    assert previews and previews == sorted(previews)
    assert events[-1][0] == "finished"


def test_cancel_running_job_stops_within_one_step(qtbot, service, recorder, fake_backend):
    fake_backend.step_s = 0.02
    job = service.submit(req(steps=200))
    qtbot.waitUntil(lambda: fake_backend.steps_run[job] >= 3, timeout=WAIT_MS)
    with fake_backend.lock:
        at_cancel = fake_backend.steps_run[job]
        assert service.cancel(job)
    wait_ended(qtbot, recorder, job)

    assert fake_backend.steps_run[job] - at_cancel <= 1
    names = recorder.names(job)
    assert names[-1] == "cancelled" and "finished" not in names
    assert service.cancel(job) is False  # already over


def test_result_is_discarded_if_cancel_arrives_before_the_backend_returns(
    qtbot, service, recorder, fake_backend
):
    fake_backend.ignore_cancel = True  # a backend that never checks
    fake_backend.step_s = 0.02
    job = service.submit(req(steps=10))
    qtbot.waitUntil(lambda: fake_backend.steps_run[job] >= 1, timeout=WAIT_MS)
    service.cancel(job)
    wait_ended(qtbot, recorder, job)
    assert recorder.names(job)[-1] == "cancelled" and "finished" not in recorder.names(job)


def test_cancelled_queued_job_never_starts(qtbot, service, recorder, fake_backend):
    fake_backend.step_s = 0.01
    first = service.submit(req(steps=10))
    second = service.submit(req(steps=10))
    third = service.submit(req(steps=2))
    assert service.cancel(second)
    wait_ended(qtbot, recorder, first, second, third)

    assert recorder.names(second) == ["queued", "cancelled"]
    assert second not in fake_backend.jobs_seen
    assert fake_backend.jobs_seen == [first, third]
    assert recorder.names(third)[-1] == "finished"


def test_cancel_all_cancels_running_and_queued_and_service_keeps_working(
    qtbot, service, recorder, fake_backend
):
    fake_backend.step_s = 0.02
    ids = [service.submit(req(steps=100)) for _ in range(3)]
    qtbot.waitUntil(lambda: fake_backend.steps_run[ids[0]] >= 1, timeout=WAIT_MS)
    service.cancel_all()
    wait_ended(qtbot, recorder, *ids)
    for j in ids:
        assert recorder.names(j)[-1] == "cancelled"
    assert fake_backend.jobs_seen == [ids[0]]
    assert service.pending_jobs() == []

    fake_backend.step_s = 0.001
    again = service.submit(req(steps=2))
    wait_ended(qtbot, recorder, again)
    assert recorder.names(again)[-1] == "finished"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (GenerationError("the model refused this mask"), "the model refused this mask"),
        (RuntimeError("shape mismatch"), "RuntimeError: shape mismatch"),
        (MemoryError(), "Out of memory"),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "Out of GPU memory"),
    ],
)
def test_backend_failure_becomes_failed_signal(
    qtbot, service, recorder, fake_backend, exc, expected
):
    fake_backend.fail_with = exc
    fake_backend.fail_at = 2
    job = service.submit(req(steps=4))
    wait_ended(qtbot, recorder, job)
    (failed,) = [a for n, a in recorder.of(job) if n == "failed"]
    assert expected in failed[1]
    assert "Traceback" not in failed[1]
    assert "finished" not in recorder.names(job)

    fake_backend.fail_with = None  # the worker survives a failure
    nxt = service.submit(req(steps=1))
    wait_ended(qtbot, recorder, nxt)
    assert recorder.names(nxt)[-1] == "finished"


def test_factory_failure_becomes_failed(qtbot, make_service):
    def factory(request):
        raise ImportError("No module named 'diffusers'", name="diffusers")

    svc, rec = make_service(backend_factory=factory)
    job = svc.submit(req())
    wait_ended(qtbot, rec, job)
    (failed,) = [a for n, a in rec.of(job) if n == "failed"]
    assert "diffusers" in failed[1] and "not installed" in failed[1]


def test_seeds_random_when_unset_reported_and_deterministic(qtbot, service, recorder):
    a = service.submit(req(steps=1))
    b = service.submit(req(steps=1))
    wait_ended(qtbot, recorder, a, b)
    seed_a = recorder.result(a).seeds[0]
    assert seed_a != recorder.result(b).seeds[0]  # two random 32-bit seeds

    again = service.submit(req(steps=1, seed=seed_a))
    wait_ended(qtbot, recorder, again)
    assert recorder.result(again).seeds == (seed_a,)
    np.testing.assert_array_equal(recorder.result(again).images[0], recorder.result(a).images[0])


def test_batch_seeds_are_consecutive_and_each_rerunnable(qtbot, service, recorder):
    batch = service.submit(req(steps=1, seed=41, batch_size=3))
    single = service.submit(req(steps=1, seed=42))
    wait_ended(qtbot, recorder, batch, single)
    res = recorder.result(batch)
    assert res.seeds == (41, 42, 43) and len(res.images) == 3
    np.testing.assert_array_equal(res.images[1], recorder.result(single).images[0])


def test_gui_thread_stays_responsive_while_a_job_runs(qtbot, service, recorder, fake_backend):
    fake_backend.step_s = 0.01
    fake_backend.frame_size = 512  # 1 MB frames, every step
    gaps: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(16)
    timer.timeout.connect(tick)
    timer.start()
    try:
        job = service.submit(req(steps=60))
        wait_ended(qtbot, recorder, job)
    finally:
        timer.stop()
    assert recorder.names(job)[-1] == "finished"
    assert len(gaps) >= 10
    # a GUI thread blocked by the job would miss ticks for the job's whole length (over
    # 600 ms); the bound leaves room for a loaded CI machine (the 50 ms target is measured
    # in benchmarks/editing.py, not asserted here)
    assert max(gaps[1:]) < 200, gaps


def test_previews_never_back_up_while_the_gui_is_busy(qtbot, service, recorder, fake_backend):
    fake_backend.step_s = 0.002
    job = service.submit(req(steps=100))
    # Block the GUI thread (no event processing) while the whole job runs.
    deadline = time.monotonic() + WAIT_MS / 1000
    while fake_backend.steps_run[job] < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_backend.steps_run[job] == 100
    wait_ended(qtbot, recorder, job)
    # Only the first frame could be handed over; after that the GUI never took it.
    assert fake_backend.previews_offered == 1
    assert recorder.names(job).count("preview") == 1


def test_preview_interval_throttles(qtbot, make_service, fake_backend):
    fake_backend.step_s = 0.01
    svc, rec = make_service(backend_factory=lambda r: fake_backend, preview_interval=0.1)
    job = svc.submit(req(steps=30))  # ~0.3 s
    wait_ended(qtbot, rec, job)
    assert 1 <= rec.names(job).count("preview") <= 5
    assert fake_backend.previews_offered == rec.names(job).count("preview")


def test_previews_off_in_request_means_no_preview_work(qtbot, service, recorder, fake_backend):
    job = service.submit(req(steps=5, previews=False))
    wait_ended(qtbot, recorder, job)
    assert fake_backend.previews_offered == 0
    assert "preview" not in recorder.names(job)


def test_shutdown_stops_thread_and_refuses_new_jobs(qapp, fake_backend):
    svc = GenerationService(backend_factory=lambda r: fake_backend)
    svc.submit(req(steps=2))
    assert svc.shutdown(5000)
    with pytest.raises(RuntimeError):
        svc.submit(req())
    assert svc.shutdown(100)  # idempotent


def test_default_factory_runs_classic_backend(qtbot, make_service):
    svc, rec = make_service()
    img = np.full((40, 40, 3), 200, np.uint8)
    img[18:22, 18:22] = 0
    mask = np.zeros((40, 40), np.uint8)
    mask[16:24, 16:24] = 255
    job = svc.submit(GenerationRequest(Task.INPAINT, image=img, mask=mask, seed=7))
    wait_ended(qtbot, rec, job)
    res = rec.result(job)
    assert res.metadata["backend"] == "classic" and res.seeds == (7,)
    out = res.images[0]
    assert out.shape == img.shape
    np.testing.assert_array_equal(out[mask == 0], img[mask == 0])
    assert out[20, 20].min() > 100  # the dark square was filled from its surroundings


def test_importing_and_constructing_the_service_does_not_import_torch():
    """Also: the CLI module and a classic job stay torch-free (the window appears first)."""
    code = textwrap.dedent(
        """
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QCoreApplication
        app = QCoreApplication([])
        import canvasai.generation
        import canvasai.backends.masking, canvasai.generation.runner
        from canvasai.generation.service import GenerationService
        import canvasai.cli
        svc = GenerationService()
        heavy = [m for m in ("torch", "diffusers", "transformers") if m in sys.modules]
        assert svc.shutdown(5000)
        print("HEAVY", heavy)
        # the classic path (router included) never needs torch either
        import numpy as np
        from canvasai.backends.api import GenerationRequest, Task
        from canvasai.generation.runner import run_sync
        img = np.zeros((16, 16, 3), np.uint8)
        run_sync(GenerationRequest(Task.INPAINT, image=img, mask=img[..., 0] + 255))
        print("CLASSIC", [m for m in ("torch", "diffusers") if m in sys.modules])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    assert "CLASSIC []" in out.stdout, out.stdout + out.stderr


def test_tiny_diffusers_inpaint_end_to_end_through_the_service(
    qtbot, make_service, tmp_path_factory, request
):
    """The real path: service -> router -> diffusers inpaint on a tiny random model."""
    from tests.support import tiny_models
    try:  # the session-wide build from tests.support.fixtures, when that plugin is enabled
        models = request.getfixturevalue("tiny_models")
    except pytest.FixtureLookupError:
        models = tiny_models.build_tiny_models(tmp_path_factory.mktemp("tiny"))
    # no models folder, no HF cache: the model is given by path
    svc, rec = make_service(settings={"models_dirs": [], "include_hf_cache": False})
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[24:40, 24:40] = 255
    job = svc.submit(
        GenerationRequest(
            Task.INPAINT,
            image=img,
            mask=mask,
            prompt="a cat",
            model=str(models.sd1_inpaint),
            steps=3,
            seed=11,
            blend=BlendSettings(grow_px=0, feather_px=4),
        )
    )
    qtbot.waitUntil(lambda: rec.ended(job), timeout=120_000)

    names = rec.names(job)
    failed = [a[1] for n, a in rec.of(job) if n == "failed"]
    assert names[-1] == "finished", failed
    res = rec.result(job)
    assert res.seeds == (11,) and res.metadata["backend"] == "diffusers"
    out = res.images[0]
    assert out.shape[:2] == (64, 64)
    far = masking.feather_mask(mask, 0, 4) == 0
    np.testing.assert_array_equal(out[..., :3][far], img[far])
    assert not np.array_equal(out[32, 32, :3], img[32, 32])
    steps = [a[1] for n, a in rec.of(job) if n == "progress"]
    assert steps and steps == sorted(steps)
    assert "preview" in names


def test_queued_jobs_can_be_moved_and_run_in_the_new_order(qtbot, service, recorder,
                                                           fake_backend):
    hold = threading.Event()
    fake_backend.step_s = 0.0
    orig_run = fake_backend.run

    def run(request, ctx):
        if ctx.job_id == first:
            while not hold.is_set():  # the first job runs until the queue is rearranged
                ctx.check_cancelled()
                time.sleep(0.005)
        return orig_run(request, ctx)

    fake_backend.run = run
    first = service.submit(req(steps=1))
    qtbot.waitUntil(lambda: recorder.names(first)[-1:] == ["started"], timeout=WAIT_MS)
    a, b, c = (service.submit(req(steps=1)) for _ in range(3))
    assert not service.move(first, 1)  # the running job stays where it is
    assert service.move(c, -1) and service.move(c, -1)
    assert not service.move(c, -1)  # already first in the queue
    assert service.move(a, +1)
    assert service.pending_jobs() == [first, c, b, a]
    assert not service.move(999, 1)
    hold.set()
    wait_ended(qtbot, recorder, first, a, b, c)
    assert fake_backend.jobs_seen == [first, c, b, a]


# -- cancel while a model loads (issue 11) ------------------------------------------------


@pytest.fixture
def gated_load(monkeypatch):
    """Main-model loads block on `gate` (a slow load, simulated); `entered` is set when
    one starts, `loads` counts the loads that got past the gate."""
    from canvasai.backends.diffusion.pipelines import PipelineManager

    state = type("Gate", (), {})()
    state.gate, state.entered, state.loads, state.threads = (
        threading.Event(), threading.Event(), [], set())
    real = PipelineManager._load_pipe

    def slow(self, info, *args, **kwargs):
        state.threads.add(threading.get_ident())
        state.entered.set()
        assert state.gate.wait(60)
        state.loads.append(info.name)
        return real(self, info, *args, **kwargs)

    monkeypatch.setattr(PipelineManager, "_load_pipe", slow)
    yield state
    state.gate.set()  # never leave a loader thread blocked


@pytest.fixture
def tiny_service(make_service, tiny_models):
    """A service with its own diffusers backend (nothing loaded yet) over the tiny models."""
    from canvasai.backends.diffusion.backend import DiffusersBackend
    from canvasai.backends.models import ModelRegistry

    backend = DiffusersBackend(ModelRegistry([tiny_models.root], include_hf_cache=False))
    return make_service(backend_factory=lambda request: backend)


def _tiny_inpaint(model, steps=3, seed=1):
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[24:40, 24:40] = 255
    return GenerationRequest(Task.INPAINT, image=img, mask=mask, prompt="a cat",
                             model=str(model), steps=steps, seed=seed)


def test_cancel_while_the_model_loads_reports_at_once_and_the_next_job_runs(
    qtbot, tiny_service, tiny_models, gated_load
):
    svc, rec = tiny_service
    first = svc.submit(_tiny_inpaint(tiny_models.sd1_inpaint))
    assert gated_load.entered.wait(20)  # the load is under way (and blocked)
    assert svc.cancel(first)
    qtbot.waitUntil(lambda: rec.ended(first), timeout=WAIT_MS)
    assert rec.names(first)[-1] == "cancelled"
    assert not gated_load.gate.is_set() and gated_load.loads == []  # did not wait for it
    assert svc.pending_jobs() == [] and not svc.is_busy()
    assert threading.get_ident() not in gated_load.threads

    second = svc.submit(_tiny_inpaint(tiny_models.sd1_inpaint, seed=2))
    qtbot.waitUntil(lambda: rec.names(second)[-1:] == ["started"], timeout=WAIT_MS)
    gated_load.gate.set()  # the load finishes in the background ...
    qtbot.waitUntil(lambda: rec.ended(second), timeout=120_000)
    names = rec.names(second)
    assert names[-1] == "finished", rec.of(second)
    assert gated_load.loads == [tiny_models.sd1_inpaint.name]  # ... and the job used it
    assert [n for n in rec.names(first) if n in ("progress", "finished", "failed")] == []


def test_a_load_left_by_a_cancelled_job_is_abandoned_for_another_model(
    qtbot, tiny_service, tiny_models, gated_load
):
    from canvasai.backends.diffusion import pipelines

    checkpoints = []
    real = pipelines._PendingLoad.checkpoint

    def spy(self):
        checkpoints.append((self.info.name, self.abandon.is_set()))
        return real(self)

    pipelines._PendingLoad.checkpoint = spy
    svc, rec = tiny_service
    try:
        first = svc.submit(_tiny_inpaint(tiny_models.sd1_inpaint))
        assert gated_load.entered.wait(20)
        svc.cancel(first)
        second = svc.submit(GenerationRequest(Task.TXT2IMG, prompt="a cat", width=64,
                                              height=64, model=str(tiny_models.sd1),
                                              steps=2, seed=3))
        qtbot.waitUntil(lambda: rec.names(second)[-1:] == ["started"], timeout=WAIT_MS)
        gated_load.gate.set()
        qtbot.waitUntil(lambda: rec.ended(second), timeout=120_000)
    finally:
        pipelines._PendingLoad.checkpoint = real
    assert rec.names(second)[-1] == "finished", rec.of(second)
    # the first model's load stopped at its next checkpoint, the second one was loaded
    assert (tiny_models.sd1_inpaint.name, True) in checkpoints
    assert gated_load.loads[-1] == tiny_models.sd1.name


def test_cancel_mid_denoise_stops_within_one_step_and_counts_the_steps_asked(
    qtbot, tiny_service, tiny_models
):
    from canvasai.backends.diffusion import pipelines

    svc, rec = tiny_service
    done = svc.submit(_tiny_inpaint(tiny_models.sd1_inpaint, steps=5))  # PNDM: 6 callbacks
    qtbot.waitUntil(lambda: rec.ended(done), timeout=120_000)
    totals = {a[2] for n, a in rec.of(done) if n == "progress"}
    assert rec.names(done)[-1] == "finished"
    steps = [a[1] for n, a in rec.of(done) if n == "progress"]
    assert totals == {5} and steps[-1] == 5  # the steps asked for, never 6

    calls = []
    real = pipelines.StepReporter.on_step

    def counting(self, i, latents, total_steps=None):
        calls.append(i)
        if len(calls) == 3:
            svc.cancel(job)  # Esc lands during step 3
        return real(self, i, latents, total_steps)

    pipelines.StepReporter.on_step = counting
    try:
        job = svc.submit(_tiny_inpaint(tiny_models.sd1_inpaint, steps=40))
        qtbot.waitUntil(lambda: rec.ended(job), timeout=120_000)
        qtbot.waitUntil(lambda: not svc._running, timeout=WAIT_MS)
    finally:
        pipelines.StepReporter.on_step = real
    assert rec.names(job)[-1] == "cancelled"
    assert len(calls) == 3  # no denoising step ran after the one Esc landed in


def test_the_service_hands_the_gil_over_quickly(qapp):
    """A waiting GUI thread gets the GIL back within 1 ms (CPython's 5 ms stalled repaints
    while a job imports torch); the service only ever lowers the interval."""
    import sys

    from canvasai.generation.service import GIL_SWITCH_INTERVAL, GenerationService

    old = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        service = GenerationService(lambda name: None)
        assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL
        service.shutdown()
        sys.setswitchinterval(0.0005)
        service = GenerationService(lambda name: None)
        assert sys.getswitchinterval() == 0.0005
        service.shutdown()
    finally:
        sys.setswitchinterval(old)
