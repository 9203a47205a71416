"""Edits of one given instance: delete, move, scale, flip, relabel; paste one bank item.

The scene editor's object tools, as edits (so an edited scene is a recipe)::

    edits:
      - {op: delete_instance, instance: 26001}       # freed pixels: nearest stuff
      - {op: move_instance, instance: 26000, by: [0, -12]}         # [dy, dx] pixels
      - {op: scale_instance, instance: 24000, factor: 1.5}         # about its foot
      - {op: flip_instance, instance: 26000}                       # or direction: vertical
      - {op: relabel_instance, instance: 26002, class: person}
      - {op: paste_item, item: 3, at: [50, 64], scale: 1.2}        # one instance-bank item

An instance is the set of pixels with that nonzero instance id; a step whose instance is not
in the map changes nothing and records ``pixels: 0`` (a recipe made on one map may run on
others). Pixels an instance leaves are filled as ``remove_instances`` fills them: each takes
the class of the nearest stuff pixel and instance 0. A moved, scaled or flipped instance is
put back in front of everything (parts outside the map are cut off) with its own classes and
id, and carries its pixel-aligned ``meta`` with it (the noise-region mark, and for photo
editing the source-pixel index, so a moved car keeps its photo pixels). These steps draw no
random numbers besides the ``p`` coin.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import SisgenInputError
from ..labelmap import NOISE_MASK_KEY, SOURCE_PIXEL_KEY, LabelMap, resize_nearest
from ..vocab import Vocabulary
from .base import Edit, lookup, register_edit
from .checks import (
    check_choice,
    check_class,
    check_int,
    check_number,
    is_int,
    resolve_class,
)
from .geometric import place
from .label import fill_from_nearest_stuff
from .paint import check_point, require_inside
from .paste import IdAllocator, Paste

__all__ = ["DeleteInstance", "FlipInstance", "MoveInstance", "PasteItem", "RelabelInstance",
           "ScaleInstance", "instance_box", "transplant"]


def instance_box(labelmap: LabelMap, instance: int) -> tuple[int, int, int, int] | None:
    """``(y0, x0, y1, x1)`` (end exclusive) of an instance id, ``None`` when absent."""
    if labelmap.instance is None:
        return None
    ys, xs = np.nonzero(labelmap.instance == instance)
    if not len(ys):
        return None
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


def transplant(
    labelmap: LabelMap,
    instance: int,
    vocab: Vocabulary,
    reshape: Callable[[np.ndarray], np.ndarray],
    offset: Callable[[tuple[int, int, int, int], tuple[int, int]], tuple[int, int]],
) -> tuple[LabelMap, dict[str, Any]]:
    """Take an instance out of the map, transform its crop, and put it back in front.

    Args:
        labelmap: The input map (not modified).
        instance: The instance id.
        vocab: The vocabulary (stuff classes fill the pixels the instance leaves).
        reshape: Transforms a crop of the instance's bounding box (the same way for the
            mask, the classes and every pixel-aligned ``meta`` map).
        offset: ``(box, new crop shape) -> (top, left)``: where the new crop goes.

    Returns:
        The new map and ``{"pixels": before, "placed": after, "box": [y0, x0, y1, x1]}``
        (``placed``: visible pixels after the move; the box is the old one).

    """
    box = instance_box(labelmap, instance)
    if box is None:
        return labelmap.copy(), {"pixels": 0}
    y0, x0, y1, x1 = box
    mask = labelmap.instance == instance
    moved = reshape(mask[y0:y1, x0:x1])
    top, left = offset(box, moved.shape)
    shape = labelmap.shape
    full = place(moved, False, shape, top, left)

    def carried(a: np.ndarray, fill: Any) -> np.ndarray:
        return place(reshape(a[y0:y1, x0:x1]), fill, shape, top, left)[full]

    out = labelmap.copy()
    fill_from_nearest_stuff(out, mask, vocab)
    out.semantic[full] = carried(labelmap.semantic, 0)
    out.instance[full] = instance
    for key, fill in ((NOISE_MASK_KEY, False), (SOURCE_PIXEL_KEY, -1)):
        if out.meta.get(key) is None:
            continue
        before = np.asarray(labelmap.meta[key])
        after = np.array(out.meta[key], copy=True)
        if key == NOISE_MASK_KEY:  # the mark leaves with the instance
            after[mask] = False
        after[full] = carried(before, fill)
        out.meta[key] = after
    return out, {"pixels": int(mask.sum()), "placed": int(full.sum()), "box": list(box)}


class _InstanceEdit(Edit):
    """Shared parameter of the single-instance edits: the instance id."""

    always_recorded = frozenset({"instance"})

    def __init__(self, instance: int, p: float = 1.0):
        super().__init__(p)
        self.instance = check_int(instance, "instance", minimum=1,
                                  what="a positive instance id")


@register_edit("delete_instance")
class DeleteInstance(_InstanceEdit):
    """Delete one instance; its pixels take the class of the nearest stuff pixel.

    The fill is that of ``remove_instances`` (OpenCV's 5×5-mask distance, ties to the first
    stuff pixel in raster order; no stuff left: ignore).

    Args:
        instance: The instance id.
        p: Probability of applying.

    """

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Delete; records the freed ``pixels``."""
        out = labelmap.copy()
        if out.instance is None:
            return out, {"pixels": 0}
        freed = out.instance == self.instance
        if freed.any():
            fill_from_nearest_stuff(out, freed, vocab)
        return out, {"pixels": int(freed.sum())}


