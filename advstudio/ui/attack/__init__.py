"""The Attack tab and the four panels it holds (sweep, robust accuracy, boundary, transforms)."""
