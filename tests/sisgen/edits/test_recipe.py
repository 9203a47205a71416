"""Recipes: determinism, data / YAML round trips, records in meta, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sisgen import SisgenInputError
from sisgen.edits import Recipe, Swap

ROAD, SIDEWALK, VEG, SKY, PERSON, CAR = 7, 8, 21, 23, 24, 26


RECIPE_YAML = """
edits:
  - {op: swap, a: car, b: person, p: 0.5}
  - {op: relabel, mapping: {sky: vegetation, 7: sidewalk}}
  - {op: remove_instances, classes: [car, person], fraction: 0.5}
  - {op: hflip, p: 0.5}
"""


def test_recipe_determinism(vocab, many_instances):
    lm = many_instances()
    r = Recipe.from_yaml(RECIPE_YAML)
    assert len(r) == 4
    a, b = r(lm, 7, vocab), r(lm, 7, vocab)
    np.testing.assert_array_equal(a.semantic, b.semantic)
    np.testing.assert_array_equal(a.instance, b.instance)
    assert a.meta["edits"] == b.meta["edits"]
    outs = {r(lm, s, vocab).semantic.tobytes() for s in range(10)}
    assert len(outs) > 1


def test_recipe_round_trip(vocab, tmp_path, many_instances):
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


def test_recipe_meta_edits(vocab, many_instances):
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


def test_empty_recipe(vocab, small_map):
    lm = small_map()
    for r in (Recipe.load(None), Recipe.load([]), Recipe.load("edits: []"), Recipe.load("")):
        out = r(lm, 0, vocab)
        np.testing.assert_array_equal(out.semantic, lm.semantic)
        assert out.meta["edits"] == []
        assert r.to_list() == []


def test_recipe_errors(vocab, tmp_path, rng, small_map):
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


def test_recipe_every_op_round_trip(vocab, bank, tmp_path, street, assert_same):
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


def test_validate_reads_no_file_and_load_banks_does(vocab, bank, tmp_path, monkeypatch):
    import sisgen.edits.paste as paste_module

    path = tmp_path / "b.npz"
    bank.save(path)
    r = Recipe.load([{"op": "hflip"},
                     {"some_of": {"n": 1, "steps": [{"op": "paste", "bank": str(path)}]}}])
    real = paste_module.load_bank_cached
    reads = []
    monkeypatch.setattr(paste_module, "load_bank_cached",
                        lambda p: reads.append(str(p)) or real(p))
    r.validate(vocab)
    assert reads == []
    r.load_banks()
    assert reads == [str(path)]
    bad = Recipe.load([{"op": "paste", "classes": ["carr"], "bank": str(tmp_path / "no.npz")}])
    with pytest.raises(SisgenInputError, match=r"step 0 \(paste\).*carr"):
        bad.validate(vocab)
    with pytest.raises(SisgenInputError, match=r"step 0 \(paste\).*no.npz.*not found"):
        bad.load_banks()


def test_generate_fails_on_a_bad_bank_file_before_it_starts(tmp_path):
    from types import SimpleNamespace

    from sisgen import sources
    from sisgen.generate import generate

    src = sources.open("toycity", split="val", size=(32, 64), length=2)
    no_model = SimpleNamespace(vocabulary=None)  # never reached: the bank fails first
    recipe = [{"op": "hflip"}, {"op": "paste", "bank": str(tmp_path / "nope.npz")}]
    with pytest.raises(SisgenInputError, match=r"step 1 \(paste\).*nope.npz.*not found"):
        generate(no_model, src, tmp_path / "out", recipe=recipe, progress=False)
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_recipe_copies_on_write_and_never_writes_its_input(vocab, street):
    lm = street()
    before = lm.copy()
    steps = Recipe.from_yaml("edits:\n  - {op: hflip, p: 0}\n  - {op: swap, a: car, b: truck}\n")
    out = steps(lm, 0, vocab)
    assert not np.shares_memory(out.semantic, lm.semantic)  # swapped: new classes
    assert np.shares_memory(out.instance, lm.instance)  # car -> truck keeps the instances
    assert [e["fired"] for e in out.meta["edits"]] == [False, True]
    assert "edits" not in lm.meta  # the input's meta is its own
    idle = Recipe.from_yaml("edits:\n  - {op: flip, direction: vertical, p: 0}\n")(lm, 0, vocab)
    assert np.shares_memory(idle.semantic, lm.semantic)  # nothing fired: nothing copied
    grown = Recipe.from_yaml("edits:\n  - {op: dilate, class: truck, pixels: 2}\n")
    grown(out, 0, vocab)  # an edit that writes, writes into a copy
    for a, b in [(lm.semantic, before.semantic), (lm.instance, before.instance)]:
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out.instance, before.instance)
