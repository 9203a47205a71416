"""The instance bank and the paste edit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sisgen import LabelMap, SisgenInputError
from sisgen.edits import Paste, Recipe
from sisgen.instance_bank import InstanceBank, load_bank_cached

ROAD, SKY, PERSON, CAR = 7, 23, 24, 26


def test_bank_build_and_round_trip(vocab, bank, tmp_path, donor_maps):
    # per map: cars 26000 (3x3), 26001 (2x4), person 24001/2 (2x2); person 24000 truncated
    assert len(bank) == 6 and bank.counts() == {PERSON: 2, CAR: 4}
    assert bank.vocabulary == "cityscapes"
    # map order, then instance id order
    assert [i.instance_id for i in bank] == [24001, 26000, 26001, 24002, 26000, 26001]
    it = bank[1]
    assert it.class_id == CAR and it.size == (3, 3) and it.bbox == (4, 3, 7, 6)
    assert it.source_id == "donor0" and it.source_shape == (12, 12) and it.instance_id == 26000
    with_trunc = InstanceBank.from_labelmaps(donor_maps(), min_pixels=4, vocab=vocab,
                                             skip_truncated=False)
    assert len(with_trunc) == 8
    assert len(InstanceBank.from_labelmaps(donor_maps(), min_pixels=9, vocab=vocab)) == 2
    assert len(InstanceBank.from_labelmaps(donor_maps(), classes=["person"], min_pixels=1,
                                           vocab=vocab)) == 2
    assert len(InstanceBank.from_labelmaps(donor_maps(), min_pixels=1, max_items=3,
                                           vocab=vocab)) == 3
    # no instance map: connected components of thing classes
    no_inst = [LabelMap(m.semantic) for m in donor_maps()]
    assert len(InstanceBank.from_labelmaps(no_inst, min_pixels=4, vocab=vocab)) == 6

    path = tmp_path / "bank.npz"
    bank.save(path)
    back = InstanceBank.load(path)
    assert len(back) == len(bank) and back.vocabulary == bank.vocabulary
    for a, b in zip(bank, back, strict=True):
        assert (a.class_id, a.source_id, a.bbox, a.source_shape, a.instance_id) == (
            b.class_id, b.source_id, b.bbox, b.source_shape, b.instance_id)
        np.testing.assert_array_equal(a.mask, b.mask)
    assert load_bank_cached(path) is load_bank_cached(path)
    with np.load(path, allow_pickle=False) as z:  # no pickle inside
        assert set(z.files) == {"bits", "index"}
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SisgenInputError, match="bad.npz"):
        InstanceBank.load(bad)
    with pytest.raises(SisgenInputError, match="not found"):
        InstanceBank.load(tmp_path / "missing.npz")


def test_bank_from_source(vocab, donor_maps):
    class FakeSource:
        vocabulary = vocab

        def __len__(self):
            return 3

        def load(self, i):
            if i == 1:
                raise SisgenInputError("broken", "x.png")
            return donor_maps()[0]

    b = InstanceBank.from_source(FakeSource(), min_pixels=4)
    assert len(b) == 6 and b.vocabulary == "cityscapes"


def test_paste_lands_on_allowed_classes(vocab, bank, rng, street, assert_same):
    lm = street()
    step = Paste(classes=["car"], on=["road"], count=1)
    for s in range(30):
        out, rec = step.run(lm, rng(s), vocab, {"bank": bank})
        (p,) = rec["pasted"]
        y, x = p["position"]
        assert lm.semantic[y, x] == ROAD and out.semantic[y, x] == CAR
        assert p["class"] == CAR and out.instance[y, x] == p["instance"]
    # several: fresh unique ids in the class*1000+k style, input untouched
    before = lm.semantic.copy()
    out, rec = Paste(on=["road", "sidewalk"], range=[4, 6]).run(lm, rng(1), vocab,
                                                                {"bank": bank})
    np.testing.assert_array_equal(lm.semantic, before)
    ids = [p["instance"] for p in rec["pasted"]]
    assert 4 <= rec["requested"] <= 6 and len(ids) == rec["requested"] - rec["skipped"]
    assert len(set(ids)) == len(ids) and 26000 not in ids
    assert all(i // 1000 == p["class"] for i, p in zip(ids, rec["pasted"], strict=True))
    json.dumps(rec)
    # nowhere to land: skipped
    out, rec = Paste(on=["building"], count=2).run(lm, rng(0), vocab, {"bank": bank})
    assert rec["pasted"] == [] and rec["skipped"] == 2
    assert_same(out, lm)


def test_paste_ids_sequential_style(vocab, bank, rng, street):
    lm = street()
    lm.instance[lm.instance == 26000] = 3
    out, rec = Paste(count=2, on=["road"]).run(lm, rng(0), vocab, {"bank": bank})
    assert [p["instance"] for p in rec["pasted"]] == [4, 5]
    no_inst = LabelMap(street().semantic)
    out, rec = Paste(count=1).run(no_inst, rng(0), vocab, {"bank": bank})
    assert out.instance is None and "instance" not in rec["pasted"][0]


def test_paste_occlusion(vocab, rng, donor_maps):
    # the only road pixel is (11, 5) under an existing car: a 3x3 car lands there
    sem = np.full((12, 12), SKY, np.uint8)
    inst = np.zeros(sem.shape, np.int32)
    sem[4:11, 2:10], inst[4:11, 2:10] = CAR, 26000
    sem[11, 5] = ROAD
    lm = LabelMap(sem, inst)
    one = InstanceBank.from_labelmaps(donor_maps()[:1], classes=[CAR], min_pixels=9,
                                      vocab=vocab)
    assert len(one) == 1
    front, rec = Paste(on=["road"]).run(lm, rng(0), vocab, {"bank": one})
    new = rec["pasted"][0]["instance"]
    assert new == 26001
    box = np.zeros(sem.shape, bool)
    box[9:12, 4:7] = True
    assert (front.instance[box] == new).all() and (front.semantic[box] == CAR).all()
    behind, rec = Paste(on=["road"], occlusion="behind").run(lm, rng(0), vocab, {"bank": one})
    assert rec["pasted"][0]["pixels"] == 3  # the row 11 pixels only (sky, road, sky)
    np.testing.assert_array_equal(behind.instance[lm.instance == 26000], 26000)
    assert (behind.instance[11, 4:7] == 26001).all()


def test_paste_scale_and_perspective(vocab, bank, rng, street):
    lm = street()
    for s in range(10):
        _, rec = Paste(classes=["car"], scale=[2, 3]).run(lm, rng(s), vocab, {"bank": bank})
        p = rec["pasted"][0]
        assert 2 <= p["scale"] <= 3
        h, w = bank[p["bank_index"]].size
        assert p["size"] == [round(h * p["scale"]), round(w * p["scale"])]
    persp = Paste(classes=["car"], perspective=True, horizon=0.3, on=["road", "sidewalk"])
    seen = []
    for s in range(40):
        _, rec = persp.run(lm, rng(s), vocab, {"bank": bank})
        p = rec["pasted"][0]
        item = bank[p["bank_index"]]
        y = p["position"][0]
        expected = (16 / 12) * ((y + 1) / 16 - 0.3) / max(item.bbox[2] / 12 - 0.3, 0.05)
        assert p["scale"] == pytest.approx(expected)
        seen.append((y, item.bbox[2], p["scale"]))
    # same source item: lower in the image -> larger
    for bottom in {b for _, b, _ in seen}:
        rows = sorted((y, f) for y, b, f in seen if b == bottom)
        assert all(f1 <= f2 for (_, f1), (_, f2) in zip(rows, rows[1:], strict=False))
        assert rows[0][0] < rows[-1][0]


def test_paste_determinism_and_bank_sources(vocab, bank, tmp_path, street, assert_same):
    lm = street()
    path = tmp_path / "banks" / "b.npz"
    bank.save(path)
    r_ctx = Recipe.load([{"op": "paste", "range": [1, 4], "on": ["road"]}])
    assert r_ctx.needs_bank()
    a = r_ctx(lm, 5, vocab, context={"bank": bank})
    b = r_ctx(lm, 5, vocab, context={"bank": bank})
    assert_same(a, b) and a.meta["edits"] == b.meta["edits"]
    assert len({r_ctx(lm, s, vocab, context={"bank": bank}).semantic.tobytes()
                for s in range(6)}) > 1
    # bank given as a path in the context, or in the step (relative to the recipe file)
    c = r_ctx(lm, 5, vocab, context={"bank": str(path)})
    assert_same(a, c)
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text("edits:\n  - {op: paste, range: [1, 4], on: [road], "
                           "bank: banks/b.npz}\n")
    r_file = Recipe.load(recipe_file)
    assert not r_file.needs_bank()
    assert_same(a, r_file(lm, 5, vocab))
    with pytest.raises(SisgenInputError, match=r"step 0 \(paste\).*instance bank"):
        r_ctx(lm, 0, vocab)
    missing = Recipe.load([{"one_of": [{"op": "paste", "bank": str(tmp_path / "nope.npz")}]}])
    missing.validate(vocab)  # class names only: validate reads no file
    with pytest.raises(SisgenInputError, match=r"step 0 \(one_of\).*nope.npz.*not found"):
        missing.load_banks()  # a bad bank file fails before the run starts
    with pytest.raises(SisgenInputError, match=r"step 0 \(one_of\).*nope.npz.*not found"):
        missing(lm, 0, vocab)  # ... and where the step first uses it
    r_file.load_banks()  # a readable bank file passes
    other = InstanceBank(list(bank), vocabulary="ade20k")
    with pytest.raises(SisgenInputError, match="ade20k"):
        r_ctx(lm, 0, vocab, context={"bank": other})
