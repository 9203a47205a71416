"""(photo, label) items of a source for the segmenter's trainer, evaluation and CLI.

:class:`SourcePairs` gives the items of :class:`sisgen.integrations.LabeledDataset`
(``{"image": float [3,H,W] in 0..1, "label": int64 [H,W], "name"}``) inside the training
package, which the import layers keep apart from the integrations: it reads the pairs with
the generator trainers' :class:`~sisgen.training.data.PairedDataset` (labels resized
nearest-neighbour as everywhere in sisgen, photos area when shrinking / bicubic when
enlarging; the same checks and error messages), with no augmentation of its own -- the
segmenter's trainer flips and crops whole batches.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from sisgen.errors import SisgenInputError
from sisgen.sources import Source
from sisgen.vocab import Vocabulary

from ..data import PairedDataset

__all__ = ["SourcePairs"]


class SourcePairs(Dataset):
    """A source's (photo, label) pairs at one size, as segmentation items.

    Args:
        source: A source with photos.
        size: ``(H, W)`` of every item; ``None``: the size of the source's first map.

    Attributes:
        vocabulary: The source's vocabulary.

    Raises:
        SisgenInputError: An empty source, or one whose first sample has no photo (the
            error names the file).
    """

    def __init__(self, source: Source, size: tuple[int, int] | None = None):
        if len(source) == 0:
            raise SisgenInputError(f"the {source.kind} source has no samples",
                                   getattr(source, "root", None))
        if size is None:
            size = source.load(0).shape
        self.source = source
        self.size = (int(size[0]), int(size[1]))
        self.vocabulary: Vocabulary = source.vocabulary
        self.pairs = PairedDataset(source, self.size, flip=False, validate=False)
        self.pairs.validate(limit=1)
        self._keys: list[str] | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.pairs[index]
        if self._keys is None:
            self._keys = self.source.keys()
        return {"image": item["image"].add_(1.0).mul_(0.5), "label": item["labels"],
                "name": self._keys[int(index)]}

    def __repr__(self) -> str:
        return f"<SourcePairs {self.source.kind} n={len(self)} size={self.size[0]}x{self.size[1]}>"
