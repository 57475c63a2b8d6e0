"""Test support: tiny random-weight models and pytest fixtures (no downloads)."""
