"""The Runs tab: the run history."""
