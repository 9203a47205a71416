"""Painting edits: ``stroke``, ``fill`` (polygon or box), ``flood_fill`` and ``canvas``.

These are the scene editor's brush, polygon / rectangle and bucket tools, written as edits so
that a painted scene is a recipe like any other (``sisgen generate --recipe`` replays it)::

    edits:
      - {op: canvas, class: road, size: [64, 128]}            # a blank map of one class
      - {op: stroke, class: vegetation, points: [[10, 20], [10, 60]], radius: 1.5}
      - {op: fill, class: building, polygon: [[0, 0], [0, 40], [30, 20]]}
      - {op: fill, class: car, box: [40, 10, 52, 34]}         # [y0, x0, y1, x1], end exclusive
      - {op: flood_fill, class: sky, at: [2, 100]}

Coordinates are pixel indices ``[y, x]`` (row, column) of the map the edit runs on, which
must lie inside it: a recipe of painted steps is made for maps of one size. Every painted
pixel gets exactly the class id (no anti-aliasing, no interpolation); the class may be
``ignore`` (255), the eraser of a label tool. Instances: a painted thing class gets the
instance id ``instance`` (default ``new``: one fresh id for the whole step, ``class * 1000 + k``
when the map numbers its instances that way, else max + 1, as ``paste`` allocates them);
painted stuff and ignore pixels get instance 0. A map without an instance map gets semantic
pixels only.

The steps draw no random numbers besides the ``p`` coin every edit flips, so a painted
recipe gives the same map for every seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from ..errors import SisgenInputError
from ..labelmap import NOISE_MASK_KEY, SOURCE_PIXEL_KEY, LabelMap
from ..vocab import Vocabulary
from .base import Edit, register_edit
from .checks import check_class, check_int, check_number, check_pair, is_int, resolve_class
from .paste import IdAllocator

__all__ = ["MAX_POINTS", "Canvas", "Fill", "FloodFill", "Stroke", "check_box",
           "check_instance_choice", "check_point", "check_points", "paint",
           "polygon_mask", "region_at", "require_inside", "stroke_mask"]

#: Most vertices a stroke or polygon may have (a bound on recipe and request sizes).
MAX_POINTS = 10_000


# ===================================================================== checks
def check_point(value: Any, name: str) -> tuple[int, int]:
    """``[y, x]``: two non-negative integers (a pixel index)."""
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2
            or not all(is_int(v) and v >= 0 for v in value)):
        raise SisgenInputError(f"{name} must be [y, x], two non-negative integers, "
                               f"got {value!r}")
    return int(value[0]), int(value[1])


def check_points(value: Any, name: str, minimum: int = 1) -> list[list[int]]:
    """A list of ``minimum`` to :data:`MAX_POINTS` points ``[y, x]``."""
    if (not isinstance(value, Sequence) or isinstance(value, str)
            or not minimum <= len(value) <= MAX_POINTS):
        raise SisgenInputError(f"{name} must be a list of {minimum} to {MAX_POINTS} points "
                               f"[y, x], got {value!r}")
    return [list(check_point(p, f"{name}[{i}]")) for i, p in enumerate(value)]


def check_box(value: Any, name: str = "box") -> list[int]:
    """``[y0, x0, y1, x1]``: non-negative integers with ``y0 < y1`` and ``x0 < x1``."""
    ok = (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 4
          and all(is_int(v) and v >= 0 for v in value))
    if not ok or not (value[0] < value[2] and value[1] < value[3]):
        raise SisgenInputError(f"{name} must be [y0, x0, y1, x1], non-negative integers with "
                               f"y0 < y1 and x0 < x1, got {value!r}")
    return [int(v) for v in value]


def check_instance_choice(value: Any, name: str = "instance") -> int | str:
    """``"new"`` or a positive instance id."""
    if value == "new":
        return "new"
    return check_int(value, name, minimum=1, what="'new' or a positive instance id")


def require_inside(points: Sequence[Sequence[int]], shape: tuple[int, int], name: str) -> None:
    """Raise unless every ``[y, x]`` lies inside a map of ``shape``.

    Raises:
        SisgenInputError: Naming the first point outside and the map size.

    """
    h, w = shape
    for y, x in points:
        if not (0 <= y < h and 0 <= x < w):
            raise SisgenInputError(f"{name} [{y}, {x}] lies outside the {h}x{w} map")


# ===================================================================== masks
def stroke_mask(shape: tuple[int, int], points: Sequence[Sequence[int]], radius: float
                ) -> np.ndarray:
    """Pixels within ``radius`` of the polyline through ``points`` (one point: a disc).

    Pixel ``(i, j)`` is set when the Euclidean distance from ``(i, j)`` to the nearest
    segment is at most ``radius``; with ``radius >= 0.5`` consecutive pixels of the line
    always touch (no gaps).
    """
    h, w = shape
    mask = np.zeros(shape, dtype=bool)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pairs = zip(pts, pts[1:], strict=False) if len(pts) > 1 else [(pts[0], pts[0])]
    r = float(radius)
    for a, b in pairs:
        y0 = max(int(np.floor(min(a[0], b[0]) - r)), 0)
        y1 = min(int(np.ceil(max(a[0], b[0]) + r)) + 1, h)
        x0 = max(int(np.floor(min(a[1], b[1]) - r)), 0)
        x1 = min(int(np.ceil(max(a[1], b[1]) + r)) + 1, w)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        d = b - a
        length2 = float(d @ d)
        t = 0.0 if length2 == 0 else np.clip(((yy - a[0]) * d[0] + (xx - a[1]) * d[1])
                                             / length2, 0.0, 1.0)
        dist2 = (yy - (a[0] + t * d[0])) ** 2 + (xx - (a[1] + t * d[1])) ** 2
        mask[y0:y1, x0:x1] |= dist2 <= r * r
    return mask


def polygon_mask(shape: tuple[int, int], points: Sequence[Sequence[int]]) -> np.ndarray:
    """The pixels ``cv2.fillPoly`` sets for the polygon (8-connected, boundary included)."""
    canvas = np.zeros(shape, dtype=np.uint8)
    xy = np.asarray([[x, y] for y, x in points], dtype=np.int32)
    cv2.fillPoly(canvas, [xy], 1, lineType=cv2.LINE_8)
    return canvas.astype(bool)


def region_at(labelmap: LabelMap, at: tuple[int, int], connectivity: int) -> np.ndarray:
    """The connected region of pixels with the class and instance of pixel ``at``."""
    y, x = at
    same = labelmap.semantic == labelmap.semantic[y, x]
    if labelmap.instance is not None:
        same &= labelmap.instance == labelmap.instance[y, x]
    _, labels = cv2.connectedComponents(same.astype(np.uint8), connectivity=connectivity)
    return labels == labels[y, x]


# ===================================================================== painting
def paint(labelmap: LabelMap, mask: np.ndarray, class_id: int, instance: int | str,
          vocab: Vocabulary) -> tuple[LabelMap, dict[str, Any]]:
    """A copy of ``labelmap`` with ``mask`` painted ``class_id`` (see the module docstring).

    Args:
        labelmap: The input map (not modified).
        mask: ``H×W`` bool, the pixels to paint.
        class_id: The class id (255: ignore).
        instance: ``"new"`` or an instance id, used when ``class_id`` is a thing class.
        vocab: The vocabulary of the map's ids.

    Returns:
        The new map and ``{"pixels": n, "instance": id}`` (``id`` 0 for stuff / ignore).

    """
    out = labelmap.copy()
    out.semantic[mask] = class_id
    new_id = 0
    if out.instance is not None:
        if vocab.thing_table()[class_id] and mask.any():
            new_id = IdAllocator(labelmap).new(class_id) if instance == "new" else int(instance)
        out.instance[mask] = new_id
    return out, {"pixels": int(mask.sum()), "instance": new_id}


class _Paint(Edit):
    """Shared parameters of the painting edits: the class and the instance rule."""

    always_recorded = frozenset({"class"})

    def __init__(self, class_: int | str, instance: int | str = "new", p: float = 1.0):
        super().__init__(p)
        self.class_ = check_class(class_)
        self.instance = check_instance_choice(instance)

    def class_id(self, vocab: Vocabulary) -> int:
        """Return the class id (``ignore`` allowed)."""
        return resolve_class(vocab, self.class_, allow_ignore=True)

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return the parameters with the class as its id."""
        return {**self.params(), "class": self.class_id(vocab)}

    def mask(self, labelmap: LabelMap) -> np.ndarray:
        """Return the pixels to paint (checked against the map's size)."""
        raise NotImplementedError

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Paint; records the painted ``pixels`` and the ``instance`` id they got."""
        class_id = self.class_id(vocab)
        return paint(labelmap, self.mask(labelmap), class_id, self.instance, vocab)


@register_edit("stroke")
class Stroke(_Paint):
    """A brush stroke: every pixel within ``radius`` of the polyline through ``points``.

    Args:
        class_: The class to paint (name or id, ``ignore`` allowed; ``class`` in a recipe).
        points: ``[[y, x], ...]``, one to :data:`MAX_POINTS` pixels inside the map.
        radius: Brush radius in pixels, at least 0.5 (0.5: a one-pixel line).
        instance: ``new`` or an instance id, for thing classes.
        p: Probability of applying.

    """

    always_recorded = frozenset({"class", "radius"})

    def __init__(self, class_: int | str, points: Sequence[Sequence[int]],
                 radius: float = 1.0, instance: int | str = "new", p: float = 1.0):
        super().__init__(class_, instance, p)
        self.points = check_points(points, "points")
        self.radius = check_number(radius, "radius", lambda r: 0.5 <= r <= 1000,
                                   "a number from 0.5 to 1000")

    def mask(self, labelmap: LabelMap) -> np.ndarray:
        """The stroke's pixels."""
        require_inside(self.points, labelmap.shape, "stroke point")
        return stroke_mask(labelmap.shape, self.points, self.radius)


