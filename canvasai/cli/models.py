"""`canvasai models [--json]`: the models CanvasAI can use, and the entries it refused.

Wired into the main command line by `add_models_parser(subparsers)`; the parser's
default ``func`` is `run_models(args) -> int`. It lists THE registry
(`canvasai.backends.models.registry()`, freshly rescanned), the same one the app's
panel and every job use. A bad entry in a models folder is one "refused" line with
its reason; nothing in a models folder can make this command print a traceback.

Exit code 0 when the listing worked (even with refused entries), 1 when the
registry itself could not be built. No Qt, no torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

CLASSIC_ROW: dict[str, Any] = {
    "name": "classic",
    "path": None,
    "family": "opencv",
    "kind": "classic",
    "format": "builtin",
    "control_type": None,
    "size_bytes": 0,
    "usable": True,
    "note": "OpenCV inpaint/outpaint/upscale, no AI model",
}


def add_models_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "models",
        help="list the models CanvasAI can use",
        description="List the models found in the models folders (and the Hugging Face "
        "cache), and every entry that was refused, with the reason.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_models)
    return p


def collect() -> dict[str, Any]:
    """``{"models": [...], "refused": [...], "models_dirs": [...], "errors": [...]}``.

    Never raises for anything found on disk; a failure to build the registry at all
    is reported in ``errors`` (and ``ok`` is False).
    """
    usable: list[dict[str, Any]] = [dict(CLASSIC_ROW)]
    refused: list[dict[str, Any]] = []
    errors: list[str] = []
    dirs: list[str] = []
    ok = True
    try:
        from canvasai.backends import models
        from canvasai.backends.models import registry

        reg = registry()
        dirs = [str(d) for d in reg.models_dirs]
        for m in reg.rescan():
            row = {
                "name": m.name,
                "path": str(m.path),
                "family": m.family,
                "kind": m.kind,
                "format": m.format,
                "control_type": m.control_type,
                "size_bytes": m.size_bytes,
                "usable": m.usable,
                "note": m.note,
                "variant": m.variant,
                "parts": {role: str(path) for role, path in m.parts},
                "memory_bytes": models.memory_estimate(m) if m.kind in models.MAIN_KINDS else 0,
            }
            (usable if m.usable else refused).append(row)
        errors = list(reg.errors)
    except Exception as exc:  # noqa: BLE001 - this command must never end in a traceback
        ok = False
        errors.append(f"cannot list models: {type(exc).__name__}: {exc}")
    return {"models": usable, "refused": refused, "models_dirs": dirs, "errors": errors, "ok": ok}


def _line(row: dict[str, Any]) -> str:
    bits = [str(row[k]) for k in ("family", "variant", "kind") if row.get(k)]
    if row.get("control_type"):
        bits.append(str(row["control_type"]))
    if row.get("format"):
        bits.append(str(row["format"]))
    if row.get("size_bytes"):
        bits.append(f"{row['size_bytes'] / 1e9:.1f} GB")
    if row.get("memory_bytes"):
        bits.append(f"needs ~{row['memory_bytes'] / 1e9:.0f} GB GPU memory")
    note = f": {row['note']}" if row.get("note") else ""
    parts = "".join(f"\n    {role}: {path}" for role, path in (row.get("parts") or {}).items())
    return f"{row['name']}  ({', '.join(bits)}){note}{parts}"


def run_models(args: argparse.Namespace) -> int:
    data = collect()
    try:
        if getattr(args, "json", False):
            print(json.dumps(data, indent=1))
            return 0 if data["ok"] else 1
        for row in data["models"]:
            print(_line(row))
        if data["refused"]:
            print(f"\nrefused ({len(data['refused'])}):")
            for row in data["refused"]:
                print(f"  {row['name']}  [{row['kind']}]: {row['note'] or 'not usable'}")
                print(f"    {row['path']}")
        if data["models_dirs"]:
            print(f"\nmodels folder: {', '.join(data['models_dirs'])}", file=sys.stderr)
        reported = {f"{r['name']}: {r['note']}" for r in data["refused"]}
        for e in data["errors"]:
            if e not in reported:
                print(f"warning: {e}", file=sys.stderr)
    except BrokenPipeError:  # `canvasai models | head`
        return 0
    return 0 if data["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m canvasai.cli.models ...`), same options."""
    parser = argparse.ArgumentParser(prog="canvasai")
    add_models_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
