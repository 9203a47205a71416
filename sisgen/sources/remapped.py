"""A source whose label maps pass through a vocabulary remap (``sources.open(..., remap=)``)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import SisgenInputError
from ..labelmap import LabelMap
from ..remap import Remap, get_remap
from .base import Source


class RemappedSource(Source):
    """A source whose maps pass through a :class:`Remap` on the way out.

    Keys, photos and length are the wrapped source's; :attr:`vocabulary` is the remap's
    target.

    Args:
        inner: The wrapped source.
        table: A built-in remap name, a table file or a :class:`Remap`.

    Raises:
        SisgenInputError: The remap's source vocabulary is not the source's vocabulary.

    """

    def __init__(self, inner: Source, table: str | os.PathLike | Remap):
        self.inner = inner
        self.remap = get_remap(table)
        ours = [(c.id, c.name) for c in inner.vocabulary.classes]
        theirs = [(c.id, c.name) for c in self.remap.source.classes]
        if ours != theirs:
            raise SisgenInputError(
                f"remap {self.remap.name!r} reads the {self.remap.source.name!r} vocabulary but "
                f"the {inner.kind!r} source yields {inner.vocabulary.name!r} maps"
            )
        self.kind = inner.kind
        self.vocabulary = self.remap.target

    def keys(self) -> list[str]:
        """The wrapped source's sample ids."""
        return self.inner.keys()

    def __len__(self) -> int:
        return len(self.inner)

    def load(self, index: int) -> LabelMap:
        """Load sample ``index`` from the wrapped source and remap it."""
        return self.remap.remap(self.inner.load(index))

    def photo(self, index: int) -> np.ndarray | None:
        """The wrapped source's photo."""
        return self.inner.photo(index)

    def __repr__(self) -> str:
        return (f"<RemappedSource {self.kind} n={len(self)} remap={self.remap.name} "
                f"vocab={self.vocabulary.name}>")
