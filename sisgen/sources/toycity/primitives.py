"""The primitive map: every pixel of a ToyCity scene names the part that covers it.

Geometry is rasterised once into a ``uint16`` map of *primitive* ids, drawn with aliased
OpenCV fills at the target resolution; the label map, the instance map and the photo are
all functions of that map (:mod:`.painting`), so labels and photo agree pixel for pixel.
Primitives below :data:`FIRST_PART` are the textured stuff of class id ``p`` (what
:meth:`~.layout.Street.rasterise` writes); every drawn part of an object (a car's glass, a
person's shirt) gets its own id with a class, an object and a flat colour.
"""

from __future__ import annotations

import cv2
import numpy as np

from .classes import NUM_CLASSES
from .layout import Street
from .palette import Rgb

#: Primitive ids below this are "textured stuff of class id".
FIRST_PART = 16


class Canvas:
    """A primitive map being drawn, with its part and object tables.

    Args:
        street: The scene's layout (for the projection).
        prim: The ``h×w`` uint16 stuff map from :meth:`~.layout.Street.rasterise`; drawn
            on in place.

    Attributes:
        prim: The primitive map.
        part_cls: Primitive id -> class id (255 for unused ids).
        part_obj: Primitive id -> object index (0 = none).
        part_rgb: Primitive id -> flat colour (unused for textured stuff).
        obj_cls: Object index -> class (index 0 = none).
    """

    def __init__(self, street: Street, prim: np.ndarray) -> None:
        self.street = street
        self.prim = prim
        self.part_cls: list[int] = list(range(NUM_CLASSES)) + [255] * (FIRST_PART - NUM_CLASSES)
        self.part_obj: list[int] = [0] * FIRST_PART
        self.part_rgb: list[Rgb] = [(0.0, 0.0, 0.0)] * FIRST_PART
        self.obj_cls: list[int] = [0]

    def new_object(self, cls: int) -> int:
        """A new object (instance) of class ``cls``; returns its index."""
        self.obj_cls.append(cls)
        return len(self.obj_cls) - 1

    def part(self, cls: int, obj: int, rgb: Rgb) -> int:
        """A new primitive of class ``cls``, object ``obj`` (0 = none) and colour ``rgb``."""
        self.part_cls.append(cls)
        self.part_obj.append(obj)
        self.part_rgb.append(rgb)
        return len(self.part_cls) - 1

    def fill(self, pts: list[tuple[float, float]], pid: int) -> None:
        """Fill the image polygon ``pts`` (column, row; pixel centres at +0.5) with ``pid``."""
        # Sub-pixel vertices (4 fractional bits); OpenCV puts integer coordinates on pixel
        # centres, ours are at +0.5.
        a = np.array([(round(x * 16.0 - 8.0), round(y * 16.0 - 8.0)) for x, y in pts],
                     np.int32)
        cv2.fillPoly(self.prim, [a], pid, cv2.LINE_8, 4)

    def fill3(self, pts: list[tuple[float, float, float]], pid: int) -> None:
        """Fill the projection of the world polygon ``pts`` (``x, y, z``) with ``pid``."""
        st = self.street
        f, xv, yh, hc = st.f, st.xv, st.yh, st.hc
        self.fill([(xv + f * x / z, yh + f * (hc - y) / z) for x, y, z in pts], pid)

    def disc(self, cx: float, cy: float, radius: float, pid: int) -> None:
        """Fill a disc of ``radius`` pixels (at least half a pixel) around ``(cx, cy)``."""
        cv2.circle(self.prim, (round((cx - 0.5) * 16), round((cy - 0.5) * 16)),
                   max(round(radius * 16), 8), pid, -1, cv2.LINE_8, 4)
