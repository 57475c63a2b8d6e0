"""``canvasai inpaint|outpaint|sketch|upscale``: one job headless, through the app's own flows.

Each command puts the input image on a one-layer document, plans the job with the same
`canvasai.generation.flows` the Generate button uses, runs it with `runner.run_sync`
(the same seeds, routing and backends as the app's service), applies each candidate as
the app's Accept does, and writes the flattened picture. So the CLI has no paste-back,
context or seed logic of its own, and its defaults are the settings model's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from canvasai.cli.commands import subcommand
from canvasai.cli.io import (
    ProgressPrinter,
    UsageError,
    check_output_path,
    read_image,
    read_mask,
    write_image,
)
from canvasai.core.errors import CanvasAIError
from canvasai.core.settings import RANGES, GenerationDefaults

# ---------------------------------------------------------------------------- argument types


def _ranged(key: str, integer: bool) -> Any:
    lo, hi = RANGES[key]

    def parse(text: str) -> float | int:
        try:
            v = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lo <= v <= hi or v != v:  # v != v: NaN
            shown = (int(lo), int(hi)) if integer else (lo, hi)
            raise argparse.ArgumentTypeError(f"must be between {shown[0]} and {shown[1]}, not {v}")
        return v

    return parse


def _seed(text: str) -> int:
    v = int(text)
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError("must be between 0 and 4294967295")
    return v


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {v}")
    return v


D = GenerationDefaults  # the settings model's defaults, shown in --help


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp, ...)")
    p.add_argument("--no-credentials", action="store_true",
                   help="do not sign the output with Content Credentials (C2PA)")


def _credentials(args: argparse.Namespace) -> Any:
    """How outputs are signed (the credentials settings), made once per command."""
    from canvasai.cli.credentials import model_path
    from canvasai.formats.credentials import ContentCredentials

    if getattr(args, "no_credentials", False):
        return ContentCredentials.disabled("--no-credentials")
    return ContentCredentials.from_settings(resolve_model=model_path)


def _with_parent(doc: Any, path: str) -> Any:
    """The input file becomes the parent ingredient of the output (its credentials chained)."""
    from canvasai.formats import credentials as cr
    from canvasai.formats.image_io import MAX_IMAGE_FILE_BYTES, read_file_limited

    try:
        data = read_file_limited(path, MAX_IMAGE_FILE_BYTES, "image")
    except CanvasAIError:
        return doc
    record = cr.parent_record(data, Path(path).name, doc.layers[0] if doc.layers else None)
    if record is not None:
        doc.metadata[cr.PARENT_KEY] = record
    return doc


def _add_generation(p: argparse.ArgumentParser, default_model: str = D.model) -> None:
    g = p.add_argument_group("generation")
    g.add_argument(
        "--model",
        default=default_model,
        help=f"registry name, model folder/file path, or 'classic' (default: {default_model})",
    )
    g.add_argument("--prompt", default="", help="what to generate")
    g.add_argument("--negative-prompt", default="", help="what to avoid")
    g.add_argument("--steps", type=_ranged("generation/steps", True), default=D.steps,
                   help=f"denoising steps ({D.steps})")
    g.add_argument("--seed", type=_seed, default=None, help="random seed (default: random)")
    g.add_argument("--guidance", type=_ranged("generation/guidance", False), default=D.guidance,
                   help=f"classifier-free guidance ({D.guidance})")
    g.add_argument("--strength", type=_ranged("generation/strength", False), default=1.0,
                   help="denoising strength (1.0)")
    g.add_argument("--scheduler", default=D.scheduler, help="default, euler, euler_a, ddim, ...")
    g.add_argument("--batch", type=_ranged("generation/batch_size", True), default=1,
                   help="candidates; files get -1, -2, ... suffixes")
    g.add_argument("--lora", action="append", default=[], type=_lora, metavar="NAME[:WEIGHT]",
                   help="apply a LoRA (registry name or file), weight 1 by default; repeatable. "
                        "<lora:NAME:WEIGHT> in the prompt works too")


def _lora(text: str) -> tuple[str, float]:
    from canvasai.backends.loras import MAX_WEIGHT, MIN_WEIGHT

    name, sep, weight = text.rpartition(":")
    if not sep or not name:
        return text, 1.0
    try:
        w = float(weight)
    except ValueError:
        return text, 1.0  # a path with a colon and no weight
    if not MIN_WEIGHT <= w <= MAX_WEIGHT:
        raise argparse.ArgumentTypeError(f"a LoRA weight is between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}")
    return name, w


def _add_blend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grow", type=_ranged("generation/grow_px", True), default=D.grow_px,
                   help=f"grow the mask (px, {D.grow_px})")
    p.add_argument("--feather", type=_ranged("generation/feather_px", True),
                   default=D.feather_px, help=f"feather the paste-back (px, {D.feather_px})")
    p.add_argument("--color-match", action="store_true",
                   help="match the colours of the result to its surroundings")


# ---------------------------------------------------------------------------- running a job


def _params(args: argparse.Namespace, **extra: Any) -> Any:
    from canvasai.core import settings
    from canvasai.generation.params import FlowParams

    base = FlowParams.from_settings(settings.current().generation)
    common = {
        "prompt": args.prompt,
        "negative_prompt": getattr(args, "negative_prompt", ""),
        "model": args.model,
        "steps": args.steps,
        "seed": args.seed,
        "guidance": getattr(args, "guidance", base.guidance),
        "strength": getattr(args, "strength", base.strength),
        "scheduler": getattr(args, "scheduler", base.scheduler),
        "batch_size": getattr(args, "batch", 1),
        "loras": tuple(getattr(args, "lora", ()) or ()),
    }
    if hasattr(args, "grow"):
        common |= {"grow_px": args.grow, "feather_px": args.feather,
                   "color_match": args.color_match}
    return replace(base, **(common | extra))


def _document(image: np.ndarray, sketch: bool = False) -> Any:
    from canvasai.formats.image_io import document_from_layers, image_to_layer

    h, w = image.shape[:2]
    rgba = image if image.shape[2] == 4 else np.dstack([image, np.full((h, w), 255, np.uint8)])
    layer = image_to_layer(rgba, "Sketch" if sketch else "Image")
    # not marked as a control layer: the sketch flow renders the active layer with
    # the --control type, strength and preprocessing given on the command line
    return document_from_layers(w, h, [layer], 0)


def _run(request: Any, args: argparse.Namespace, place: Any = None) -> Any:
    """Run a request headless with progress on stderr; returns the result or raises.

    `place(frame)` turns a preview frame of the job's area into the picture to save."""
    from canvasai.generation.runner import run_sync

    printer = ProgressPrinter(label=request.task.value)
    preview_dir: Path | None = Path(args.previews) if getattr(args, "previews", None) else None

    def on_preview(step: int, rgba: np.ndarray) -> None:
        assert preview_dir is not None
        write_image(preview_dir / f"step-{step:04d}.png", place(rgba) if place else rgba)

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


