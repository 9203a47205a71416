"""The ToyCity class ids the renderer draws, taken from the ``toycity`` vocabulary.

The class list itself lives with the other presets in :mod:`sisgen.vocab`
(``get_vocabulary("toycity")``); here each class the renderer paints gets a constant, looked
up by name. The renderer indexes small tables by class id, so the vocabulary's ids must be
``0..N-1`` in this order; importing this module checks that.
"""

from __future__ import annotations

from ...vocab import get_vocabulary

#: The classes the renderer paints, in id order.
CLASS_NAMES = ("sky", "road", "sidewalk", "building", "vegetation", "terrain", "pole",
               "traffic sign", "car", "person")


def _class_ids() -> list[int]:
    vocab = get_vocabulary("toycity")
    ids = [vocab.resolve(name) for name in CLASS_NAMES]
    if ids != list(range(len(CLASS_NAMES))) or vocab.ids != ids:
        raise RuntimeError(f"the toycity vocabulary {vocab.names} does not number the "
                           f"renderer's classes {list(CLASS_NAMES)} as 0..{len(ids) - 1}")
    return ids


SKY, ROAD, SIDEWALK, BUILDING, VEGETATION, TERRAIN, POLE, SIGN, CAR, PERSON = _class_ids()
NUM_CLASSES = len(CLASS_NAMES)
#: Stuff classes textured from their own coordinates (the rest carry flat part colours).
TEXTURED = (SKY, ROAD, SIDEWALK, BUILDING, VEGETATION, TERRAIN)
