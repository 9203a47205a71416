"""Painting edits: stroke, fill (polygon / box), flood_fill, canvas."""

from __future__ import annotations

import numpy as np
import pytest

from sisgen import LabelMap, SisgenInputError
from sisgen.edits import (
    NOISE_MASK_KEY,
    SOURCE_PIXEL_KEY,
    Canvas,
    Fill,
    FloodFill,
    Recipe,
    ResampleNoise,
    Stroke,
    build_edit,
    track_source_pixels,
)
from sisgen.edits.paint import stroke_mask

# cityscapes ids
ROAD, SIDEWALK, BUILDING, VEG, SKY, PERSON, CAR = 7, 8, 11, 21, 23, 24, 26


def _road(h: int = 6, w: int = 8) -> LabelMap:
    return LabelMap(np.full((h, w), ROAD, np.uint8), np.zeros((h, w), np.int32), {"id": "r"})


def test_stroke_exact_pixels(vocab, rng):
    out = Stroke("vegetation", [[2, 1], [2, 5]], radius=0.5)(_road(), rng(), vocab)
    expected = np.full((6, 8), ROAD, np.uint8)
    expected[2, 1:6] = VEG
    np.testing.assert_array_equal(out.semantic, expected)
    assert out.semantic.dtype == np.uint8
    # radius 1: the rows above and below, plus one pixel past each end on the line
    out = Stroke(VEG, [[2, 1], [2, 5]], radius=1)(_road(), rng(), vocab)
    expected[1:4, 1:6] = VEG
    expected[2, 0] = expected[2, 6] = VEG
    np.testing.assert_array_equal(out.semantic, expected)


def test_stroke_single_point_is_a_disc_and_diagonals_have_no_gaps():
    disc = stroke_mask((5, 5), [[2, 2]], 1.0)
    np.testing.assert_array_equal(disc, np.array([[0, 0, 0, 0, 0], [0, 0, 1, 0, 0],
                                                  [0, 1, 1, 1, 0], [0, 0, 1, 0, 0],
                                                  [0, 0, 0, 0, 0]], bool))
    line = stroke_mask((20, 40), [[1, 1], [18, 37]], 0.5)
    cols = np.flatnonzero(line.any(axis=0))
    np.testing.assert_array_equal(cols, np.arange(1, 38))  # every column in between
    assert line[1, 1] and line[18, 37]


def test_stroke_instances(vocab, rng, street, small_map):
    lm = street()  # cityscapes-style ids: a car 26000
    car = Stroke("car", [[14, 10], [14, 14]], radius=0.5)
    out, record = car.run(lm, rng(), vocab)
    assert (out.instance[14, 10:15] == 26001).all()
    assert record["instance"] == 26001 and record["pixels"] == 5
    person = Stroke("person", [[14, 10]], radius=0.5)(lm, rng(), vocab)
    assert person.instance[14, 10] == 24000
    joined = Stroke("car", [[13, 6]], radius=0.5, instance=26000)(lm, rng(), vocab)
    assert joined.instance[13, 6] == 26000
    # stuff and ignore clear the instance under them
    road = Stroke("road", [[10, 2], [10, 5]], radius=0.5)(lm, rng(), vocab)
    assert (road.semantic[10, 2:6] == ROAD).all() and (road.instance[10, 2:6] == 0).all()
    erased = Stroke("ignore", [[10, 3]], radius=0.5)(lm, rng(), vocab)
    assert erased.semantic[10, 3] == 255 and erased.instance[10, 3] == 0
    # a map with other ids: max + 1
    plain = small_map()
    plain.instance[plain.instance == 26000] = 3
    plain.instance[plain.instance == 24000] = 5
    assert Stroke("car", [[3, 0]], radius=0.5)(plain, rng(), vocab).instance[3, 0] == 6
    # no instance map: semantic only
    bare = LabelMap(lm.semantic.copy(), None, {"id": "bare"})
    assert Stroke("car", [[14, 10]], radius=0.5)(bare, rng(), vocab).instance is None


def test_fill_polygon_and_box(vocab, rng):
    square = Fill("building", polygon=[[1, 1], [1, 4], [3, 4], [3, 1]])(_road(), rng(), vocab)
    expected = np.full((6, 8), ROAD, np.uint8)
    expected[1:4, 1:5] = BUILDING  # boundary included
    np.testing.assert_array_equal(square.semantic, expected)
    box = Fill("building", box=[1, 1, 3, 4])(_road(), rng(), vocab)
    expected = np.full((6, 8), ROAD, np.uint8)
    expected[1:3, 1:4] = BUILDING  # end exclusive
    np.testing.assert_array_equal(box.semantic, expected)
    tri = Fill("sky", polygon=[[0, 0], [0, 6], [5, 0]])(_road(), rng(), vocab)
    assert tri.semantic[0, 0] == SKY and tri.semantic[5, 7] == ROAD
    assert tri.semantic[0, 6] == SKY and tri.semantic[5, 0] == SKY


