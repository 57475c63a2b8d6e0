"""Command line: ``canvasai COMMAND ...`` runs one job headless (``canvasai [FILE]`` opens
the window: `canvasai.app.run` decides which, with `is_command`).

The generating commands live in `canvasai.cli.generate` (they reuse the app's flows),
`models` in `canvasai.cli.models`, `export` in `canvasai.cli.export`, `credentials` in
`canvasai.cli.credentials`.

Exit codes: 0 success, 1 the job failed, 2 bad arguments or unreadable input,
130 interrupted. Messages go to stderr without tracebacks.

Adding a subcommand: write ``def _args_x(p)`` (declare its arguments) and
``def _cmd_x(args) -> int`` in a command-group module, and register them with
``@subcommand("x", help, _args_x)`` from `canvasai.cli.commands`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from canvasai.cli import generate  # noqa: F401 - registers inpaint, outpaint, sketch, upscale
from canvasai.cli.commands import SUBCOMMANDS
from canvasai.cli.io import UsageError

PROG = "canvasai"


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
    from canvasai.cli.credentials import add_credentials_parser, run_credentials
    from canvasai.cli.export import add_export_parser, run_export
    from canvasai.cli.models import add_models_parser, run_models

    add_models_parser(subs).set_defaults(_handler=run_models)
    add_export_parser(subs).set_defaults(_handler=run_export)
    add_credentials_parser(subs).set_defaults(_handler=run_credentials)
    return parser


def is_command(args: Sequence[str]) -> bool:
    """Whether `args` ask for a headless command (or --help) rather than the window: the
    window opens for no arguments or a first argument that is an existing file."""
    if not args:
        return False
    first = args[0]
    return (first in SUBCOMMANDS or first in ("export", "models", "credentials") or first.startswith("-")
            or not Path(first).is_file())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
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
