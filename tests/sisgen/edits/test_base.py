"""The edit protocol: the op registry, the ``p`` coin, inputs never mutated, custom edits."""

from __future__ import annotations

import numpy as np
import pytest

from sisgen import get_vocabulary
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

SKY = 23


def test_registry():
    assert {"relabel", "swap", "remove_instances", "hflip"} <= set(available_edits())
    assert isinstance(build_edit({"op": "hflip"}), HFlip)


def test_input_not_mutated(vocab, rng, small_map):
    lm = small_map()
    sem, inst, meta = lm.semantic.copy(), lm.instance.copy(), dict(lm.meta)
    for edit in (Relabel({"car": "road"}), Swap("car", "person"), RemoveInstances(["car"]),
                 HFlip()):
        edit(lm, rng(), vocab)
    Recipe.load([{"op": "hflip"}])(lm, 0, vocab)
    np.testing.assert_array_equal(lm.semantic, sem)
    np.testing.assert_array_equal(lm.instance, inst)
    assert lm.meta == meta


@pytest.mark.parametrize("edit", [Relabel({"car": "road"}), Swap("car", "sky"),
                                  RemoveInstances(["car"]), HFlip()])
def test_probability(edit, vocab, rng, small_map):
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


def test_probability_half_fires_sometimes(vocab, rng, small_map):
    fired = [HFlip(p=0.5).run(small_map(), rng(s), vocab)[1]["fired"] for s in range(40)]
    assert 5 < sum(fired) < 35


def test_custom_edit_registration(vocab, small_map):
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


def test_params_follow_the_constructor_signature():
    from sisgen.edits import Dilate, Flip, OneOf, Pad, Paste, Scale, SomeOf

    # required parameters always, the others when not at their default, in signature order
    assert list(Dilate("car").to_dict().items()) == [("op", "dilate"), ("class", "car"),
                                                     ("pixels", 1)]
    assert Dilate(np.int64(26), 2, over_things=True, p=0.5).to_dict() == {
        "op": "dilate", "class": 26, "pixels": 2, "over_things": True, "p": 0.5}
    assert Scale(factor=2).to_dict() == {"op": "scale", "factor": 2.0}
    assert Scale(range=(1, 2)).to_dict() == {"op": "scale", "range": [1.0, 2.0]}
    # some parameters are recorded even at their default, as recipes always recorded them
    assert Flip().to_dict() == {"op": "flip", "direction": "horizontal"}
    assert Pad(size=4).to_dict() == {"op": "pad", "size": [4, 4], "position": "center"}
    assert list(SomeOf([{"op": "hflip"}]).to_dict()) == ["op", "n", "steps"]
    assert list(OneOf([{"op": "hflip"}], weights=[2]).to_dict()) == ["op", "steps", "weights"]
    # paste: horizon goes with perspective; occlusion is always in the resolved record
    assert list(Paste(perspective=True).to_dict()) == ["op", "perspective", "horizon"]
    assert Paste(horizon=0.4).to_dict() == {"op": "paste"}
    assert Paste(horizon=0.5, tries=3).to_dict() == {"op": "paste", "horizon": 0.5, "tries": 3}
    vocab = get_vocabulary("cityscapes")
    assert list(Paste(on="road").resolved_params(vocab).items()) == [("on", [7]),
                                                                    ("occlusion", "front")]


def test_custom_edit_params_from_its_signature():
    @register_edit("test_fill_class")
    class FillClass(Edit):
        class_params = ("class",)

        def __init__(self, class_, rows=1, p=1.0):
            super().__init__(p)
            self.class_, self.rows = class_, rows

        def apply(self, labelmap, rng, vocab):
            out = labelmap.copy()
            out.semantic[: self.rows] = vocab.resolve(self.class_)
            return out, {}

    step = build_edit({"op": "test_fill_class", "class": "sky", "rows": 2})
    assert step.to_dict() == {"op": "test_fill_class", "class": "sky", "rows": 2}
    assert build_edit(step.to_dict()).to_dict() == step.to_dict()
    assert step.resolved_params(get_vocabulary("cityscapes")) == {"class": SKY, "rows": 2}

    class Forgetful(Edit):
        def __init__(self, size, p=1.0):
            super().__init__(p)
            self._size = size

    with pytest.raises(TypeError, match="self.size"):
        Forgetful(3).to_dict()


def test_meta_keys_are_the_labelmap_constants():
    import sisgen.labelmap as labelmap
    from sisgen import edits
    from sisgen.edits import photo

    for key in ("NOISE_MASK_KEY", "SOURCE_PIXEL_KEY", "PHOTO_KEY", "HOLE_KEY"):
        assert getattr(edits, key) == getattr(labelmap, key)
    assert photo.SOURCE_PIXEL_KEY == "source_pixel"
    assert edits.track_source_pixels is photo.track_source_pixels
