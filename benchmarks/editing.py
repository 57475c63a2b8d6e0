"""Editing-flow benchmark: GUI responsiveness while a job streams previews, and time to
the first preview on the canvas.

    python benchmarks/editing.py [--steps N] [--size PX] [--runs N]

Runs the real main window offscreen with a tiny random-weight inpainting model (built
in a temp folder, loaded through the registry like a person's model). A 16 ms QTimer
on the GUI thread records the gaps between its ticks while the job runs. Prints a
table and, last, `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CANVASAI_NO_PROMPTS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    from tests.support.tiny_models import build_tiny_models

    tmp = tempfile.mkdtemp(prefix="canvasai-bench-")
    models = build_tiny_models(tmp)
    os.environ["CANVASAI_MODELS_DIR"] = str(models.root)
    os.environ.setdefault("CANVASAI_DATA_DIR", tmp)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from canvasai.document.document import Document
    from canvasai.document.stroke import Stroke
    from canvasai.ui.generation_controller import GenerationController
    from canvasai.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    win = MainWindow()
    gen = getattr(win, "generation", None) or GenerationController(win)
    doc = Document(args.size, args.size)
    win.set_document(doc)
    gen.document_replaced(doc)
    win.show()
    s = Stroke(doc.mask, doc.rect)
    s.dab(args.size / 2, args.size / 2, args.size / 5)
    s.finish()
    gen.panel.add_model_path(str(models.sd1_inpaint), "tiny inpaint")
    gen.panel.steps.setValue(args.steps)

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now

    timer = QTimer()
    timer.setInterval(16)
    timer.timeout.connect(tick)
    first_previews, job_times, frames, all_gaps = [], [], [], []
    counter = {"n": 0}
    orig = win.canvas.set_preview

    def count(rgba, rect=None):  # noqa: ANN001
        if rgba is not None:
            counter["n"] += 1
        orig(rgba, rect)

    win.canvas.set_preview = count
    for run in range(args.runs + 1):  # run 0 warms up (model load)
        counter["n"] = 0
        gaps.clear()
        last[0] = time.perf_counter()
        timer.start()
        gen.generate()
        t0 = gen.generate_pressed_at
        while gen.busy:
            app.processEvents()
            time.sleep(0.001)
        t1 = time.perf_counter()
        timer.stop()
        if not gen.strip.candidates:
            print("job failed:", gen.panel.message.text())
            sys.exit(1)
        if run == 0:
            continue
        first_previews.append(gen.first_preview_at - t0)
        job_times.append(t1 - t0)
        frames.append(counter["n"])
        ticks = np.array(gaps[1:]) if len(gaps) > 1 else np.array([0.0])
        all_gaps.extend(ticks.tolist())
        print(f"run {run}: job {t1 - t0:.2f} s, first preview {gen.first_preview_at - t0:.3f} s, "
              f"{counter['n']} frames, tick gap p95 {np.percentile(ticks, 95):.1f} ms "
              f"max {ticks.max():.1f} ms")
    gen.shutdown()
    res = {
        "gui_gap_ms_p95": round(float(np.percentile(all_gaps, 95)), 2),
        "gui_gap_ms_max": round(float(np.max(all_gaps)), 2),
        "ticks": len(all_gaps),
        "previews_per_job": int(np.median(frames)),
        "first_preview_s": round(float(np.median(first_previews)), 4),
        "job_s": round(float(np.median(job_times)), 3),
        "steps": args.steps,
        "size": args.size,
    }
    print(f"{'metric':<18}{'value':>10}")
    for k, v in res.items():
        print(f"{k:<18}{v:>10}")
    print("RESULT " + json.dumps(res))


if __name__ == "__main__":
    main()
