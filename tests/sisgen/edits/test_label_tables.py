"""Relabelling a uint8 map through lookup tables gives what the per-class rule gives."""

from __future__ import annotations

import numpy as np

from sisgen import LabelMap, get_vocabulary
from sisgen.edits.base import lookup
from sisgen.edits.label import relabel

IDS = [0, 7, 8, 11, 23, 24, 25, 26, 27, 33, 255]


def by_the_rule(lm: LabelMap, mapping: dict[int, int], vocab) -> LabelMap:
    """Each source class's pixels take the new class; those that became stuff lose instances."""
    sem = lm.semantic.astype(np.int64)
    out = lm.semantic.copy()
    changed = np.zeros(sem.shape, bool)
    for a, b in mapping.items():
        out[sem == a] = b
        changed |= sem == a
    inst = None
    if lm.instance is not None:
        inst = lm.instance.copy()
        inst[changed & ~lookup(vocab.thing_table(), out)] = 0
    return LabelMap(out, inst, dict(lm.meta))


def test_uint8_tables_match_the_rule_and_leave_the_input_alone():
    vocab = get_vocabulary("cityscapes")
    rng = np.random.default_rng(0)
    for t in range(120):
        h, w = (int(v) for v in rng.integers(1, 20, 2))
        for dtype in (np.uint8, np.int32):
            sem = rng.choice(IDS, size=(h, w)).astype(dtype)
            inst = rng.integers(0, 5, (h, w)).astype(np.int32) if t % 4 else None
            lm = LabelMap(sem.copy(), None if inst is None else inst.copy(),
                          {"id": "m", "edits": [{"op": "x"}]})
            keys = rng.choice(IDS, size=int(rng.integers(1, 4)), replace=False)
            mapping = {int(a): int(rng.choice(IDS)) for a in keys}
            got, want = relabel(lm, mapping, vocab), by_the_rule(lm, mapping, vocab)
            assert got.semantic.dtype == sem.dtype
            np.testing.assert_array_equal(got.semantic, want.semantic)
            if inst is None:
                assert got.instance is None
            else:
                assert got.instance.dtype == np.int32
                np.testing.assert_array_equal(got.instance, want.instance)
                if np.shares_memory(got.instance, lm.instance):  # copy on write: shared
                    assert np.array_equal(inst, want.instance)  # only when unchanged
            assert got.meta == lm.meta and got.meta["edits"] is not lm.meta["edits"]
            np.testing.assert_array_equal(lm.semantic, sem)  # input untouched
            if inst is not None:
                np.testing.assert_array_equal(lm.instance, inst)
