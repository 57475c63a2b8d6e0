"""`canvasai export PROJECT.ora -o OUT [--layers DIR] [--format ...]`.

Every file written carries signed Content Credentials (see canvasai.formats.credentials)
unless `--no-credentials`, `--no-metadata` or the settings say otherwise; whether each
was signed, or why not, is said on stderr. Exporting an image keeps it as the parent
ingredient (its own credentials chained).

Wired into the main command line by `add_export_parser(subparsers)`; the
parser's default `func` is `run_export(args) -> int` (0 on success, 2 on a
file error, with the message on stderr). No Qt, no torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from canvasai.core.errors import CanvasAIError
from canvasai.formats.credentials import ContentCredentials, open_image_with_credentials
from canvasai.formats.export import (
    EXTENSION,
    ExportOptions,
    check_format_matches_path,
    export_flattened,
    export_layers,
    export_selection,
    format_for_path,
)
from canvasai.formats.ora import load_ora


def add_export_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="export a project's flattened image, layers or selection",
        description="Export an .ora project (or an image) to PNG, JPEG, WebP or TIFF.",
    )
    p.add_argument("project", help="the .ora project (or an image file) to export")
    p.add_argument("-o", "--output", help="the flattened image to write (format from its suffix)")
    p.add_argument("--layers", metavar="DIR", help="also write each layer into this folder")
    p.add_argument("--selection", metavar="FILE", help="also write the saved selection")
    p.add_argument(
        "--format",
        choices=["png", "jpeg", "jpg", "webp", "tiff", "tif"],
        help="output format (default: from the output suffix, else png)",
    )
    p.add_argument("--quality", type=int, default=92, help="JPEG/WebP quality 1-100 (default 92)")
    p.add_argument("--lossless", action="store_true", help="lossless WebP")
    p.add_argument("--scale", type=float, default=1.0, help="scale factor, e.g. 0.5 (default 1)")
    p.add_argument(
        "--no-metadata",
        action="store_true",
        help="write no generation parameters, AI provenance metadata or Content Credentials",
    )
    p.add_argument(
        "--no-credentials",
        action="store_true",
        help="do not sign (no C2PA Content Credentials; default: the credentials settings)",
    )
    p.set_defaults(func=run_export)
    return p


def run_export(args: argparse.Namespace) -> int:
    if not (args.output or args.layers or args.selection):
        print("canvasai export: give -o OUT, --layers DIR or --selection FILE", file=sys.stderr)
        return 2
    try:

        def options(target: str | None) -> ExportOptions:
            fmt = args.format or (format_for_path(target) if target else "png")
            return ExportOptions(
                format=fmt,
                quality=args.quality,
                lossless=args.lossless,
                scale=args.scale,
                metadata=not args.no_metadata,
            ).validated()

        # Refuse a format/suffix mismatch (TIFF bytes in x.png) before any work.
        for target in (args.output, args.selection):
            if target:
                check_format_matches_path(target, options(target))
        src = Path(args.project)
        if src.suffix.lower() == ".ora":
            doc = load_ora(src)
        else:  # an image: it becomes the parent ingredient of what is exported
            doc, _seen = open_image_with_credentials(src)
        if getattr(args, "no_credentials", False):
            creds = ContentCredentials.disabled("--no-credentials")
        else:
            from canvasai.cli.credentials import model_path

            creds = ContentCredentials.from_settings(resolve_model=model_path)

        written: list[Path] = []
        if args.output:
            out = Path(args.output)
            opts = options(args.output)
            if not out.suffix:
                out = out.with_suffix(EXTENSION[opts.format])
            written.append(export_flattened(doc, out, opts, creds))
        if args.layers:
            written += export_layers(doc, args.layers, options(None), creds)
        if args.selection:
            written.append(export_selection(doc, args.selection, options(args.selection), creds))
    except CanvasAIError as exc:
        print(f"canvasai export: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    if creds.outcomes:  # signed or not, and why not: on stderr, the paths stay on stdout
        print(f"canvasai export: {creds.summary()}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m canvasai.cli.export ...`), same options."""
    parser = argparse.ArgumentParser(prog="canvasai")
    add_export_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
