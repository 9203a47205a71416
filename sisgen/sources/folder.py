"""Placeholder: filled in by the folder source work."""
