"""Headless commands: ``canvasai [FILE]`` opens the app; ``canvasai COMMAND ...`` runs one job.

One module per command group; `main` is the console-script entry point.
"""

from canvasai.cli.entry import main

__all__ = ["main"]
