"""Seeded, composable edits of label maps, described as data.

An edit recipe is a list of steps, each a mapping with an ``op`` and its parameters, kept in
YAML so that a run is reproducible from its manifest::

    edits:
      - {op: swap, a: car, b: person, p: 0.5}
      - {op: relabel, mapping: {grass: vegetation}}
      - {op: remove_instances, classes: [person], fraction: 0.5}
      - {op: hflip, p: 0.5}                       # = {op: flip, direction: horizontal}
      - {op: flip, direction: vertical}           # horizontal | vertical
      - {op: scale, range: [0.75, 1.25]}          # or factor: 1.5 (nearest neighbour)
      - {op: crop, size: [512, 1024], position: random}   # random | center
      - {op: pad, to_multiple: 32, position: center}      # or size: [h, w];
                                                          # center | random | topleft
      - {op: dilate, class: pole, pixels: 2}      # over_things: true to grow over things
      - {op: erode, class: person, pixels: 1}
      - {op: paste, classes: [car, person], range: [1, 4], scale: [0.8, 1.2],
         perspective: true, horizon: 0.4, on: [road, sidewalk], occlusion: behind,
         bank: banks/cityscapes_things.npz}       # bank optional, see below
      - {op: resample_noise, class: car, instance: random}  # or region: [y0, x0, y1, x1]
      - one_of: [{op: hflip}, {op: scale, factor: 0.5}]      # exactly one ...
        weights: [3, 1]                                     # ... optionally weighted
      - some_of: {n: 2, steps: [{op: hflip}, {op: erode, class: road}, {op: crop,
                                size: [256, 256]}]}         # n distinct, random order

``one_of`` / ``some_of`` may also be written ``{op: one_of, steps: [...], weights: [...]}``
and ``{op: some_of, n: 2, steps: [...]}`` (the form :meth:`Recipe.to_list` returns); they
nest. Every edit takes ``p``, the probability that it fires (default 1); a step chosen by
``one_of`` / ``some_of`` still flips its own ``p`` coin. A :class:`Recipe` applies its
steps in order with one ``np.random.default_rng(seed)`` and records each step's resolved
parameters (class names turned into ids), whether it fired and what it chose (removed
instance ids, crop offsets, scale factors, pasted instances, the chosen sub-steps with
their own records) in ``meta["edits"]`` of the map it returns. Edits never mutate their
input.

Geometric edits (flip, scale, crop, pad) change the map's size or layout; they move
``meta["noise_mask"]`` (written by ``resample_noise``) exactly like the labels, padding it
with ``False``. The pipeline edits at the source resolution and resizes to the model's
afterwards.

Instance bank for ``paste``: a step with ``bank: file.npz`` (relative paths are looked up
next to the recipe file, then in the working directory) loads it once per process;
otherwise the bank comes from the run's context, ``recipe(lm, seed, vocab,
context={"bank": InstanceBank or path})``. :meth:`Recipe.needs_bank` tells whether a
context bank is needed. See :mod:`sisgen.instance_bank`.

Random draws: each step first draws one uniform number for its ``p`` coin (always, even when
``p`` is 0 or 1, so the stream does not depend on ``p``'s value); a step that needs more
randomness (``remove_instances``, random crop/pad positions, scale ranges, ``paste``,
``resample_noise`` with ``instance: random``, the choices of ``one_of`` / ``some_of``)
draws it only when it fires.

New edits subclass :class:`Edit` and register with :func:`register_edit`.
"""

from __future__ import annotations

import copy
import inspect
import keyword
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from .errors import SisgenInputError
from .instance_bank import BankItem, InstanceBank, load_bank_cached
from .labelmap import IGNORE_ID, LabelMap
from .photo_edits import SOURCE_PIXEL_KEY
from .vocab import Vocabulary

__all__ = [
    "NOISE_MASK_KEY",
    "Crop",
    "Dilate",
    "Edit",
    "Erode",
    "Flip",
    "HFlip",
    "OneOf",
    "Pad",
    "Paste",
    "Recipe",
    "Relabel",
    "RemoveInstances",
    "ResampleNoise",
    "Scale",
    "SomeOf",
    "Swap",
    "available_edits",
    "build_edit",
    "register_edit",
]

_EDITS: dict[str, type[Edit]] = {}

#: Names accepted for the ignore id (255) as a relabel target.
IGNORE_NAMES = ("ignore",)


def register_edit(name: str) -> Callable[[type[Edit]], type[Edit]]:
    """Register an :class:`Edit` subclass under the op name ``name``.

    Args:
        name: The ``op`` value that selects the edit in a recipe.

    Returns:
        A class decorator.

    Raises:
        ValueError: The name is already taken.

    """

    def deco(cls: type[Edit]) -> type[Edit]:
        if name in _EDITS:
            raise ValueError(f"edit op {name!r} registered twice")
        cls.op = name
        _EDITS[name] = cls
        return cls

    return deco


def available_edits() -> list[str]:
    """Return the registered edit op names."""
    return sorted(_EDITS)


def _check_p(p: Any) -> float:
    try:
        value = float(p)
    except (TypeError, ValueError):
        raise SisgenInputError(f"p must be a number in [0, 1], got {p!r}") from None
    if not 0.0 <= value <= 1.0:
        raise SisgenInputError(f"p must be in [0, 1], got {p!r}")
    return value


def _resolve(vocab: Vocabulary, key: Any, *, allow_ignore: bool = False) -> int:
    """Resolve a class name or id to an id; ``ignore`` / 255 only if ``allow_ignore``."""
    if isinstance(key, bool) or not isinstance(key, (int, str, np.integer)):
        raise SisgenInputError(f"class must be a name or an integer id, got {key!r}")
    if isinstance(key, str) and key.strip().lower() in IGNORE_NAMES and key not in vocab.names:
        key = vocab.ignore_id
    if isinstance(key, np.integer):
        key = int(key)
    cid = vocab.resolve(key)
    if cid == vocab.ignore_id and not allow_ignore:
        raise SisgenInputError(f"class {key!r} is the ignore id; a real class is needed here")
    return cid


def _thing_lut(vocab: Vocabulary) -> np.ndarray:
    lut = np.zeros(256, dtype=bool)
    lut[vocab.thing_ids] = True
    return lut


def _lookup(lut: np.ndarray, semantic: np.ndarray) -> np.ndarray:
    """``lut[semantic]`` for any integer map; ids outside the table map to ``False``/0."""
    inside = (semantic >= 0) & (semantic < len(lut))
    return np.where(inside, lut[np.clip(semantic, 0, len(lut) - 1)], lut.dtype.type(0))


