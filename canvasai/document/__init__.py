"""The document model: layers of sparse tiled pixels, compositing, masks and undo.

Imports neither Qt nor torch: everything here runs in a plain pytest.
"""
