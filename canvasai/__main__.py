from canvasai.app import run

raise SystemExit(run())
