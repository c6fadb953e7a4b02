"""The Defence tab."""
