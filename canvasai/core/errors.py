"""Errors with messages written for the person using the app."""


class CanvasAIError(Exception):
    """Base class: `str(err)` is a complete, human-readable message."""


class InvalidDocumentError(CanvasAIError):
    """A document size or parameter that cannot be honoured."""


class FileFormatError(CanvasAIError):
    """A file that cannot be read: corrupt, hostile, too large or of the wrong kind."""


class ModelError(CanvasAIError):
    """A model that cannot be found, loaded or trusted."""


class GenerationError(CanvasAIError):
    """A generation job that failed."""


class JobCancelled(CanvasAIError):
    """Raised inside a job when the person cancelled it."""
