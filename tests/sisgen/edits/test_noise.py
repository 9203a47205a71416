"""Noise-region marks: resample_noise and the noise mask moving with the labels."""

from __future__ import annotations

import numpy as np
import pytest

from sisgen import SisgenInputError
from sisgen.edits import NOISE_MASK_KEY, Recipe, ResampleNoise

SKY, CAR = 23, 26


def test_resample_noise_targets(vocab, rng, street):
    lm = street()
    out, rec = ResampleNoise(class_="car").run(lm, rng(), vocab)
    np.testing.assert_array_equal(out.meta[NOISE_MASK_KEY], lm.semantic == CAR)
    np.testing.assert_array_equal(out.semantic, lm.semantic)
    assert rec["target"] == {"class": CAR} and rec["pixels"] == 12
    assert NOISE_MASK_KEY not in lm.meta
    reg = ResampleNoise(region=[0, 0, 0.5, 0.25])(lm, rng(), vocab)
    exp = np.zeros(lm.shape, bool)
    exp[:8, :5] = True
    np.testing.assert_array_equal(reg.meta[NOISE_MASK_KEY], exp)
    both = ResampleNoise(class_="sky")(reg, rng(), vocab)  # OR-ed
    np.testing.assert_array_equal(both.meta[NOISE_MASK_KEY], exp | (lm.semantic == SKY))
    lm2 = street()
    lm2.semantic[12:15, 10:13], lm2.instance[12:15, 10:13] = CAR, 26001
    picks = set()
    for s in range(20):
        out, rec = ResampleNoise(class_="car", instance="random").run(lm2, rng(s), vocab)
        picks.add(rec["target"]["instance"])
        np.testing.assert_array_equal(out.meta[NOISE_MASK_KEY],
                                      lm2.instance == rec["target"]["instance"])
    assert picks == {26000, 26001}
    fixed = ResampleNoise(instance=26001)(lm2, rng(), vocab)
    assert fixed.meta[NOISE_MASK_KEY].sum() == 9
    copied = fixed.copy()
    assert copied.meta[NOISE_MASK_KEY] is not fixed.meta[NOISE_MASK_KEY]
    np.testing.assert_array_equal(copied.meta[NOISE_MASK_KEY], fixed.meta[NOISE_MASK_KEY])
    with pytest.raises(SisgenInputError, match="at least one"):
        ResampleNoise()
    with pytest.raises(SisgenInputError, match="region"):
        ResampleNoise(region=[0.5, 0, 0.2, 1])


def test_noise_mask_follows_geometry(vocab, street):
    lm = street()
    r = Recipe.load([
        {"op": "resample_noise", "class": "car"},
        {"op": "flip"}, {"op": "flip", "direction": "vertical"},
        {"op": "scale", "range": [1.5, 2.5]}, {"op": "crop", "size": [20, 30]},
        {"op": "pad", "to_multiple": 16, "position": "random"},
        {"op": "dilate", "class": "road", "pixels": 1}, {"op": "erode", "class": "sky"},
    ])
    for s in range(5):
        out = r(lm, s, vocab)
        mask = out.meta[NOISE_MASK_KEY]
        assert mask.shape == out.shape and mask.dtype == bool
        np.testing.assert_array_equal(mask, out.semantic == CAR)  # labels moved the same way
        assert out.shape[0] % 16 == 0 and out.shape[1] % 16 == 0
