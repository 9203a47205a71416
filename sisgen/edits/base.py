"""The edit protocol, the op registry, and building an edit from its data form.

An edit's data form is ``{"op": name, **params}``. :func:`build_edit` reads the accepted
parameters from the edit class's constructor signature, and :meth:`Edit.params` writes them
back from the attributes of the same names: every edit stores its (normalised) constructor
arguments as attributes named like the parameters, so nothing is listed twice.

Copy on write: an edit never writes into its input map; its output shares the input's
arrays where it leaves them unchanged (an edit that does not fire changes none), so a
full-resolution map is not copied per step. Treat a map's arrays as read-only and call
:meth:`LabelMap.copy` before writing into them.
"""

from __future__ import annotations

import functools
import inspect
import keyword
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from ..errors import SisgenInputError
from ..labelmap import LabelMap
from ..registry import Registry
from ..vocab import Vocabulary
from .checks import check_probability, resolve_classes

_OPS: Registry[type[Edit]] = Registry("edit op")


def register_edit(name: str) -> Callable[[type[Edit]], type[Edit]]:
    """Register an :class:`Edit` subclass under the op name ``name``.

    Args:
        name: The ``op`` value that selects the edit in a recipe.

    Returns:
        A class decorator.

    Raises:
        ValueError: The name is already taken.

    """
    return _OPS.register(name, attr="op")


def available_edits() -> list[str]:
    """Return the registered edit op names."""
    return _OPS.names()


def edit_class(op: str) -> type[Edit]:
    """The :class:`Edit` subclass registered as ``op`` (``SisgenInputError`` if unknown)."""
    return _OPS.get(op)


@functools.cache
def constructor_parameters(cls: type) -> tuple[inspect.Parameter, ...]:
    """The parameters of ``cls.__init__`` without ``self``, in signature order."""
    return tuple(p for p in inspect.signature(cls.__init__).parameters.values()
                 if p.name != "self")


def data_name(param: str) -> str:
    """``class_`` -> ``class``: the recipe key of a constructor parameter."""
    if param.endswith("_") and keyword.iskeyword(param[:-1]):
        return param[:-1]
    return param


def as_data(value: Any) -> Any:
    """A parameter value in its data form: edits as dicts, tuples as lists (copies)."""
    if isinstance(value, Edit):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: as_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_data(v) for v in value]
    return value


def lookup(table: np.ndarray, semantic: np.ndarray) -> np.ndarray:
    """``table[semantic]`` for any integer map; ids outside the table map to ``False``/0."""
    inside = (semantic >= 0) & (semantic < len(table))
    return np.where(inside, table[np.clip(semantic, 0, len(table) - 1)], table.dtype.type(0))


