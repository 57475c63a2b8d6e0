"""The command line: classic jobs end to end, exit codes, messages for bad input."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from canvasai.cli.entry import SUBCOMMANDS, main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture
def picture(tmp_path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[:96, :128]
    img = np.stack([xs * 2, ys * 2, (xs + ys) % 256], -1).astype(np.uint8)
    img[40:50, 60:70] = (255, 0, 255)
    mask = np.zeros((96, 128), np.uint8)
    mask[36:54, 56:74] = 255
    return save(tmp_path / "in.png", img), save(tmp_path / "mask.png", mask), img, mask


def test_inpaint_classic_keeps_pixels_outside_the_mask(tmp_path, picture, capsys):
    image, mask_path, img, mask = picture
    out = tmp_path / "out.png"
    rc = main(["inpaint", str(image), "--mask", str(mask_path), "-o", str(out), "--seed", "5"])
    assert rc == 0
    res = load(out)
    assert res.shape == img.shape
    np.testing.assert_array_equal(res[mask == 0], img[mask == 0])
    assert not np.array_equal(res[45, 65], img[45, 65])  # the magenta block was filled
    err = capsys.readouterr().err
    assert "no AI model" in err and "seed 5" in err and "step 3/3" in err


def test_inpaint_rgba_keeps_alpha_and_writes_previews(tmp_path, picture):
    _, mask_path, img, mask = picture
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 200, np.uint8)], -1)
    image = save(tmp_path / "rgba.png", rgba)
    out, previews = tmp_path / "out.png", tmp_path / "prev"
    rc = main(
        [
            "--previews",
            str(previews),
            "inpaint",
            str(image),
            "--mask",
            str(mask_path),
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    res = load(out)
    assert res.shape == rgba.shape and np.all(res[..., 3] == 200)
    np.testing.assert_array_equal(res[mask == 0], rgba[mask == 0])
    frames = sorted(previews.glob("step-*.png"))
    assert frames and load(frames[-1]).shape == rgba.shape


def test_inpaint_batch_writes_numbered_files(tmp_path, picture):
    image, mask_path, _, _ = picture
    out = tmp_path / "cand.png"
    rc = main(["inpaint", str(image), "--mask", str(mask_path), "-o", str(out), "--batch", "2"])
    assert rc == 0
    assert (tmp_path / "cand-1.png").is_file() and (tmp_path / "cand-2.png").is_file()


def test_outpaint_classic(tmp_path, picture):
    image, _, img, _ = picture
    out = tmp_path / "big.png"
    rc = main(["outpaint", str(image), "--left", "16", "--bottom", "8", "-o", str(out)])
    assert rc == 0
    res = load(out)
    assert res.shape == (104, 144, 3)
    np.testing.assert_array_equal(res[0:96, 16:144], img)


def test_upscale_classic(tmp_path, picture):
    image, _, img, _ = picture
    out = tmp_path / "up.webp"
    assert main(["upscale", str(image), "--scale", "2", "-o", str(out), "--sharpen", "0.3"]) == 0
    assert Image.open(out).size == (256, 192)


def test_subprocess_python_m_canvasai(tmp_path, picture):
    image, _, _, _ = picture
    out = tmp_path / "up4.png"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "canvasai", "upscale", str(image), "--scale", "4", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (512, 384)
    assert "upscale: step" in proc.stderr  # not a TTY: plain progress lines


def test_models_json_lists_classic(capsys):
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["models"][0]["name"] == "classic"


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("inpaint", "outpaint", "sketch", "upscale"):
        assert name in out and name in SUBCOMMANDS
    assert "models" in out and "export" in out


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims a huge size (a decompression bomb's signature)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def _truncated_png(path: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: _truncated_png(d / "cut.png"), "truncated or corrupt"),
        (lambda d: (d / "t.png").write_text("not an image") and d / "t.png", "not an image"),
        (lambda d: d / "missing.png", "does not exist"),
        (lambda d: _png_claiming(d / "bomb.png", 40000, 40000), "decompression bomb"),
    ],
)
def test_unreadable_input_exits_2_with_a_message(tmp_path, picture, capsys, make, message):
    _, mask_path, _, _ = picture
    bad = make(tmp_path)
    out = tmp_path / "out.png"
    rc = main(["inpaint", str(bad), "--mask", str(mask_path), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["inpaint", "IMG"],  # no --mask / -o
        ["inpaint", "IMG", "--mask", "MASK", "-o", "OUT.xyz"],  # unknown output format
        ["inpaint", "IMG", "--mask", "SMALL", "-o", "OUT.png"],  # mask of the wrong size
        ["inpaint", "IMG", "--mask", "EMPTY", "-o", "OUT.png"],  # nothing masked
        ["outpaint", "IMG", "-o", "OUT.png"],  # no margin
        ["upscale", "IMG", "--scale", "3", "-o", "OUT.png"],
        ["inpaint", "IMG", "--mask", "MASK", "-o", "OUT.png", "--steps", "0"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2(tmp_path, picture, capsys, argv):
    image, mask_path, _, _ = picture
    small = save(tmp_path / "small.png", np.zeros((8, 8), np.uint8))
    empty = save(tmp_path / "empty.png", np.zeros((96, 128), np.uint8))
    subst = {
        "IMG": str(image),
        "MASK": str(mask_path),
        "SMALL": str(small),
        "EMPTY": str(empty),
        "OUT.png": str(tmp_path / "o.png"),
        "OUT.xyz": str(tmp_path / "o.xyz"),
    }
    assert main([subst.get(a, a) for a in argv]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_failed_job_exits_1(tmp_path, picture, capsys):
    image, _, _, _ = picture
    out = tmp_path / "s.png"
    rc = main(
        ["sketch", str(image), "--control", "scribble", "--prompt", "a cat", "--model", "classic"]
        + ["-o", str(out)]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "needs a diffusion model" in err and "Traceback" not in err
    assert not out.exists()


def test_unknown_model_exits_1(tmp_path, picture, capsys, monkeypatch):
    monkeypatch.setenv("CANVASAI_MODELS_DIR", str(tmp_path / "no-models"))
    image, mask_path, _, _ = picture
    rc = main(
        ["inpaint", str(image), "--mask", str(mask_path), "-o", str(tmp_path / "o.png")]
        + ["--model", "no-such-model", "--prompt", "x"]
    )
    assert rc == 1
    assert "no-such-model" in capsys.readouterr().err


def test_progress_bar_on_a_terminal_and_lines_otherwise():
    import io

    from canvasai.cli.io import ProgressPrinter

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = ProgressPrinter(tty, label="inpaint")
    bar(1, 4)
    bar(4, 4)
    bar.message("done")
    text = tty.getvalue()
    assert "\rinpaint [" in text and "4/4" in text and text.endswith("\ndone\n")
    assert "#" * 30 in text

    plain = io.StringIO()
    lines = ProgressPrinter(plain, label="upscale")
    lines(1, 2)
    lines(2, 2)
    assert plain.getvalue().splitlines()[0].startswith("upscale: step 1/2")
    assert "\r" not in plain.getvalue()


def test_no_arguments_or_a_file_opens_the_app(tmp_path, monkeypatch, picture):
    import canvasai.app as app

    calls = []
    monkeypatch.setattr(app, "main", lambda argv=(): calls.append(list(argv)) or 0)
    image, _, _, _ = picture
    assert app.run([]) == 0
    assert app.run([str(image)]) == 0
    assert calls == [[], [str(image)]]
    assert app.run(["no-such-file.ora"]) == 2  # neither a command nor a file: usage error
    assert app.run(["models", "--json"]) == 0 and len(calls) == 2


def test_export_subcommand_is_wired(tmp_path):
    from canvasai.document.document import Document
    from canvasai.formats.ora import save_ora

    doc = Document(32, 16)
    project = tmp_path / "p.ora"
    save_ora(doc, project)
    out = tmp_path / "flat.png"
    assert main(["export", str(project), "-o", str(out)]) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.size == (32, 16)
    assert main(["export", str(tmp_path / "missing.ora"), "-o", str(out)]) == 2


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--grow", "30000"], "--grow: must be between 0 and 512"),
        (["--guidance", "nan"], "--guidance: must be between"),
        (["--steps", "0"], "--steps: must be between 1"),
        (["--batch", "100000"], "--batch: must be between 1"),
    ],
)
def test_out_of_range_arguments_are_usage_errors_without_work(tmp_path, picture, capsys,
                                                              extra, words):
    image, mask_path, _, _ = picture
    rc = main(["inpaint", str(image), "--mask", str(mask_path), "-o", str(tmp_path / "o.png"),
               *extra])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()