class Edit:
    """One seeded transform of a :class:`~sisgen.labelmap.LabelMap`.

    Subclasses implement :meth:`apply` and keep their constructor arguments JSON-able (they
    are what :meth:`to_dict` returns). Class names are resolved against the vocabulary only
    when the edit runs, so one recipe serves any vocabulary that has the names it uses.

    Attributes:
        op: The registered op name.
        p: Probability that the edit fires.

    """

    op: ClassVar[str] = "edit"
    #: Edits that set this get the run's context as ``apply(..., context=dict)``.
    uses_context: ClassVar[bool] = False

    def __init__(self, p: float = 1.0):
        self.p = _check_p(p)

    def children(self) -> list[Edit]:
        """Return the nested steps of a composite edit (empty for plain edits)."""
        return []

    def bind_base_dir(self, base_dir: str | None) -> None:
        """Note the folder of the recipe file, for relative paths in parameters.

        The default does nothing; composite edits pass it on to their steps.
        """
        for child in self.children():
            child.bind_base_dir(base_dir)

    # ----------------------------------------------------------------- protocol
    def params(self) -> dict[str, Any]:
        """Return the edit's own parameters as given (without ``op`` and ``p``)."""
        return {}

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return the parameters with class names resolved to ids (for ``meta["edits"]``)."""
        return self.params()

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Apply the edit unconditionally.

        Args:
            labelmap: The input map (not modified).
            rng: The random generator to draw any further choices from.
            vocab: The vocabulary of the map's ids.

        Returns:
            The new map and a JSON-able dict of extra facts to record (may be empty).

        """
        raise NotImplementedError

    # ----------------------------------------------------------------- running
    def run(
        self,
        labelmap: LabelMap,
        rng: np.random.Generator,
        vocab: Vocabulary,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Flip the ``p`` coin, apply when it fires, and describe what happened.

        Args:
            labelmap: The input map (not modified).
            rng: The recipe's random generator.
            vocab: The vocabulary of the map's ids.
            context: Run-wide objects for edits that need them (``{"bank": InstanceBank}``);
                passed to :meth:`apply` only when the class sets ``uses_context``.

        Returns:
            The new map (a copy even when the edit did not fire) and a record
            ``{"op", "params", "fired", ...extra}``.

        """
        params = {**self.resolved_params(vocab), "p": self.p}
        fired = bool(rng.random() < self.p)
        record: dict[str, Any] = {"op": self.op, "params": params, "fired": fired}
        if not fired:
            return labelmap.copy(), record
        if self.uses_context:
            out, extra = self.apply(labelmap, rng, vocab, context=dict(context or {}))
        else:
            out, extra = self.apply(labelmap, rng, vocab)
        record.update(extra)
        return out, record

    def __call__(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> LabelMap:
        """Apply with probability ``p``; returns a new map, never mutates ``labelmap``."""
        return self.run(labelmap, rng, vocab)[0]

    def to_dict(self) -> dict[str, Any]:
        """Return the step as data: ``{"op": ..., **params, "p": ...}`` (``p`` if < 1)."""
        d: dict[str, Any] = {"op": self.op, **self.params()}
        if self.p != 1.0:
            d["p"] = self.p
        return d

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "op")
        return f"{type(self).__name__}({args})"


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

    def params(self) -> dict[str, Any]:
        """Return ``{"mapping": ...}`` as given."""
        return {"mapping": dict(self.mapping)}

    def resolve_mapping(self, vocab: Vocabulary) -> dict[int, int]:
        """Return the mapping as ``{from_id: to_id}``.

        Raises:
            SisgenInputError: An unknown class, or two entries for one source class.

        """
        out: dict[int, int] = {}
        for src, dst in self.mapping.items():
            a = _resolve(vocab, src, allow_ignore=True)
            if a in out:
                raise SisgenInputError(f"class {src!r} is mapped twice")
            out[a] = _resolve(vocab, dst, allow_ignore=True)
        return out

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return ``{"mapping": {from_id: to_id}}`` (JSON keys become strings)."""
        return {"mapping": {str(a): b for a, b in self.resolve_mapping(vocab).items()}}

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Relabel the semantic map and clear instances that became stuff."""
        return _relabel(labelmap, self.resolve_mapping(vocab), vocab), {}


def _relabel(labelmap: LabelMap, mapping: dict[int, int], vocab: Vocabulary) -> LabelMap:
    out = labelmap.copy()
    sem = labelmap.semantic
    changed = np.zeros(sem.shape, dtype=bool)
    for a, b in mapping.items():
        mask = sem == a
        out.semantic[mask] = b
        changed |= mask
    if out.instance is not None:
        now_stuff = changed & ~_lookup(_thing_lut(vocab), out.semantic)
        out.instance[now_stuff] = 0
    return out


@register_edit("swap")
class Swap(Edit):
    """Exchange two classes (``a`` pixels become ``b`` and the other way round).

    Instance ids follow the :class:`Relabel` rule: kept where the new class is a thing.

    Args:
        a: A class name or id.
        b: Another class name or id.
        p: Probability of applying.

    """

    def __init__(self, a: int | str, b: int | str, p: float = 1.0):
        super().__init__(p)
        self.a, self.b = a, b

    def params(self) -> dict[str, Any]:
        """Return ``{"a": ..., "b": ...}`` as given."""
        return {"a": self.a, "b": self.b}

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return ``{"a": id, "b": id}``."""
        return {"a": _resolve(vocab, self.a), "b": _resolve(vocab, self.b)}

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Swap the two classes."""
        r = self.resolved_params(vocab)
        a, b = r["a"], r["b"]
        if a == b:
            return labelmap.copy(), {}
        return _relabel(labelmap, {a: b, b: a}, vocab), {}


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
        if isinstance(classes, (str, int)):
            classes = [classes]
        if classes is not None and not isinstance(classes, Sequence):
            raise SisgenInputError(f"classes must be a list of class names or ids, got {classes!r}")
        self.classes = None if classes is None else list(classes)
        if fraction is not None and count is not None:
            raise SisgenInputError("give either fraction or count, not both")
        if fraction is not None:
            try:
                fraction = float(fraction)
            except (TypeError, ValueError):
                raise SisgenInputError(f"fraction must be a number, got {fraction!r}") from None
            if not 0.0 <= fraction <= 1.0:
                raise SisgenInputError(f"fraction must be in [0, 1], got {fraction!r}")
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0
        ):
            raise SisgenInputError(f"count must be a non-negative integer, got {count!r}")
        self.fraction = fraction
        self.count = None if count is None else int(count)

    def params(self) -> dict[str, Any]:
        """Return the parameters as given (``None`` ones left out)."""
        d: dict[str, Any] = {}
        if self.classes is not None:
            d["classes"] = list(self.classes)
        if self.fraction is not None:
            d["fraction"] = self.fraction
        if self.count is not None:
            d["count"] = self.count
        return d

    def class_ids(self, vocab: Vocabulary) -> list[int]:
        """Return the class ids (every thing class when ``classes`` is ``None``)."""
        if self.classes is None:
            return list(vocab.thing_ids)
        return sorted({_resolve(vocab, c) for c in self.classes})

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
        _fill_from_nearest_stuff(out, freed, vocab)
        return out, {"removed": [int(i) for i in chosen]}


def _fill_from_nearest_stuff(labelmap: LabelMap, freed: np.ndarray, vocab: Vocabulary) -> None:
    """Give each ``freed`` pixel the class of its nearest stuff pixel, in place."""
    sem = labelmap.semantic
    valid = np.zeros(256, dtype=bool)
    valid[vocab.ids] = True
    valid[vocab.thing_ids] = False
    is_source = _lookup(valid, sem) & ~freed
    if labelmap.instance is not None:
        labelmap.instance[freed] = 0
    if not is_source.any():
        sem[freed] = IGNORE_ID
        return
    src = np.where(is_source, 0, 1).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(
        src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # DIST_LABEL_PIXEL numbers the zero (source) pixels 1, 2, ... in raster order.
    source_values = sem.ravel()[np.flatnonzero(src.ravel() == 0)]
    sem[freed] = source_values[labels[freed] - 1]


# ===================================================================== geometry
#: ``LabelMap.meta`` key of the noise-resampling mask (see :class:`ResampleNoise`).
NOISE_MASK_KEY = "noise_mask"


def _pair(value: Any, name: str) -> tuple[int, int]:
    """Validate ``[h, w]`` (or one int for both) as two positive integers."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
               for v in value)
    ):
        raise SisgenInputError(f"{name} must be [h, w], two positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _number_range(value: Any, name: str, *, positive: bool = False,
                  integer: bool = False) -> tuple[Any, Any]:
    """Validate ``[lo, hi]`` with ``lo <= hi`` (numbers; integers if ``integer``)."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    if ok:
        kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
        ok = all(isinstance(v, kinds) and not isinstance(v, bool) for v in value)
    if ok:
        lo, hi = (int(v) for v in value) if integer else (float(v) for v in value)
        ok = lo <= hi and (lo > 0 if positive else lo >= 0) and math.isfinite(hi)
    if not ok:
        what = "integers" if integer else "numbers"
        sign = "> 0" if positive else ">= 0"
        raise SisgenInputError(f"{name} must be [lo, hi], {what} {sign} with lo <= hi, "
                               f"got {value!r}")
    return lo, hi


def _noise_mask(labelmap: LabelMap) -> np.ndarray | None:
    """The map's noise mask, checked against its size (``None`` when absent)."""
    mask = labelmap.meta.get(NOISE_MASK_KEY)
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != labelmap.shape:
        raise SisgenInputError(
            f"meta[{NOISE_MASK_KEY!r}] is {mask.shape}, the map is {labelmap.shape}"
        )
    return mask


