"""Mix real and synthetic training samples at a fixed ratio.

:class:`MixedDataset` is map-style (real and synthetic both indexable; use
``SynthesisDataset.as_map_style()`` for on-the-fly synthesis). :class:`MixedIterableDataset`
draws its synthetic samples from an iterable (e.g. an infinite
:class:`~sisgen.integrations.dataset.SynthesisDataset`) and is shardable across workers and
ranks. Both lay out an epoch the same way, from ``(seed, epoch)`` only: exactly
``round(ratio * length)`` positions, chosen at random, are synthetic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import Dataset, IterableDataset

from .dataset import rank_and_world, shard


def epoch_plan(length: int, ratio: float, seed: int, epoch: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Which positions of an epoch are synthetic, and each position's rank in its kind.

    Args:
        length: Positions per epoch.
        ratio: Fraction of synthetic positions (``round(ratio * length)`` of them).
        seed: Mixing seed.
        epoch: Epoch number.

    Returns:
        ``(synthetic, rank)``: a bool array marking synthetic positions, and for each
        position its index among the positions of its own kind (0, 1, ... in order).
    """
    rng = np.random.default_rng([int(seed), int(epoch), 0x313])
    n_syn = int(round(float(ratio) * length))
    synthetic = np.zeros(length, dtype=bool)
    synthetic[rng.permutation(length)[:n_syn]] = True
    rank = np.empty(length, dtype=np.int64)
    rank[synthetic] = np.arange(n_syn)
    rank[~synthetic] = np.arange(length - n_syn)
    return synthetic, rank


def _check_ratio(ratio: float) -> float:
    if not 0.0 <= float(ratio) <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    return float(ratio)


def _tag(item: Any, key: str | None, synthetic: bool) -> Any:
    if key is not None and isinstance(item, dict):
        item = dict(item)
        item[key] = synthetic
    return item


class _Mixer:
    """Shared epoch layout of the two mixed datasets."""

    real: Any
    ratio: float
    seed: int
    length: int
    epoch: int
    _real_perm: tuple[int, np.ndarray] | None

    def set_epoch(self, epoch: int) -> None:
        """Use the layout of ``epoch`` (call before iterating / creating the loader)."""
        self.epoch = int(epoch)

    def real_index(self, rank: int) -> int:
        """The real sample at real position ``rank`` of the current epoch.

        Real positions walk a seeded permutation of the real dataset (cycling when the
        epoch needs more), so the real samples left out by synthetic positions differ
        from epoch to epoch.
        """
        if self._real_perm is None or self._real_perm[0] != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch, 0x7EA1])
            self._real_perm = (self.epoch, rng.permutation(len(self.real)))
        perm = self._real_perm[1]
        return int(perm[rank % len(perm)])


class MixedDataset(_Mixer, Dataset):
    """A map-style dataset mixing real and synthetic samples at a ratio.

    Position ``i`` of the current epoch is synthetic for exactly ``round(ratio * length)``
    positions (see :func:`epoch_plan`). Synthetic positions take synthetic samples in order,
    continuing where the previous epoch stopped (``(epoch * n_syn + j) % len(synthetic)``),
    so a large synthetic pool is walked through over the epochs; real positions take a
    per-epoch permutation of the real dataset. Deterministic for ``(seed, epoch)``; use
    :meth:`set_epoch` between epochs.

    Args:
        real: Map-style real dataset.
        synthetic: Map-style synthetic dataset (``SynthesisDataset.as_map_style()``, a
            folder of generated images, ...).
        ratio: Fraction of synthetic samples.
        length: Samples per epoch; default ``len(real)``.
        seed: Mixing seed.
        tag_key: For dict items, the key set to ``True``/``False`` (synthetic or not);
            ``None`` leaves items untouched.
    """

    def __init__(self, real: Any, synthetic: Any, ratio: float = 0.3,
                 length: int | None = None, seed: int = 0, tag_key: str | None = "synthetic"):
        self.real = real
        self.synthetic = synthetic
        self.ratio = _check_ratio(ratio)
        self.length = len(real) if length is None else int(length)
        self.seed = int(seed)
        self.tag_key = tag_key
        self.epoch = 0
        self._plan: tuple[int, np.ndarray, np.ndarray] | None = None
        self._real_perm = None
        if self.ratio > 0 and len(synthetic) == 0:
            raise ValueError("the synthetic dataset is empty")
        if self.ratio < 1 and len(real) == 0:
            raise ValueError("the real dataset is empty")

    def __len__(self) -> int:
        return self.length

    def plan(self) -> tuple[np.ndarray, np.ndarray]:
        """The current epoch's :func:`epoch_plan` (cached)."""
        if self._plan is None or self._plan[0] != self.epoch:
            self._plan = (self.epoch, *epoch_plan(self.length, self.ratio, self.seed,
                                                  self.epoch))
        return self._plan[1], self._plan[2]

    def is_synthetic(self, index: int) -> bool:
        """Whether position ``index`` of the current epoch is synthetic."""
        return bool(self.plan()[0][index])

    def __getitem__(self, index: int) -> Any:
        if not -self.length <= index < self.length:
            raise IndexError(f"mixed dataset has {self.length} samples, index {index}")
        index %= self.length
        synthetic, rank = self.plan()
        if synthetic[index]:
            n_syn = int(synthetic.sum())
            j = (self.epoch * n_syn + int(rank[index])) % len(self.synthetic)
            return _tag(self.synthetic[j], self.tag_key, True)
        return _tag(self.real[self.real_index(int(rank[index]))], self.tag_key, False)


