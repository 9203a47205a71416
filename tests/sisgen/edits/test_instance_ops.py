"""Single-instance edits: delete, move, scale, flip, relabel; paste_item."""

from __future__ import annotations

import numpy as np
import pytest

from sisgen import LabelMap, SisgenInputError
from sisgen.edits import (
    NOISE_MASK_KEY,
    SOURCE_PIXEL_KEY,
    DeleteInstance,
    FlipInstance,
    MoveInstance,
    PasteItem,
    Recipe,
    RelabelInstance,
    RemoveInstances,
    ResampleNoise,
    ScaleInstance,
    build_edit,
    track_source_pixels,
)

# cityscapes ids
ROAD, SIDEWALK, SKY, PERSON, CAR, TRUCK = 7, 8, 23, 24, 26, 27


def _expected_street(car_rows: slice, car_cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """The ``street`` fixture's layout with the car at other rows / columns."""
    sem = np.full((16, 20), ROAD, np.uint8)
    sem[:6] = SKY
    sem[6:8] = SIDEWALK
    inst = np.zeros(sem.shape, np.int32)
    sem[car_rows, car_cols] = CAR
    inst[car_rows, car_cols] = 26000
    return sem, inst


def test_delete_instance_fills_like_remove_instances(vocab, rng, many_instances, assert_same):
    lm = many_instances()
    out, record = DeleteInstance(26003).run(lm, rng(), vocab)
    assert record["pixels"] == 9 and record["params"] == {"instance": 26003, "p": 1.0}
    assert not (out.instance == 26003).any()
    assert (out.instance[lm.instance != 26003] == lm.instance[lm.instance != 26003]).all()
    # the same fill as remove_instances, which here has one candidate to choose
    only = lm.copy()
    only.semantic[(lm.semantic == CAR) & (lm.instance != 26003)] = ROAD
    only.instance[(lm.semantic == CAR) & (lm.instance != 26003)] = 0
    assert_same(DeleteInstance(26003)(only, rng(), vocab),
                RemoveInstances(classes=["car"])(only, rng(), vocab))


def test_move_instance(vocab, rng, street):
    out, record = MoveInstance(26000, by=[2, 3]).run(street(), rng(), vocab)
    sem, inst = _expected_street(slice(11, 14), slice(5, 9))
    np.testing.assert_array_equal(out.semantic, sem)
    np.testing.assert_array_equal(out.instance, inst)
    assert record["pixels"] == 12 and record["placed"] == 12 and record["box"] == [9, 2, 12, 6]
    clipped = MoveInstance(26000, by=[0, -4])(street(), rng(), vocab)  # half leaves the map
    assert (clipped.instance == 26000).sum() == 6
    gone, record = MoveInstance(26000, by=[100, 0]).run(street(), rng(), vocab)
    assert not (gone.instance == 26000).any() and record["placed"] == 0


def test_scale_instance_about_its_foot(vocab, rng, street):
    out = ScaleInstance(26000, 2.0)(street(), rng(), vocab)
    # 3x4 -> 6x8; the foot (row 11, column 2 + 4 // 2 = 4) stays: rows 6..11, columns 0..7
    sem, inst = _expected_street(slice(6, 12), slice(0, 8))
    np.testing.assert_array_equal(out.semantic, sem)
    np.testing.assert_array_equal(out.instance, inst)
    small = ScaleInstance(26000, 0.5)(street(), rng(), vocab)
    sem, inst = _expected_street(slice(10, 12), slice(3, 5))
    np.testing.assert_array_equal(small.instance, inst)


def test_flip_instance_inside_its_box(vocab, rng, street):
    lm = street()
    lm.semantic[9, 2:4] = PERSON  # an asymmetric instance: the top-left two pixels differ
    flipped = FlipInstance(26000)(lm, rng(), vocab)
    assert list(flipped.semantic[9, 2:6]) == [CAR, CAR, PERSON, PERSON]
    assert (flipped.instance[9:12, 2:6] == 26000).all()
    vertical = FlipInstance(26000, "vertical")(lm, rng(), vocab)
    assert list(vertical.semantic[11, 2:6]) == [PERSON, PERSON, CAR, CAR]
    assert list(vertical.semantic[9, 2:6]) == [CAR] * 4


def test_relabel_instance(vocab, rng, small_map):
    lm = small_map()
    truck = RelabelInstance(26000, "truck")(lm, rng(), vocab)
    assert (truck.semantic[lm.instance == 26000] == TRUCK).all()
    assert (truck.instance == lm.instance).all()
    road = RelabelInstance(24000, ROAD)(lm, rng(), vocab)
    assert (road.semantic[lm.instance == 24000] == ROAD).all()
    assert not (road.instance == 24000).any()


def test_moves_carry_noise_marks_and_source_pixels(vocab, rng, street):
    lm = ResampleNoise(instance=26000)(track_source_pixels(street()), rng(), vocab)
    out = MoveInstance(26000, by=[2, 3])(lm, rng(), vocab)
    np.testing.assert_array_equal(out.meta[NOISE_MASK_KEY], out.instance == 26000)
    before = lm.meta[SOURCE_PIXEL_KEY][9:12, 2:6]
    np.testing.assert_array_equal(out.meta[SOURCE_PIXEL_KEY][11:14, 5:9], before)
    # pixels the car left keep pointing at themselves (their class changed: a photo hole)
    assert out.meta[SOURCE_PIXEL_KEY][9, 2] == 9 * 20 + 2


def test_absent_instance_changes_nothing(vocab, rng, street, assert_same):
    lm = street()
    for edit in (DeleteInstance(5), MoveInstance(5, [1, 1]), ScaleInstance(5, 2),
                 FlipInstance(5), RelabelInstance(5, "car")):
        out, record = edit.run(lm, rng(), vocab)
        assert_same(out, lm)
        assert record["pixels"] == 0
    bare = LabelMap(lm.semantic, None, {"id": "bare"})
    assert MoveInstance(26000, [1, 1]).run(bare, rng(), vocab)[1]["pixels"] == 0


def test_paste_item(vocab, rng, street, bank):
    item = PasteItem(1, at=[14, 10])  # a 3x3 car
    out, record = item.run(street(), rng(), vocab, context={"bank": bank})
    assert (out.semantic[12:15, 9:12] == CAR).all() and (out.instance[12:15, 9:12] == 26001).all()
    assert record["pixels"] == 9 and record["instance"] == 26001 and record["class"] == CAR
    assert record["params"] == {"item": 1, "at": [14, 10], "occlusion": "front", "p": 1.0}
    big = PasteItem(2, at=[15, 19], scale=2.0).run(street(), rng(), vocab, {"bank": bank})[0]
    assert (big.instance == 26001).sum() == 4 * 5  # 4x8, columns 15..22 cut at the edge
    behind = PasteItem(1, at=[11, 4], occlusion="behind")
    out = behind.run(street(), rng(), vocab, {"bank": bank})[0]
    assert (out.instance[9:12, 2:6] == 26000).all()  # the old car stays in front
    assert Recipe([item]).needs_bank()
    with pytest.raises(SisgenInputError, match="not in the bank"):
        PasteItem(6, at=[0, 0]).run(street(), rng(), vocab, context={"bank": bank})
    with pytest.raises(SisgenInputError, match="outside"):
        PasteItem(0, at=[16, 0]).run(street(), rng(), vocab, context={"bank": bank})
    with pytest.raises(SisgenInputError, match="instance bank"):
        PasteItem(0, at=[0, 0]).run(street(), rng(), vocab)


@pytest.mark.parametrize("step, word", [
    ({"op": "delete_instance", "instance": 0}, "positive instance id"),
    ({"op": "delete_instance", "instance": "26000"}, "positive instance id"),
    ({"op": "move_instance", "instance": 1, "by": [1]}, "dy, dx"),
    ({"op": "move_instance", "instance": 1, "by": [1.5, 0]}, "dy, dx"),
    ({"op": "scale_instance", "instance": 1, "factor": 0}, "0.05 to 20"),
    ({"op": "flip_instance", "instance": 1, "direction": "diagonal"}, "horizontal"),
    ({"op": "relabel_instance", "instance": 1, "class": None}, "class"),
    ({"op": "paste_item", "item": -1, "at": [0, 0]}, "non-negative"),
    ({"op": "paste_item", "item": 0, "at": [0, 0], "occlusion": "under"}, "front"),
])
def test_bad_parameters(step, word):
    with pytest.raises(SisgenInputError, match=word):
        build_edit(step)


YAML = """
edits:
  - {op: paste_item, item: 2, at: [13, 12], scale: 1.5}
  - {op: delete_instance, instance: 26000}
  - {op: move_instance, instance: 26001, by: [1, -2]}
  - {op: scale_instance, instance: 26001, factor: 0.75}
  - {op: flip_instance, instance: 26001, direction: vertical}
  - {op: relabel_instance, instance: 26001, class: truck}
"""


def test_yaml_round_trip_and_seeds(vocab, street, bank, assert_same):
    recipe = Recipe.load(YAML)
    assert Recipe.load(recipe.to_yaml()).to_list() == recipe.to_list()
    assert recipe.to_list()[0] == {"op": "paste_item", "item": 2, "at": [13, 12], "scale": 1.5}
    outs = [recipe(street(), seed=s, vocab=vocab, context={"bank": bank}) for s in (0, 7, 99)]
    for other in outs[1:]:
        assert_same(outs[0], other)
    out = outs[0]
    assert not (out.semantic == CAR).any() and (out.semantic == TRUCK).any()
    assert set(np.unique(out.instance)) == {0, 26001}
    assert [r["op"] for r in out.meta["edits"]] == [s["op"] for s in recipe.to_list()]
    assert out.meta["edits"][0]["instance"] == 26001
    assert all(r["pixels"] > 0 for r in out.meta["edits"])
