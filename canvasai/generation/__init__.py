"""Editing flows (document <-> request), generation history, the runner and the QThread service."""