def _geometric(
    labelmap: LabelMap, fn: Callable[[np.ndarray, Any], np.ndarray]
) -> LabelMap:
    """Apply one spatial transform to the labels and their pixel-aligned ``meta`` maps.

    Semantic, instance, ``meta["noise_mask"]`` and ``meta["source_pixel"]``
    (:mod:`sisgen.photo_edits`) move together.

    ``fn(array, fill)`` returns the transformed array; ``fill`` is what new pixels get
    (255 for semantic, 0 for instance, ``False`` for the noise mask).
    """

    def run(a: np.ndarray, fill: Any) -> np.ndarray:
        r = fn(a, fill)
        return r.copy() if np.may_share_memory(r, a) else np.ascontiguousarray(r)

    noise = _noise_mask(labelmap)
    meta = {}
    for k, v in labelmap.meta.items():
        if k == NOISE_MASK_KEY:
            meta[k] = run(noise, False)
        elif k == SOURCE_PIXEL_KEY:  # photo editing: pixels keep pointing at their origin
            meta[k] = run(np.asarray(v), -1)
        else:
            meta[k] = copy.deepcopy(v)
    return LabelMap(
        run(labelmap.semantic, IGNORE_ID),
        None if labelmap.instance is None else run(labelmap.instance, 0),
        meta,
    )


def _nn_index(n_src: int, n_dst: int) -> np.ndarray:
    """Source index of each destination pixel, nearest neighbour with centres aligned."""
    idx = np.floor((np.arange(n_dst) + 0.5) * (n_src / n_dst)).astype(np.intp)
    return np.minimum(idx, n_src - 1)


