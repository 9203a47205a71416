from __future__ import annotations

import json

import numpy as np
import pytest

from sisgen import LabelMap, SisgenInputError, get_vocabulary
from sisgen.edits import (
    NOISE_MASK_KEY,
    Crop,
    Dilate,
    Erode,
    Flip,
    HFlip,
    OneOf,
    Pad,
    Paste,
    Recipe,
    ResampleNoise,
    Scale,
    SomeOf,
    build_edit,
)
from sisgen.instance_bank import InstanceBank, load_bank_cached

ROAD, SIDEWALK, BUILDING, SKY, PERSON, CAR = 7, 8, 11, 23, 24, 26


@pytest.fixture(scope="module")
def vocab():
    return get_vocabulary("cityscapes")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def grid(h: int, w: int) -> LabelMap:
    """Semantic ``arange`` values (all < 255) and instance ``arange + 1``."""
    sem = (np.arange(h * w).reshape(h, w) % 250).astype(np.uint8)
    return LabelMap(sem, (np.arange(h * w).reshape(h, w) + 1).astype(np.int32), {"id": "g"})


def street() -> LabelMap:
    """16x20: sky rows 0-5, sidewalk rows 6-7, road rows 8-15, one car (26000)."""
    sem = np.full((16, 20), ROAD, np.uint8)
    sem[:6] = SKY
    sem[6:8] = SIDEWALK
    inst = np.zeros(sem.shape, np.int32)
    sem[9:12, 2:6] = CAR
    inst[9:12, 2:6] = 26000
    return LabelMap(sem, inst, {"id": "street", "source": "cityscapes"})


def donor_maps() -> list[LabelMap]:
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


@pytest.fixture(scope="module")
def bank(vocab):
    return InstanceBank.from_labelmaps(donor_maps(), min_pixels=4, vocab=vocab)


def assert_same(a: LabelMap, b: LabelMap) -> None:
    np.testing.assert_array_equal(a.semantic, b.semantic)
    if a.instance is None:
        assert b.instance is None
    else:
        np.testing.assert_array_equal(a.instance, b.instance)
    ma, mb = a.meta.get(NOISE_MASK_KEY), b.meta.get(NOISE_MASK_KEY)
    assert (ma is None) == (mb is None)
    if ma is not None:
        np.testing.assert_array_equal(ma, mb)


# ----------------------------------------------------------------------------- geometry
def test_flip(vocab):
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


def test_scale_exact(vocab):
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


def test_crop_exact(vocab):
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


def test_pad_exact(vocab):
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


# ----------------------------------------------------------------------------- morphology
def test_dilate_thing_exact(vocab):
    sem = np.full((5, 5), ROAD, np.uint8)
    inst = np.zeros((5, 5), np.int32)
    sem[2, 2], inst[2, 2] = CAR, 26000
    sem[2, 3], inst[2, 3] = PERSON, 24000
    sem[0, 2] = 255
    lm = LabelMap(sem, inst)
    out, rec = Dilate("car", 1).run(lm, rng(), vocab)
    exp = sem.copy()
    exp[1, 2] = exp[3, 2] = exp[2, 1] = CAR  # 3x3 ellipse = cross; person and 255 kept
    np.testing.assert_array_equal(out.semantic, exp)
    exp_i = inst.copy()
    exp_i[exp == CAR] = 26000
    np.testing.assert_array_equal(out.instance, exp_i)
    assert rec["changed"] == 3
    over = Dilate("car", 1, over_things=True)(lm, rng(), vocab)
    assert over.semantic[2, 3] == CAR and over.instance[2, 3] == 26000
    big = Dilate("car", 2)(lm, rng(), vocab)
    # OpenCV's 5x5 ellipse: rows 00100 / 11111 x3 / 00100; person and 255 kept
    exp_big = np.full((5, 5), ROAD, np.uint8)
    exp_big[1:4] = CAR
    exp_big[4, 2] = CAR
    exp_big[0, 2] = 255
    exp_big[2, 3] = PERSON
    np.testing.assert_array_equal(big.semantic, exp_big)
    assert Dilate("car", 0)(lm, rng(), vocab).semantic.tolist() == sem.tolist()


def test_dilate_stuff_clears_instances(vocab):
    sem = np.full((3, 4), ROAD, np.uint8)
    inst = np.zeros(sem.shape, np.int32)
    sem[:, 0] = SIDEWALK
    sem[1, 1], inst[1, 1] = CAR, 26000
    lm = LabelMap(sem, inst)
    out = Dilate("sidewalk", 1)(lm, rng(), vocab)
    exp = sem.copy()
    exp[[0, 2], 1] = SIDEWALK
    np.testing.assert_array_equal(out.semantic, exp)
    out2 = Dilate("sidewalk", 1, over_things=True)(lm, rng(), vocab)
    assert out2.semantic[1, 1] == SIDEWALK and out2.instance[1, 1] == 0


