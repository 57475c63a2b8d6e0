"""Headless commands: ``canvasai COMMAND ...`` runs one job without the window.

One module per command group (generate, models, export); `entry.main` parses and dispatches.
"""

from canvasai.cli.entry import main

__all__ = ["main"]
