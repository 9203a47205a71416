"""Placeholder: filled in by the cityscapes source work."""