@register_edit("move_instance")
class MoveInstance(_InstanceEdit):
    """Move one instance by ``[dy, dx]`` pixels (in front of everything; clipped at the border).

    Args:
        instance: The instance id.
        by: ``[dy, dx]``, integers (negative: up / left).
        p: Probability of applying.

    """

    def __init__(self, instance: int, by: Sequence[int], p: float = 1.0):
        super().__init__(instance, p)
        if (not isinstance(by, Sequence) or isinstance(by, str) or len(by) != 2
                or not all(is_int(v) for v in by)):
            raise SisgenInputError(f"by must be [dy, dx], two integers, got {by!r}")
        self.by = [int(by[0]), int(by[1])]

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Move; records ``pixels``, ``placed`` and the old ``box``."""
        dy, dx = self.by
        return transplant(labelmap, self.instance, vocab, lambda a: a,
                          lambda box, shape: (box[0] + dy, box[1] + dx))


@register_edit("scale_instance")
class ScaleInstance(_InstanceEdit):
    """Resize one instance about the centre of its bottom row (where it stands).

    The crop of its bounding box (``h×w``) becomes ``max(1, round(h*f)) × max(1, round(w*f))``
    (nearest neighbour, as ``scale`` and ``paste`` resize), placed so that the centre of its
    bottom row stays on the same pixel.

    Args:
        instance: The instance id.
        factor: The factor, from 0.05 to 20.
        p: Probability of applying.

    """

    always_recorded = frozenset({"instance", "factor"})

    def __init__(self, instance: int, factor: float, p: float = 1.0):
        super().__init__(instance, p)
        self.factor = check_number(factor, "factor", lambda f: 0.05 <= f <= 20,
                                   "a number from 0.05 to 20")

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Scale; records ``pixels``, ``placed`` and the old ``box``."""
        box = instance_box(labelmap, self.instance)
        if box is None:
            return labelmap.copy(), {"pixels": 0}
        h, w = box[2] - box[0], box[3] - box[1]
        size = (max(1, int(round(h * self.factor))), max(1, int(round(w * self.factor))))

        def offset(b: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int]:
            foot_y, foot_x = b[2] - 1, b[1] + (b[3] - b[1]) // 2
            return foot_y - (shape[0] - 1), foot_x - shape[1] // 2

        return transplant(labelmap, self.instance, vocab, lambda a: resize_nearest(a, size), offset)


