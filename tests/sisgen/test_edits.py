from __future__ import annotations

import json

import numpy as np
import pytest

from sisgen import LabelMap, SisgenInputError, get_vocabulary
from sisgen.edits import (
    Edit,
    HFlip,
    Recipe,
    Relabel,
    RemoveInstances,
    Swap,
    available_edits,
    build_edit,
    register_edit,
)

# cityscapes ids: road 7, sidewalk 8, building 11, vegetation 21, terrain 22, sky 23,
# person 24, car 26
ROAD, SIDEWALK, BUILDING, VEG, TERRAIN, SKY, PERSON, CAR = 7, 8, 11, 21, 22, 23, 24, 26


@pytest.fixture(scope="module")
def vocab():
    return get_vocabulary("cityscapes")


def small_map() -> LabelMap:
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


def many_instances() -> LabelMap:
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


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_registry():
    assert {"relabel", "swap", "remove_instances", "hflip"} <= set(available_edits())
    assert isinstance(build_edit({"op": "hflip"}), HFlip)


def test_relabel_by_name_and_id(vocab):
    lm = small_map()
    out = Relabel({"sky": "vegetation", ROAD: SIDEWALK})(lm, rng(), vocab)
    exp = lm.semantic.copy()
    exp[exp == SKY] = VEG
    exp[lm.semantic == ROAD] = SIDEWALK
    np.testing.assert_array_equal(out.semantic, exp)
    np.testing.assert_array_equal(out.instance, lm.instance)
    assert out.semantic.dtype == lm.semantic.dtype


def test_relabel_simultaneous_and_ignore(vocab):
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


def test_relabel_thing_to_stuff_clears_instances(vocab):
    lm = small_map()
    out = Relabel({"person": "terrain"})(lm, rng(), vocab)
    assert (out.semantic[lm.semantic == PERSON] == TERRAIN).all()
    assert (out.instance[lm.semantic == PERSON] == 0).all()
    assert (out.instance[lm.semantic == CAR] == 26000).all()


def test_input_not_mutated(vocab):
    lm = small_map()
    sem, inst, meta = lm.semantic.copy(), lm.instance.copy(), dict(lm.meta)
    for edit in (Relabel({"car": "road"}), Swap("car", "person"), RemoveInstances(["car"]),
                 HFlip()):
        edit(lm, rng(), vocab)
    Recipe.load([{"op": "hflip"}])(lm, 0, vocab)
    np.testing.assert_array_equal(lm.semantic, sem)
    np.testing.assert_array_equal(lm.instance, inst)
    assert lm.meta == meta


def test_swap(vocab):
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


def test_hflip(vocab):
    lm = small_map()
    out = HFlip()(lm, rng(), vocab)
    np.testing.assert_array_equal(out.semantic, lm.semantic[:, ::-1])
    np.testing.assert_array_equal(out.instance, lm.instance[:, ::-1])
    no_inst = LabelMap(lm.semantic.copy())
    assert HFlip()(no_inst, rng(), vocab).instance is None


def test_remove_instances_fill_exact(vocab):
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


def test_remove_instances_fill_never_uses_things_or_ignore(vocab):
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


def test_remove_instances_no_stuff_gives_ignore(vocab):
    sem = np.full((3, 3), PERSON, np.uint8)
    sem[1, 1] = CAR
    inst = np.full((3, 3), 24000, np.int32)
    inst[1, 1] = 26000
    out = RemoveInstances(["car"])(LabelMap(sem, inst), rng(), vocab)
    assert out.semantic[1, 1] == 255 and out.instance[1, 1] == 0


def test_remove_instances_fraction_count_and_choice(vocab):
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


def test_remove_instances_without_instance_map(vocab):
    lm = LabelMap(small_map().semantic)
    out, rec = RemoveInstances(["car"]).run(lm, rng(), vocab)
    np.testing.assert_array_equal(out.semantic, lm.semantic)
    assert rec["removed"] == []


@pytest.mark.parametrize("edit", [Relabel({"car": "road"}), Swap("car", "sky"),
                                  RemoveInstances(["car"]), HFlip()])
def test_probability(edit, vocab):
    lm = small_map()
    edit.p = 0.0
    for s in range(20):
        out, rec = edit.run(lm, rng(s), vocab)
        assert rec["fired"] is False
        np.testing.assert_array_equal(out.semantic, lm.semantic)
        np.testing.assert_array_equal(out.instance, lm.instance)
    edit.p = 1.0
    for s in range(20):
        out, rec = edit.run(lm, rng(s), vocab)
        assert rec["fired"] is True
        assert not np.array_equal(out.semantic, lm.semantic)


def test_probability_half_fires_sometimes(vocab):
    fired = [HFlip(p=0.5).run(small_map(), rng(s), vocab)[1]["fired"] for s in range(40)]
    assert 5 < sum(fired) < 35


RECIPE_YAML = """
edits:
  - {op: swap, a: car, b: person, p: 0.5}
  - {op: relabel, mapping: {sky: vegetation, 7: sidewalk}}
  - {op: remove_instances, classes: [car, person], fraction: 0.5}
  - {op: hflip, p: 0.5}
"""


def test_recipe_determinism(vocab):
    lm = many_instances()
    r = Recipe.from_yaml(RECIPE_YAML)
    assert len(r) == 4
    a, b = r(lm, 7, vocab), r(lm, 7, vocab)
    np.testing.assert_array_equal(a.semantic, b.semantic)
    np.testing.assert_array_equal(a.instance, b.instance)
    assert a.meta["edits"] == b.meta["edits"]
    outs = {r(lm, s, vocab).semantic.tobytes() for s in range(10)}
    assert len(outs) > 1