@register_edit("fill")
class Fill(_Paint):
    """Fill a polygon or a box with a class.

    Args:
        class_: The class (name or id, ``ignore`` allowed; ``class`` in a recipe).
        polygon: ``[[y, x], ...]``, at least 3 vertices inside the map; the filled pixels are
            those ``cv2.fillPoly`` sets (boundary included).
        box: ``[y0, x0, y1, x1]``: rows ``y0..y1-1``, columns ``x0..x1-1`` (inside the map).
            Give ``polygon`` or ``box``.
        instance: ``new`` or an instance id, for thing classes.
        p: Probability of applying.

    """

    def __init__(self, class_: int | str, polygon: Sequence[Sequence[int]] | None = None,
                 box: Sequence[int] | None = None, instance: int | str = "new",
                 p: float = 1.0):
        super().__init__(class_, instance, p)
        if (polygon is None) == (box is None):
            raise SisgenInputError("give either polygon or box")
        self.polygon = None if polygon is None else check_points(polygon, "polygon", 3)
        self.box = None if box is None else check_box(box)

    def mask(self, labelmap: LabelMap) -> np.ndarray:
        """The polygon's or box's pixels."""
        if self.polygon is not None:
            require_inside(self.polygon, labelmap.shape, "polygon vertex")
            return polygon_mask(labelmap.shape, self.polygon)
        y0, x0, y1, x1 = self.box
        h, w = labelmap.shape
        if y1 > h or x1 > w:
            raise SisgenInputError(f"box {self.box} reaches outside the {h}x{w} map")
        mask = np.zeros(labelmap.shape, dtype=bool)
        mask[y0:y1, x0:x1] = True
        return mask


