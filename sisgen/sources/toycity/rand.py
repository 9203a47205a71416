"""Seeding and the scalar random stream of the ToyCity scene draws."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def seed_int(*parts: object) -> int:
    """A 64-bit seed from ``parts`` (a hash of their text, stable across runs)."""
    text = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


class Rand:
    """A fast scalar random stream: blocks of floats from a seeded numpy generator.

    Scene construction draws a few hundred scalars; pulling them from a pre-drawn block is
    several times faster than calling ``Generator.uniform`` for each, and just as
    deterministic.

    Args:
        seed: Seed of the underlying ``numpy.random.default_rng``.
    """

    def __init__(self, seed: int) -> None:
        self._gen = np.random.default_rng(seed)
        self._buf: list[float] = []

    def random(self) -> float:
        """A float in ``[0, 1)``."""
        if not self._buf:
            self._buf = self._gen.random(512).tolist()
        return self._buf.pop()

    def uniform(self, a: float, b: float) -> float:
        """A float in ``[a, b)``."""
        return a + (b - a) * self.random()

    def integers(self, a: int, b: int | None = None) -> int:
        """An int in ``[a, b)`` (or ``[0, a)`` when ``b`` is omitted)."""
        if b is None:
            a, b = 0, a
        return min(a + int((b - a) * self.random()), b - 1)

    def weighted(self, weights: Sequence[float]) -> int:
        """An index drawn with probabilities proportional to ``weights``."""
        r = self.random() * sum(weights)
        for i, wt in enumerate(weights):
            r -= wt
            if r < 0:
                return i
        return len(weights) - 1

    def choice(self, items: Sequence[T]) -> T:
        """One of ``items``, uniformly."""
        return items[int(self.integers(len(items)))]