def test_erode_exact(vocab):
    sem = np.full((5, 5), ROAD, np.uint8)
    sem[1:4, 1:4] = SIDEWALK
    sem[2, 4] = BUILDING
    out, rec = Erode("sidewalk", 1).run(LabelMap(sem), rng(), vocab)
    exp = np.full((5, 5), ROAD, np.uint8)
    exp[2, 2] = SIDEWALK
    exp[2, 3] = BUILDING  # nearest other class of (2,3) is the building at (2,4)
    exp[2, 4] = BUILDING
    np.testing.assert_array_equal(out.semantic, exp)
    assert rec["changed"] == 8
    # the image border does not erode
    sem2 = np.full((4, 5), ROAD, np.uint8)
    sem2[:, :2] = SIDEWALK
    out2 = Erode("sidewalk", 1)(LabelMap(sem2), rng(), vocab)
    exp2 = sem2.copy()
    exp2[:, 1] = ROAD
    np.testing.assert_array_equal(out2.semantic, exp2)
    # freed pixels next to a car take the car and its instance
    sem3 = np.full((3, 4), ROAD, np.uint8)
    inst3 = np.zeros(sem3.shape, np.int32)
    sem3[:, 3], inst3[:, 3] = CAR, 26000
    out3 = Erode("road", 1)(LabelMap(sem3, inst3), rng(), vocab)
    assert (out3.semantic[:, 2] == CAR).all() and (out3.instance[:, 2] == 26000).all()
    # nothing else to fill from: ignore
    sem4 = np.full((3, 3), ROAD, np.uint8)
    sem4[1, 1] = 255
    out4 = Erode("road", 1)(LabelMap(sem4), rng(), vocab)
    assert (out4.semantic == 255).sum() == 5


# ----------------------------------------------------------------------------- bank / paste
def test_bank_build_and_round_trip(vocab, bank, tmp_path):
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


def test_bank_from_source(vocab):
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


def test_paste_lands_on_allowed_classes(vocab, bank):
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


def test_paste_ids_sequential_style(vocab, bank):
    lm = street()
    lm.instance[lm.instance == 26000] = 3
    out, rec = Paste(count=2, on=["road"]).run(lm, rng(0), vocab, {"bank": bank})
    assert [p["instance"] for p in rec["pasted"]] == [4, 5]
    no_inst = LabelMap(street().semantic)
    out, rec = Paste(count=1).run(no_inst, rng(0), vocab, {"bank": bank})
    assert out.instance is None and "instance" not in rec["pasted"][0]


def test_paste_occlusion(vocab):
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


def test_paste_scale_and_perspective(vocab, bank):
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


def test_paste_determinism_and_bank_sources(vocab, bank, tmp_path):
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
    other = InstanceBank(list(bank), vocabulary="ade20k")
    with pytest.raises(SisgenInputError, match="ade20k"):
        r_ctx(lm, 0, vocab, context={"bank": other})


# ----------------------------------------------------------------------------- composites
def test_one_of_weights(vocab):
    step = OneOf([{"op": "flip"}, {"op": "flip", "direction": "vertical"}, {"op": "hflip"}],
                 weights=[1, 0, 3])
    lm = grid(3, 3)
    counts = np.zeros(3, int)
    for s in range(300):
        out, rec = step.run(lm, rng(s), vocab)
        counts[rec["chosen"]] += 1
        assert len(rec["steps"]) == 1 and rec["steps"][0]["op"] == step.steps[rec["chosen"]].op
    assert counts[1] == 0 and 0.6 < counts[2] / 300 < 0.9
    uniform = OneOf([{"op": "flip"}, {"op": "hflip"}, {"op": "scale", "factor": 2}])
    chosen = [uniform.run(lm, rng(s), vocab)[1]["chosen"] for s in range(300)]
    assert all(60 < chosen.count(i) < 140 for i in range(3))
    a, b = step.run(lm, rng(9), vocab), step.run(lm, rng(9), vocab)
    assert_same(a[0], b[0]) and a[1] == b[1]
    with pytest.raises(SisgenInputError, match="weights"):
        OneOf([{"op": "flip"}], weights=[1, 2])


def test_some_of_and_child_p(vocab):
    steps = [{"op": "flip"}, {"op": "flip", "direction": "vertical"},
             {"op": "scale", "factor": 2, "p": 0.0}]
    step = SomeOf(steps, n=2)
    lm = grid(3, 3)
    orders = set()
    for s in range(200):
        out, rec = step.run(lm, rng(s), vocab)
        assert len(rec["chosen"]) == 2 and len(set(rec["chosen"])) == 2
        orders.add(tuple(rec["chosen"]))
        for i, child in zip(rec["chosen"], rec["steps"], strict=True):
            assert child["fired"] is (i != 2)
        assert out.shape == (3, 3)  # the scale step has p 0
    assert len(orders) == 6  # every ordered pair appears
    assert SomeOf(steps, n=0).run(lm, rng(0), vocab)[1]["chosen"] == []
    with pytest.raises(SisgenInputError, match="n must be"):
        SomeOf(steps, n=4)