class MixedIterableDataset(_Mixer, IterableDataset):
    """Real map-style samples interleaved with samples drawn from a synthetic iterable.

    Uses the layout of :class:`MixedDataset` (same ``(seed, epoch)`` gives the same
    positions and real samples); the positions are split across DataLoader workers and
    ranks like :class:`~sisgen.integrations.dataset.SynthesisDataset`. Synthetic positions
    take the next item of ``iter(synthetic)``, restarted when it runs out, so pass an
    infinite ``SynthesisDataset(..., epochs=None)`` (which shards itself across workers
    and ranks) or any iterable.

    Args:
        real: Map-style real dataset.
        synthetic: Iterable of synthetic samples.
        ratio: Fraction of synthetic samples.
        length: Samples per epoch (all workers and ranks together); default ``len(real)``.
        seed: Mixing seed.
        epochs: Epochs per iteration; ``None`` iterates forever.
        rank: Distributed rank (default from ``torch.distributed``).
        world_size: Number of ranks.
        tag_key: For dict items, the key marking synthetic samples; ``None``: untouched.
    """

    def __init__(self, real: Any, synthetic: Iterable[Any], ratio: float = 0.3,
                 length: int | None = None, seed: int = 0, epochs: int | None = 1,
                 rank: int | None = None, world_size: int | None = None,
                 tag_key: str | None = "synthetic"):
        self.real = real
        self.synthetic = synthetic
        self.ratio = _check_ratio(ratio)
        self.length = len(real) if length is None else int(length)
        self.seed = int(seed)
        self.epochs = epochs
        self.rank = rank
        self.world_size = world_size
        self.tag_key = tag_key
        self.epoch = 0
        self._real_perm = None

    def __len__(self) -> int:
        """Samples this rank yields per iteration (all its workers together).

        Raises:
            TypeError: The dataset is infinite (``epochs=None``).
        """
        if self.epochs is None:
            raise TypeError("an infinite MixedIterableDataset (epochs=None) has no length")
        rank, world = rank_and_world(self.rank, self.world_size)
        return len(range(rank, self.length, world)) * self.epochs

    def _next_synthetic(self, it: Iterator[Any] | None) -> tuple[Any, Iterator[Any]]:
        for attempt in range(2):
            if it is None or attempt:
                it = iter(self.synthetic)
            try:
                return next(it), it
            except StopIteration:
                continue
        raise ValueError("the synthetic iterable yields nothing")

    def __iter__(self) -> Iterator[Any]:
        start = self.epoch
        stop = None if self.epochs is None else start + self.epochs
        epoch = start
        syn_it: Iterator[Any] | None = None
        try:
            while stop is None or epoch < stop:
                self.epoch = epoch
                synthetic, rank = epoch_plan(self.length, self.ratio, self.seed, epoch)
                for pos in shard(np.arange(self.length), self.rank, self.world_size):
                    if synthetic[pos]:
                        item, syn_it = self._next_synthetic(syn_it)
                        yield _tag(item, self.tag_key, True)
                    else:
                        real = self.real[self.real_index(int(rank[pos]))]
                        yield _tag(real, self.tag_key, False)
                epoch += 1
        finally:
            self.epoch = start
