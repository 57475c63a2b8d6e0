"""Command line: ``canvasai [FILE]`` opens the app; subcommands run one job headless.

Jobs go through `canvasai.generation.runner.run_sync`, i.e. the same seed handling,
backend routing and backend code as the app's `GenerationService`.

Exit codes: 0 success, 1 the job failed, 2 bad arguments or unreadable input,
130 interrupted. Messages go to stderr without tracebacks.

Adding a subcommand: write ``def _args_x(p)`` (declare its arguments) and
``def _cmd_x(args) -> int``, and register them with ``@subcommand("x", help, _args_x)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from canvasai.cli.io import (
    MAX_PIXELS,
    ProgressPrinter,
    UsageError,
    check_output_path,
    read_image,
    read_mask,
    write_image,
)

PROG = "canvasai"
Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Handler


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(
    name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Handler], Handler]:
    """Register a subcommand: `configure` adds its arguments, the decorated function runs it."""

    def register(fn: Handler) -> Handler:
        SUBCOMMANDS[name] = Subcommand(name, help, configure, fn)
        return fn

    return register


# ---------------------------------------------------------------------------- shared arguments


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {v}")
    return v


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {v}")
    return v


def _unit_float(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {v}")
    return v


def _seed(text: str) -> int:
    v = int(text)
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError("must be between 0 and 4294967295")
    return v


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp, ...)")


def _add_generation(p: argparse.ArgumentParser, default_model: str = "classic") -> None:
    g = p.add_argument_group("generation")
    g.add_argument(
        "--model",
        default=default_model,
        help=f"registry name, model folder/file path, or 'classic' (default: {default_model})",
    )
    g.add_argument("--prompt", default="", help="what to generate")
    g.add_argument("--negative-prompt", default="", help="what to avoid")
    g.add_argument("--steps", type=_positive_int, default=20, help="denoising steps (20)")
    g.add_argument("--seed", type=_seed, default=None, help="random seed (default: random)")
    g.add_argument("--guidance", type=float, default=7.0, help="classifier-free guidance (7)")
    g.add_argument("--strength", type=_unit_float, default=1.0, help="denoising strength (1.0)")
    g.add_argument("--scheduler", default="default", help="default, euler, euler_a, ddim, ...")
    g.add_argument(
        "--batch", type=_positive_int, default=1, help="candidates; files get -1, -2, ... suffixes"
    )


def _add_blend(p: argparse.ArgumentParser) -> None:
    from canvasai.backends.masking import DEFAULT_FEATHER_PX, DEFAULT_GROW_PX

    p.add_argument("--grow", type=_non_negative_int, default=DEFAULT_GROW_PX, help="grow mask (px)")
    p.add_argument(
        "--feather", type=_non_negative_int, default=DEFAULT_FEATHER_PX, help="feather (px)"
    )


def _common(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """GenerationRequest keyword arguments shared by the generating subcommands."""
    return dict(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        model=args.model,
        steps=args.steps,
        seed=args.seed,
        guidance=args.guidance,
        strength=args.strength,
        scheduler=args.scheduler,
        batch_size=args.batch,
        previews=bool(getattr(args, "previews", None)),
        **extra,
    )


# ---------------------------------------------------------------------------- running a job


def _run(request: Any, args: argparse.Namespace) -> Any:
    """Run a request headless with progress on stderr; returns the result or raises."""
    from canvasai.generation.runner import run_sync

    printer = ProgressPrinter(label=request.task.value)
    preview_dir: Path | None = Path(args.previews) if getattr(args, "previews", None) else None

    def on_preview(step: int, rgba: np.ndarray) -> None:
        assert preview_dir is not None
        write_image(preview_dir / f"step-{step:04d}.png", rgba)

    if request.model == "classic" and request.prompt:
        printer.message("note: the classic (OpenCV) backend ignores the prompt")
    try:
        result = run_sync(
            request,
            on_progress=printer,
            on_preview=on_preview if preview_dir is not None else None,
            on_note=lambda m: printer.message(f"note: {m}"),
        )
    finally:
        printer.end_line()
    note = result.metadata.get("note")
    if note:
        printer.message(f"{result.metadata.get('backend', 'backend')}: {note}")
    return result


def _outputs(path: Path, n: int) -> list[Path]:
    if n == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i + 1}{path.suffix}") for i in range(n)]


def _save(args: argparse.Namespace, images: Sequence[np.ndarray], seeds: Sequence[int]) -> None:
    for out, img, seed in zip(_outputs(Path(args.output), len(images)), images, seeds, strict=True):
        write_image(out, img)
        print(f"wrote {out} (seed {seed})", file=sys.stderr)


def _prepare_previews(args: argparse.Namespace) -> None:
    if getattr(args, "previews", None):
        d = Path(args.previews)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create preview folder {d}: {e.strerror or e}") from e


# ---------------------------------------------------------------------------- subcommands


def _args_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


@subcommand("models", "list the models CanvasAI can use", _args_models)
def _cmd_models(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = [
        {
            "name": "classic",
            "path": None,
            "family": "opencv",
            "kind": "classic",
            "format": "builtin",
            "usable": True,
            "note": "OpenCV inpaint/outpaint/upscale, no AI model",
        }
    ]
    errors: list[str] = []
    where = ""
    try:
        from canvasai.backends.models import ModelRegistry

        reg = ModelRegistry()
        where = ", ".join(str(d) for d in reg.models_dirs)
        for m in reg.models():
            rows.append(
                {
                    "name": m.name,
                    "path": str(m.path),
                    "family": m.family,
                    "kind": m.kind,
                    "format": m.format,
                    "control_type": m.control_type,
                    "size_bytes": m.size_bytes,
                    "usable": m.usable,
                    "note": m.note,
                }
            )
        errors = list(reg.errors)
    except ImportError as e:
        errors.append(f"model registry unavailable: {e}")
    if args.json:
        print(json.dumps({"models": rows, "models_dirs": where, "errors": errors}, indent=1))
        return 0
    for r in rows:
        bits = ", ".join(str(r[k]) for k in ("family", "kind", "format") if r.get(k))
        flag = "" if r["usable"] else "  [not usable]"
        note = f": {r['note']}" if r.get("note") else ""
        print(f"{r['name']}  ({bits}){flag}{note}")
    if where:
        print(f"\nmodels folder: {where}", file=sys.stderr)
    for e in errors:
        print(f"warning: {e}", file=sys.stderr)
    return 0


def _args_inpaint(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="input image")
    p.add_argument("--mask", required=True, help="mask image: white (or opaque) = regenerate")
    _add_output(p)
    _add_generation(p)
    p.add_argument("--method", choices=("telea", "ns"), default="telea", help="classic method")
    _add_blend(p)


@subcommand("inpaint", "regenerate the masked part of an image", _args_inpaint)
def _cmd_inpaint(args: argparse.Namespace) -> int:
    from canvasai.backends import masking
    from canvasai.backends.api import GenerationRequest, Task

    check_output_path(args.output)
    image = read_image(args.image)
    mask = read_mask(args.mask, (image.shape[1], image.shape[0]))
    if not mask.any():
        raise UsageError(f"the mask {args.mask} is empty (no white pixels): nothing to inpaint")
    _prepare_previews(args)
    options = {masking.GROW_OPTION: args.grow, masking.FEATHER_OPTION: args.feather}
    request = GenerationRequest(
        Task.INPAINT,
        image=image,
        mask=mask,
        classic_method=args.method,
        options=options,
        **_common(args),
    )
    result = _run(request, args)
    # Guarantee, whatever the backend did: nothing outside the feathered mask changes.
    alpha = masking.feather_mask(mask, args.grow, args.feather)
    images = [masking.paste_back(image, _fit(img, image), alpha) for img in result.images]
    _save(args, images, result.seeds)
    return 0


def _fit(generated: np.ndarray, like: np.ndarray) -> np.ndarray:
    if generated.shape[:2] != like.shape[:2]:
        raise RuntimeError(
            f"the backend returned a {generated.shape[1]}x{generated.shape[0]} image for a "
            f"{like.shape[1]}x{like.shape[0]} input"
        )
    return generated


def _args_outpaint(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="input image")
    for side in ("left", "right", "top", "bottom"):
        p.add_argument(f"--{side}", type=_non_negative_int, default=0, help=f"pixels to add {side}")
    _add_output(p)
    p.add_argument(
        "--prefill", choices=("edge", "infill", "blur", "solid"), default="infill", help="(infill)"
    )
    _add_generation(p)
    _add_blend(p)


@subcommand("outpaint", "extend an image beyond its borders", _args_outpaint)
def _cmd_outpaint(args: argparse.Namespace) -> int:
    from canvasai.backends import masking
    from canvasai.backends.api import GenerationRequest, OutpaintSettings, Task

    margins = (args.left, args.right, args.top, args.bottom)
    if max(margins) == 0:
        raise UsageError("give at least one of --left/--right/--top/--bottom")
    check_output_path(args.output)
    image = read_image(args.image)
    h, w = image.shape[:2]
    if (w + args.left + args.right) * (h + args.top + args.bottom) > MAX_PIXELS:
        raise UsageError("the outpainted image would be larger than the pixel limit")
    _prepare_previews(args)
    options = {masking.GROW_OPTION: args.grow, masking.FEATHER_OPTION: args.feather}
    settings = OutpaintSettings(*margins, prefill=args.prefill)
    request = GenerationRequest(
        Task.OUTPAINT, image=image, outpaint=settings, options=options, **_common(args)
    )
    result = _run(request, args)
    base, new_area = masking.outpaint_canvas(image, *margins, prefill="edge")
    alpha = masking.feather_mask(new_area, args.grow, args.feather)
    images = [masking.paste_back(base, _fit(img, base), alpha) for img in result.images]
    _save(args, images, result.seeds)
    return 0


def _args_sketch(p: argparse.ArgumentParser) -> None:
    p.add_argument("sketch", help="the sketch (or photo) to render")
    p.add_argument("--control", choices=("scribble", "lineart", "canny", "depth"), required=True)
    p.add_argument("--controlnet", default=None, help="ControlNet name or path (default: by kind)")
    p.add_argument("--control-scale", type=float, default=1.0, help="conditioning scale (1.0)")
    p.add_argument(
        "--no-preprocess", action="store_true", help="the sketch is already a control map"
    )
    _add_output(p)
    _add_generation(p, default_model="")


@subcommand("sketch", "render a sketch with a ControlNet", _args_sketch)
def _cmd_sketch(args: argparse.Namespace) -> int:
    from canvasai.backends.api import ControlKind, ControlSettings, GenerationRequest, Task

    if not args.model:
        raise UsageError("sketch needs a diffusion model: pass --model NAME|PATH")
    if not args.prompt:
        raise UsageError("sketch needs --prompt describing the picture")
    check_output_path(args.output)
    sketch = read_image(args.sketch, "sketch")
    _prepare_previews(args)
    control = ControlSettings(
        kind=ControlKind(args.control),
        image=sketch,
        model=args.controlnet,
        preprocess=not args.no_preprocess,
        scale=args.control_scale,
    )
    h, w = sketch.shape[:2]
    request = GenerationRequest(Task.SKETCH, control=control, width=w, height=h, **_common(args))
    result = _run(request, args)
    _save(args, result.images, result.seeds)
    return 0


def _args_upscale(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="input image")
    p.add_argument("--scale", type=int, choices=(2, 4), default=2, help="factor (2)")
    _add_output(p)
    p.add_argument("--model", default="classic", help="upscaler model, or 'classic' (Lanczos)")
    p.add_argument("--tile", type=_positive_int, default=512, help="tile size (512)")
    p.add_argument("--overlap", type=_non_negative_int, default=64, help="tile overlap (64)")
    p.add_argument("--sharpen", type=float, default=0.0, help="unsharp-mask amount (0 = off)")
    p.add_argument("--refine", type=_unit_float, default=0.3, help="refine strength (0.3)")
    p.add_argument("--prompt", default="", help="prompt for model upscalers")
    p.add_argument("--steps", type=_positive_int, default=20)
    p.add_argument("--seed", type=_seed, default=None)


@subcommand("upscale", "enlarge an image 2x or 4x", _args_upscale)
def _cmd_upscale(args: argparse.Namespace) -> int:
    from canvasai.backends.api import GenerationRequest, Task, UpscaleSettings

    if args.overlap >= args.tile:
        raise UsageError("--overlap must be smaller than --tile")
    check_output_path(args.output)
    image = read_image(args.image)
    h, w = image.shape[:2]
    if w * h * args.scale * args.scale > MAX_PIXELS:
        raise UsageError(f"{w}x{h} upscaled {args.scale}x would exceed the pixel limit")
    _prepare_previews(args)
    settings = UpscaleSettings(
        scale=args.scale,
        tile=args.tile,
        overlap=args.overlap,
        refine_strength=args.refine,
        sharpen=args.sharpen,
    )
    request = GenerationRequest(
        Task.UPSCALE,
        image=image,
        upscale=settings,
        model=args.model,
        prompt=args.prompt,
        steps=args.steps,
        seed=args.seed,
        previews=bool(args.previews),
    )
    result = _run(request, args)
    _save(args, result.images, result.seeds)
    return 0


# ---------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--previews",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="save each step's preview as DIR/step-NNNN.png",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="CanvasAI: painting and AI editing. Without a command, opens the app.",
        parents=[common],
    )
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    for sc in SUBCOMMANDS.values():
        sp = subs.add_parser(sc.name, help=sc.help, description=sc.help, parents=[common])
        sc.configure(sp)
        sp.set_defaults(_handler=sc.run)
    from canvasai.cli.export import add_export_parser, run_export

    add_export_parser(subs).set_defaults(_handler=run_export)
    return parser


def _open_app(argv: Sequence[str] = ()) -> int:
    try:
        from canvasai.app import main as app_main
    except ModuleNotFoundError as e:
        if e.name != "canvasai.app":
            raise
        print(
            f"{PROG}: the desktop app is not part of this build; see {PROG} --help",
            file=sys.stderr,
        )
        return 2
    return int(app_main(list(argv)) or 0)


def _is_app_launch(args: Sequence[str]) -> bool:
    """No arguments, or a first argument that is an existing file (a document to open)."""
    if not args:
        return True
    first = args[0]
    return (first not in SUBCOMMANDS and first != "export" and not first.startswith("-")
            and Path(first).is_file())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if _is_app_launch(args_list):
        return _open_app(args_list)
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2), already printed
        return int(e.code or 0)
    if getattr(args, "_handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    if not hasattr(args, "previews"):
        args.previews = None
    from canvasai.core.errors import CanvasAIError, GenerationError, JobCancelled

    try:
        return args._handler(args)
    except UsageError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except JobCancelled:
        print(f"{PROG} {args.command}: cancelled", file=sys.stderr)
        return 130
    except (GenerationError, CanvasAIError) as e:
        print(f"{PROG} {args.command}: failed: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # writing the output (disk full, permissions, ...)
        print(f"{PROG} {args.command}: failed: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        print(f"{PROG} {args.command}: failed: {e}", file=sys.stderr)
        return 1
