"""Placeholder: filled in by the coco source work."""