def _nn_resize(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize (centre-aligned: ``src = floor((dst + 0.5) * in / out)``)."""
    return a[np.ix_(_nn_index(a.shape[0], shape[0]), _nn_index(a.shape[1], shape[1]))]


def _place(a: np.ndarray, fill: Any, shape: tuple[int, int], top: int, left: int
           ) -> np.ndarray:
    """Put ``a`` into a ``fill``-ed array of ``shape`` at ``(top, left)`` (clipped)."""
    out = np.full(shape, fill, dtype=a.dtype)
    h, w = a.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, shape[0]), min(left + w, shape[1])
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = a[y0 - top:y1 - top, x0 - left:x1 - left]
    return out


_POSITIONS_PAD = ("center", "random", "topleft")
_POSITIONS_CROP = ("random", "center")


def _check_position(position: Any, allowed: tuple[str, ...]) -> str:
    if position not in allowed:
        raise SisgenInputError(f"position must be one of {', '.join(allowed)}, got {position!r}")
    return str(position)


@register_edit("flip")
class Flip(Edit):
    """Mirror the map (semantic, instance and ``meta["noise_mask"]``).

    Args:
        direction: ``horizontal`` (left-right) or ``vertical`` (top-bottom).
        p: Probability of applying.

    """

    def __init__(self, direction: str = "horizontal", p: float = 1.0):
        super().__init__(p)
        if direction not in ("horizontal", "vertical"):
            raise SisgenInputError(
                f"direction must be 'horizontal' or 'vertical', got {direction!r}"
            )
        self.direction = direction

    def params(self) -> dict[str, Any]:
        """Return ``{"direction": ...}``."""
        return {"direction": self.direction}

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Flip."""
        if self.direction == "horizontal":
            return _geometric(labelmap, lambda a, fill: a[:, ::-1]), {}
        return _geometric(labelmap, lambda a, fill: a[::-1, :]), {}


@register_edit("hflip")
class HFlip(Flip):
    """Mirror the map left to right; ``{op: hflip}`` is ``{op: flip}`` (horizontal).

    Args:
        p: Probability of applying.

    """

    def __init__(self, p: float = 1.0):
        super().__init__("horizontal", p)

    def params(self) -> dict[str, Any]:
        """Return ``{}`` (the direction is fixed)."""
        return {}


@register_edit("scale")
class Scale(Edit):
    """Resize the map by a factor, nearest neighbour (ids are never interpolated).

    The new size is ``max(1, round(H * factor)) × max(1, round(W * factor))``; pixel
    ``(i, j)`` of the result takes source pixel ``floor((i + 0.5) * H / H')`` (centres
    aligned). The map changes size; the pipeline resizes it to the model's resolution
    afterwards, so combine ``scale`` with ``crop`` / ``pad`` for zoom-style augmentation.

    Args:
        factor: A fixed factor (> 0).
        range: ``[lo, hi]``: the factor is drawn uniformly from it when the edit fires.
            Give ``factor`` or ``range``.
        p: Probability of applying.

    """

    def __init__(self, factor: float | None = None, range: Sequence[float] | None = None,
                 p: float = 1.0):
        super().__init__(p)
        if (factor is None) == (range is None):
            raise SisgenInputError("give either factor or range")
        self.factor: float | None = None
        self.range: tuple[float, float] | None = None
        if factor is not None:
            if isinstance(factor, bool) or not isinstance(factor, (int, float, np.number)) or not (
                0 < float(factor) < math.inf
            ):
                raise SisgenInputError(f"factor must be a number > 0, got {factor!r}")
            self.factor = float(factor)
        else:
            self.range = _number_range(range, "range", positive=True)

    def params(self) -> dict[str, Any]:
        """Return ``{"factor": f}`` or ``{"range": [lo, hi]}``."""
        if self.factor is not None:
            return {"factor": self.factor}
        return {"range": list(self.range)}

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Resize; records the ``factor`` used and the new ``size``."""
        if self.factor is not None:
            f = self.factor
        else:
            lo, hi = self.range
            f = float(rng.uniform(lo, hi))
        H, W = labelmap.shape
        size = (max(1, int(round(H * f))), max(1, int(round(W * f))))
        out = _geometric(labelmap, lambda a, fill: _nn_resize(a, size))
        return out, {"factor": f, "size": list(size)}


def _pad_offsets(shape: tuple[int, int], size: tuple[int, int], position: str,
                 rng: np.random.Generator) -> tuple[int, int]:
    dh, dw = size[0] - shape[0], size[1] - shape[1]
    if position == "topleft":
        return 0, 0
    if position == "center":
        return dh // 2, dw // 2
    return int(rng.integers(0, dh + 1)), int(rng.integers(0, dw + 1))


@register_edit("pad")
class Pad(Edit):
    """Pad the map with ignore (255; instance 0; noise mask off); never crops.

    Args:
        size: ``[h, w]``: pad each side that is shorter up to it.
        to_multiple: Pad each side up to the next multiple of this (e.g. 32). Give
            ``size`` or ``to_multiple``.
        position: Where the map sits: ``center`` (extra pixel bottom/right), ``random``
            (offsets drawn uniformly) or ``topleft``.
        p: Probability of applying.

    """

    def __init__(self, size: Sequence[int] | int | None = None, to_multiple: int | None = None,
                 position: str = "center", p: float = 1.0):
        super().__init__(p)
        if (size is None) == (to_multiple is None):
            raise SisgenInputError("give either size or to_multiple")
        self.size = None if size is None else _pair(size, "size")
        if to_multiple is not None and (
            isinstance(to_multiple, bool) or not isinstance(to_multiple, (int, np.integer))
            or to_multiple < 1
        ):
            raise SisgenInputError(f"to_multiple must be a positive integer, got {to_multiple!r}")
        self.to_multiple = None if to_multiple is None else int(to_multiple)
        self.position = _check_position(position, _POSITIONS_PAD)

    def params(self) -> dict[str, Any]:
        """Return ``size`` or ``to_multiple``, and ``position``."""
        d: dict[str, Any] = (
            {"size": list(self.size)} if self.size is not None
            else {"to_multiple": self.to_multiple}
        )
        d["position"] = self.position
        return d

    def target(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Return the padded size of a map of ``shape``."""
        if self.size is not None:
            return max(shape[0], self.size[0]), max(shape[1], self.size[1])
        m = self.to_multiple
        return -(-shape[0] // m) * m, -(-shape[1] // m) * m

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Pad; records the ``offset`` ``[top, left]`` and the new ``size``."""
        size = self.target(labelmap.shape)
        top, left = _pad_offsets(labelmap.shape, size, self.position, rng)
        out = _geometric(labelmap, lambda a, fill: _place(a, fill, size, top, left))
        return out, {"offset": [top, left], "size": list(size)}


@register_edit("crop")
class Crop(Edit):
    """Cut an ``[h, w]`` window out of the map.

    A map smaller than the window in a dimension is first padded (centred, with ignore /
    instance 0, as :class:`Pad` does) up to it.

    Args:
        size: ``[h, w]`` of the window.
        position: ``random`` (offsets drawn uniformly among all windows that fit) or
            ``center`` (extra pixel bottom/right).
        p: Probability of applying.

    """

    def __init__(self, size: Sequence[int] | int, position: str = "random", p: float = 1.0):
        super().__init__(p)
        self.size = _pair(size, "size")
        self.position = _check_position(position, _POSITIONS_CROP)

    def params(self) -> dict[str, Any]:
        """Return ``size`` and ``position``."""
        return {"size": list(self.size), "position": self.position}

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Crop; records the ``offset`` ``[top, left]`` and the ``padded`` pre-pad, if any."""
        h, w = self.size
        H, W = labelmap.shape
        extra: dict[str, Any] = {}
        if H < h or W < w:
            size = (max(H, h), max(W, w))
            top, left = _pad_offsets((H, W), size, "center", rng)
            labelmap = _geometric(labelmap, lambda a, fill: _place(a, fill, size, top, left))
            extra["padded"] = {"offset": [top, left], "size": list(size)}
            H, W = size
        if self.position == "center":
            y0, x0 = (H - h) // 2, (W - w) // 2
        else:
            y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        out = _geometric(labelmap, lambda a, fill: a[y0:y0 + h, x0:x0 + w])
        return out, {"offset": [y0, x0], **extra}


# ===================================================================== morphology
def _ellipse(pixels: int) -> np.ndarray:
    """OpenCV's elliptical structuring element of radius ``pixels``."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))


def _check_pixels(pixels: Any) -> int:
    if isinstance(pixels, bool) or not isinstance(pixels, (int, np.integer)) or pixels < 0:
        raise SisgenInputError(f"pixels must be a non-negative integer, got {pixels!r}")
    return int(pixels)


def _nearest_values(source: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
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


class _ClassMorph(Edit):
    """Shared parameters of :class:`Dilate` and :class:`Erode`."""

    def __init__(self, class_: int | str, pixels: int = 1, p: float = 1.0):
        super().__init__(p)
        if isinstance(class_, bool) or not isinstance(class_, (int, str, np.integer)):
            raise SisgenInputError(f"class must be a name or an integer id, got {class_!r}")
        self.class_ = class_
        self.pixels = _check_pixels(pixels)

    def params(self) -> dict[str, Any]:
        """Return ``{"class": ..., "pixels": ...}``."""
        return {"class": self.class_, "pixels": self.pixels}

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return the parameters with the class id."""
        return {**self.params(), "class": _resolve(vocab, self.class_)}


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
        if not isinstance(over_things, bool):
            raise SisgenInputError(f"over_things must be true or false, got {over_things!r}")
        self.over_things = over_things

    def params(self) -> dict[str, Any]:
        """Return ``class``, ``pixels`` and ``over_things`` (when true)."""
        d = super().params()
        if self.over_things:
            d["over_things"] = True
        return d

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Dilate; records the number of ``changed`` pixels."""
        c = _resolve(vocab, self.class_)
        out = labelmap.copy()
        sem = labelmap.semantic
        mask = sem == c
        if self.pixels == 0 or not mask.any():
            return out, {"changed": 0}
        grown = cv2.dilate(mask.astype(np.uint8), _ellipse(self.pixels),
                           borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
        target = grown & ~mask & (sem != vocab.ignore_id)
        if not self.over_things:
            target &= ~_lookup(_thing_lut(vocab), sem)
        out.semantic[target] = c
        if out.instance is not None and target.any():
            if c in vocab.thing_ids:
                (nearest,) = _nearest_values(mask, labelmap.instance)
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
        c = _resolve(vocab, self.class_)
        out = labelmap.copy()
        sem = labelmap.semantic
        mask = sem == c
        if self.pixels == 0 or not mask.any():
            return out, {"changed": 0}
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
            near_sem, near_inst = _nearest_values(source, sem, inst)
            out.semantic[freed] = near_sem[freed]
            if out.instance is not None:
                out.instance[freed] = near_inst[freed]
        return out, {"changed": int(freed.sum())}


# ===================================================================== noise marks
@register_edit("resample_noise")
class ResampleNoise(Edit):
    """Mark a region whose generator noise is to be drawn anew; labels do not change.

    The target is the intersection of what is given: pixels of ``class``, pixels inside
    ``region``, pixels of ``instance`` (an id, or ``random``: one instance drawn uniformly
    among the nonzero instance ids on the pixels selected by ``class`` and ``region``).
    The boolean ``H×W`` target is OR-ed into ``meta["noise_mask"]`` (created when absent);
    geometric edits that run later (flip, scale, crop, pad) transform it with the labels.
    The generator re-draws noise only where the mask is set.

    Args:
        class_: Class name or id (``class`` in a recipe).
        instance: An instance id, or ``"random"``.
        region: ``[y0, x0, y1, x1]`` as fractions of ``H`` and ``W`` (rows
            ``floor(y0*H)`` to ``ceil(y1*H)``, end exclusive; same for columns).
        p: Probability of applying.

    """

    def __init__(self, class_: int | str | None = None, instance: int | str | None = None,
                 region: Sequence[float] | None = None, p: float = 1.0):
        super().__init__(p)
        if class_ is None and instance is None and region is None:
            raise SisgenInputError("give at least one of class, instance, region")
        if class_ is not None and (
            isinstance(class_, bool) or not isinstance(class_, (int, str, np.integer))
        ):
            raise SisgenInputError(f"class must be a name or an integer id, got {class_!r}")
        if instance is not None and instance != "random" and (
            isinstance(instance, bool) or not isinstance(instance, (int, np.integer))
            or instance < 1
        ):
            raise SisgenInputError(
                f"instance must be a positive instance id or 'random', got {instance!r}"
            )
        if region is not None:
            ok = (isinstance(region, Sequence) and not isinstance(region, str)
                  and len(region) == 4
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                          for v in region))
            if ok:
                y0, x0, y1, x1 = (float(v) for v in region)
                ok = 0 <= y0 < y1 <= 1 and 0 <= x0 < x1 <= 1
            if not ok:
                raise SisgenInputError(
                    f"region must be [y0, x0, y1, x1], fractions with y0 < y1 and x0 < x1, "
                    f"got {region!r}"
                )
            region = [float(v) for v in region]
        self.class_ = class_
        self.instance = instance if instance in (None, "random") else int(instance)
        self.region = region

    def params(self) -> dict[str, Any]:
        """Return the given targets (``class``, ``instance``, ``region``)."""
        d: dict[str, Any] = {}
        if self.class_ is not None:
            d["class"] = self.class_
        if self.instance is not None:
            d["instance"] = self.instance
        if self.region is not None:
            d["region"] = list(self.region)
        return d

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return the targets with the class id."""
        d = self.params()
        if self.class_ is not None:
            d["class"] = _resolve(vocab, self.class_)
        return d

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """OR the target into ``meta["noise_mask"]``; records ``target`` and ``pixels``."""
        out = labelmap.copy()
        H, W = labelmap.shape
        mask = np.ones((H, W), dtype=bool)
        target: dict[str, Any] = {}
        if self.class_ is not None:
            c = _resolve(vocab, self.class_)
            mask &= labelmap.semantic == c
            target["class"] = c
        if self.region is not None:
            y0, x0, y1, x1 = self.region
            box = np.zeros((H, W), dtype=bool)
            box[int(math.floor(y0 * H)):int(math.ceil(y1 * H)),
                int(math.floor(x0 * W)):int(math.ceil(x1 * W))] = True
            mask &= box
            target["region"] = list(self.region)
        if self.instance is not None:
            inst = labelmap.instance
            chosen: int | None
            if inst is None:
                chosen = None
            elif self.instance == "random":
                candidates = np.unique(inst[mask & (inst != 0)])
                chosen = int(rng.choice(candidates)) if len(candidates) else None
            else:
                chosen = self.instance
            mask = mask & (inst == chosen) if chosen is not None else np.zeros_like(mask)
            target["instance"] = chosen
        previous = _noise_mask(out)
        out.meta[NOISE_MASK_KEY] = mask if previous is None else previous | mask
        return out, {"target": target, "pixels": int(mask.sum())}


# ===================================================================== paste
_OCCLUSIONS = ("front", "behind")


def _class_list(value: Any, name: str) -> list[int | str] | None:
    if value is None:
        return None
    if isinstance(value, (str, int, np.integer)) and not isinstance(value, bool):
        return [value]
    if (not isinstance(value, Sequence) or isinstance(value, str) or not value or any(
            isinstance(v, bool) or not isinstance(v, (int, str, np.integer)) for v in value)):
        raise SisgenInputError(f"{name} must be a list of class names or ids, got {value!r}")
    return list(value)


def _load_bank_file(path: str | os.PathLike) -> InstanceBank:
    """Load a bank (cached); errors name the bank file inside the problem text."""
    try:
        return load_bank_cached(path)
    except SisgenInputError as e:
        raise SisgenInputError(f"{os.fspath(path)}: {e.problem}") from e


class _IdAllocator:
    """Fresh instance ids: ``class * 1000 + k`` when the map uses that style, else max + 1.

    A map uses the class style when all its nonzero ids are ``>= 1000`` with
    ``id // 1000`` equal to the class under them; a map without instances uses it only
    when ``meta["source"]`` is ``cityscapes``.
    """

    def __init__(self, labelmap: LabelMap):
        inst, sem = labelmap.instance, labelmap.semantic
        nz = inst != 0
        if nz.any():
            ids = inst[nz].astype(np.int64)
            self.class_style = bool(((ids >= 1000) & (ids // 1000 == sem[nz])).all())
        else:
            self.class_style = labelmap.meta.get("source") == "cityscapes"
        self.used = {int(i) for i in np.unique(inst)}

    def new(self, class_id: int) -> int:
        """Return an unused id for an instance of ``class_id``."""
        if self.class_style and class_id >= 1:
            ks = [i - class_id * 1000 for i in self.used if i // 1000 == class_id]
            k = max(ks) + 1 if ks else 0
            if k < 1000:
                self.used.add(class_id * 1000 + k)
                return class_id * 1000 + k
        new = max(self.used | {0}) + 1
        self.used.add(new)
        return new


@register_edit("paste")
class Paste(Edit):
    """Paste instances from an :class:`~sisgen.instance_bank.InstanceBank`.

    For each instance to paste, a class is drawn uniformly among the requested classes
    present in the bank, then an item of that class uniformly. Up to ``tries`` times, a
    landing pixel is drawn uniformly among the pixels of the ``on`` classes (anywhere
    without ``on``); the item's mask is scaled (nearest neighbour) and placed with the
    centre of its bottom row on that pixel (parts outside the map are clipped). A try
    fails when perspective puts the pixel at or above the horizon or nothing of the
    instance would be visible; after ``tries`` failures the instance is skipped.

    Scale: a factor drawn from ``scale`` (default 1) multiplies the crop's size. With
    ``perspective``, it further multiplies ``(H / H_src) * (y_b - horizon) /
    max(y_b_src - horizon, 0.05)``, ``y_b`` being the bottom row's position as a fraction
    of the height (here and in the source map): on a flat ground plane seen by a level
    camera, an object's image height is proportional to its foot's distance below the
    horizon, so lower in the image means larger.

    Occlusion: ``front`` overwrites every pixel under the mask; ``behind`` only stuff
    pixels (not things, not ignore), so existing things stay in front. Pasted pixels get a
    fresh instance id (``class * 1000 + k`` when the map uses that style, else max + 1);
    a map without an instance map gets semantic pixels only.

    The bank: the step's ``bank`` file (loaded once per process and file version;
    relative paths are looked up next to the recipe file, then in the working
    directory), else ``context["bank"]`` given to :meth:`Recipe.__call__` (an
    :class:`InstanceBank` or a path). A bank that records a vocabulary must match the
    map's.

    Args:
        classes: Bank classes to paste (names or ids); ``None``: all in the bank.
        count: Number of instances (default 1).
        range: ``[lo, hi]``: the number is drawn uniformly (inclusive). Give ``count`` or
            ``range``.
        scale: ``[lo, hi]`` factor range, relative to the crop (or on top of perspective).
        perspective: Scale by the vertical landing position (see above).
        horizon: Horizon row as a fraction of the height, for ``perspective``.
        on: Classes the bottom-centre pixel must land on (e.g. ``[road, sidewalk]``).
        occlusion: ``front`` or ``behind``.
        bank: Path of a bank ``.npz`` written by :meth:`InstanceBank.save`.
        tries: Placement attempts per instance.
        p: Probability of applying.

    """

    uses_context = True

    def __init__(
        self,
        classes: Sequence[int | str] | int | str | None = None,
        count: int | None = None,
        range: Sequence[int] | None = None,
        scale: Sequence[float] | None = None,
        perspective: bool = False,
        horizon: float = 0.4,
        on: Sequence[int | str] | int | str | None = None,
        occlusion: str = "front",
        bank: str | os.PathLike | None = None,
        tries: int = 10,
        p: float = 1.0,
    ):
        super().__init__(p)
        self.classes = _class_list(classes, "classes")
        self.on = _class_list(on, "on")
        if count is not None and range is not None:
            raise SisgenInputError("give either count or range, not both")
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0
        ):
            raise SisgenInputError(f"count must be a non-negative integer, got {count!r}")
        self.count = None if count is None else int(count)
        self.range = None if range is None else _number_range(range, "range", integer=True)
        self.scale = None if scale is None else _number_range(scale, "scale", positive=True)
        if not isinstance(perspective, bool):
            raise SisgenInputError(f"perspective must be true or false, got {perspective!r}")
        self.perspective = perspective
        if isinstance(horizon, bool) or not isinstance(horizon, (int, float)) or not (
            0.0 <= horizon < 1.0
        ):
            raise SisgenInputError(f"horizon must be a fraction in [0, 1), got {horizon!r}")
        self.horizon = float(horizon)
        if occlusion not in _OCCLUSIONS:
            raise SisgenInputError(f"occlusion must be 'front' or 'behind', got {occlusion!r}")
        self.occlusion = occlusion
        if bank is not None and not isinstance(bank, (str, os.PathLike)):
            raise SisgenInputError(f"bank must be a path to an .npz file, got {bank!r}")
        self.bank = None if bank is None else os.fspath(bank)
        if isinstance(tries, bool) or not isinstance(tries, (int, np.integer)) or tries < 1:
            raise SisgenInputError(f"tries must be a positive integer, got {tries!r}")
        self.tries = int(tries)
        self._base_dir: str | None = None

    def bind_base_dir(self, base_dir: str | None) -> None:
        """Remember the recipe file's folder for a relative ``bank`` path."""
        self._base_dir = base_dir

    def params(self) -> dict[str, Any]:
        """Return the parameters that differ from their defaults."""
        d: dict[str, Any] = {}
        if self.classes is not None:
            d["classes"] = list(self.classes)
        if self.range is not None:
            d["range"] = list(self.range)
        elif self.count is not None:
            d["count"] = self.count
        if self.scale is not None:
            d["scale"] = list(self.scale)
        if self.perspective:
            d["perspective"] = True
            d["horizon"] = self.horizon
        elif self.horizon != 0.4:
            d["horizon"] = self.horizon
        if self.on is not None:
            d["on"] = list(self.on)
        if self.occlusion != "front":
            d["occlusion"] = self.occlusion
        if self.bank is not None:
            d["bank"] = self.bank
        if self.tries != 10:
            d["tries"] = self.tries
        return d

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return the parameters with class ids."""
        d = self.params()
        if self.classes is not None:
            d["classes"] = sorted({_resolve(vocab, c) for c in self.classes})
        if self.on is not None:
            d["on"] = sorted({_resolve(vocab, c) for c in self.on})
        d["occlusion"] = self.occlusion
        return d

    def bank_path(self) -> str | None:
        """Return the ``bank`` file to read (resolved as described above), if any."""
        if self.bank is None:
            return None
        if not os.path.isabs(self.bank) and self._base_dir is not None:
            beside = os.path.join(self._base_dir, self.bank)
            if os.path.exists(beside):
                return beside
        return self.bank

    def get_bank(self, context: Mapping[str, Any]) -> InstanceBank:
        """Return the bank of this step (its file, else ``context["bank"]``).

        Raises:
            SisgenInputError: No bank anywhere, or an unreadable file.

        """
        path = self.bank_path()
        if path is not None:
            return _load_bank_file(path)
        bank = context.get("bank")
        if isinstance(bank, InstanceBank):
            return bank
        if isinstance(bank, (str, os.PathLike)):
            return _load_bank_file(bank)
        raise SisgenInputError(
            "paste needs an instance bank: give 'bank: path/to/bank.npz' in the step or "
            "pass context={'bank': InstanceBank} to the recipe"
        )

    def apply(
        self,
        labelmap: LabelMap,
        rng: np.random.Generator,
        vocab: Vocabulary,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Paste; records ``requested``, ``pasted`` (one entry per instance) and ``skipped``."""
        bank = self.get_bank(context or {})
        if bank.vocabulary is not None and bank.vocabulary != vocab.name:
            raise SisgenInputError(
                f"the instance bank holds {bank.vocabulary!r} class ids, the map uses "
                f"{vocab.name!r}"
            )
        wanted = None if self.classes is None else {_resolve(vocab, c) for c in self.classes}
        pool: dict[int, list[int]] = {}
        for i, item in enumerate(bank):
            if wanted is None or item.class_id in wanted:
                pool.setdefault(item.class_id, []).append(i)
        present = sorted(pool)
        on_ids = None if self.on is None else sorted({_resolve(vocab, c) for c in self.on})
        if self.range is not None:
            n = int(rng.integers(self.range[0], self.range[1] + 1))
        else:
            n = 1 if self.count is None else self.count

        out = labelmap.copy()
        H, W = out.shape
        stuff = np.zeros(256, dtype=bool)
        stuff[vocab.ids] = True
        stuff[vocab.thing_ids] = False
        ids = None if out.instance is None else _IdAllocator(out)
        pasted: list[dict[str, Any]] = []
        skipped = 0
        for _ in range(n):
            placed = None
            if present:
                c = present[int(rng.integers(len(present)))]
                index = pool[c][int(rng.integers(len(pool[c])))]
                placed = self._place(bank[index], out, rng, on_ids, stuff)
            if placed is None:
                skipped += 1
                continue
            full, y, x, f, size = placed
            item = bank[index]
            out.semantic[full] = item.class_id
            entry: dict[str, Any] = {
                "bank_index": index, "class": item.class_id, "source": item.source_id,
                "position": [y, x], "scale": f, "size": list(size),
                "pixels": int(full.sum()),
            }
            if ids is not None:
                new_id = ids.new(item.class_id)
                out.instance[full] = new_id
                entry["instance"] = new_id
            pasted.append(entry)
        return out, {"requested": n, "pasted": pasted, "skipped": skipped}

    def _place(
        self, item: BankItem, out: LabelMap, rng: np.random.Generator,
        on_ids: list[int] | None, stuff: np.ndarray,
    ) -> tuple[np.ndarray, int, int, float, tuple[int, int]] | None:
        """Find a place for ``item``: ``(mask, y, x, factor, size)`` or ``None``."""
        H, W = out.shape
        allowed = np.ones(H * W, dtype=bool) if on_ids is None else np.isin(
            out.semantic, on_ids).ravel()
        candidates = np.flatnonzero(allowed)
        if not len(candidates):
            return None
        h, w = item.size
        for _ in range(self.tries):
            y, x = divmod(int(candidates[int(rng.integers(len(candidates)))]), W)
            f = 1.0 if self.scale is None else float(rng.uniform(*self.scale))
            if self.perspective:
                below = (y + 1) / H - self.horizon
                if below <= 0:
                    continue
                src_h = item.source_shape[0]
                src_below = max(item.bbox[2] / src_h - self.horizon, 0.05)
                f *= (H / src_h) * below / src_below
            size = (max(1, int(round(h * f))), max(1, int(round(w * f))))
            if size[0] > 4 * H or size[1] > 4 * W:
                continue
            m = _nn_resize(item.mask, size)
            full = _place(m, False, (H, W), y - (size[0] - 1), x - size[1] // 2)
            if self.occlusion == "behind":
                full &= _lookup(stuff, out.semantic)
            if full.any():
                return full, y, x, f, size
        return None


# ===================================================================== composites
def _step_where(index: int, step: Any) -> str:
    op = step.op if isinstance(step, Edit) else (
        _expand_shorthand(step).get("op") if isinstance(step, Mapping) else None
    )
    return f"step {index}" + (f" ({op})" if op is not None else "")


def _build_steps(steps: Any) -> list[Edit]:
    if (not isinstance(steps, Sequence) or isinstance(steps, (str, bytes)) or not steps):
        raise SisgenInputError(f"steps must be a non-empty list of steps, got {steps!r}")
    built = []
    for i, step in enumerate(steps):
        try:
            built.append(build_edit(step))
        except SisgenInputError as e:
            raise SisgenInputError(f"{_step_where(i, step)}: {e.problem}") from e
    return built


class _Composite(Edit):
    """Shared machinery of :class:`OneOf` and :class:`SomeOf`."""

    uses_context = True
    steps: list[Edit]

    def children(self) -> list[Edit]:
        """Return the nested steps."""
        return list(self.steps)

    def _resolved_steps(self, vocab: Vocabulary) -> list[dict[str, Any]]:
        out = []
        for i, step in enumerate(self.steps):
            try:
                out.append({"op": step.op, **step.resolved_params(vocab), "p": step.p})
            except SisgenInputError as e:
                raise SisgenInputError(f"{_step_where(i, step)}: {e.problem}") from e
        return out

    def _run_step(self, i: int, labelmap: LabelMap, rng: np.random.Generator,
                  vocab: Vocabulary, context: Mapping[str, Any] | None
                  ) -> tuple[LabelMap, dict[str, Any]]:
        step = self.steps[i]
        try:
            return step.run(labelmap, rng, vocab, context)
        except SisgenInputError as e:
            raise SisgenInputError(f"{_step_where(i, step)}: {e.problem}") from e


@register_edit("one_of")
class OneOf(_Composite):
    """Apply exactly one of several steps (which then still honours its own ``p``).

    Written ``{op: one_of, steps: [...], weights: [...]}`` or ``{one_of: [...]}``.

    Args:
        steps: The candidate steps (dict form or :class:`Edit`).
        weights: Relative choice weights (non-negative, not all 0); default uniform.
        p: Probability that any step is applied at all.

    """

    def __init__(self, steps: Sequence[Any], weights: Sequence[float] | None = None,
                 p: float = 1.0):
        super().__init__(p)
        self.steps = _build_steps(steps)
        if weights is not None:
            ok = (isinstance(weights, Sequence) and not isinstance(weights, str)
                  and len(weights) == len(self.steps)
                  and all(isinstance(w, (int, float)) and not isinstance(w, bool)
                          and 0 <= w < math.inf for w in weights)
                  and sum(weights) > 0)
            if not ok:
                raise SisgenInputError(
                    f"weights must be {len(self.steps)} non-negative numbers, not all 0, "
                    f"got {weights!r}"
                )
            weights = [float(w) for w in weights]
        self.weights = weights

    def params(self) -> dict[str, Any]:
        """Return ``steps`` (as data) and ``weights`` (when given)."""
        d: dict[str, Any] = {"steps": [s.to_dict() for s in self.steps]}
        if self.weights is not None:
            d["weights"] = list(self.weights)
        return d

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return the steps' resolved parameters and the weights."""
        d: dict[str, Any] = {"steps": self._resolved_steps(vocab)}
        if self.weights is not None:
            d["weights"] = list(self.weights)
        return d

    def apply(
        self,
        labelmap: LabelMap,
        rng: np.random.Generator,
        vocab: Vocabulary,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Choose a step and run it; records ``chosen`` (index) and ``steps`` (its record)."""
        if self.weights is None:
            i = int(rng.integers(len(self.steps)))
        else:
            w = np.asarray(self.weights, dtype=np.float64)
            i = int(rng.choice(len(self.steps), p=w / w.sum()))
        out, record = self._run_step(i, labelmap, rng, vocab, context)
        return out, {"chosen": i, "steps": [record]}


@register_edit("some_of")
class SomeOf(_Composite):
    """Apply ``n`` distinct steps, drawn without replacement, in random order.

    Written ``{op: some_of, n: 2, steps: [...]}`` or ``{some_of: {n: 2, steps: [...]}}``.
    Each chosen step still honours its own ``p``.

    Args:
        steps: The candidate steps.
        n: How many to apply (0 to ``len(steps)``).
        p: Probability that any step is applied at all.

    """

    def __init__(self, steps: Sequence[Any], n: int = 1, p: float = 1.0):
        super().__init__(p)
        self.steps = _build_steps(steps)
        if (isinstance(n, bool) or not isinstance(n, (int, np.integer))
                or not 0 <= n <= len(self.steps)):
            raise SisgenInputError(
                f"n must be an integer from 0 to {len(self.steps)} (the number of steps), "
                f"got {n!r}"
            )
        self.n = int(n)

    def params(self) -> dict[str, Any]:
        """Return ``n`` and ``steps`` (as data)."""
        return {"n": self.n, "steps": [s.to_dict() for s in self.steps]}

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return ``n`` and the steps' resolved parameters."""
        return {"n": self.n, "steps": self._resolved_steps(vocab)}

    def apply(
        self,
        labelmap: LabelMap,
        rng: np.random.Generator,
        vocab: Vocabulary,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Run the chosen steps; records ``chosen`` (indices, in order) and their records."""
        order = [int(i) for i in rng.permutation(len(self.steps))[: self.n]]
        out, records = labelmap, []
        for i in order:
            out, record = self._run_step(i, out, rng, vocab, context)
            records.append(record)
        if not order:
            out = labelmap.copy()
        return out, {"chosen": order, "steps": records}


def build_edit(spec: Mapping[str, Any]) -> Edit:
    """Build one edit from its data form ``{"op": name, **params}``.

    Raises:
        SisgenInputError: Not a mapping, no/unknown ``op``, unknown or missing parameters,
            or parameter values the edit rejects.

    """
    if isinstance(spec, Edit):
        return spec
    if not isinstance(spec, Mapping):
        raise SisgenInputError(f"a step must be a mapping with an 'op', got {spec!r}")
    spec = _expand_shorthand(spec)
    if "op" not in spec:
        raise SisgenInputError(f"step has no 'op' (known ops: {', '.join(available_edits())})")
    op = spec["op"]
    if op not in _EDITS:
        raise SisgenInputError(f"unknown op {op!r} (known ops: {', '.join(available_edits())})")
    cls = _EDITS[op]
    sig = inspect.signature(cls.__init__)
    # a parameter whose data name is a Python keyword (``class``) is ``class_`` in Python
    names = {_data_name(n): n for n in sig.parameters if n != "self"}
    # YAML 1.1 reads a bare ``on`` key as the boolean true: take it back as "on"
    kwargs = {("on" if k is True and "on" in names else str(k)): v
              for k, v in spec.items() if k != "op"}
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise SisgenInputError(
            f"op {op!r} has no parameter {', '.join(map(repr, unknown))} "
            f"(accepted: {', '.join(names)})"
        )
    missing = [
        d for d, n in names.items()
        if sig.parameters[n].default is inspect.Parameter.empty and d not in kwargs
    ]
    if missing:
        raise SisgenInputError(f"op {op!r} needs {', '.join(map(repr, missing))}")
    return cls(**{names[k]: v for k, v in kwargs.items()})


def _data_name(param: str) -> str:
    """``class_`` -> ``class``: the recipe key of a constructor parameter."""
    if param.endswith("_") and keyword.iskeyword(param[:-1]):
        return param[:-1]
    return param


def _expand_shorthand(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """Turn ``{one_of: [...], ...}`` / ``{some_of: {n, steps}, ...}`` into the ``op`` form."""
    if "op" in spec:
        return spec
    if "one_of" in spec:
        rest = {k: v for k, v in spec.items() if k != "one_of"}
        return {"op": "one_of", "steps": spec["one_of"], **rest}
    if "some_of" in spec:
        body = spec["some_of"]
        rest = {k: v for k, v in spec.items() if k != "some_of"}
        if isinstance(body, Mapping):
            return {"op": "some_of", **body, **rest}
        return {"op": "some_of", "steps": body, **rest}
    return spec


def _descendants(edit: Edit) -> list[Edit]:
    out: list[Edit] = []
    for child in edit.children():
        out.append(child)
        out.extend(_descendants(child))
    return out


class Recipe:
    """An ordered list of edits, applied with one seeded generator.

    Args:
        edits: The steps (:class:`Edit` objects or their dict form).
        source: The file the recipe came from, named in error messages.

    """

    def __init__(
        self,
        edits: Iterable[Edit | Mapping[str, Any]] = (),
        source: str | os.PathLike | None = None,
    ):
        self.source = None if source is None else os.fspath(source)
        self.edits: list[Edit] = []
        for i, step in enumerate(edits):
            try:
                self.edits.append(build_edit(step))
            except SisgenInputError as e:
                raise self._error(i, step, e.problem) from e
        base_dir = None if self.source is None else os.path.dirname(os.path.abspath(self.source))
        for edit in self.edits:
            edit.bind_base_dir(base_dir)

    def _error(self, index: int, step: Any, problem: str) -> SisgenInputError:
        op = step.op if isinstance(step, Edit) else (
            _expand_shorthand(step).get("op") if isinstance(step, Mapping) else None
        )
        where = f"edit step {index}" + (f" ({op})" if op is not None else "")
        return SisgenInputError(f"{where}: {problem}", self.source)

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_list(
        cls, steps: Sequence[Mapping[str, Any]] | None, source: str | os.PathLike | None = None
    ) -> Recipe:
        """Build a recipe from a list of ``{"op": ..., ...}`` dicts (``None``: empty)."""
        if steps is None:
            return cls([], source)
        if isinstance(steps, (str, bytes, Mapping)) or not isinstance(steps, Iterable):
            raise SisgenInputError(
                f"an edit recipe must be a list of steps, got {type(steps).__name__}", source
            )
        return cls(list(steps), source)

    @classmethod
    def from_data(cls, data: Any, source: str | os.PathLike | None = None) -> Recipe:
        """Build a recipe from parsed data: a step list, ``{"edits": [...]}`` or ``None``."""
        if isinstance(data, Mapping):
            if "edits" not in data:
                raise SisgenInputError("recipe mapping has no 'edits' list", source)
            data = data["edits"]
        return cls.from_list(data, source)

    @classmethod
    def from_yaml(cls, path_or_text: str | os.PathLike) -> Recipe:
        """Build a recipe from a YAML file or YAML text.

        A :class:`~pathlib.Path`, or a string naming an existing file (or ending in
        ``.yaml``/``.yml``), is read as a file; any other string is parsed as YAML text.

        Raises:
            SisgenInputError: Missing file, YAML syntax error or bad steps (naming the
                file and the step index).

        """
        import yaml

        source: str | None = None
        is_path = isinstance(path_or_text, os.PathLike) or (
            "\n" not in path_or_text
            and (
                os.path.isfile(path_or_text)
                or path_or_text.strip().lower().endswith((".yaml", ".yml"))
            )
        )
        if is_path:
            source = os.fspath(path_or_text)
            if not os.path.isfile(source):
                raise SisgenInputError("edit recipe file not found", source)
            text = Path(source).read_text(encoding="utf-8")
        else:
            text = str(path_or_text)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SisgenInputError(f"cannot parse edit recipe YAML ({e})", source) from e
        return cls.from_data(data, source)

    @classmethod
    def load(cls, x: Any) -> Recipe:
        """Build a recipe from whatever a user may hand over.

        Args:
            x: A :class:`Recipe` (returned as is), a path, YAML text, a list of steps, a
                mapping with ``edits:``, or ``None`` (the empty recipe).

        """
        if x is None:
            return cls([])
        if isinstance(x, Recipe):
            return x
        if isinstance(x, (str, os.PathLike)):
            return cls.from_yaml(x)
        return cls.from_data(x)

    # ----------------------------------------------------------------- using
    def to_list(self) -> list[dict[str, Any]]:
        """Return the recipe as data; ``Recipe.from_list(r.to_list())`` rebuilds it."""
        return [e.to_dict() for e in self.edits]

    def to_yaml(self) -> str:
        """Return the recipe as YAML text (``edits: [...]``)."""
        import yaml

        return yaml.safe_dump({"edits": self.to_list()}, sort_keys=False)

    def validate(self, vocab: Vocabulary) -> None:
        """Resolve every class name against ``vocab`` and read ``bank:`` files, editing nothing.

        Raises:
            SisgenInputError: The first bad step, naming the recipe file and step index.

        """
        for i, edit in enumerate(self.edits):
            try:
                edit.resolved_params(vocab)
                for sub in [edit, *_descendants(edit)]:
                    if isinstance(sub, Paste) and sub.bank is not None:
                        _load_bank_file(sub.bank_path())
            except SisgenInputError as e:
                raise self._error(i, edit, e.problem) from e

    def walk(self) -> Iterator[Edit]:
        """Yield every step, nested ones (inside ``one_of`` / ``some_of``) included."""
        stack = list(reversed(self.edits))
        while stack:
            edit = stack.pop()
            yield edit
            stack.extend(reversed(edit.children()))

    def needs_bank(self) -> bool:
        """Whether a ``paste`` step has no ``bank:`` file and so needs ``context["bank"]``."""
        return any(isinstance(e, Paste) and e.bank is None for e in self.walk())

    def __call__(
        self,
        labelmap: LabelMap,
        seed: int,
        vocab: Vocabulary,
        context: Mapping[str, Any] | None = None,
    ) -> LabelMap:
        """Apply the steps in order with ``np.random.default_rng(seed)``.

        Args:
            labelmap: The input map (not modified).
            seed: The sample's seed.
            vocab: The vocabulary of the map's ids.
            context: Run-wide objects the steps may use: ``{"bank": InstanceBank}`` is the
                bank of every ``paste`` step that names no ``bank:`` file.

        Returns:
            A new map whose ``meta["edits"]`` lists, after any records already there, one
            record per step: ``{"op", "params" (resolved ids and p), "fired", ...}``.

        Raises:
            SisgenInputError: A step cannot run with this vocabulary (unknown class name),
                naming the recipe file and step index.

        """
        rng = np.random.default_rng(seed)
        out = labelmap.copy()
        records: list[dict[str, Any]] = list(out.meta.get("edits", []))
        for i, edit in enumerate(self.edits):
            try:
                out, record = edit.run(out, rng, vocab, context)
            except SisgenInputError as e:
                raise self._error(i, edit, e.problem) from e
            records.append(record)
        out.meta["edits"] = records
        return out

    def __len__(self) -> int:
        return len(self.edits)

    def __iter__(self):
        return iter(self.edits)

    def __repr__(self) -> str:
        return f"Recipe({self.edits!r})"
