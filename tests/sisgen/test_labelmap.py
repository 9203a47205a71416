"""The label-map data model: the one nearest-neighbour resize of sisgen."""

from __future__ import annotations

import numpy as np
import pytest

from sisgen.labelmap import NOISE_MASK_KEY, LabelMap, nearest_indices, resize_nearest


def test_resize_nearest_is_pils_nearest():
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for _ in range(100):
        h, w, oh, ow = (int(v) for v in rng.integers(1, 120, 4))
        a = rng.integers(0, 255, (h, w)).astype(np.uint8)
        ref = np.asarray(image.fromarray(a).resize((ow, oh), image.NEAREST))
        np.testing.assert_array_equal(resize_nearest(a, (oh, ow)), ref)


def test_labelmap_resized_keeps_ids_dtypes_and_noise_marks():
    sem = np.array([[0, 1], [2, 255]], np.uint8)
    inst = np.array([[0, 70001], [5, 0]], np.int32)  # ids beyond float16 / uint16
    mark = np.array([[True, False], [False, False]])
    lm = LabelMap(sem, inst, {"id": "m", NOISE_MASK_KEY: mark})
    big = lm.resized((4, 6))
    assert big.semantic.dtype == np.uint8 and big.instance.dtype == np.int32
    assert set(np.unique(big.semantic)) == {0, 1, 2, 255}
    assert set(np.unique(big.instance)) == {0, 5, 70001}
    assert big.meta[NOISE_MASK_KEY].dtype == bool and big.meta[NOISE_MASK_KEY].sum() == 6
    back = big.resized((2, 2))
    np.testing.assert_array_equal(back.semantic, sem)
    np.testing.assert_array_equal(back.instance, inst)


def test_resize_nearest_takes_rows_then_columns_for_any_layout():
    a = np.arange(7 * 9 * 2, dtype=np.int32).reshape(7, 9, 2)
    for size in [(3, 4), (7, 9), (15, 20), (1, 1)]:
        rows, cols = nearest_indices(7, size[0]), nearest_indices(9, size[1])
        out = resize_nearest(a[:, ::-1], size)  # a non-contiguous view as well
        np.testing.assert_array_equal(out, a[:, ::-1][rows[:, None], cols[None, :]])
        assert out.flags.writeable and out.flags.c_contiguous


def test_copy_meta_is_a_deep_copy():
    from collections import OrderedDict, namedtuple

    from sisgen.labelmap import copy_meta

    Pair = namedtuple("Pair", "a b")
    meta = {"id": "x", "size": (2, 3), "edits": [{"op": "hflip", "params": {"p": 0.5}}],
            "mask": np.ones((2, 2), bool), "order": OrderedDict(a=[1]), "pair": Pair(1, [2]),
            "n": np.int64(4)}
    out = copy_meta(meta)
    assert out.keys() == meta.keys() and out["size"] == (2, 3)
    assert out["edits"] == meta["edits"] and out["edits"][0] is not meta["edits"][0]
    assert out["edits"][0]["params"] is not meta["edits"][0]["params"]
    assert out["mask"] is not meta["mask"] and (out["mask"] == meta["mask"]).all()
    assert type(out["order"]) is OrderedDict and out["order"]["a"] is not meta["order"]["a"]
    assert type(out["pair"]) is Pair and out["pair"].b is not meta["pair"].b
    assert out["n"] == 4
    lm = LabelMap(np.zeros((2, 2), np.uint8), None, meta)
    assert lm.copy().meta["edits"][0] is not meta["edits"][0]