class Edit:
    """One seeded transform of a :class:`~sisgen.labelmap.LabelMap`.

    Subclasses implement :meth:`apply` and store each constructor argument, normalised
    and JSON-able, as the attribute of the same name: :meth:`params` (and so
    :meth:`to_dict`) reads them back. Class names are resolved against the vocabulary
    only when the edit runs, so one recipe serves any vocabulary that has the names it
    uses.

    Attributes:
        op: The registered op name.
        p: Probability that the edit fires.

    """

    op: ClassVar[str] = "edit"
    #: Edits that set this get the run's context as ``apply(..., context=dict)``.
    uses_context: ClassVar[bool] = False
    #: Constructor parameters that :meth:`params` records even at their default value.
    always_recorded: ClassVar[frozenset[str]] = frozenset()
    #: Data names of the parameters that hold classes, turned into ids by
    #: :meth:`resolved_params` (one class: an id; a list: sorted distinct ids).
    class_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, p: float = 1.0):
        self.p = check_probability(p)

    def children(self) -> list[Edit]:
        """Return the nested steps of a composite edit (empty for plain edits)."""
        return []

    def walk(self) -> Iterator[Edit]:
        """Yield this step and then every nested step, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    def bind_base_dir(self, base_dir: str | None) -> None:
        """Note the folder of the recipe file, for relative paths in parameters.

        The default does nothing; composite edits pass it on to their steps.
        """
        for child in self.children():
            child.bind_base_dir(base_dir)

    # ----------------------------------------------------------------- protocol
    def params(self) -> dict[str, Any]:
        """Return the edit's own parameters as given (without ``op`` and ``p``).

        One entry per constructor parameter, in signature order, under its data name
        (``class`` for ``class_``): required ones always, the others when they differ from
        their default or are in :attr:`always_recorded`.

        Raises:
            TypeError: The edit does not store a constructor argument as an attribute.

        """
        out: dict[str, Any] = {}
        for param in constructor_parameters(type(self)):
            name = param.name
            if name == "p" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            try:
                value = getattr(self, name)
            except AttributeError:
                raise TypeError(f"{type(self).__name__} must store its constructor argument "
                                f"{name!r} as self.{name} (or override params())") from None
            if self._records(name, value, param.default):
                out[data_name(name)] = as_data(value)
        return out

    def _records(self, name: str, value: Any, default: Any) -> bool:
        """Whether :meth:`params` records parameter ``name`` holding ``value``."""
        if default is inspect.Parameter.empty or name in self.always_recorded:
            return True
        try:
            return bool(value != default)
        except (TypeError, ValueError):  # e.g. an array: no single truth value
            return True

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return the parameters with class names resolved to ids (for ``meta["edits"]``)."""
        out = self.params()
        for name in self.class_params:
            if name in out:
                out[name] = resolve_classes(vocab, out[name])
        return out

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
            The new map (sharing the input's arrays when the edit did not fire, see the
            module docstring) and a record ``{"op", "params", "fired", ...extra}``.

        """
        params = {**self.resolved_params(vocab), "p": self.p}
        fired = bool(rng.random() < self.p)
        record: dict[str, Any] = {"op": self.op, "params": params, "fired": fired}
        if not fired:
            return labelmap.shallow_copy(), record
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


# ===================================================================== building
def expand_shorthand(spec: Mapping[str, Any]) -> Mapping[str, Any]:
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


def step_label(index: int, step: Any, word: str = "step") -> str:
    """``step 3 (paste)``: where a step sits, for error messages (op when known)."""
    op = step.op if isinstance(step, Edit) else (
        expand_shorthand(step).get("op") if isinstance(step, Mapping) else None
    )
    return f"{word} {index}" + (f" ({op})" if op is not None else "")


def build_edit(spec: Mapping[str, Any] | Edit) -> Edit:
    """Build one edit from its data form ``{"op": name, **params}`` (an :class:`Edit` as is).

    Raises:
        SisgenInputError: Not a mapping, no/unknown ``op``, unknown or missing parameters,
            or parameter values the edit rejects.

    """
    if isinstance(spec, Edit):
        return spec
    if not isinstance(spec, Mapping):
        raise SisgenInputError(f"a step must be a mapping with an 'op', got {spec!r}")
    spec = expand_shorthand(spec)
    if "op" not in spec:
        raise SisgenInputError(f"step has no 'op' (known ops: {', '.join(available_edits())})")
    op = spec["op"]
    cls = _OPS.get(op)
    params = {p.name: p for p in constructor_parameters(cls)}
    # a parameter whose data name is a Python keyword (``class``) is ``class_`` in Python
    names = {data_name(n): n for n in params}
    # YAML 1.1 reads a bare ``on`` key as the boolean true: take it back as "on"
    kwargs = {("on" if k is True and "on" in names else str(k)): v
              for k, v in spec.items() if k != "op"}
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise SisgenInputError(
            f"op {op!r} has no parameter {', '.join(map(repr, unknown))} "
            f"(accepted: {', '.join(names)})"
        )
    missing = [d for d, n in names.items()
               if params[n].default is inspect.Parameter.empty and d not in kwargs]
    if missing:
        raise SisgenInputError(f"op {op!r} needs {', '.join(map(repr, missing))}")
    return cls(**{names[k]: v for k, v in kwargs.items()})
