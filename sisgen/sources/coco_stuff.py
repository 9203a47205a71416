"""Placeholder: filled in by the coco_stuff source work."""