@register_edit("flip_instance")
class FlipInstance(_InstanceEdit):
    """Mirror one instance inside its bounding box.

    Args:
        instance: The instance id.
        direction: ``horizontal`` (left-right) or ``vertical`` (top-bottom).
        p: Probability of applying.

    """

    always_recorded = frozenset({"instance", "direction"})

    def __init__(self, instance: int, direction: str = "horizontal", p: float = 1.0):
        super().__init__(instance, p)
        self.direction = check_choice(direction, "direction", ("horizontal", "vertical"))

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Flip; records ``pixels``, ``placed`` and the ``box``."""
        flip = (lambda a: a[:, ::-1]) if self.direction == "horizontal" else (lambda a: a[::-1])
        return transplant(labelmap, self.instance, vocab, flip, lambda box, shape: box[:2])


@register_edit("relabel_instance")
class RelabelInstance(_InstanceEdit):
    """Give one instance another class.

    To a thing class: the instance keeps its id. To a stuff class (or ignore): its pixels
    lose the instance (id 0), as ``relabel`` does.

    Args:
        instance: The instance id.
        class_: The new class (name or id; ``class`` in a recipe).
        p: Probability of applying.

    """

    always_recorded = frozenset({"instance", "class"})

    def __init__(self, instance: int, class_: int | str, p: float = 1.0):
        super().__init__(instance, p)
        self.class_ = check_class(class_)

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return the parameters with the class as its id (``ignore`` allowed)."""
        return {**self.params(),
                "class": resolve_class(vocab, self.class_, allow_ignore=True)}

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Relabel; records the changed ``pixels``."""
        class_id = resolve_class(vocab, self.class_, allow_ignore=True)
        out = labelmap.copy()
        if out.instance is None:
            return out, {"pixels": 0}
        mask = out.instance == self.instance
        out.semantic[mask] = class_id
        if not vocab.thing_table()[class_id]:
            out.instance[mask] = 0
        return out, {"pixels": int(mask.sum())}


@register_edit("paste_item")
class PasteItem(Paste):
    """Paste one given item of an instance bank at a given place.

    The editor's counterpart of ``paste``: no random choice. The item's mask is scaled by
    ``scale`` (nearest neighbour) and placed with the centre of its bottom row on ``at``
    (clipped at the border); ``occlusion`` is as in ``paste``. The pasted pixels get the
    item's class and a fresh instance id. The bank is found as ``paste`` finds it (its
    ``bank`` file, else the run's bank, ``context["bank"]``; ``sisgen generate`` builds that
    from the source's first maps, as the editor does).

    Args:
        item: Index of the item in the bank.
        at: ``[y, x]`` inside the map: where the centre of the item's bottom row lands.
        scale: Factor, from 0.05 to 20.
        occlusion: ``front`` or ``behind``.
        bank: Path of a bank ``.npz`` (optional).
        p: Probability of applying.

    """

    class_params = ()
    always_recorded = frozenset({"item", "at"})

    def __init__(self, item: int, at: Sequence[int], scale: float = 1.0,
                 occlusion: str = "front", bank: str | os.PathLike | None = None,
                 p: float = 1.0):
        Edit.__init__(self, p)
        self.item = check_int(item, "item")
        self.at = list(check_point(at, "at"))
        self.scale = check_number(scale, "scale", lambda f: 0.05 <= f <= 20,
                                  "a number from 0.05 to 20")
        self.occlusion = check_choice(occlusion, "occlusion", ("front", "behind"))
        if bank is not None and not isinstance(bank, (str, os.PathLike)):
            raise SisgenInputError(f"bank must be a path to an .npz file, got {bank!r}")
        self.bank = None if bank is None else os.fspath(bank)
        self.perspective = False
        self._base_dir: str | None = None

    def apply(
        self,
        labelmap: LabelMap,
        rng: np.random.Generator,
        vocab: Vocabulary,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Paste; records ``class``, ``instance``, ``size`` and visible ``pixels``."""
        bank = self.get_bank(context or {}, vocab)
        if self.item >= len(bank):
            raise SisgenInputError(f"item {self.item} is not in the bank "
                                   f"({len(bank)} items)")
        require_inside([self.at], labelmap.shape, "at")
        entry = bank[self.item]
        h, w = entry.size
        size = (max(1, int(round(h * self.scale))), max(1, int(round(w * self.scale))))
        y, x = self.at
        full = place(resize_nearest(entry.mask, size), False, labelmap.shape,
                     y - (size[0] - 1), x - size[1] // 2)
        if self.occlusion == "behind":
            full &= lookup(vocab.stuff_table(), labelmap.semantic)
        out = labelmap.copy()
        out.semantic[full] = entry.class_id
        record: dict[str, Any] = {"class": entry.class_id, "size": list(size),
                                  "pixels": int(full.sum())}
        if out.instance is not None:
            new_id = IdAllocator(labelmap).new(entry.class_id) if full.any() else 0
            out.instance[full] = new_id
            record["instance"] = new_id
        return out, record
