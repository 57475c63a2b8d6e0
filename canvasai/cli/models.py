"""`canvasai models [--json]`: the models CanvasAI can use, and the entries it refused.

Also: ``--installs [FOLDER ...]`` lists existing ComfyUI / A1111 / Forge / InvokeAI
installs and the HF cache (found in the usual places and in the folders given);
``--catalog`` lists the starter catalogue; ``--download ID`` downloads a catalogue entry
(or any ``org/name`` repository) into the Hugging Face cache, with progress on stderr,
hash checks, and ``--accept-licence`` required for gated or non-commercial models.

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
    p.add_argument("--installs", nargs="*", metavar="FOLDER", default=None,
                   help="list existing ComfyUI / A1111 / Forge / InvokeAI installs and the HF "
                   "cache (the usual places, plus FOLDER...)")
    p.add_argument("--catalog", action="store_true", help="list the starter catalogue")
    p.add_argument("--download", metavar="ID", help="download a catalogue entry (or org/name "
                   "repository) into the Hugging Face cache")
    p.add_argument("--token", default=None, help="Hugging Face access token (gated models)")
    p.add_argument("--accept-licence", action="store_true",
                   help="accept the licence of a gated or non-commercial model")
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


def _run_installs(folders: list[str], as_json: bool) -> int:
    from canvasai.backends import installs

    found = installs.find_installs(folders)
    rows = [{"kind": i.kind, "label": i.label, "root": str(i.root), "models_dir": str(i.models_dir),
             "files": i.files, "size_bytes": i.size_bytes, "problems": list(i.problems)}
            for i in found]
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['label']}: {r['root']}\n    add {r['models_dir']} to the models folders "
              f"({r['files']} model files, {r['size_bytes'] / 1e9:.1f} GB)")
    if not rows:
        print("No existing install found.", file=sys.stderr)
    return 0


def _run_catalog(as_json: bool) -> int:
    from dataclasses import asdict

    from canvasai.backends import catalog

    if as_json:
        print(json.dumps([asdict(e) for e in catalog.CATALOG], indent=1))
        return 0
    for label, entries in catalog.by_use():
        print(label)
        for e in entries:
            flags = ", ".join(f for f, on in (("gated", e.gated), ("non-commercial", e.non_commercial))
                              if on)
            print(f"  {e.id:<26} {e.repo}  ~{e.size_gb:g} GB download, ~{e.memory_gb:g} GB GPU, "
                  f"{e.licence}" + (f" [{flags}]" if flags else ""))
    return 0


def _run_download(args: argparse.Namespace) -> int:
    from canvasai.backends import catalog, downloads

    entry = catalog.get(args.download)
    repo = entry.repo if entry is not None else args.download
    if entry is None and "/" not in repo:
        print(f"error: {repo!r} is neither a catalogue id (see --catalog) nor an org/name "
              "repository", file=sys.stderr)
        return 2
    if entry is not None and entry.needs_acceptance and not args.accept_licence:
        print(f"error: {entry.title} is under the {entry.licence} ({entry.licence_url}); read it "
              "and pass --accept-licence to download.", file=sys.stderr)
        return 2
    last = [0.0]

    def progress(p: downloads.Progress) -> None:
        import time

        now = time.monotonic()
        if now - last[0] >= 1.0 or p.done == p.total:
            last[0] = now
            print(f"\r{downloads.describe_progress(p)}", end="", file=sys.stderr, flush=True)

    try:
        kwargs = {"allow": entry.allow, "ignore": entry.ignore} if entry is not None else {}
        snap = downloads.download(repo, token=args.token, progress=progress, **kwargs)
    except downloads.DownloadError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ncancelled", file=sys.stderr)
        return 130
    print(file=sys.stderr)
    print(snap)
    return 0


def run_models(args: argparse.Namespace) -> int:
    as_json = bool(getattr(args, "json", False))
    if getattr(args, "installs", None) is not None:
        return _run_installs(list(args.installs), as_json)
    if getattr(args, "catalog", False):
        return _run_catalog(as_json)
    if getattr(args, "download", None):
        return _run_download(args)
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
