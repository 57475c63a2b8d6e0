"""Models benchmark: scan index, Models window, download throughput.

    .venv/bin/python benchmarks/models.py [--files 5000] [--window-models 500] [--mb 256] [--repeat 3]

1. Scan of a models folder of N entries (.safetensors checkpoints, LoRA-like and VAE files;
   sparse files, so only headers are real): cold (no scan index), warm after a restart (a new
   registry reading the index from disk), warm in the same process. Target: warm < 1 s.
2. Time to show the Models window with M models (offscreen): from construction to a filled
   tree, scan included (warm index), and the tree fill alone.
3. Download throughput from a loopback server in the hub's layout: CanvasAI's download
   (huggingface_hub underneath, plus progress / cancel checks) vs a plain `hf_hub_download` of
   the same file into a fresh cache; with CanvasAI's SHA-256 verification (hashed while the
   file downloads) and without it. Rounds are interleaved; medians and bests are reported
   (a busy 2-core machine makes single runs noisy). Target: ratio >= 0.95.

The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

SD1 = {
    "model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": [77, 768],
}
LORA = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": [4, 320]}
VAE = {"encoder.down.0.block.0.conv1.weight": [128, 128, 3, 3],
       "decoder.up.0.block.0.conv1.weight": [128, 128, 3, 3]}


def _sparse_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    header, offset = {}, 0
    for k, shape in shapes.items():
        n = 2
        for d in shape:
            n *= d
        header[k] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    with path.open("wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        f.truncate(8 + len(raw) + offset)  # sparse: no data blocks written


def make_folder(root: Path, n: int) -> None:
    per = 100
    for i in range(n):
        sub = root / f"folder{i // per:03d}"
        if i % per == 0:
            sub.mkdir(parents=True, exist_ok=True)
        kind = (SD1, LORA, VAE)[i % 3]
        _sparse_safetensors(sub / f"model{i:05d}.safetensors", kind)


def bench_scan(tmp: Path, n: int, repeat: int) -> dict:
    from canvasai.backends.models import ModelRegistry
    from canvasai.backends.scan_index import ScanIndex

    root = tmp / "scan"
    make_folder(root, n)
    cold, restart, same = [], [], []
    count = 0
    for r in range(repeat):
        idx_path = tmp / f"index{r}.json"
        reg = ModelRegistry([root], include_hf_cache=False, index=ScanIndex(idx_path))
        t = time.perf_counter()
        count = len(reg.rescan())
        cold.append(time.perf_counter() - t)
        reg2 = ModelRegistry([root], include_hf_cache=False, index=ScanIndex(idx_path))
        t = time.perf_counter()
        assert len(reg2.rescan()) == count
        restart.append(time.perf_counter() - t)
        t = time.perf_counter()
        reg2.rescan()
        same.append(time.perf_counter() - t)
    # a changed file is read again
    reg3 = ModelRegistry([root], include_hf_cache=False, index=ScanIndex(tmp / "index0.json"))
    _sparse_safetensors(root / "folder000" / "model00000.safetensors", VAE)
    reg3.rescan()
    reread = reg3.index.misses if reg3.index is not None else -1
    return {"entries": count, "cold_s": statistics.median(cold),
            "warm_restart_s": statistics.median(restart), "warm_same_process_s": statistics.median(same),
            "changed_files_reread": reread}


def bench_window(tmp: Path, n: int) -> dict:
    from PySide6.QtWidgets import QApplication

    from canvasai.backends import models
    from canvasai.core import settings

    app = QApplication.instance() or QApplication([])
    root = tmp / "window"
    make_folder(root, n)
    settings.reset(settings.MemoryStore())
    settings.update(**{"models/models_dirs": [str(root)], "models/include_hf_cache": False,
                       "files/data_dir": str(tmp / "data")})
    models.reset_registry()
    models.registry().rescan()  # index warm, as after any earlier start
    from canvasai.ui.models_window import ModelsWindow

    t = time.perf_counter()
    win = ModelsWindow()
    win.show()
    while len(win.models) < n:
        app.processEvents()
        time.sleep(0.001)
    app.processEvents()
    shown = time.perf_counter() - t
    if win._hash_cancel is not None:
        win._hash_cancel.set()
    t = time.perf_counter()
    win._fill()
    app.processEvents()
    fill = time.perf_counter() - t
    win.close()
    return {"models": len(win.models), "open_to_filled_s": shown, "fill_s": fill}


def bench_download(tmp: Path, mb: int, repeat: int) -> dict:
    from huggingface_hub import constants, hf_hub_download

    from canvasai.backends import downloads
    from tests.support.fake_hub import FakeFile, FakeHub, FakeRepo

    constants.HF_HUB_OFFLINE = False
    data = os.urandom(mb << 20)
    hub = FakeHub()
    hub.repos["bench/big"] = FakeRepo({"model.safetensors": FakeFile(data)})
    hub.start()
    os.environ["HF_ENDPOINT"] = hub.url
    plain_t: list[float] = []
    ours_t: list[float] = []
    ours_noverify_t: list[float] = []
    real_verify = downloads.verify
    try:
        for r in range(repeat):
            for name, times in (("plain", plain_t), ("ours", ours_t), ("noverify", ours_noverify_t)):
                cache = tmp / f"cache-{name}-{r}"
                t = time.perf_counter()
                if name == "plain":
                    hf_hub_download("bench/big", "model.safetensors", cache_dir=str(cache),
                                    endpoint=hub.url)
                else:
                    downloads.verify = real_verify if name == "ours" else (lambda *a, **k: None)
                    downloads.HASH_WHILE_DOWNLOADING = name == "ours"
                    downloads.download("bench/big", cache_dir=cache, progress=lambda p: None)
                times.append(time.perf_counter() - t)
                shutil.rmtree(cache)
    finally:
        downloads.verify = real_verify
        downloads.HASH_WHILE_DOWNLOADING = True
        hub.stop()
    size = len(data)
    plain, ours, nov = (statistics.median(x) for x in (plain_t, ours_t, ours_noverify_t))
    return {"mb": mb, "rounds": repeat, "plain_MBps": size / plain / 1e6, "ours_MBps": size / ours / 1e6,
            "ours_without_verify_MBps": size / nov / 1e6,
            "ratio": plain / ours, "ratio_without_verify": plain / nov,
            "best_plain_MBps": size / min(plain_t) / 1e6, "best_ours_MBps": size / min(ours_t) / 1e6,
            "best_ratio": min(plain_t) / min(ours_t)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--window-models", type=int, default=500)
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3, help="scan repeats")
    ap.add_argument("--rounds", type=int, default=7, help="download rounds")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="canvasai-bench-models-"))
    os.environ.setdefault("CANVASAI_DATA_DIR", str(tmp / "data"))
    try:
        scan = bench_scan(tmp, args.files, args.repeat)
        print(f"scan of {scan['entries']} entries: cold {scan['cold_s']:.2f} s, warm after restart "
              f"{scan['warm_restart_s']:.2f} s, warm same process {scan['warm_same_process_s']:.2f} s "
              f"(target warm < 1 s); a changed file: {scan['changed_files_reread']} read again")
        window = bench_window(tmp, args.window_models)
        print(f"Models window with {window['models']} models: open to filled "
              f"{window['open_to_filled_s']:.2f} s (warm scan included), tree fill {window['fill_s']:.2f} s")
        dl = bench_download(tmp, args.mb, args.rounds)
        print(f"download {dl['mb']} MB from loopback: plain hf_hub_download {dl['plain_MBps']:.0f} MB/s, "
              f"CanvasAI {dl['ours_MBps']:.0f} MB/s (ratio {dl['ratio']:.2f}; without the SHA-256 "
              f"pass {dl['ours_without_verify_MBps']:.0f} MB/s, ratio {dl['ratio_without_verify']:.2f}); "
              f"best of {dl['rounds']}: plain {dl['best_plain_MBps']:.0f}, CanvasAI "
              f"{dl['best_ours_MBps']:.0f} MB/s (ratio {dl['best_ratio']:.2f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("RESULT " + json.dumps({"scan": scan, "window": window, "download": dl}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