def test_shorthand_and_nested_errors(vocab, tmp_path):
    r = Recipe.load("edits:\n  - one_of: [{op: hflip}, {op: flip, direction: vertical}]\n"
                    "    weights: [1, 2]\n"
                    "  - some_of: {n: 1, steps: [{op: hflip}, {op: pad, to_multiple: 8}]}\n")
    assert isinstance(r.edits[0], OneOf) and r.edits[0].weights == [1.0, 2.0]
    assert isinstance(r.edits[1], SomeOf) and r.edits[1].n == 1
    path = tmp_path / "bad.yaml"
    path.write_text("edits:\n  - {op: hflip}\n"
                    "  - one_of: [{op: hflip}, {op: crop, size: [0, 4]}]\n")
    with pytest.raises(SisgenInputError, match=r"step 1 \(one_of\): step 1 \(crop\).*size") as e:
        Recipe.load(path)
    assert e.value.path == str(path)
    path.write_text("edits:\n  - {op: some_of, n: 1, steps: [{op: dilate, class: carr}]}\n")
    r = Recipe.load(path)
    with pytest.raises(SisgenInputError, match=r"step 0 \(some_of\): step 0 \(dilate\).*carr"):
        r.validate(vocab)
    with pytest.raises(SisgenInputError, match="no parameter 'klass'"):
        build_edit({"op": "dilate", "klass": "car"})
    with pytest.raises(SisgenInputError, match="needs 'class'"):
        build_edit({"op": "erode"})


# ----------------------------------------------------------------------------- noise marks
def test_resample_noise_targets(vocab):
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


def test_noise_mask_follows_geometry(vocab, bank):
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


# ----------------------------------------------------------------------------- recipes
def every_op_yaml(bank_path: str) -> str:
    return f"""
edits:
  - {{op: relabel, mapping: {{sky: vegetation}}, p: 0.9}}
  - {{op: swap, a: car, b: truck, p: 0.5}}
  - {{op: remove_instances, classes: [car], count: 1, p: 0.5}}
  - op: paste
    classes: [car, person]
    range: [1, 3]
    scale: [0.8, 1.2]
    perspective: true
    horizon: 0.3
    on: [road, sidewalk]
    occlusion: behind
    bank: {bank_path}
  - {{op: resample_noise, class: car, instance: random}}
  - {{op: resample_noise, region: [0.0, 0.0, 0.5, 0.5], p: 0.5}}
  - one_of: [{{op: dilate, class: road, pixels: 1}}, {{op: erode, class: sidewalk}}]
    weights: [2, 1]
  - {{op: dilate, class: car, pixels: 1, over_things: true, p: 0.3}}
  - some_of:
      n: 2
      steps:
        - {{op: hflip}}
        - {{op: flip, direction: vertical, p: 0.5}}
        - {{op: scale, range: [0.8, 1.5]}}
        - one_of: [{{op: scale, factor: 0.5}}, {{op: crop, size: [10, 12], position: center}}]
  - {{op: crop, size: [12, 16]}}
  - {{op: pad, to_multiple: 32, position: random}}
  - {{op: pad, size: [40, 40], position: topleft}}
"""


def test_recipe_every_op_round_trip(vocab, bank, tmp_path):
    bank_path = tmp_path / "b.npz"
    bank.save(bank_path)
    r = Recipe.from_yaml(every_op_yaml(str(bank_path)))
    ops = {e.op for e in r.walk()}
    assert ops >= {"relabel", "swap", "remove_instances", "paste", "resample_noise", "one_of",
                   "dilate", "erode", "some_of", "hflip", "flip", "scale", "crop", "pad"}
    data = r.to_list()
    assert json.loads(json.dumps(data)) == data
    assert data[6]["op"] == "one_of" and data[6]["weights"] == [2.0, 1.0]
    assert data[8]["steps"][3]["op"] == "one_of"
    r.validate(vocab)
    path = tmp_path / "r.yaml"
    path.write_text(r.to_yaml())
    others = [Recipe.from_list(data), Recipe.load(path), Recipe.from_list(Recipe.load(path)
                                                                          .to_list())]
    assert all(o.to_list() == data for o in others)
    lm = street()
    shapes = set()
    for s in range(8):
        ref = r(lm, s, vocab)
        json.dumps(ref.meta["edits"])
        assert len(ref.meta["edits"]) == len(r)
        shapes.add(ref.shape)
        for o in others:
            out = o(lm, s, vocab)
            assert_same(out, ref)
            assert out.meta["edits"] == ref.meta["edits"]
    assert shapes == {(40, 40)}
