"""The Image tab: load an image and see what the model makes of it."""
