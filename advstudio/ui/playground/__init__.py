"""The Playground tab."""
