"""One small name -> object registry, used by every pluggable part of sisgen.

Edits, writers, sources, architectures, model configurations, training objectives,
metrics and checkpoint converters each keep one :class:`Registry`. Registering a taken
name is a programming error (``ValueError``); looking up an unknown name is a user error
(:class:`~sisgen.errors.SisgenInputError`) worded the same way everywhere:
``unknown <what> 'name'; known: a, b, c``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import SisgenInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects of one kind (classes or factory functions).

    Args:
        what: What a name denotes, for messages (``"edit op"``, ``"writer kind"``).

    Example:
        >>> writers = Registry("writer kind")
        >>> @writers.register("folder")
        ... class FolderWriter: ...
        >>> writers.get("folder") is FolderWriter
        True
    """

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str, attr: str | None = None) -> Callable[[T], T]:
        """Return a decorator that registers its argument under ``name``.

        Args:
            name: The registered name.
            attr: Also set this attribute of the object to ``name`` (a class that knows
                its own registered name: an edit's ``op``, a writer's ``kind``).

        Raises:
            ValueError: The name is already taken.
        """

        def deco(obj: T) -> T:
            self.add(name, obj)
            if attr is not None:
                setattr(obj, attr, name)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name`` (``ValueError`` if the name is taken)."""
        if name in self._items:
            raise ValueError(f"{self.what} {name!r} registered twice")
        self._items[name] = obj

    def get(self, name: str) -> T:
        """Return the object registered as ``name``.

        Raises:
            SisgenInputError: ``unknown <what> 'name'; known: ...``.
        """
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise SisgenInputError(self.unknown(name)) from None

    def unknown(self, name: object) -> str:
        """The message for an unknown name (for callers that raise their own error)."""
        return f"unknown {self.what} {name!r}; known: {', '.join(self.names())}"

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """``(name, object)`` pairs, sorted by name."""
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self.names())})"
