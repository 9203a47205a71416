"""Edits that change classes in place: relabel, swap, remove_instances, dilate, erode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from ..errors import SisgenInputError
from ..labelmap import IGNORE_ID, LabelMap, copy_meta
from ..vocab import Vocabulary
from .base import Edit, lookup, register_edit
from .checks import (
    check_bool,
    check_class,
    check_classes,
    check_int,
    check_probability,
    resolve_class,
    resolve_classes,
)


def nearest_values(source: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """For every pixel, the values of ``arrays`` at its nearest ``source`` pixel.

    Distance: OpenCV's 5×5-mask approximation of the Euclidean one; ties go to the first
    source pixel in raster order. ``source`` must have at least one ``True`` pixel.
    """
    src = np.where(source, 0, 1).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(
        src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # DIST_LABEL_PIXEL numbers the zero (source) pixels 1, 2, ... in raster order.
    flat = np.flatnonzero(src.ravel() == 0)
    pick = flat[labels.ravel() - 1].reshape(source.shape)
    return [a.ravel()[pick] for a in arrays]


def relabel(labelmap: LabelMap, mapping: dict[int, int], vocab: Vocabulary) -> LabelMap:
    """Map class ids all at once; pixels that became stuff or ignore lose their instance.

    A uint8 map (every source in sisgen yields one) takes one 256-entry table gather for
    the classes and one for the instance pixels to clear -- no per-class mask, no copy
    that is overwritten afterwards; other dtypes take the per-class masks.
    """
    if labelmap.semantic.dtype == np.uint8 and labelmap.semantic.size and all(
            0 <= a < 256 and 0 <= b < 256 for a, b in mapping.items()):
        return _relabel_u8(labelmap, mapping, vocab)
    out = labelmap.copy()
    sem = labelmap.semantic
    changed = np.zeros(sem.shape, dtype=bool)
    for a, b in mapping.items():
        mask = sem == a
        out.semantic[mask] = b
        changed |= mask
    if out.instance is not None:
        now_stuff = changed & ~lookup(vocab.thing_table(), out.semantic)
        out.instance[now_stuff] = 0
    return out


def _relabel_u8(labelmap: LabelMap, mapping: dict[int, int], vocab: Vocabulary) -> LabelMap:
    """:func:`relabel` of a uint8 map through 256-entry tables (``cv2.LUT``: one pass each)."""
    table = np.arange(256, dtype=np.uint8)
    clear = np.zeros(256, dtype=np.uint8)  # source classes whose pixels lose their instance
    thing = vocab.thing_table()
    for a, b in mapping.items():
        table[a] = b
        clear[a] = not thing[b]
    sem = np.ascontiguousarray(labelmap.semantic)
    instance = labelmap.instance  # shared unless some pixels lose their instance
    if instance is not None and clear.any():
        instance = instance.copy()
        np.copyto(instance, 0, where=cv2.LUT(sem, clear).view(bool))
    return LabelMap(cv2.LUT(sem, table), instance, copy_meta(labelmap.meta))


def fill_from_nearest_stuff(labelmap: LabelMap, freed: np.ndarray, vocab: Vocabulary) -> None:
    """Give each ``freed`` pixel the class of its nearest stuff pixel, in place.

    Freed pixels lose their instance; with no stuff pixel left they become ignore.
    """
    sem = labelmap.semantic
    is_source = lookup(vocab.stuff_table(), sem) & ~freed
    if labelmap.instance is not None:
        labelmap.instance[freed] = 0
    if not is_source.any():
        sem[freed] = IGNORE_ID
        return
    (nearest,) = nearest_values(is_source, sem)
    sem[freed] = nearest[freed]


@register_edit("relabel")
class Relabel(Edit):
    """Map classes to other classes, all at once (``{a: b, b: a}`` swaps).

    Pixels whose new class is stuff or ignore lose their instance id; pixels that become a
    thing class keep theirs (stuff pixels that become a thing have instance 0, i.e. no
    instance, like a crowd region).

    Args:
        mapping: ``{from: to}``, classes by name or id; either side may be ``ignore`` or
            255 (the ignore id).
        p: Probability of applying.

    """

    def __init__(self, mapping: Mapping[Any, Any], p: float = 1.0):
        super().__init__(p)
        if not isinstance(mapping, Mapping) or not mapping:
            raise SisgenInputError(
                f"mapping must be a non-empty {{from: to}} table, got {mapping!r}"
            )
        self.mapping = dict(mapping)

    def resolve_mapping(self, vocab: Vocabulary) -> dict[int, int]:
        """Return the mapping as ``{from_id: to_id}``.

        Raises:
            SisgenInputError: An unknown class, or two entries for one source class.

        """
        out: dict[int, int] = {}
        for src, dst in self.mapping.items():
            a = resolve_class(vocab, src, allow_ignore=True)
            if a in out:
                raise SisgenInputError(f"class {src!r} is mapped twice")
            out[a] = resolve_class(vocab, dst, allow_ignore=True)
        return out

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return ``{"mapping": {from_id: to_id}}`` (JSON keys become strings)."""
        return {"mapping": {str(a): b for a, b in self.resolve_mapping(vocab).items()}}

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Relabel the semantic map and clear instances that became stuff."""
        return relabel(labelmap, self.resolve_mapping(vocab), vocab), {}


@register_edit("swap")
class Swap(Edit):
    """Exchange two classes (``a`` pixels become ``b`` and the other way round).

    Instance ids follow the :class:`Relabel` rule: kept where the new class is a thing.

    Args:
        a: A class name or id.
        b: Another class name or id.
        p: Probability of applying.

    """

    class_params = ("a", "b")

    def __init__(self, a: int | str, b: int | str, p: float = 1.0):
        super().__init__(p)
        self.a, self.b = check_class(a, "a"), check_class(b, "b")

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Swap the two classes."""
        a, b = resolve_class(vocab, self.a), resolve_class(vocab, self.b)
        if a == b:
            return labelmap.copy(), {}
        return relabel(labelmap, {a: b, b: a}, vocab), {}


