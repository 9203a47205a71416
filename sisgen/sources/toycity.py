"""Placeholder: filled in by the toycity source work."""
