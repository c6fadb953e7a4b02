"""The Poisoning tab."""
