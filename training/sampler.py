"""A resumable, rank-aware sampler: the data position is part of the checkpoint.

The order of epoch ``e`` is a permutation drawn from ``(seed, e)`` alone, split across
ranks like ``DistributedSampler`` (padded by wrapping so every rank gets as many indices),
and iteration can start mid-epoch. Together with datasets whose augmentation depends only
on ``(seed, epoch, index)`` this makes a resumed run see exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Indices of one epoch for one rank, from a position.

    Args:
        length: Dataset size.
        seed: Seed of the shuffles.
        rank: This process's rank.
        world_size: Number of ranks.
        shuffle: Shuffle each epoch (else the natural order).
    """

    def __init__(self, length: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        super().__init__()
        self.length, self.seed, self.rank, self.world_size = length, seed, rank, world_size
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            idx = torch.randperm(self.length, generator=g).tolist()
        else:
            idx = list(range(self.length))
        per_rank = -(-self.length // self.world_size)
        idx += idx[:per_rank * self.world_size - len(idx)]
        return idx[self.rank::self.world_size]

    def set_position(self, epoch: int, start: int) -> None:
        """Iterate epoch ``epoch`` from its ``start``-th index."""
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch)[self.start:])

    def __len__(self) -> int:
        return len(self.order(self.epoch)) - self.start
