"""The Certify tab."""
