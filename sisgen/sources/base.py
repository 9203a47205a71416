"""The source protocol: an indexable, sized collection of label maps."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..labelmap import LabelMap
from ..vocab import Vocabulary

_SOURCES: dict[str, Callable[..., Source]] = {}


def register_source(kind: str) -> Callable[[Callable[..., Source]], Callable[..., Source]]:
    """Register a source factory under ``kind`` for :func:`sisgen.sources.open`."""

    def deco(factory: Callable[..., Source]) -> Callable[..., Source]:
        if kind in _SOURCES:
            raise ValueError(f"source kind {kind!r} registered twice")
        _SOURCES[kind] = factory
        return factory

    return deco


class Source:
    """A dataset of label maps, addressed by position.

    Subclasses list their samples cheaply at construction (file names, image ids) and
    decode one sample per :meth:`load`, so a long run can skip a bad sample (``load``
    raises :class:`~sisgen.errors.SisgenInputError` naming the file) and go on, and a
    shard or resumed run can address any sample by index.

    Attributes:
        vocabulary: The id space of the maps this source yields.
        kind: The registered kind name.
    """

    kind: str = "source"
    vocabulary: Vocabulary

    def keys(self) -> list[str]:
        """The sample ids, in order (unique, file-system safe)."""
        raise NotImplementedError

    def load(self, index: int) -> LabelMap:
        """Decode sample ``index``; raises ``SisgenInputError`` for bad files."""
        raise NotImplementedError

    def photo(self, index: int) -> np.ndarray | None:
        """The paired ``H×W×3`` uint8 RGB photo of sample ``index``, or ``None``."""
        return None

    def __len__(self) -> int:
        return len(self.keys())

    def __getitem__(self, index: int) -> LabelMap:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.kind} source has {n} samples, index {index}")
        return self.load(index % n)

    def __iter__(self) -> Iterator[LabelMap]:
        for i in range(len(self)):
            yield self.load(i)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} n={len(self)} vocab={self.vocabulary.name}>"
