"""Seeded, composable edits of label maps, described as data.

An edit recipe is a list of steps, each a mapping with an ``op`` and its parameters, kept in
YAML so that a run is reproducible from its manifest::

    edits:
      - {op: swap, a: car, b: person, p: 0.5}
      - {op: relabel, mapping: {grass: vegetation}}
      - {op: remove_instances, classes: [person], fraction: 0.5}
      - {op: hflip, p: 0.5}

Every edit takes ``p``, the probability that it fires (default 1). A :class:`Recipe` applies
its steps in order with one ``np.random.default_rng(seed)`` and records each step's resolved
parameters (class names turned into ids), whether it fired and what it chose (the removed
instance ids) in ``meta["edits"]`` of the map it returns. Edits never mutate their input.

Random draws: each step first draws one uniform number for its ``p`` coin (always, even when
``p`` is 0 or 1, so the stream does not depend on ``p``'s value); a step that needs more
randomness (``remove_instances``) draws it only when it fires.

New edits subclass :class:`Edit` and register with :func:`register_edit`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from .errors import SisgenInputError
from .labelmap import IGNORE_ID, LabelMap
from .vocab import Vocabulary

__all__ = [
    "Edit",
    "HFlip",
    "Recipe",
    "Relabel",
    "RemoveInstances",
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

    def __init__(self, p: float = 1.0):
        self.p = _check_p(p)

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
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Flip the ``p`` coin, apply when it fires, and describe what happened.

        Returns:
            The new map (a copy even when the edit did not fire) and a record
            ``{"op", "params", "fired", ...extra}``.

        """
        params = {**self.resolved_params(vocab), "p": self.p}
        fired = bool(rng.random() < self.p)
        record: dict[str, Any] = {"op": self.op, "params": params, "fired": fired}
        if not fired:
            return labelmap.copy(), record
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


@register_edit("hflip")
class HFlip(Edit):
    """Mirror the map left to right (semantic and instance maps).

    Args:
        p: Probability of applying.

    """

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Flip horizontally."""
        out = labelmap.copy()
        out.semantic = np.ascontiguousarray(out.semantic[:, ::-1])
        if out.instance is not None:
            out.instance = np.ascontiguousarray(out.instance[:, ::-1])
        return out, {}


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
    if "op" not in spec:
        raise SisgenInputError(f"step has no 'op' (known ops: {', '.join(available_edits())})")
    op = spec["op"]
    if op not in _EDITS:
        raise SisgenInputError(f"unknown op {op!r} (known ops: {', '.join(available_edits())})")
    cls = _EDITS[op]
    kwargs = {str(k): v for k, v in spec.items() if k != "op"}
    sig = inspect.signature(cls.__init__)
    accepted = [n for n in sig.parameters if n != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise SisgenInputError(
            f"op {op!r} has no parameter {', '.join(map(repr, unknown))} "
            f"(accepted: {', '.join(accepted)})"
        )
    missing = [
        n for n, prm in sig.parameters.items()
        if n != "self" and prm.default is inspect.Parameter.empty and n not in kwargs
    ]
    if missing:
        raise SisgenInputError(f"op {op!r} needs {', '.join(map(repr, missing))}")
    return cls(**kwargs)


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

    def _error(self, index: int, step: Any, problem: str) -> SisgenInputError:
        op = step.op if isinstance(step, Edit) else (
            step.get("op") if isinstance(step, Mapping) else None
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
        """Resolve every class name against ``vocab`` now, without editing anything.

        Raises:
            SisgenInputError: The first bad step, naming the recipe file and step index.

        """
        for i, edit in enumerate(self.edits):
            try:
                edit.resolved_params(vocab)
            except SisgenInputError as e:
                raise self._error(i, edit, e.problem) from e

    def __call__(self, labelmap: LabelMap, seed: int, vocab: Vocabulary) -> LabelMap:
        """Apply the steps in order with ``np.random.default_rng(seed)``.

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
                out, record = edit.run(out, rng, vocab)
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
