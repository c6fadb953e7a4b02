"""The GAN tab."""
