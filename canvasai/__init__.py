"""CanvasAI: a desktop painting and iterative AI-editing app."""

__version__ = "0.1.0"