@register_edit("remove_instances")
class RemoveInstances(Edit):
    """Remove some instances of the given classes and fill the hole with nearby stuff.

    The candidates are the nonzero instance ids found on pixels of ``classes``, in
    ascending id order; the edit removes ``count`` of them, or ``round(fraction * n)``
    (halves round up), chosen with the generator. Thing pixels without an instance
    (crowd regions) are left alone. Each freed pixel takes the class of the nearest pixel
    that is stuff (not a thing class, not ignore) after the removal (distance: OpenCV's
    5×5-mask approximation of the Euclidean distance; ties go to the first such pixel in
    raster order); its instance becomes 0. With no stuff pixel in the map the hole becomes
    ignore (255).

    Args:
        classes: Class names or ids; ``None`` means every thing class of the vocabulary.
        fraction: Share of the candidates to remove, in [0, 1].
        count: Number of candidates to remove (at most all). Give ``fraction`` or
            ``count``, not both; neither means all.
        p: Probability of applying.

    """

    def __init__(
        self,
        classes: Sequence[int | str] | int | str | None = None,
        fraction: float | None = None,
        count: int | None = None,
        p: float = 1.0,
    ):
        super().__init__(p)
        self.classes = check_classes(classes, "classes")
        if fraction is not None and count is not None:
            raise SisgenInputError("give either fraction or count, not both")
        self.fraction = None if fraction is None else check_probability(fraction, "fraction")
        self.count = None if count is None else check_int(count, "count")

    def class_ids(self, vocab: Vocabulary) -> list[int]:
        """Return the class ids (every thing class when ``classes`` is ``None``)."""
        if self.classes is None:
            return list(vocab.thing_ids)
        return resolve_classes(vocab, self.classes)

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Class ids plus ``fraction`` or ``count``."""
        d: dict[str, Any] = {"classes": self.class_ids(vocab)}
        if self.count is not None:
            d["count"] = self.count
        else:
            d["fraction"] = 1.0 if self.fraction is None else self.fraction
        return d

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Choose instances, remove them, fill from the nearest stuff."""
        out = labelmap.copy()
        if out.instance is None:
            return out, {"removed": []}
        ids = self.class_ids(vocab)
        on_classes = np.isin(out.semantic, ids) & (out.instance != 0)
        candidates = np.unique(out.instance[on_classes])
        n = len(candidates)
        if self.count is not None:
            k = min(self.count, n)
        else:
            frac = 1.0 if self.fraction is None else self.fraction
            k = min(n, int(np.floor(frac * n + 0.5)))
        if k == 0:
            return out, {"removed": []}
        chosen = np.sort(rng.choice(candidates, size=k, replace=False))
        freed = np.isin(out.instance, chosen)
        fill_from_nearest_stuff(out, freed, vocab)
        return out, {"removed": [int(i) for i in chosen]}


