"""Save/open time and peak memory of a big .ora project.

    python benchmarks/files.py [--size 8192] [--layers 20] [--compress-level 1] [--rounds 2]

CANVASAI_BENCH_SIZE / CANVASAI_BENCH_LAYERS (or CANVASAI_BENCH_QUICK=1: 2048 x 8)
give a quicker run.

Builds a SIZE x SIZE document with LAYERS layers of painted-looking content
(a full textured background, then layers covering 30-100 % of the canvas with
soft gradients, low-frequency colour noise, film grain and brush strokes, with
soft-edged alpha), then measures:

- snapshot_s: copying the document on the GUI thread before a background save
- save_s, file_mib: save_ora to a temporary folder
- open_s: load_ora of that file
- plain_open_s: a plain reader of the same file (zipfile + Pillow decoding each layer
  PNG into one array), run alternately with load_ora (`--rounds` times each);
  open_ratio = median open_s / median plain_open_s, from the same run
- peak_mib: the process's peak RSS over the whole run (psutil sampling + ru_maxrss),
  with save_peak_mib / open_peak_mib the peaks above the baseline in each phase
- a PNG compress-level table for one layer (encode time and size)

Prints a table, then `RESULT {json}` as the last line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canvasai.document.document import Document  # noqa: E402
from canvasai.document.layer import Layer  # noqa: E402
from canvasai.document.tiles import TiledSurface  # noqa: E402
from canvasai.formats.image_io import document_from_layers  # noqa: E402
from canvasai.formats.ora import load_ora, save_ora  # noqa: E402
from canvasai.formats.ora_extras import encode_png  # noqa: E402
from canvasai.formats.recovery import snapshot_document  # noqa: E402


def rss_mib() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakSampler:
    """Samples RSS every 10 ms in a thread; `peak` is the maximum seen."""

    def __init__(self) -> None:
        self.peak = rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_mib())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


def _noise_field(rng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    """Smooth colour noise: a small random image upscaled bicubically."""
    small = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small, "RGB").resize((w, h), Image.Resampling.BICUBIC))


def make_layer_pixels(rng: np.random.Generator, w: int, h: int, full: bool) -> np.ndarray:
    rgb = _noise_field(rng, w, h, int(rng.integers(4, 24))).astype(np.int16)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    grad = (xx * rng.uniform(-60, 60) + yy * rng.uniform(-60, 60)).astype(np.int16)
    rgb += grad[..., None]
    rgb += rng.integers(-3, 4, (h, w, 1), dtype=np.int16)  # film grain
    np.clip(rgb, 0, 255, out=rgb)
    img = Image.fromarray(rgb.astype(np.uint8), "RGB").convert("RGBA")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(20, 60))):  # brush strokes
        pts = [(float(rng.uniform(0, w)), float(rng.uniform(0, h))) for _ in range(6)]
        color = tuple(int(c) for c in rng.integers(0, 256, 3)) + (255,)
        draw.line(pts, fill=color, width=int(rng.integers(4, max(5, w // 60))), joint="curve")
    px = np.asarray(img).copy()
    if full:
        px[..., 3] = 255
    else:
        alpha = Image.new("L", (w, h), 0)
        ImageDraw.Draw(alpha).ellipse((w * 0.05, h * 0.05, w * 0.95, h * 0.95), fill=255)
        alpha = alpha.filter(ImageFilter.BoxBlur(max(2, w // 40)))
        px[..., 3] = np.asarray(alpha)
    return px


def build_document(size: int, n_layers: int, seed: int = 0) -> Document:
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(n_layers):
        if i == 0:
            x = y = 0
            w = h = size
        else:
            frac_w, frac_h = rng.uniform(0.3, 1.0, 2)
            w, h = int(size * frac_w), int(size * frac_h)
            x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
        px = make_layer_pixels(rng, w, h, full=(i == 0))
        surface = TiledSurface(4)
        surface.write(x, y, px)
        del px
        surface.prune()
        layers.append(
            Layer(f"Layer {i}" if i else "Background", surface, opacity=1.0 if i % 4 else 0.8)
        )
        gc.collect()
    return document_from_layers(size, size, layers)


def compress_table(doc: Document, levels: tuple[int, ...] = (1, 3, 6)) -> list[dict]:
    layer = doc.layers[1]
    side = min(doc.width, 4096)
    rect = layer.surface.bounds()
    px = layer.surface.read(rect)[:side, :side]
    rows = []
    for level in levels:
        t0 = time.perf_counter()
        data = encode_png(px, level)
        rows.append(
            {
                "level": level,
                "encode_s": round(time.perf_counter() - t0, 3),
                "mib": round(len(data) / 2**20, 2),
                "mpix": round(px.shape[0] * px.shape[1] / 1e6, 1),
            }
        )
    return rows


def plain_open(path: Path) -> list[np.ndarray]:
    """The naive reader: zipfile + Pillow, each layer PNG decoded into one RGBA array."""
    import xml.etree.ElementTree as ET
    import zipfile

    out = []
    with zipfile.ZipFile(path) as zf:
        root = ET.fromstring(zf.read("stack.xml"))
        for el in root.iter("layer"):
            with zf.open(el.get("src")) as fh, Image.open(fh) as img:
                out.append(np.asarray(img.convert("RGBA")))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    quick = os.environ.get("CANVASAI_BENCH_QUICK", "") not in ("", "0")
    ap.add_argument("--size", type=int,
                    default=int(os.environ.get("CANVASAI_BENCH_SIZE", 2048 if quick else 8192)))
    ap.add_argument("--layers", type=int,
                    default=int(os.environ.get("CANVASAI_BENCH_LAYERS", 8 if quick else 20)))
    ap.add_argument("--rounds", type=int, default=2, help="opens of each reader, alternating")
    ap.add_argument("--compress-level", type=int, default=1)
    ap.add_argument("--no-table", action="store_true")
    args = ap.parse_args(argv)

    with PeakSampler() as total_peak:
        t0 = time.perf_counter()
        doc = build_document(args.size, args.layers)
        build_s = time.perf_counter() - t0
        tiles_mib = sum(la.surface.nbytes for la in doc.layers) / 2**20
        table = [] if args.no_table else compress_table(doc)

        t0 = time.perf_counter()
        snap = snapshot_document(doc)
        snapshot_s = time.perf_counter() - t0
        del snap
        gc.collect()

        with tempfile.TemporaryDirectory(prefix="canvasai-bench-") as tmp:
            path = Path(tmp) / "big.ora"
            base = rss_mib()
            with PeakSampler() as save_peak:
                t0 = time.perf_counter()
                save_ora(doc, path, compress_level=args.compress_level)
                save_s = time.perf_counter() - t0
            file_mib = path.stat().st_size / 2**20
            reference = [la.surface.bounds() for la in doc.layers]
            del doc
            gc.collect()
            opens, plains, open_peaks, plain_peaks = [], [], [], []
            for _ in range(max(1, args.rounds)):
                gc.collect()
                base_open = rss_mib()
                with PeakSampler() as open_peak:
                    t0 = time.perf_counter()
                    back = load_ora(path)
                    opens.append(time.perf_counter() - t0)
                open_peaks.append(open_peak.peak - base_open)
                assert [la.surface.bounds() for la in back.layers] == reference
                del back
                gc.collect()
                base_plain = rss_mib()
                with PeakSampler() as plain_peak:
                    t0 = time.perf_counter()
                    arrays = plain_open(path)
                    plains.append(time.perf_counter() - t0)
                plain_peaks.append(plain_peak.peak - base_plain)
                del arrays
            open_s = float(np.median(opens))
            plain_s = float(np.median(plains))
    peak_mib = max(total_peak.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    result = {
        "size": args.size,
        "layers": args.layers,
        "compress_level": args.compress_level,
        "tiles_mib": round(tiles_mib, 1),
        "build_s": round(build_s, 2),
        "snapshot_s": round(snapshot_s, 3),
        "save_s": round(save_s, 2),
        "file_mib": round(file_mib, 1),
        "open_s": round(open_s, 2),
        "plain_open_s": round(plain_s, 2),
        "open_ratio": round(open_s / plain_s, 3),
        "opens_s": [round(v, 2) for v in opens],
        "plain_opens_s": [round(v, 2) for v in plains],
        "peak_mib": round(peak_mib, 1),
        "save_peak_above_doc_mib": round(save_peak.peak - base, 1),
        "open_peak_mib": round(max(open_peaks), 1),
        "plain_open_peak_mib": round(max(plain_peaks), 1),
        "png_levels": table,
    }
    print(f"{'metric':<26}value")
    for k, v in result.items():
        if k != "png_levels":
            print(f"{k:<26}{v}")
    for row in table:
        print(
            f"png level {row['level']}: {row['encode_s']} s, {row['mib']} MiB for {row['mpix']} Mpx"
        )
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
