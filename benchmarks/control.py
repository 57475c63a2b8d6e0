"""Control benchmark (issue 12): style switches with LoRAs, and LoRAs + control layers vs bare diffusers.

    python benchmarks/control.py [--repeats 5] [--size 128] [--steps 8] [--controls 2]

Tiny random-weight SD 1.x models built in a temp folder (tests/support/tiny_models.py),
tiny random LoRAs (tests/support/tiny_loras.py) and tiny ControlNets (a scribble and a
canny one), all loaded from files the way a person's models are.

(a) Style switching. Two styles, each with its own LoRAs (style A: ink 0.8; style B:
    paper 0.6 + grain 0.5), txt2img jobs through the `GenerationService` (as the app
    runs them), alternating A, B, A, B, ...:
    - cached: the app's behaviour, LoRA files loaded once and kept; a switch only sets
      the adapters and their weights;
    - cold: before every job the loaded LoRAs are dropped (`delete_adapters`), so each
      switch reads and applies its files again.
    Reported: median job time per switch for both, their ratio, and the LoRA step alone
    (`PipelineManager.apply_loras`) cached and cold.

(b) Overhead. One sketch job with two LoRAs and `--controls` control layers (scribble
    and canny, each with its strength and start/end range) through the service, divided
    by a bare `StableDiffusionControlNetPipeline` with a MultiControlNet and the same
    LoRAs doing the same job (same size, steps, seed, maps, scales, ranges), alternated,
    2 x `--repeats` + 1 rounds; median ratio of the pairs' wall times (target <= 1.05),
    and of their process CPU times, which a busy shared machine disturbs less; the same
    job with previews off is in each round too, to show what the live previews cost. The
    pictures are compared (max difference in levels: 0 means the same work was done).

Prints a table, and as the last line `RESULT {json}`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
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

from benchmarks.generation import Harness  # noqa: E402
from canvasai.backends.api import (  # noqa: E402
    ControlKind,
    ControlSettings,
    GenerationRequest,
    Task,
)
from canvasai.backends.loras import LoraSpec  # noqa: E402
from canvasai.generation.runner import default_backend_factory  # noqa: E402

SEED = 1234
PROMPT = "a lighthouse on a cliff"
NEGATIVE = "blurry"
GUIDANCE = 7.0


# ---------------------------------------------------------------------------- models


def build(root: Path) -> dict[str, Path]:
    """Tiny SD 1.x model, three LoRAs and two ControlNets under `root` (built once)."""
    from tests.support.tiny_loras import save_unet_lora
    from tests.support.tiny_models import build_tiny_models, tiny_controlnet

    models = build_tiny_models(root)
    out = {"sd1": models.sd1, "scribble": models.controlnet_scribble}
    canny = root / "controlnet" / "sd1-tiny-controlnet-canny"
    if not (canny / "config.json").is_file():
        import torch

        torch.manual_seed(99)
        tiny_controlnet().save_pretrained(canny, safe_serialization=True)
    out["canny"] = canny
    for i, name in enumerate(("ink", "paper", "grain")):
        dest = root / "loras" / f"sd1-tiny-{name}.safetensors"
        if not dest.is_file():
            save_unet_lora(models.sd1, dest, seed=10 + i)
        out[name] = dest
    return out


def control_inputs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A sketch (dark strokes on white) and a photo-like picture for canny."""
    sketch = np.full((size, size, 4), 255, np.uint8)
    q = size // 8
    sketch[2 * q : 2 * q + 3, q : 7 * q, :3] = 0
    sketch[q : 7 * q, 4 * q : 4 * q + 3, :3] = 0
    ys, xs = np.mgrid[:size, :size]
    photo = np.stack([xs * 255 // size, ys * 255 // size, ((xs // q + ys // q) % 2) * 255], -1)
    return sketch, photo.astype(np.uint8)


# ---------------------------------------------------------------------------- (a) switching


def loaded_model() -> Any:
    """The service's loaded model (its worker is idle between the jobs here)."""
    from canvasai.backends import router

    return router.diffusers_backend().manager._loaded  # noqa: SLF001 - benchmark instrumentation


def drop_loras() -> None:
    """Forget every loaded LoRA, so the next job loads its files again (a cold switch)."""
    loaded = loaded_model()
    if loaded is not None and loaded.adapters:
        loaded.pipe.delete_adapters(list(loaded.adapters))
        loaded.adapters.clear()
        loaded.lora_state = None


def switching(h: Harness, m: dict[str, Path], size: int, steps: int, repeats: int) -> dict[str, Any]:
    styles = {
        "A": (LoraSpec(str(m["ink"]), 0.8),),
        "B": (LoraSpec(str(m["paper"]), 0.6), LoraSpec(str(m["grain"]), 0.5)),
    }

    def request(style: str) -> GenerationRequest:
        return GenerationRequest(Task.TXT2IMG, prompt=PROMPT, negative_prompt=NEGATIVE,
                                 model=str(m["sd1"]), steps=steps, seed=SEED, guidance=GUIDANCE,
                                 width=size, height=size, loras=styles[style])

    other = {"A": "B", "B": "A"}
    h.run(request("A"))
    h.run(request("B"))  # both styles' LoRAs are loaded now; the last job was B
    cached, cold = [], []
    for r in range(repeats):
        style = "A" if r % 2 == 0 else "B"  # a switch away from the last job's style
        cached.append(h.run(request(style))[1])  # both LoRA sets kept
        drop_loras()
        cold.append(h.run(request(other[style]))[1])  # the switch back, files read again
        h.run(request(style))  # untimed: both sets loaded again, last job = style
    # the LoRA step alone, on the loaded pipeline (same pattern, no job around it)
    from canvasai.backends import router

    manager = router.diffusers_backend().manager
    loaded = loaded_model()
    step_cached, step_cold = [], []
    for r in range(repeats * 2):
        style = "A" if r % 2 == 0 else "B"
        t = time.perf_counter()
        manager.apply_loras(loaded, list(styles[style]))
        step_cached.append(time.perf_counter() - t)
        drop_loras()
        t = time.perf_counter()
        manager.apply_loras(loaded, list(styles[other[style]]))
        step_cold.append(time.perf_counter() - t)
        manager.apply_loras(loaded, list(styles[style]))
    manager.apply_loras(loaded, [])
    return {
        "switch_cached_s": statistics.median(cached),
        "switch_cold_s": statistics.median(cold),
        "switch_cold_over_cached": statistics.median(cold) / statistics.median(cached),
        "lora_step_cached_ms": 1000 * statistics.median(step_cached),
        "lora_step_cold_ms": 1000 * statistics.median(step_cold),
        "lora_step_cold_over_cached": statistics.median(step_cold) / statistics.median(step_cached),
        "switches": len(cached),
    }


# ---------------------------------------------------------------------------- (b) overhead


def layers(m: dict[str, Path], size: int, n: int) -> tuple[ControlSettings, ...]:
    sketch, photo = control_inputs(size)
    all_layers = (
        ControlSettings(ControlKind.SCRIBBLE, sketch, model=str(m["scribble"]), scale=0.9,
                        start=0.0, end=0.8),
        ControlSettings(ControlKind.CANNY, photo, model=str(m["canny"]), scale=0.6,
                        start=0.1, end=1.0),
    )
    return all_layers[:n]


def load_bare(m: dict[str, Path], controls: tuple[ControlSettings, ...],
              loras: tuple[LoraSpec, ...]) -> Any:
    import diffusers

    diffusers.utils.logging.disable_progress_bar()
    nets = [diffusers.ControlNetModel.from_pretrained(c.model, local_files_only=True)
            for c in controls]
    pipe = diffusers.StableDiffusionControlNetPipeline.from_pretrained(
        m["sd1"], controlnet=nets if len(nets) > 1 else nets[0], local_files_only=True,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    names = []
    for i, spec in enumerate(loras):
        pipe.load_lora_weights(spec.name, adapter_name=f"l{i}")
        names.append(f"l{i}")
    pipe.set_adapters(names, adapter_weights=[s.weight for s in loras])
    return pipe


def run_bare(pipe: Any, controls: tuple[ControlSettings, ...], size: int, steps: int
             ) -> tuple[float, np.ndarray]:
    import torch
    from PIL import Image

    from canvasai.backends.diffusion.control_maps import control_map

    t0 = time.perf_counter()
    maps = [Image.fromarray(control_map(c.kind, np.asarray(c.image), c.preprocess)[0])
            for c in controls]
    many = len(controls) > 1
    with torch.inference_mode():
        out = pipe(
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            image=maps if many else maps[0],
            controlnet_conditioning_scale=[c.scale for c in controls] if many else controls[0].scale,
            control_guidance_start=[c.start for c in controls] if many else controls[0].start,
            control_guidance_end=[c.end for c in controls] if many else controls[0].end,
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=GUIDANCE,
            generator=torch.Generator("cpu").manual_seed(SEED),
            output_type="np",
        ).images[0]
    dt = time.perf_counter() - t0
    return dt, np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def overhead(h: Harness, m: dict[str, Path], size: int, steps: int, repeats: int,
             n_controls: int) -> dict[str, Any]:
    loras = (LoraSpec(str(m["ink"]), 0.8), LoraSpec(str(m["paper"]), 0.6))
    controls = layers(m, size, n_controls)
    req = GenerationRequest(Task.SKETCH, prompt=PROMPT, negative_prompt=NEGATIVE,
                            model=str(m["sd1"]), steps=steps, seed=SEED, guidance=GUIDANCE,
                            width=size, height=size, native_resolution=False, controls=controls,
                            loras=loras)
    bare_pipe = load_bare(m, controls, loras)
    results: dict[int, Any] = {}
    h.svc.finished.connect(lambda job, result: results.__setitem__(job, result))
    # warm-up: loads, first-call allocations, both paths
    run_bare(bare_pipe, controls, size, steps)
    h.run(req)
    quiet = dataclasses.replace(req, previews=False)
    times: dict[str, list[float]] = {"ours": [], "bare": [], "quiet": []}
    cpu: dict[str, list[float]] = {"ours": [], "bare": [], "quiet": []}
    ours_img = bare_img = None

    def timed(name: str, fn: Any) -> Any:
        c = time.process_time()
        dt, out = fn()
        cpu[name].append(time.process_time() - c)
        times[name].append(dt)
        return out

    def ours_run() -> int:
        return timed("ours", lambda: h.run(req)[::-1])

    def bare_run() -> np.ndarray:
        return timed("bare", lambda: run_bare(bare_pipe, controls, size, steps))

    def quiet_run() -> None:
        timed("quiet", lambda: h.run(quiet)[::-1])

    for i in range(repeats):  # the order turns each round, so drift hits all three alike
        order = [ours_run, bare_run, quiet_run]
        k = i % 3
        for fn in order[k:] + order[:k]:
            out = fn()
            if fn is ours_run:
                job = out
            elif fn is bare_run:
                bare_img = out
        ours_img = results[job].images[0]

    def ratio(name: str, of: dict[str, list[float]]) -> float:
        return statistics.median(o / b for o, b in zip(of[name], of["bare"], strict=True))

    ratios = [o / b for o, b in zip(times["ours"], times["bare"], strict=True)]
    diff = int(np.abs(ours_img[..., :3].astype(int) - bare_img.astype(int)).max())
    meta = results[job].metadata
    return {
        "controls": n_controls,
        "loras": len(loras),
        "service_s": statistics.median(times["ours"]),
        "bare_s": statistics.median(times["bare"]),
        "ratio_median": statistics.median(ratios),
        "ratio_of_medians": statistics.median(times["ours"]) / statistics.median(times["bare"]),
        "ratio_min": min(ratios),
        "cpu_ratio_median": ratio("ours", cpu),
        "previews_off_ratio_median": ratio("quiet", times),
        "previews_off_cpu_ratio_median": ratio("quiet", cpu),
        "max_pixel_diff": diff,
        "service_controls_used": len(meta.get("controls", ())) or (1 if "controlnet" in meta else 0),
        "pairs": len(ratios),
    }


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="switch rounds; (b) runs 2x+1 pairs")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--controls", type=int, choices=(1, 2), default=2)
    args = ap.parse_args(argv)

    import diffusers
    import torch
    import transformers

    torch.set_num_threads(1)  # tiny models: more threads only fight the other processes
    warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")
    diffusers.utils.logging.set_verbosity_error()  # "no LoRA keys for the text encoder" etc.
    transformers.utils.logging.set_verbosity_error()
    t = time.perf_counter()
    m = build(Path(tempfile.gettempdir()) / "canvasai-bench-tiny-models")
    build_s = time.perf_counter() - t
    h = Harness(default_backend_factory(None))
    try:
        switch = switching(h, m, args.size, args.steps, args.repeats)
        over = overhead(h, m, args.size, args.steps, 2 * args.repeats + 1, args.controls)
    finally:
        h.close()

    rows = [
        ("(a) style switch, LoRAs kept (s/job)", f"{switch['switch_cached_s']:.3f}", ""),
        ("(a) style switch, LoRAs reloaded (s/job)", f"{switch['switch_cold_s']:.3f}", ""),
        ("(a) cold / cached, per job", f"{switch['switch_cold_over_cached']:.2f}", ""),
        ("(a) LoRA step kept (ms)", f"{switch['lora_step_cached_ms']:.1f}", ""),
        ("(a) LoRA step reloaded (ms)", f"{switch['lora_step_cold_ms']:.1f}", ""),
        (f"(b) service, {over['loras']} LoRAs + {over['controls']} controls (s)",
         f"{over['service_s']:.3f}", ""),
        ("(b) bare diffusers (s)", f"{over['bare_s']:.3f}", ""),
        ("(b) service / bare, median of pairs", f"{over['ratio_median']:.3f}",
         "<= 1.05 " + ("ok" if over["ratio_median"] <= 1.05 else "MISSED")),
        ("(b) same, process CPU time", f"{over['cpu_ratio_median']:.3f}",
         "reads through a busy machine's noise"),
        ("(b) previews off / bare (wall, CPU)",
         f"{over['previews_off_ratio_median']:.3f}, {over['previews_off_cpu_ratio_median']:.3f}",
         "what the live previews cost"),
        ("(b) max pixel difference", str(over["max_pixel_diff"]), "0 = same work"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"control benchmark: {args.size} px, {args.steps} steps, tiny SD 1.x, build {build_s:.1f} s")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>9}  {note}")
    result = {"size": args.size, "steps": args.steps, **switch,
              **{f"overhead_{k}": v for k, v in over.items()}}
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
