"""Composite edits: one_of, some_of, their shorthand forms and nested errors."""

from __future__ import annotations

import numpy as np
import pytest

from sisgen import SisgenInputError
from sisgen.edits import OneOf, Recipe, SomeOf, build_edit


def test_one_of_weights(vocab, rng, grid, assert_same):
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


def test_some_of_and_child_p(vocab, rng, grid):
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
