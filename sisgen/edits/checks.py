"""Typed checks of edit parameters, shared by every edit.

Each ``check_*`` function validates one constructor argument and returns it normalised
(NumPy scalars become Python ones, a single class becomes a one-element list, pairs become
tuples). A bad value raises :class:`~sisgen.errors.SisgenInputError` worded the same way
everywhere: ``<name> must be <what>, got <value>``. The ``resolve_*`` functions turn class
names or ids into ids of a vocabulary when an edit runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import SisgenInputError
from ..vocab import Vocabulary

#: Names accepted for the ignore id (255) as a relabel target.
IGNORE_NAMES = ("ignore",)


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or NumPy), booleans excluded."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (Python or NumPy), booleans excluded."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool))


def is_class_key(value: Any) -> bool:
    """Whether ``value`` can name a class: a name or an integer id."""
    return isinstance(value, str) or is_int(value)


def _bad(name: str, what: str, value: Any) -> SisgenInputError:
    return SisgenInputError(f"{name} must be {what}, got {value!r}")


def check_probability(value: Any, name: str = "p") -> float:
    """A probability or share: a number in ``[0, 1]`` (anything ``float()`` reads)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _bad(name, "a number in [0, 1]", value) from None
    if not 0.0 <= number <= 1.0:
        raise _bad(name, "in [0, 1]", value)
    return number


def check_int(value: Any, name: str, *, minimum: int = 0, maximum: int | None = None,
              what: str | None = None) -> int:
    """An integer in ``[minimum, maximum]`` (no upper bound when ``maximum`` is ``None``).

    Args:
        value: The value to check.
        name: The parameter name, for the message.
        minimum: The smallest accepted value.
        maximum: The largest accepted value, if any.
        what: What the message says the value must be (default from the bounds).

    """
    if what is None:
        if maximum is not None:
            what = f"an integer from {minimum} to {maximum}"
        else:
            what = {0: "a non-negative integer", 1: "a positive integer"}.get(
                minimum, f"an integer >= {minimum}")
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        raise _bad(name, what, value)
    return int(value)


def check_number(value: Any, name: str, valid: Callable[[float], bool], what: str) -> float:
    """A real number for which ``valid`` holds (``what`` describes the condition)."""
    if not is_number(value) or not valid(float(value)):
        raise _bad(name, what, value)
    return float(value)


def check_bool(value: Any, name: str) -> bool:
    """A boolean (``true`` / ``false`` in YAML)."""
    if not isinstance(value, bool):
        raise _bad(name, "true or false", value)
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """One of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise _bad(name, "one of " + ", ".join(map(repr, choices)), value)
    return value


def check_pair(value: Any, name: str) -> tuple[int, int]:
    """``[h, w]``, two positive integers (one integer means both)."""
    if is_int(value):
        value = [value, value]
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2
            or not all(is_int(v) and v >= 1 for v in value)):
        raise _bad(name, "[h, w], two positive integers", value)
    return int(value[0]), int(value[1])


def check_number_range(value: Any, name: str, *, positive: bool = False,
                       integer: bool = False) -> tuple[Any, Any]:
    """``[lo, hi]`` with ``0 <= lo <= hi`` (``0 < lo`` if ``positive``; integers if asked)."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    if ok:
        ok = all(is_int(v) if integer else is_number(v) for v in value)
    if ok:
        lo, hi = (int(v) for v in value) if integer else (float(v) for v in value)
        ok = lo <= hi and (lo > 0 if positive else lo >= 0) and math.isfinite(hi)
    if not ok:
        kind = "integers" if integer else "numbers"
        sign = "> 0" if positive else ">= 0"
        raise _bad(name, f"[lo, hi], {kind} {sign} with lo <= hi", value)
    return lo, hi


def check_class(value: Any, name: str = "class") -> int | str:
    """One class: a name or an integer id."""
    if not is_class_key(value):
        raise _bad(name, "a class name or an integer id", value)
    return value if isinstance(value, str) else int(value)


def check_classes(value: Any, name: str) -> list[int | str] | None:
    """Classes: ``None``, one class, or a non-empty list of class names or ids."""
    if value is None:
        return None
    if is_class_key(value):
        return [check_class(value, name)]
    if (not isinstance(value, Sequence) or isinstance(value, str) or not value
            or not all(is_class_key(v) for v in value)):
        raise _bad(name, "a list of class names or ids", value)
    return [check_class(v, name) for v in value]


def resolve_class(vocab: Vocabulary, key: Any, *, allow_ignore: bool = False) -> int:
    """Resolve a class name or id to an id; ``ignore`` / 255 only if ``allow_ignore``.

    Raises:
        SisgenInputError: Not a class name or id, unknown to ``vocab``, or the ignore id
            where a real class is needed.

    """
    key = check_class(key)
    if isinstance(key, str) and key.strip().lower() in IGNORE_NAMES and key not in vocab.names:
        key = vocab.ignore_id
    cid = vocab.resolve(key)
    if cid == vocab.ignore_id and not allow_ignore:
        raise SisgenInputError(f"class {key!r} is the ignore id; a real class is needed here")
    return cid


def resolve_classes(vocab: Vocabulary, value: Any) -> int | list[int]:
    """One class to its id, or a list of classes to their sorted, distinct ids."""
    if isinstance(value, list):
        return sorted({resolve_class(vocab, c) for c in value})
    return resolve_class(vocab, value)
