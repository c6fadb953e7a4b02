"""advstudio: a desktop workbench for adversarial machine learning."""

__version__ = "0.1.0"
