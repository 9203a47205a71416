"""Class edits: relabel, swap, remove_instances, dilate, erode."""

from __future__ import annotations

import numpy as np

from sisgen import LabelMap
from sisgen.edits import Dilate, Erode, Relabel, RemoveInstances, Swap

# cityscapes ids
ROAD, SIDEWALK, BUILDING, VEG, TERRAIN, SKY, PERSON, CAR = 7, 8, 11, 21, 22, 23, 24, 26


def test_relabel_by_name_and_id(vocab, rng, small_map):
    lm = small_map()
    out = Relabel({"sky": "vegetation", ROAD: SIDEWALK})(lm, rng(), vocab)
    exp = lm.semantic.copy()
    exp[exp == SKY] = VEG
    exp[lm.semantic == ROAD] = SIDEWALK
    np.testing.assert_array_equal(out.semantic, exp)
    np.testing.assert_array_equal(out.instance, lm.instance)
    assert out.semantic.dtype == lm.semantic.dtype


def test_relabel_simultaneous_and_ignore(vocab, rng, small_map):
    lm = small_map()
    out = Relabel({"car": "ignore", "road": "sky", "sky": "road"})(lm, rng(), vocab)
    exp = lm.semantic.copy()
    exp[lm.semantic == CAR] = 255
    exp[lm.semantic == ROAD] = SKY
    exp[lm.semantic == SKY] = ROAD
    np.testing.assert_array_equal(out.semantic, exp)
    # the car became ignore: its instance is cleared, the person keeps its id
    exp_inst = lm.instance.copy()
    exp_inst[lm.semantic == CAR] = 0
    np.testing.assert_array_equal(out.instance, exp_inst)
    out255 = Relabel({"car": 255})(lm, rng(), vocab)
    np.testing.assert_array_equal(out255.semantic, np.where(lm.semantic == CAR, 255, lm.semantic))


def test_relabel_thing_to_stuff_clears_instances(vocab, rng, small_map):
    lm = small_map()
    out = Relabel({"person": "terrain"})(lm, rng(), vocab)
    assert (out.semantic[lm.semantic == PERSON] == TERRAIN).all()
    assert (out.instance[lm.semantic == PERSON] == 0).all()
    assert (out.instance[lm.semantic == CAR] == 26000).all()


def test_swap(vocab, rng, small_map):
    lm = small_map()
    out = Swap("car", "person")(lm, rng(), vocab)
    exp = lm.semantic.copy()
    exp[lm.semantic == CAR] = PERSON
    exp[lm.semantic == PERSON] = CAR
    np.testing.assert_array_equal(out.semantic, exp)
    np.testing.assert_array_equal(out.instance, lm.instance)  # both things: ids kept
    out2 = Swap(SKY, "road")(lm, rng(), vocab)
    exp2 = lm.semantic.copy()
    exp2[lm.semantic == SKY] = ROAD
    exp2[lm.semantic == ROAD] = SKY
    np.testing.assert_array_equal(out2.semantic, exp2)
    # thing <-> stuff: the former car pixels lose their instance
    out3 = Swap("car", "road")(lm, rng(), vocab)
    assert (out3.instance[lm.semantic == CAR] == 0).all()
    assert (out3.semantic[lm.semantic == ROAD] == CAR).all()


def test_remove_instances_fill_exact(vocab, rng):
    # a car between building (left) and sky (right), a person inside it at the bottom,
    # ignore above: freed pixels take the nearest *stuff* class, never person or 255.
    sem = np.array(
        [
            [255, 255, 255, 255, 255, 255],
            [BUILDING, CAR, CAR, CAR, CAR, SKY],
            [BUILDING, CAR, CAR, CAR, CAR, SKY],
            [PERSON, PERSON, PERSON, PERSON, PERSON, PERSON],
        ],
        dtype=np.uint8,
    )
    inst = np.zeros(sem.shape, np.int32)
    inst[1:3, 1:5] = 26000
    inst[3] = 24000
    lm = LabelMap(sem, inst)
    out = RemoveInstances(["car"])(lm, rng(), vocab)
    exp = sem.copy()
    exp[1:3, 1:3] = BUILDING
    exp[1:3, 3:5] = SKY
    np.testing.assert_array_equal(out.semantic, exp)
    exp_inst = inst.copy()
    exp_inst[1:3, 1:5] = 0
    np.testing.assert_array_equal(out.instance, exp_inst)


