"""Pure PyTorch / numpy engine of advstudio. Never imports Qt.

Importing this package is cheap (no torch): submodules import torch when they need it, so the
desktop app can show its window before PyTorch has finished loading.
"""
