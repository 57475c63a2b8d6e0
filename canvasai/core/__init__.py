"""Qt-free, torch-free basics shared by every layer: geometry, events, errors."""
