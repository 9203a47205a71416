"""The source protocol: an indexable, sized collection of label maps."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..io import read_label_png
from ..labelmap import LabelMap
from ..registry import Registry
from ..vocab import Vocabulary

#: Source factories by kind, for :func:`sisgen.sources.open`.
SOURCES: Registry[Callable[..., Source]] = Registry("source kind")


def register_source(kind: str) -> Callable[[Callable[..., Source]], Callable[..., Source]]:
    """Register a source factory under ``kind`` for :func:`sisgen.sources.open`."""
    return SOURCES.register(kind)


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
    #: Whether :meth:`read_semantic` checks every map against the vocabulary.
    validate: bool = True

    def keys(self) -> list[str]:
        """The sample ids, in order (unique, file-system safe)."""
        raise NotImplementedError

    def load(self, index: int) -> LabelMap:
        """Decode sample ``index``; raises ``SisgenInputError`` for bad files."""
        raise NotImplementedError

    def read_semantic(self, key: str, path: str | os.PathLike, **extra: Any
                      ) -> tuple[np.ndarray, dict[str, Any]]:
        """Decode a sample's label PNG, validate it, and start its ``meta``.

        Args:
            key: The sample id (``meta["id"]``).
            path: The single-channel label PNG.
            **extra: More provenance, appended to ``meta`` after the common keys.

        Returns:
            ``(semantic, meta)``: the ids and ``{"id", "source", "file", "size", **extra}``.

        Raises:
            SisgenInputError: The file is unreadable, not a label PNG, or (with
                ``validate``) holds ids outside the vocabulary; the error names the file.
        """
        semantic = read_label_png(path)
        if self.validate:
            self.vocabulary.validate(semantic, path)
        meta: dict[str, Any] = {
            "id": key,
            "source": self.kind,
            "file": str(path),
            "size": (int(semantic.shape[0]), int(semantic.shape[1])),
            **extra,
        }
        return semantic, meta

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
