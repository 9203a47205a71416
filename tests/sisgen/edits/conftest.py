"""Shared label maps and an instance bank for the edit tests (Cityscapes ids).

The map builders are fixtures that return the builder itself, so a test calls
``small_map()`` for a fresh map as often as it needs.
"""

from __future__ import annotations

import numpy as np
import pytest

from sisgen import LabelMap, get_vocabulary
from sisgen.edits import NOISE_MASK_KEY
from sisgen.instance_bank import InstanceBank

# cityscapes ids: road 7, sidewalk 8, building 11, sky 23, person 24, car 26
ROAD, SIDEWALK, BUILDING, SKY, PERSON, CAR = 7, 8, 11, 23, 24, 26


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _small_map() -> LabelMap:
    sem = np.array(
        [
            [SKY, SKY, SKY, SKY, SKY, SKY],
            [BUILDING, CAR, CAR, SKY, PERSON, SKY],
            [ROAD, CAR, CAR, ROAD, PERSON, ROAD],
            [ROAD, ROAD, ROAD, ROAD, ROAD, 255],
        ],
        dtype=np.uint8,
    )
    inst = np.zeros_like(sem, dtype=np.int32)
    inst[1:3, 1:3] = 26000
    inst[1:3, 4] = 24000
    return LabelMap(sem, inst, {"id": "s"})


def _many_instances() -> LabelMap:
    """A road/sky map with 6 cars in a row (ids 26000..26005) and 2 persons."""
    sem = np.full((10, 40), ROAD, np.uint8)
    sem[:3] = SKY
    inst = np.zeros(sem.shape, np.int32)
    for k in range(6):
        sem[4:7, 2 + 6 * k : 5 + 6 * k] = CAR
        inst[4:7, 2 + 6 * k : 5 + 6 * k] = 26000 + k
    for k in range(2):
        sem[8:10, 3 + 10 * k : 5 + 10 * k] = PERSON
        inst[8:10, 3 + 10 * k : 5 + 10 * k] = 24000 + k
    return LabelMap(sem, inst, {"id": "many"})


def _grid(h: int, w: int) -> LabelMap:
    """Semantic ``arange`` values (all < 255) and instance ``arange + 1``."""
    sem = (np.arange(h * w).reshape(h, w) % 250).astype(np.uint8)
    return LabelMap(sem, (np.arange(h * w).reshape(h, w) + 1).astype(np.int32), {"id": "g"})


def _street() -> LabelMap:
    """16x20: sky rows 0-5, sidewalk rows 6-7, road rows 8-15, one car (26000)."""
    sem = np.full((16, 20), ROAD, np.uint8)
    sem[:6] = SKY
    sem[6:8] = SIDEWALK
    inst = np.zeros(sem.shape, np.int32)
    sem[9:12, 2:6] = CAR
    inst[9:12, 2:6] = 26000
    return LabelMap(sem, inst, {"id": "street", "source": "cityscapes"})


def _donor_maps() -> list[LabelMap]:
    """Two maps with cars (3x3, 2x4) and a person touching the border (truncated)."""
    maps = []
    for k in range(2):
        sem = np.full((12, 12), ROAD, np.uint8)
        inst = np.zeros(sem.shape, np.int32)
        sem[4:7, 3:6] = CAR
        inst[4:7, 3:6] = 26000
        sem[8:10, 6:10] = CAR
        inst[8:10, 6:10] = 26001
        sem[9:12, 0:2] = PERSON
        inst[9:12, 0:2] = 24000
        sem[2:4, 8:10] = PERSON
        inst[2:4, 8:10] = 24001 + k
        maps.append(LabelMap(sem, inst, {"id": f"donor{k}"}))
    return maps


def _assert_same(a: LabelMap, b: LabelMap) -> None:
    np.testing.assert_array_equal(a.semantic, b.semantic)
    if a.instance is None:
        assert b.instance is None
    else:
        np.testing.assert_array_equal(a.instance, b.instance)
    ma, mb = a.meta.get(NOISE_MASK_KEY), b.meta.get(NOISE_MASK_KEY)
    assert (ma is None) == (mb is None)
    if ma is not None:
        np.testing.assert_array_equal(ma, mb)


@pytest.fixture(scope="session")
def vocab():
    return get_vocabulary("cityscapes")


@pytest.fixture
def rng():
    """``rng(seed=0)``: a fresh NumPy generator."""
    return _rng


@pytest.fixture
def small_map():
    """``small_map()``: 4x6 with sky, a building, a 2x2 car (26000), a person (24000)."""
    return _small_map


@pytest.fixture
def many_instances():
    """``many_instances()``: 10x40 road/sky, 6 cars (26000..26005) and 2 persons."""
    return _many_instances


@pytest.fixture
def grid():
    """``grid(h, w)``: semantic ``arange % 250``, instance ``arange + 1``."""
    return _grid


@pytest.fixture
def street():
    """``street()``: 16x20 sky / sidewalk / road with one car (26000), Cityscapes-style."""
    return _street


@pytest.fixture
def donor_maps():
    """``donor_maps()``: two 12x12 maps with two cars and two persons each."""
    return _donor_maps


@pytest.fixture
def assert_same():
    """``assert_same(a, b)``: equal semantic, instance and noise mask."""
    return _assert_same


@pytest.fixture(scope="module")
def bank(vocab):
    return InstanceBank.from_labelmaps(_donor_maps(), min_pixels=4, vocab=vocab)