def test_flood_fill_region(vocab, rng, small_map):
    lm = small_map()
    out = FloodFill("vegetation", [0, 0])(lm, rng(), vocab)
    expected = lm.semantic.copy()
    expected[lm.semantic == SKY] = VEG  # every sky pixel touches row 0
    np.testing.assert_array_equal(out.semantic, expected)
    car = FloodFill("person", [1, 1], instance=26000)(lm, rng(), vocab)
    assert (car.semantic[lm.instance == 26000] == PERSON).all()
    assert (car.instance[lm.instance == 26000] == 26000).all()
    diag = LabelMap(np.array([[SKY, ROAD], [ROAD, SKY]], np.uint8), None, {"id": "d"})
    four = FloodFill("building", [0, 0])(diag, rng(), vocab)
    eight = FloodFill("building", [0, 0], connectivity=8)(diag, rng(), vocab)
    assert four.semantic[1, 1] == SKY and eight.semantic[1, 1] == BUILDING


def test_canvas(vocab, rng, street):
    lm = ResampleNoise(class_="car")(track_source_pixels(street()), rng(), vocab)
    out = Canvas("road", size=[4, 10])(lm, rng(), vocab)
    assert out.shape == (4, 10) and (out.semantic == ROAD).all()
    assert out.instance is not None and not out.instance.any()
    assert NOISE_MASK_KEY not in out.meta and out.id == "street"
    assert (out.meta[SOURCE_PIXEL_KEY] == -1).all()
    same = Canvas("sky")(LabelMap(np.zeros((3, 3), np.uint8)), rng(), vocab)
    assert same.shape == (3, 3) and same.instance.shape == (3, 3)


@pytest.mark.parametrize("step, word", [
    ({"op": "stroke", "class": "car", "points": [[6, 0]]}, "outside"),
    ({"op": "stroke", "class": "car", "points": [[0, 8]]}, "outside"),
    ({"op": "fill", "class": "car", "polygon": [[0, 0], [0, 9], [3, 3]]}, "outside"),
    ({"op": "fill", "class": "car", "box": [0, 0, 7, 2]}, "outside"),
    ({"op": "flood_fill", "class": "car", "at": [6, 6]}, "outside"),
    ({"op": "stroke", "class": "unicorn", "points": [[0, 0]]}, "unicorn"),
    ({"op": "canvas", "class": "ignore"}, "ignore id"),
])
def test_bad_places_and_classes_fail_when_run(vocab, rng, step, word):
    edit = build_edit(step)
    with pytest.raises(SisgenInputError, match=word):
        edit(_road(), rng(), vocab)


@pytest.mark.parametrize("step, word", [
    ({"op": "stroke", "class": "car", "points": []}, "points"),
    ({"op": "stroke", "class": "car", "points": [[0, -1]]}, "non-negative"),
    ({"op": "stroke", "class": "car", "points": [[0.5, 1]]}, "integers"),
    ({"op": "stroke", "class": "car", "points": "0,1"}, "points"),
    ({"op": "stroke", "class": "car", "points": [[0, 1]], "radius": 0.2}, "radius"),
    ({"op": "stroke", "class": "car", "points": [[0, 0]] * 10_001}, "10000"),
    ({"op": "stroke", "class": "car", "points": [[0, 0]], "instance": 0}, "instance"),
    ({"op": "fill", "class": "car"}, "polygon or box"),
    ({"op": "fill", "class": "car", "polygon": [[0, 0], [1, 1]]}, "3 to"),
    ({"op": "fill", "class": "car", "box": [2, 0, 1, 3]}, "y0 < y1"),
    ({"op": "flood_fill", "class": "car", "at": [0, 0], "connectivity": 6}, "4 or 8"),
    ({"op": "canvas", "class": [1, 2]}, "class"),
])
def test_bad_parameters_fail_when_built(step, word):
    with pytest.raises(SisgenInputError, match=word):
        build_edit(step)


YAML = """
edits:
  - {op: canvas, class: road, size: [12, 16]}
  - {op: stroke, class: vegetation, points: [[1, 1], [1, 14]], radius: 1.5}
  - {op: fill, class: building, polygon: [[3, 0], [3, 6], [8, 3]]}
  - {op: fill, class: car, box: [9, 8, 12, 14]}
  - {op: flood_fill, class: sky, at: [0, 15], connectivity: 8}
  - {op: stroke, class: ignore, points: [[11, 0]], instance: 5}
"""


def test_yaml_round_trip_records_and_seeds(vocab, assert_same):
    recipe = Recipe.load(YAML)
    again = Recipe.from_list(recipe.to_list())
    assert again.to_list() == recipe.to_list()
    assert Recipe.load(recipe.to_yaml()).to_list() == recipe.to_list()
    assert recipe.to_list()[1] == {"op": "stroke", "class": "vegetation",
                                   "points": [[1, 1], [1, 14]], "radius": 1.5}
    lm = LabelMap(np.full((5, 5), SKY, np.uint8), None, {"id": "x"})
    outs = [r(lm, seed=s, vocab=vocab) for r in (recipe, again) for s in (0, 1, 123)]
    for other in outs[1:]:
        assert_same(outs[0], other)  # painted recipes draw nothing: any seed, same map
    out = outs[0]
    assert out.shape == (12, 16)
    assert out.semantic[9, 8] == CAR and out.instance[9, 8] == 1
    records = out.meta["edits"]
    assert [r["op"] for r in records] == [s["op"] for s in recipe.to_list()]
    assert records[1]["params"]["class"] == VEG and records[1]["fired"]
    assert records[3] == {"op": "fill", "params": {"class": CAR, "box": [9, 8, 12, 14],
                                                     "p": 1.0},
                          "fired": True, "pixels": 18, "instance": 1}
    assert records[5]["params"]["class"] == 255 and records[5]["instance"] == 0
