"""The Qt user interface: main window, canvas widget, panels and dialogs.

Nothing here imports torch or diffusers; model libraries load lazily in
`canvasai.backends` so the window appears before any of them.
"""
