"""The writers' one-pass helpers agree with the plain per-mask definitions they replace."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from sisgen import LabelMap, SisgenInputError, get_vocabulary
from sisgen.io import encode_image, encode_palette_png
from sisgen.writers import get_writer
from sisgen.writers.base import SampleImage, segment_runs, segments, unique_runs
from sisgen.writers.cityscapes import cityscapes_instance_ids
from sisgen.writers.coco import compressed_rles
from sisgen.writers.stage import write_sample


def runny(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``n`` values from ``k`` distinct ones, in runs of random length."""
    values = rng.integers(-3, k, size=max(1, n // 3))
    return np.repeat(values, rng.integers(1, 6, size=len(values)))[:n]


def test_unique_runs_equals_numpy_unique():
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = runny(rng, int(rng.integers(0, 80)), int(rng.integers(1, 9))) * 1000003
        uniq, inverse, first = unique_runs(values)
        ref_u, ref_first, ref_inv = np.unique(values, return_index=True, return_inverse=True)
        np.testing.assert_array_equal(uniq, ref_u)
        np.testing.assert_array_equal(inverse, ref_inv.reshape(-1))
        np.testing.assert_array_equal(first, ref_first)


def test_segment_runs_rle_boxes_areas_match_pycocotools():
    rng = np.random.default_rng(1)
    for t in range(80):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        k = int(rng.integers(1, 6))
        ids = rng.integers(0, k + 1, (h, w)) if t % 2 else np.zeros((h, w), np.int64)
        if t % 2 == 0:
            for j in range(1, k + 1):  # rectangles, some touching the borders
                y, x = rng.integers(0, h), rng.integers(0, w)
                ids[y:y + rng.integers(1, h + 1), x:x + rng.integers(1, w + 1)] = j
        runs = segment_runs(ids.astype(np.int32), k)
        rles, boxes, areas = compressed_rles(runs), runs.boxes(), runs.areas()
        for j in range(k):
            mask = np.asfortranarray((ids == j + 1).astype(np.uint8))
            ref = mask_utils.encode(mask)
            assert rles[j] == {"size": [h, w], "counts": ref["counts"].decode("ascii")}
            assert areas[j] == mask.sum()
            expected = [int(v) for v in mask_utils.toBbox(ref)] if mask.any() else [0] * 4
            assert boxes[j].tolist() == expected


def test_rle_strings_of_large_counts():
    ids = np.zeros((700, 900), np.int32)
    ids[300:, 500:] = 1
    ids[0, 0] = 2
    ids[-1, -1] = 3
    rles = compressed_rles(segment_runs(ids, 3))
    for j in range(3):
        ref = mask_utils.encode(np.asfortranarray((ids == j + 1).astype(np.uint8)))
        assert rles[j]["counts"] == ref["counts"].decode("ascii")


def reference_segments(sem, inst, vocab):
    """Segments by their definition, one mask at a time (slow and plain)."""
    sem = sem.astype(np.int64)
    thing = np.array([0 <= s < 256 and vocab.thing_table()[s] for s in sem.ravel()]
                     ).reshape(sem.shape)
    stuff = np.array([0 <= s < 256 and vocab.stuff_table()[s] for s in sem.ravel()]
                     ).reshape(sem.shape)
    masks, classes = [], []
    if inst is not None:
        pairs = sorted({(int(i), int(c)) for i, c, t in zip(inst.ravel(), sem.ravel(),
                                                            thing.ravel(), strict=True)
                        if t and i != 0})
        for i, c in pairs:
            masks.append(thing & (inst == i) & (sem == c))
            classes.append(c)
    crowd_px = thing & (inst == 0) if inst is not None else thing
    for px in (crowd_px, stuff):
        for c in sorted(set(sem[px].tolist())):
            masks.append(px & (sem == c))
            classes.append(c)
    return masks, classes


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_segments_match_their_definition(dtype):
    vocab = get_vocabulary("cityscapes")
    rng = np.random.default_rng(2)
    values = [0, 7, 11, 23, 24, 26, 27, 255] + ([-4, 300] if dtype is np.int32 else [])
    for t in range(40):
        h, w = (int(v) for v in rng.integers(1, 20, 2))
        sem = rng.choice(values, size=(h, w)).astype(dtype)
        inst = rng.integers(0, 4, size=(h, w)).astype(np.int32) if t % 3 else None
        seg = segments(sem, inst, vocab)
        masks, classes = reference_segments(sem, inst, vocab)
        assert seg.classes.tolist() == classes
        assert seg.ids.dtype == np.int32
        expected = np.zeros((h, w), np.int64)
        for k, m in enumerate(masks):
            expected[m] = k + 1
        np.testing.assert_array_equal(seg.ids, expected)


def reference_instance_ids(sem, inst, thing_ids):
    """Cityscapes instanceIds by the rule, pair by pair in order of first appearance."""
    out = sem.astype(np.int64).copy()
    first: dict[tuple[int, int], int] = {}
    for p, (c, i) in enumerate(zip(sem.ravel().tolist(), inst.ravel().tolist(), strict=True)):
        if c in thing_ids and i != 0:
            first.setdefault((c, i), p)
    codes, used = {}, {}
    for (c, i) in first:
        if i // 1000 == c:
            codes[(c, i)] = i
            used.setdefault(c, set()).add(i % 1000)
    for (c, i) in sorted(first, key=first.get):
        if (c, i) in codes:
            continue
        k = 0
        while k in used.setdefault(c, set()):
            k += 1
        used[c].add(k)
        codes[(c, i)] = c * 1000 + k
    for (c, i), code in codes.items():
        out[(sem == c) & (inst == i)] = code
    return out.astype(np.uint16)


def test_cityscapes_instance_ids_match_the_rule():
    vocab = get_vocabulary("cityscapes")
    things = set(vocab.thing_ids)
    rng = np.random.default_rng(3)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 16, 2))
        sem = rng.choice([7, 24, 26, 27, 255], size=(h, w)).astype(np.uint8)
        inst = rng.choice([0, 5, 9, 26001, 26002, 24000], size=(h, w)).astype(np.int32)
        got = cityscapes_instance_ids(sem, inst, vocab.thing_ids)
        np.testing.assert_array_equal(got, reference_instance_ids(sem, inst, things))
    with pytest.raises(SisgenInputError, match="uint16"):
        cityscapes_instance_ids(np.full((2, 2), 70000, np.int32), None, vocab.thing_ids)