def _ellipse(pixels: int) -> np.ndarray:
    """OpenCV's elliptical structuring element of radius ``pixels``."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))


class _ClassMorph(Edit):
    """Shared parameters of :class:`Dilate` and :class:`Erode`."""

    always_recorded = frozenset({"pixels"})
    class_params = ("class",)

    def __init__(self, class_: int | str, pixels: int = 1, p: float = 1.0):
        super().__init__(p)
        self.class_ = check_class(class_)
        self.pixels = check_int(pixels, "pixels")

    def _start(self, labelmap: LabelMap, vocab: Vocabulary
               ) -> tuple[int, LabelMap, np.ndarray | None]:
        """``(class id, a copy of the map, the class's pixels)``; ``None`` pixels: no change."""
        c = resolve_class(vocab, self.class_)
        mask = labelmap.semantic == c
        return c, labelmap.copy(), mask if self.pixels and mask.any() else None


@register_edit("dilate")
class Dilate(_ClassMorph):
    """Grow one class by ``pixels`` (elliptical kernel of radius ``pixels``).

    The class grows only over stuff pixels (other stuff classes), unless ``over_things``;
    ignore pixels (255) are never overwritten. Grown pixels of a thing class take the
    instance id of the nearest pixel of that class (each instance grows); grown pixels of
    a stuff class get instance 0.

    Args:
        class_: The class (name or id; ``class`` in a recipe).
        pixels: Radius in pixels (0: no change).
        over_things: Also grow over thing pixels (their instance id is replaced).
        p: Probability of applying.

    """

    def __init__(self, class_: int | str, pixels: int = 1, over_things: bool = False,
                 p: float = 1.0):
        super().__init__(class_, pixels, p)
        self.over_things = check_bool(over_things, "over_things")

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Dilate; records the number of ``changed`` pixels."""
        c, out, mask = self._start(labelmap, vocab)
        if mask is None:
            return out, {"changed": 0}
        sem = labelmap.semantic
        grown = cv2.dilate(mask.astype(np.uint8), _ellipse(self.pixels),
                           borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
        target = grown & ~mask & (sem != vocab.ignore_id)
        if not self.over_things:
            target &= ~lookup(vocab.thing_table(), sem)
        out.semantic[target] = c
        if out.instance is not None and target.any():
            if vocab.thing_table()[c]:
                (nearest,) = nearest_values(mask, labelmap.instance)
                out.instance[target] = nearest[target]
            else:
                out.instance[target] = 0
        return out, {"changed": int(target.sum())}


@register_edit("erode")
class Erode(_ClassMorph):
    """Shrink one class by ``pixels`` (elliptical kernel of radius ``pixels``).

    The map border does not erode (the class is assumed to continue outside the image);
    boundaries with every other value, ignore included, do. Each freed pixel takes the
    class and instance id of the nearest pixel of another class that is not ignore (the
    same nearest-pixel rule as ``remove_instances``, but things count too: an eroded
    road next to a car lets the car's pixels take over); with no such pixel, ignore.

    Args:
        class_: The class (name or id; ``class`` in a recipe).
        pixels: Radius in pixels (0: no change).
        p: Probability of applying.

    """

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Erode; records the number of ``changed`` pixels."""
        c, out, mask = self._start(labelmap, vocab)
        if mask is None:
            return out, {"changed": 0}
        sem = labelmap.semantic
        kept = cv2.erode(mask.astype(np.uint8), _ellipse(self.pixels),
                         borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)
        freed = mask & ~kept
        if not freed.any():
            return out, {"changed": 0}
        source = ~mask & (sem != vocab.ignore_id)
        if not source.any():
            out.semantic[freed] = IGNORE_ID
            if out.instance is not None:
                out.instance[freed] = 0
        else:
            inst = labelmap.instance if labelmap.instance is not None else sem
            near_sem, near_inst = nearest_values(source, sem, inst)
            out.semantic[freed] = near_sem[freed]
            if out.instance is not None:
                out.instance[freed] = near_inst[freed]
        return out, {"changed": int(freed.sum())}
