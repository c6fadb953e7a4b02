"""Model registry and the [0, 1]-pixel-space Classifier wrapper."""