def test_remove_instances_fill_never_uses_things_or_ignore(vocab, rng, many_instances):
    lm = many_instances()
    # surround everything but one column of road with ignore and persons
    lm.semantic[:, :] = 255
    lm.semantic[4:7, :] = PERSON
    lm.instance[4:7, :] = 24009
    for k in range(6):
        lm.semantic[4:7, 2 + 6 * k : 5 + 6 * k] = CAR
        lm.instance[4:7, 2 + 6 * k : 5 + 6 * k] = 26000 + k
    lm.semantic[0, 39] = TERRAIN
    out = RemoveInstances(["car"], fraction=1.0)(lm, rng(), vocab)
    freed = lm.semantic == CAR
    assert (out.semantic[freed] == TERRAIN).all()
    assert (out.instance[freed] == 0).all()


def test_remove_instances_no_stuff_gives_ignore(vocab, rng):
    sem = np.full((3, 3), PERSON, np.uint8)
    sem[1, 1] = CAR
    inst = np.full((3, 3), 24000, np.int32)
    inst[1, 1] = 26000
    out = RemoveInstances(["car"])(LabelMap(sem, inst), rng(), vocab)
    assert out.semantic[1, 1] == 255 and out.instance[1, 1] == 0


def test_remove_instances_fraction_count_and_choice(vocab, rng, many_instances):
    lm = many_instances()
    out, rec = RemoveInstances(["car"], fraction=0.5).run(lm, rng(3), vocab)
    removed = rec["removed"]
    assert len(removed) == 3 and set(removed) <= set(range(26000, 26006))
    remaining = set(np.unique(out.instance)) - {0}
    assert remaining == (set(range(26000, 26006)) | {24000, 24001}) - set(removed)
    assert (out.semantic == CAR).sum() == 3 * 9
    # freed car pixels became road (the stuff between and around them), never sky/person
    freed = np.isin(lm.instance, removed)
    assert (out.semantic[freed] == ROAD).all()
    # count; count larger than available removes all
    _, rec2 = RemoveInstances(["car", "person"], count=2).run(lm, rng(0), vocab)
    assert len(rec2["removed"]) == 2
    out3 = RemoveInstances(["person"], count=10)(lm, rng(0), vocab)
    assert PERSON not in out3.semantic
    assert not np.isin(out3.instance, [24000, 24001]).any()
    cars = lm.semantic == CAR
    np.testing.assert_array_equal(out3.instance[cars], lm.instance[cars])
    # default classes: every thing class; fraction 0 removes nothing
    out4 = RemoveInstances()(lm, rng(0), vocab)
    assert not np.isin(out4.semantic, [CAR, PERSON]).any()
    assert (out4.instance == 0).all()
    np.testing.assert_array_equal(
        RemoveInstances(["car"], fraction=0.0)(lm, rng(0), vocab).semantic, lm.semantic
    )
    # different seeds choose different sets (at least across a few seeds)
    choices = {
        tuple(RemoveInstances(["car"], fraction=0.5).run(lm, rng(s), vocab)[1]["removed"])
        for s in range(8)
    }
    assert len(choices) > 1


def test_remove_instances_without_instance_map(vocab, rng, small_map):
    lm = LabelMap(small_map().semantic)
    out, rec = RemoveInstances(["car"]).run(lm, rng(), vocab)
    np.testing.assert_array_equal(out.semantic, lm.semantic)
    assert rec["removed"] == []


def test_dilate_thing_exact(vocab, rng):
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


def test_dilate_stuff_clears_instances(vocab, rng):
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


def test_erode_exact(vocab, rng):
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