def test_recipe_round_trip(vocab, tmp_path):
    r = Recipe.from_yaml(RECIPE_YAML)
    data = r.to_list()
    assert data[0] == {"op": "swap", "a": "car", "b": "person", "p": 0.5}
    assert data[2] == {"op": "remove_instances", "classes": ["car", "person"], "fraction": 0.5}
    assert data[3] == {"op": "hflip", "p": 0.5}
    r2 = Recipe.from_list(data)
    path = tmp_path / "recipe.yaml"
    path.write_text(r.to_yaml())
    r3 = Recipe.load(path)
    r4 = Recipe.load(str(path))
    r5 = Recipe.load({"edits": json.loads(json.dumps(data))})
    lm = many_instances()
    for s in range(5):
        ref = r(lm, s, vocab)
        for other in (r2, r3, r4, r5):
            out = other(lm, s, vocab)
            np.testing.assert_array_equal(out.semantic, ref.semantic)
            np.testing.assert_array_equal(out.instance, ref.instance)
            assert out.meta["edits"] == ref.meta["edits"]
    assert r3.source == str(path)


def test_recipe_meta_edits(vocab):
    lm = many_instances()
    r = Recipe.load(RECIPE_YAML)
    out = r(lm, 3, vocab)
    recs = out.meta["edits"]
    json.dumps(recs)  # JSON-able
    assert [x["op"] for x in recs] == ["swap", "relabel", "remove_instances", "hflip"]
    assert recs[0]["params"] == {"a": CAR, "b": PERSON, "p": 0.5}
    assert recs[1]["params"] == {"mapping": {str(SKY): VEG, str(ROAD): SIDEWALK}, "p": 1.0}
    assert recs[1]["fired"] is True
    assert recs[2]["params"] == {"classes": [PERSON, CAR], "fraction": 0.5, "p": 1.0}
    assert len(recs[2]["removed"]) == 4
    assert all(isinstance(x["fired"], bool) for x in recs)
    # the record tells exactly which instances went
    all_ids = set(np.unique(lm.instance)) - {0}
    assert set(np.unique(out.instance)) - {0} == all_ids - set(recs[2]["removed"])
    assert lm.meta.get("edits") is None  # input meta untouched
    # records already in meta are kept in front
    again = Recipe.load([{"op": "hflip"}])(out, 0, vocab)
    assert len(again.meta["edits"]) == 5


def test_empty_recipe(vocab):
    lm = small_map()
    for r in (Recipe.load(None), Recipe.load([]), Recipe.load("edits: []"), Recipe.load("")):
        out = r(lm, 0, vocab)
        np.testing.assert_array_equal(out.semantic, lm.semantic)
        assert out.meta["edits"] == []
        assert r.to_list() == []


def test_errors(vocab, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("edits:\n  - {op: hflip}\n  - {op: explode}\n")
    with pytest.raises(SisgenInputError) as e:
        Recipe.load(path)
    assert str(path) in str(e.value) and "step 1" in str(e.value) and "explode" in str(e.value)

    path.write_text("edits:\n  - {op: remove_instances, classes: [car], fraction: 1.5}\n")
    with pytest.raises(SisgenInputError, match=r"step 0.*fraction") as e:
        Recipe.load(path)
    assert e.value.path == str(path)

    path.write_text("edits:\n  - {op: swap, a: car, b: persn}\n")
    r = Recipe.load(path)  # names resolve against the vocabulary at run time
    with pytest.raises(SisgenInputError, match=r"step 0 \(swap\).*persn") as e:
        r.validate(vocab)
    assert e.value.path == str(path)
    with pytest.raises(SisgenInputError, match="persn"):
        r(small_map(), 0, vocab)

    with pytest.raises(SisgenInputError, match="no parameter 'colour'"):
        Recipe.load([{"op": "hflip", "colour": 1}])
    with pytest.raises(SisgenInputError, match="needs 'b'"):
        Recipe.load([{"op": "swap", "a": "car"}])
    with pytest.raises(SisgenInputError, match="no 'op'"):
        Recipe.load([{"a": 1}])
    with pytest.raises(SisgenInputError, match="p must be in"):
        Recipe.load([{"op": "hflip", "p": 2}])
    with pytest.raises(SisgenInputError, match="either fraction or count"):
        Recipe.load([{"op": "remove_instances", "fraction": 0.5, "count": 1}])
    with pytest.raises(SisgenInputError, match="count"):
        Recipe.load([{"op": "remove_instances", "count": -1}])
    with pytest.raises(SisgenInputError, match="not found"):
        Recipe.load(tmp_path / "missing.yaml")
    with pytest.raises(SisgenInputError, match="cannot parse"):
        Recipe.load("edits: [ {op: hflip")
    with pytest.raises(SisgenInputError, match="list of steps"):
        Recipe.load("just a string")
    with pytest.raises(SisgenInputError, match="ignore id"):
        Swap("car", "ignore")(small_map(), rng(), vocab)


def test_custom_edit_registration(vocab):
    @register_edit("test_fill_sky")
    class FillSky(Edit):
        def apply(self, labelmap, rng, vocab):
            out = labelmap.copy()
            out.semantic[:] = SKY
            return out, {"note": "all sky"}

    r = Recipe.load([{"op": "test_fill_sky"}])
    out = r(small_map(), 0, vocab)
    assert (out.semantic == SKY).all()
    assert out.meta["edits"][0]["note"] == "all sky"
    with pytest.raises(ValueError):
        register_edit("test_fill_sky")(FillSky)