def _results(doc: Any, flow: str, params: Any, args: argparse.Namespace, creds: Any = None
             ) -> Iterator[tuple[np.ndarray, int, Any]]:
    """Plan, run and apply `flow` like the app does; yields (flattened picture, seed, its
    Content Credentials manifest, made while the result is in the document)."""
    from canvasai.document.compositing import composite_layers
    from canvasai.document.document import Document
    from canvasai.generation import flows

    _prepare_previews(args)
    try:
        job = flows.plan(doc, flow, params)
    except (CanvasAIError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    if not getattr(args, "previews", None):
        job = replace(job, request=replace(job.request, previews=False))
    result = _run(job.request, args, _placer(doc, job))
    for image, seed in zip(result.images, result.seeds, strict=True):
        # A one-layer document: the result goes into the image layer itself, so a
        # semi-transparent picture keeps its alpha exactly.
        applied = flows.apply_result(doc, job, image, seed, result.metadata, into_active=True)
        target = applied if isinstance(applied, Document) else doc
        manifest = None
        if creds is not None and creds.identity is not None:
            try:
                manifest = creds.manifest(target.layers, doc.metadata, args.output)
            except Exception as exc:  # noqa: BLE001 - the picture is still saved, unsigned
                creds.problem = str(exc)
        yield composite_layers(target.layers, target.rect), int(seed), manifest
        if target is doc:
            doc.undo()


def _placer(doc: Any, job: Any) -> Any:
    """Previews of an area inside the picture are saved over the whole picture."""
    from canvasai.document.compositing import composite_layers

    rect = job.preview_rect or job.target
    if rect.intersect(doc.rect) != rect:
        return None  # the area grows the canvas (outpaint): save the frames as they are
    base = composite_layers(doc.layers, doc.rect)

    def place(frame: np.ndarray) -> np.ndarray:
        if frame.shape[:2] != (rect.h, rect.w):
            return frame
        out = base.copy()
        out[rect.slices()] = frame if frame.shape[2] == 4 else np.dstack(
            [frame, base[rect.slices()][..., 3]])
        return out

    return place


def _save(args: argparse.Namespace, pictures: Iterator[tuple[np.ndarray, int, Any]],
          keep_alpha: bool, creds: Any = None, metadata: Any = None) -> None:
    items = list(pictures)
    path = Path(args.output)
    outs = [path] if len(items) == 1 else [
        path.with_name(f"{path.stem}-{i + 1}{path.suffix}") for i in range(len(items))]
    for out, (img, seed, manifest) in zip(outs, items, strict=True):
        write_image(out, img if keep_alpha else np.ascontiguousarray(img[..., :3]))
        print(f"wrote {out} (seed {seed})", file=sys.stderr)
        if creds is not None:
            _sign_file(out, manifest, creds, metadata)


def _sign_file(out: Path, manifest: Any, creds: Any, metadata: Any) -> None:
    """Embed the output's Content Credentials; an unsigned output says why (never fails)."""
    from canvasai.formats.atomic import atomic_write_bytes
    from canvasai.formats.export import SUFFIXES

    data = out.read_bytes()
    fmt = SUFFIXES.get(out.suffix.lower(), out.suffix.lower().lstrip("."))
    signed = creds.sign_manifest(data, fmt, manifest, metadata, str(out))
    if signed is not data:
        try:
            atomic_write_bytes(out, signed)
        except CanvasAIError as exc:
            print(f"{out.name}: not signed: {exc}", file=sys.stderr)
            return
    print(f"{out.name}: {creds.outcomes[-1].message}", file=sys.stderr)


def _prepare_previews(args: argparse.Namespace) -> None:
    if getattr(args, "previews", None):
        d = Path(args.previews)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create preview folder {d}: {e.strerror or e}") from e


# ---------------------------------------------------------------------------- subcommands


def _args_inpaint(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="input image")
    p.add_argument("--mask", required=True, help="mask image: white (or opaque) = regenerate")
    _add_output(p)
    _add_generation(p)
    p.add_argument("--method", choices=("telea", "ns"), default=D.classic_method,
                   help="classic method")
    _add_blend(p)


@subcommand("inpaint", "regenerate the masked part of an image", _args_inpaint)
def _cmd_inpaint(args: argparse.Namespace) -> int:
    check_output_path(args.output)
    image = read_image(args.image)
    mask = read_mask(args.mask, (image.shape[1], image.shape[0]))
    if not mask.any():
        raise UsageError(f"the mask {args.mask} is empty (no white pixels): nothing to inpaint")
    doc = _with_parent(_document(image), args.image)
    doc.mask.write(0, 0, mask)
    doc.mask.prune()
    params = _params(args, classic_method=args.method)
    creds = _credentials(args)
    _save(args, _results(doc, "inpaint", params, args, creds), image.shape[2] == 4, creds,
          doc.metadata)
    return 0


def _args_outpaint(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="input image")
    for side in ("left", "right", "top", "bottom"):
        p.add_argument(f"--{side}", type=_non_negative_int, default=0, help=f"pixels to add {side}")
    _add_output(p)
    p.add_argument("--prefill", choices=("edge", "infill", "blur", "solid"), default=D.prefill,
                   help=f"({D.prefill})")
    _add_generation(p)
    _add_blend(p)


@subcommand("outpaint", "extend an image beyond its borders", _args_outpaint)
def _cmd_outpaint(args: argparse.Namespace) -> int:
    if max(args.left, args.right, args.top, args.bottom) == 0:
        raise UsageError("give at least one of --left/--right/--top/--bottom")
    check_output_path(args.output)
    image = read_image(args.image)
    params = _params(args, margins=(args.left, args.top, args.right, args.bottom),
                     prefill=args.prefill)
    doc, creds = _with_parent(_document(image), args.image), _credentials(args)
    _save(args, _results(doc, "outpaint", params, args, creds), image.shape[2] == 4, creds,
          doc.metadata)
    return 0


def _args_sketch(p: argparse.ArgumentParser) -> None:
    p.add_argument("sketch", help="the sketch (or photo) to render")
    p.add_argument("--control", choices=("scribble", "lineart", "canny", "depth"), required=True)
    p.add_argument("--controlnet", default=None, help="ControlNet name or path (default: by kind)")
    p.add_argument("--control-scale", type=_ranged("generation/control_scale", False),
                   default=D.control_scale, help=f"conditioning scale ({D.control_scale})")
    p.add_argument(
        "--no-preprocess", action="store_true", help="the sketch is already a control map"
    )
    _add_output(p)
    _add_generation(p, default_model="")


@subcommand("sketch", "render a sketch with a ControlNet", _args_sketch)
def _cmd_sketch(args: argparse.Namespace) -> int:
    from canvasai.backends.api import ControlKind

    if not args.model:
        raise UsageError("sketch needs a diffusion model: pass --model NAME|PATH")
    if not args.prompt:
        raise UsageError("sketch needs --prompt describing the picture")
    check_output_path(args.output)
    sketch = read_image(args.sketch, "sketch")
    params = _params(args, control=ControlKind(args.control), controlnet=args.controlnet,
                     control_scale=args.control_scale, control_preprocess=not args.no_preprocess,
                     sketch_use_mask=False)
    doc, creds = _with_parent(_document(sketch, sketch=True), args.sketch), _credentials(args)
    _save(args, _results(doc, "sketch", params, args, creds), False, creds, doc.metadata)
    return 0


def _args_upscale(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="input image")
    p.add_argument("--scale", type=int, choices=(2, 4), default=D.upscale_factor,
                   help=f"factor ({D.upscale_factor})")
    _add_output(p)
    p.add_argument("--model", default="classic", help="upscaler model, or 'classic' (Lanczos)")
    p.add_argument("--tile", type=_ranged("generation/tile", True), default=D.tile,
                   help=f"tile size ({D.tile})")
    p.add_argument("--overlap", type=_ranged("generation/overlap", True), default=D.overlap,
                   help=f"tile overlap ({D.overlap})")
    p.add_argument("--sharpen", type=float, default=0.0, help="unsharp-mask amount (0 = off)")
    p.add_argument("--refine", type=_ranged("generation/strength", False), default=0.3,
                   help="refine strength (0.3, at most 0.5)")
    p.add_argument("--prompt", default="", help="prompt for model upscalers")
    p.add_argument("--steps", type=_ranged("generation/steps", True), default=D.steps)
    p.add_argument("--seed", type=_seed, default=None)


def _upscale_method(args: argparse.Namespace) -> str:
    """The model's own way (x4 upscaler, or tiled refine when --refine > 0), else Lanczos."""
    from canvasai.generation import flows

    method = flows.ai_upscale_method(args.model)
    return "lanczos" if method is None or (method == "refine" and args.refine <= 0) else method


@subcommand("upscale", "enlarge an image 2x or 4x", _args_upscale)
def _cmd_upscale(args: argparse.Namespace) -> int:
    if args.overlap >= args.tile:
        raise UsageError("--overlap must be smaller than --tile")
    check_output_path(args.output)
    image = read_image(args.image)
    params = _params(args, upscale_factor=args.scale, tile=args.tile, overlap=args.overlap,
                     upscale_sharpen=args.sharpen, upscale_refine_strength=args.refine,
                     upscale_steps=args.steps, upscale_method=_upscale_method(args),
                     upscale_target="new_document")
    doc, creds = _with_parent(_document(image), args.image), _credentials(args)
    _save(args, _results(doc, "upscale", params, args, creds), image.shape[2] == 4, creds,
          doc.metadata)
    return 0