def test_palette_png_equals_rgb_png():
    vocab = get_vocabulary("cityscapes")
    ids = np.random.default_rng(4).choice(vocab.ids + [255], size=(17, 23)).astype(np.uint8)
    assert encode_palette_png(ids, vocab.palette()) == encode_image(vocab.colorize(ids))


class CountingVocabulary:
    """A vocabulary stand-in that counts :meth:`validate` calls."""

    def __init__(self, vocab):
        self.vocab, self.calls = vocab, 0
        self.ids = vocab.ids

    def validate(self, semantic, path=None):
        self.calls += 1
        self.vocab.validate(semantic, path)


def test_sample_image_shares_label_png_and_check():
    vocab = get_vocabulary("cityscapes")
    sem = np.full((8, 8), 7, np.uint8)
    shared = SampleImage(np.zeros((8, 8, 3), np.uint8))
    assert shared.label_png(sem) is shared.label_png(sem)
    assert shared.label_png(sem) == encode_image(sem)
    counting = CountingVocabulary(vocab)
    shared.check_labels(counting, sem, "x")
    shared.check_labels(counting, sem, "x")
    assert counting.calls == 1
    other = SampleImage(np.zeros((8, 8, 3), np.uint8))
    other.mark_checked(counting, sem)
    other.check_labels(counting, sem, "x")
    assert counting.calls == 1
    with pytest.raises(SisgenInputError, match="outside"):
        SampleImage(np.zeros((2, 2, 3), np.uint8)).check_labels(vocab, np.full((2, 2), 99,
                                                                               np.uint8), "y")


def test_write_sample_checks_labels_once_unless_told(tmp_path):
    vocab = get_vocabulary("cityscapes")
    writers = [get_writer("cityscapes", tmp_path / "cs", vocab),
               get_writer("coco", tmp_path / "coco", vocab)]
    image = np.zeros((8, 8, 3), np.uint8)
    bad = LabelMap(np.full((8, 8), 99, np.uint8))
    written, _ = write_sample(writers, "bad", image, bad)
    assert isinstance(written, SisgenInputError)
    good = LabelMap(np.full((8, 8), 7, np.uint8))
    written, _ = write_sample(writers, "good", image, good, labels_checked=True)
    assert [w.paths["label"] for w in written] == [
        "gtFine/train/sisgen/good_gtFine_labelIds.png", "labels/train2017/good.png"]
    a = (tmp_path / "cs" / written[0].paths["label"]).read_bytes()
    assert a == (tmp_path / "coco" / written[1].paths["label"]).read_bytes()
