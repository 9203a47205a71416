"""ToyCity placeholder (vocabulary only); the procedural renderer lands next."""

from __future__ import annotations


def toycity_vocabulary():
    """The ToyCity class list."""
    from .vocab import ClassInfo, Vocabulary

    names = ["sky", "road", "sidewalk", "building", "vegetation", "grass", "pole", "car", "person"]
    return Vocabulary("toycity", [ClassInfo(i, n, (i * 20, 0, 0), n in ("car", "person"))
                                  for i, n in enumerate(names)])
