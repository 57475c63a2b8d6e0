"""Editing-flow benchmark: how the window behaves around generation, from a cold start.

    python benchmarks/editing.py [MODEL] [--steps N] [--size PX] [--runs N]
    python benchmarks/editing.py --build-full-size DIR   # a random full-size SD 1.5 inpaint

MODEL: a diffusers folder or single file (a full-size architecture, e.g. SD 1.5
inpainting); without one, a tiny random-weight inpainting model is built in a
subprocess. This process never imports torch before the window exists (checked): the
first job is the real cold one (torch, diffusers and the model load), with no warm-up
and nothing discarded. Measured, with a 10 ms QTimer on the GUI thread recording the
gaps between its ticks (`gui_gap_ms_max`, target < 50 ms) during each phase:

- cold: the first Generate after the window shows; then `--runs` warm jobs;
- cancel: Esc halfway through a denoising step -> "Cancelled" on the status line (ms),
  the step callbacks after Esc (the step it landed in counts as 1; target <= 1 step +
  100 ms) and when the worker was free again;
- cancel_load: Esc while the model loads (it was unloaded first) -> "Cancelled" (ms), and
  how soon the next Generate's job gets to its first step;
- upscale_accept: accepting a 2x upscale ("resample every layer") of a 2048² document of
  10 layers, until it is applied (s).

Prints a table and, last, `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CANVASAI_NO_PROMPTS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from gui_gaps import GapProbe  # noqa: E402  (beside this script)

_BUILD_TINY = """
import json, sys
from tests.support.tiny_models import build_tiny_models
m = build_tiny_models(sys.argv[1])
print("MODEL " + str(m.sd1_inpaint))
"""

_BUILD_FULL = """
import json, shutil, sys
from pathlib import Path
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, StableDiffusionInpaintPipeline
from diffusers import PNDMScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
cfg = Path(sys.argv[1]); out = Path(sys.argv[2])
torch.manual_seed(0)
unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet"))
vae = AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae"))
te = CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))
tok = CLIPTokenizer.from_pretrained(cfg.parent / "tokenizer", model_max_length=77)
sched = PNDMScheduler.from_config(PNDMScheduler.load_config(cfg / "scheduler"))
pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
    scheduler=sched, safety_checker=None, feature_extractor=None,
    requires_safety_checker=False)
pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
# the tokenizer as the published SD 1.5 folders have it (vocab.json + merges.txt), not
# the tokenizer.json that transformers' save_pretrained writes
shutil.rmtree(out / "tokenizer")
shutil.copytree(cfg.parent / "tokenizer", out / "tokenizer")
print("MODEL " + str(out))
"""


def _subprocess_model(code: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("MODEL ")]
    if out.returncode or not lines:
        sys.exit(f"building the model failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return lines[-1][6:]


def main() -> None:  # noqa: PLR0915 - one scenario, step by step
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", help="a full-size inpainting model (folder or file)")
    ap.add_argument("--steps", type=int, default=None, help="steps per job (tiny 20, full 4)")
    ap.add_argument("--size", type=int, default=None, help="canvas side (tiny 512, full 256)")
    ap.add_argument("--runs", type=int, default=2, help="warm jobs after the cold one")
    ap.add_argument("--cancel-steps", type=int, default=None)
    ap.add_argument("--upscale-size", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--build-full-size", metavar="DIR",
                    help="write a random-weight full-size SD 1.5 inpaint folder and exit")
    args = ap.parse_args()

    if args.build_full_size:
        cfg = os.path.join(ROOT, "canvasai", "resources", "model_configs", "sd1-inpaint")
        print(_subprocess_model(_BUILD_FULL, cfg, args.build_full_size))
        return
    tmp = tempfile.mkdtemp(prefix="canvasai-bench-")
    full = bool(args.model)
    model = args.model or _subprocess_model(_BUILD_TINY, os.path.join(tmp, "tiny"))
    steps = args.steps or (4 if full else 20)
    size = args.size or (256 if full else 512)
    cancel_steps = args.cancel_steps or (20 if full else 200)
    empty = os.path.join(tmp, "models")
    os.makedirs(empty)
    os.environ["CANVASAI_MODELS_DIR"] = empty  # the model is picked by path: no warm-up
    os.environ.setdefault("CANVASAI_DATA_DIR", tmp)
    os.environ["HF_HUB_CACHE"] = os.path.join(tmp, "hub")

    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from canvasai.app import _attach_generation
    from canvasai.document.document import Document
    from canvasai.document.stroke import Stroke
    from canvasai.ui.main_window import MainWindow

    def settle(cond, timeout: float = 3600.0) -> float:
        t0 = time.perf_counter()
        while not cond():
            app.processEvents()
            time.sleep(0.001)
            if time.perf_counter() - t0 > timeout:
                sys.exit("timed out")
        return time.perf_counter() - t0

    app = QApplication.instance() or QApplication([])
    assert "torch" not in sys.modules, "torch imported before the window"
    win = MainWindow()
    _attach_generation(win)
    gen = win.generation
    doc = Document(size, size)
    rng = np.random.default_rng(0)
    px = rng.integers(0, 255, (size, size, 4), dtype=np.uint8)
    px[..., 3] = 255
    doc.active_layer.surface.write(0, 0, px)
    win.set_document(doc)
    gen.document_replaced(doc)
    win.resize(1366, 768)
    win.show()
    s = Stroke(doc.mask, doc.rect)
    s.dab(size / 2, size / 2, size / 5)
    s.finish()
    gen.panel.add_model_path(str(model), "bench model")
    gen.panel.steps.setValue(steps)
    gen.panel.strength.setValue(1.0)
    probe = GapProbe()
    frames = {"n": 0}
    orig_preview = win.canvas.set_preview

    def count(rgba, rect=None):  # noqa: ANN001
        if rgba is not None:
            frames["n"] += 1
        orig_preview(rgba, rect)

    win.canvas.set_preview = count
    rows: dict[str, dict] = {}

    def job(name: str) -> None:
        frames["n"] = 0
        probe.start()
        gen.generate()
        t0 = gen.generate_pressed_at
        settle(lambda: not gen.busy)
        t1 = time.perf_counter()
        row = probe.stop()
        if not gen.strip.candidates:
            sys.exit(f"{name} job failed: {gen.panel.message.text()}")
        row |= {"job_s": round(t1 - t0, 3),
                "first_preview_s": round((gen.first_preview_at or t1) - t0, 3),
                "previews": frames["n"]}
        rows[name] = row

    # -- baseline: the window idle (on a shared machine the OS alone makes gaps) ----------
    t_show = time.perf_counter()
    settle(lambda: time.perf_counter() - t_show > 0.3)  # the window shows; the models scan runs
    probe.start()
    t_idle = time.perf_counter()
    settle(lambda: time.perf_counter() - t_idle > 3.0)
    rows["idle"] = probe.stop()

    # -- the cold first job: the window is up, nothing of torch is loaded -----------------
    assert "torch" not in sys.modules, "torch imported before the first job"
    job("cold")
    for i in range(args.runs):
        job(f"warm{i + 1}")
    step_ms = 1000 * float(np.median([rows[f"warm{i + 1}"]["job_s"] for i in range(args.runs)]
                                     or [rows["cold"]["job_s"]])) / steps

    # -- Esc mid-denoise ------------------------------------------------------------------
    from canvasai.backends.diffusion import pipelines

    step_times: list[float] = []
    real_on_step = pipelines.StepReporter.on_step

    def timed(self, i, latents, total_steps=None):  # noqa: ANN001
        step_times.append(time.perf_counter())
        return real_on_step(self, i, latents, total_steps)

    pipelines.StepReporter.on_step = timed
    gen.panel.steps.setValue(cancel_steps)
    probe.start()
    gen.generate()
    settle(lambda: len(step_times) >= 3)
    half = step_ms / 2000  # Esc in the middle of a step, not right at its callback
    settle(lambda: time.perf_counter() > step_times[-1] + half or len(step_times) > 3)
    t_esc = time.perf_counter()
    QTest.keyClick(win, Qt.Key.Key_Escape)
    settle(lambda: gen.panel.step_label.text() == "Cancelled")
    t_shown = time.perf_counter()
    settle(lambda: not gen.service.pending_jobs() and gen.service._running is None)
    t_free = time.perf_counter()
    row = probe.stop()
    pipelines.StepReporter.on_step = real_on_step
    ran = [t for t in step_times if t > t_esc]  # the step Esc landed in counts as one
    row |= {"cancel_ms": round((t_shown - t_esc) * 1000, 1),
            "steps_after_esc": len(ran), "worker_free_ms": round((t_free - t_esc) * 1000, 1),
            "step_ms": round(step_ms, 1)}
    rows["cancel"] = row
    gen.panel.steps.setValue(steps)

    # -- Esc while the model loads, then the next job ------------------------------------
    from canvasai.backends.router import diffusers_backend

    manager = diffusers_backend().manager
    manager.unload()
    probe.start()
    gen.generate()
    settle(lambda: manager.is_loading() or not gen.busy)
    t_esc = time.perf_counter()
    QTest.keyClick(win, Qt.Key.Key_Escape)
    settle(lambda: gen.panel.step_label.text() == "Cancelled")
    t_shown = time.perf_counter()
    gen.generate()
    t_next = time.perf_counter()
    settle(lambda: gen.panel.step_label.text().startswith("step") or not gen.busy)
    t_step = time.perf_counter()
    settle(lambda: not gen.busy)
    row = probe.stop()
    row |= {"cancel_ms": round((t_shown - t_esc) * 1000, 1),
            "next_first_step_s": round(t_step - t_next, 3),
            "next_ok": bool(gen.strip.candidates) and gen.panel.step_label.text().startswith("Done")}
    rows["cancel_load"] = row

    # -- accepting a 2x upscale of a big layered document ----------------------------------
    n = args.upscale_size
    big = Document(n, n)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    for i in range(args.layers):
        layer = big.layers[0] if i == 0 else big.add_layer(name=f"layer {i}")
        img = rng.integers(0, 255, (n, n, 4), dtype=np.uint8)
        if i:  # soft-edged blobs over transparency
            cx, cy, r = rng.uniform(0.2, 0.8) * n, rng.uniform(0.2, 0.8) * n, n / 5
            img[..., 3] = np.clip((r - np.hypot(xx - cx, yy - cy)) / 40 * 255, 0, 255)
        else:
            img[..., 3] = 255
        layer.surface.write(0, 0, img)
    big.history.clear()
    win.set_document(big)
    gen.document_replaced(big)
    gen.panel.set_models([])  # Lanczos: the accept is what is measured
    gen.panel.set_flow("upscale")
    gen.panel.model.setCurrentIndex(max(0, gen.panel.model.findData("classic")))
    target = gen.panel.upscale_target
    target.setCurrentIndex(max(0, target.findData("resample")))
    gen.generate()
    settle(lambda: not gen.busy)
    if not gen.strip.candidates:
        sys.exit(f"upscale job failed: {gen.panel.message.text()}")
    from canvasai.generation import flows

    gui_ms: list[float] = []
    real_apply = flows.apply_result

    def timed_apply(*a, **kw):  # noqa: ANN002, ANN003 - the part that runs on the GUI thread
        t = time.perf_counter()
        try:
            return real_apply(*a, **kw)
        finally:
            gui_ms.append((time.perf_counter() - t) * 1000)

    flows.apply_result = timed_apply
    probe.start()
    t0 = time.perf_counter()
    gen.accept(0)
    accept_call_ms = (time.perf_counter() - t0) * 1000
    settle(lambda: not gen.accepting)
    t1 = time.perf_counter()
    settle(lambda: time.perf_counter() - t1 > 0.3)  # the repaint at the new size
    row = probe.stop()
    flows.apply_result = real_apply
    if (big.width, big.height) != (2 * n, 2 * n):
        sys.exit(f"upscale accept failed: {gen.panel.message.text()}")
    row |= {"accept_s": round(t1 - t0, 3), "undo_steps": len(big.history.entries),
            "gui_thread_ms": round(accept_call_ms + sum(gui_ms), 1)}
    rows["upscale_accept"] = row
    gen.shutdown()

    keys = sorted({k for r in rows.values() for k in r}, key=lambda k: (k != "gui_gap_ms_max", k))
    print(f"{'phase':<16}" + "".join(f"{k:>20}" for k in keys))
    for name, r in rows.items():
        print(f"{name:<16}" + "".join(f"{r.get(k, ''):>20}" for k in keys))
    res = {
        "model": "full-size" if full else "tiny",
        "idle_gui_gap_ms_max": rows["idle"]["gui_gap_ms_max"],
        "steps": steps, "size": size,
        "gui_gap_ms_max": max(r["gui_gap_ms_max"] for k, r in rows.items() if k != "idle"),
        "cold_gui_gap_ms_max": rows["cold"]["gui_gap_ms_max"],
        "cold_job_s": rows["cold"]["job_s"],
        "cold_first_preview_s": rows["cold"]["first_preview_s"],
        "warm_job_s": rows.get("warm1", rows["cold"])["job_s"],
        "first_preview_s": rows.get("warm1", rows["cold"])["first_preview_s"],
        "cancel_ms": rows["cancel"]["cancel_ms"],
        "cancel_steps_after_esc": rows["cancel"]["steps_after_esc"],
        "cancel_worker_free_ms": rows["cancel"]["worker_free_ms"],
        "step_ms": rows["cancel"]["step_ms"],
        "cancel_load_ms": rows["cancel_load"]["cancel_ms"],
        "next_job_first_step_s": rows["cancel_load"]["next_first_step_s"],
        "upscale_accept_s": rows["upscale_accept"]["accept_s"],
        "upscale_accept_gui_gap_ms_max": rows["upscale_accept"]["gui_gap_ms_max"],
        "upscale_accept_gui_thread_ms": rows["upscale_accept"]["gui_thread_ms"],
        "phases": rows,
    }
    print("RESULT " + json.dumps(res))


if __name__ == "__main__":
    main()
