"""ToyCity: the built-in procedural street-scene dataset, and its ``toycity`` source.

ToyCity renders a street seen from a car's dashboard camera, as a pair (label map, photo),
with nothing but numpy and OpenCV, in a few milliseconds per sample. It is the default
dataset of the quickstart: a tiny SPADE generator learns it on a laptop CPU in minutes, and
each class has a look a person recognises in a generated contact sheet.

The pieces, in the order a sample is made (:func:`render`):

* :mod:`.layout` -- the street: camera, road cross-section, facades of buildings and
  trees, the far wall, light and materials, rasterised into a primitive map;
* :mod:`.objects` -- cars, people, trees, street lamps and sign posts, placed in
  perspective and drawn back to front onto the map (:mod:`.primitives`);
* :mod:`.painting` -- the label map, the instance map and the textured, lit photo, all
  functions of the one primitive map, so labels and photo agree pixel for pixel.

The classes are the ``toycity`` vocabulary (``sisgen.get_vocabulary("toycity")``); the
constants :data:`SKY` .. :data:`PERSON` name its ids. :class:`ToyCity` is the dataset,
:class:`ToyCitySource` the label-map source ``sisgen.sources.open("toycity", ...)``.
"""

from __future__ import annotations

from .classes import (
    BUILDING,
    CAR,
    PERSON,
    POLE,
    ROAD,
    SIDEWALK,
    SIGN,
    SKY,
    TERRAIN,
    VEGETATION,
)
from .render import ToyCity, render
from .source import ToyCitySource

__all__ = ["BUILDING", "CAR", "PERSON", "POLE", "ROAD", "SIDEWALK", "SIGN", "SKY", "TERRAIN",
           "VEGETATION", "ToyCity", "ToyCitySource", "render"]