@register_edit("flood_fill")
class FloodFill(_Paint):
    """Repaint the connected region of pixel ``at``: pixels of its class and instance id.

    Args:
        class_: The new class (name or id, ``ignore`` allowed; ``class`` in a recipe).
        at: ``[y, x]`` inside the map.
        connectivity: 4 or 8 (neighbours that connect the region).
        instance: ``new`` or an instance id, for thing classes.
        p: Probability of applying.

    """

    def __init__(self, class_: int | str, at: Sequence[int], connectivity: int = 4,
                 instance: int | str = "new", p: float = 1.0):
        super().__init__(class_, instance, p)
        self.at = list(check_point(at, "at"))
        if connectivity not in (4, 8) or not is_int(connectivity):
            raise SisgenInputError(f"connectivity must be 4 or 8, got {connectivity!r}")
        self.connectivity = int(connectivity)

    def mask(self, labelmap: LabelMap) -> np.ndarray:
        """The region of ``at``."""
        require_inside([self.at], labelmap.shape, "at")
        return region_at(labelmap, (self.at[0], self.at[1]), self.connectivity)


@register_edit("canvas")
class Canvas(Edit):
    """Replace the map by a blank one of a single class: the start of a scene from scratch.

    The instance map becomes all 0 (it is created when the map had none, so later steps
    can paint instances); ``meta["noise_mask"]`` is dropped; for photo editing every pixel
    becomes new (``meta["source_pixel"]`` -1: the whole frame is synthesized). Other
    ``meta`` (id, source, file) is kept.

    Args:
        class_: The class of every pixel (name or id; ``class`` in a recipe).
        size: ``[h, w]`` of the new map (default: the input map's size).
        p: Probability of applying.

    """

    class_params = ("class",)

    def __init__(self, class_: int | str, size: Sequence[int] | int | None = None,
                 p: float = 1.0):
        super().__init__(p)
        self.class_ = check_class(class_)
        self.size = None if size is None else list(check_pair(size, "size"))

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Make the blank map; records its ``size``."""
        class_id = resolve_class(vocab, self.class_)
        shape = labelmap.shape if self.size is None else tuple(self.size)
        meta = {k: v for k, v in labelmap.copy().meta.items() if k != NOISE_MASK_KEY}
        if SOURCE_PIXEL_KEY in meta:
            meta[SOURCE_PIXEL_KEY] = np.full(shape, -1, dtype=np.int32)
        out = LabelMap(np.full(shape, class_id, dtype=labelmap.semantic.dtype),
                       np.zeros(shape, dtype=np.int32), meta)
        return out, {"size": list(shape)}

