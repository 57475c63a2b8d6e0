"""Requests, planning geometry and the background generation service (QtCore only)."""
