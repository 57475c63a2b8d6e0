"""Painting, mask and selection tools over plain `PointerEvent`s (no Qt, no torch)."""
