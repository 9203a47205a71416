"""Geometric edits: flip, hflip, scale, crop, pad."""

from __future__ import annotations

import numpy as np
import pytest

from sisgen import LabelMap, SisgenInputError
from sisgen.edits import Crop, Flip, HFlip, Pad, Scale


def test_hflip(vocab, rng, small_map):
    lm = small_map()
    out = HFlip()(lm, rng(), vocab)
    np.testing.assert_array_equal(out.semantic, lm.semantic[:, ::-1])
    np.testing.assert_array_equal(out.instance, lm.instance[:, ::-1])
    no_inst = LabelMap(lm.semantic.copy())
    assert HFlip()(no_inst, rng(), vocab).instance is None


def test_flip(vocab, rng, grid, assert_same):
    lm = grid(3, 4)
    v = Flip("vertical")(lm, rng(), vocab)
    np.testing.assert_array_equal(v.semantic, lm.semantic[::-1])
    np.testing.assert_array_equal(v.instance, lm.instance[::-1])
    h = Flip()(lm, rng(), vocab)
    np.testing.assert_array_equal(h.semantic, lm.semantic[:, ::-1])
    assert_same(h, HFlip()(lm, rng(), vocab))
    assert HFlip().to_dict() == {"op": "hflip"}
    assert Flip("vertical").to_dict() == {"op": "flip", "direction": "vertical"}
    with pytest.raises(SisgenInputError, match="direction"):
        Flip("diagonal")


def test_scale_exact(vocab, rng, grid):
    lm = grid(2, 3)
    out, rec = Scale(factor=2).run(lm, rng(), vocab)
    np.testing.assert_array_equal(out.semantic, np.repeat(np.repeat(lm.semantic, 2, 0), 2, 1))
    np.testing.assert_array_equal(out.instance, np.repeat(np.repeat(lm.instance, 2, 0), 2, 1))
    assert rec["size"] == [4, 6] and out.semantic.dtype == np.uint8
    lm4 = grid(4, 4)
    half = Scale(factor=0.5)(lm4, rng(), vocab)
    np.testing.assert_array_equal(half.semantic, lm4.semantic[1::2, 1::2])
    for s in range(5):
        out, rec = Scale(range=[0.5, 1.5]).run(lm4, rng(s), vocab)
        assert 0.5 <= rec["factor"] <= 1.5
        assert out.shape == (round(4 * rec["factor"]), round(4 * rec["factor"]))
    with pytest.raises(SisgenInputError, match="either factor or range"):
        Scale()
    with pytest.raises(SisgenInputError, match="range"):
        Scale(range=[2, 1])


def test_crop_exact(vocab, rng, grid):
    lm = grid(4, 6)
    c = Crop([2, 2], position="center")(lm, rng(), vocab)
    np.testing.assert_array_equal(c.semantic, lm.semantic[1:3, 2:4])
    np.testing.assert_array_equal(c.instance, lm.instance[1:3, 2:4])
    offsets = set()
    for s in range(20):
        out, rec = Crop([3, 4]).run(lm, rng(s), vocab)
        y, x = rec["offset"]
        np.testing.assert_array_equal(out.semantic, lm.semantic[y:y + 3, x:x + 4])
        offsets.add((y, x))
    assert len(offsets) > 1
    # smaller than the crop: padded (centred) first
    small = grid(2, 2)
    out, rec = Crop([4, 3], position="center").run(small, rng(), vocab)
    exp = np.full((4, 3), 255, np.uint8)
    exp[1:3, 0:2] = small.semantic
    np.testing.assert_array_equal(out.semantic, exp)
    assert (out.instance[exp == 255] == 0).all()
    assert rec["padded"] == {"offset": [1, 0], "size": [4, 3]}
    # a crop result is not a view of the input
    out.semantic[:] = 0
    assert small.semantic.max() > 0


def test_pad_exact(vocab, rng, grid):
    lm = grid(2, 3)
    tl = Pad(size=[4, 5], position="topleft")(lm, rng(), vocab)
    exp = np.full((4, 5), 255, np.uint8)
    exp[:2, :3] = lm.semantic
    np.testing.assert_array_equal(tl.semantic, exp)
    exp_i = np.zeros((4, 5), np.int32)
    exp_i[:2, :3] = lm.instance
    np.testing.assert_array_equal(tl.instance, exp_i)
    ce, rec = Pad(size=[4, 5]).run(lm, rng(), vocab)
    assert rec["offset"] == [1, 1]
    np.testing.assert_array_equal(ce.semantic[1:3, 1:4], lm.semantic)
    assert (ce.semantic == 255).sum() == 20 - 6
    # never crops; to_multiple
    assert Pad(size=[1, 1])(lm, rng(), vocab).shape == (2, 3)
    assert Pad(to_multiple=4)(grid(5, 3), rng(), vocab).shape == (8, 4)
    assert Pad(to_multiple=32)(grid(32, 33), rng(), vocab).shape == (32, 64)
    for s in range(10):
        out, rec = Pad(size=[6, 6], position="random").run(lm, rng(s), vocab)
        y, x = rec["offset"]
        np.testing.assert_array_equal(out.semantic[y:y + 2, x:x + 3], lm.semantic)
    with pytest.raises(SisgenInputError, match="position"):
        Pad(size=[4, 4], position="middle")
    with pytest.raises(SisgenInputError, match="either size or to_multiple"):
        Pad()
