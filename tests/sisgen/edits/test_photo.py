"""Photo editing with SESAME: only what the edits changed is synthesized, the rest is the photo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sisgen import sources
from sisgen.cli import main
from sisgen.edits import Recipe
from sisgen.edits.photo import attach_photo, track_source_pixels
from sisgen.engines.base import Generator
from sisgen.engines.torch_engine import TorchEngine
from sisgen.labelmap import LabelMap
from sisgen.models import build_model
from sisgen.samples import SamplePath
from sisgen.vocab import get_vocabulary

H, W = 32, 64


def _scene() -> tuple[LabelMap, np.ndarray]:
    sem = np.zeros((H, W), np.uint8)  # class 0 everywhere, a class-8 object with instance 3
    sem[10:20, 30:40] = 8
    inst = np.zeros((H, W), np.int32)
    inst[10:20, 30:40] = 3
    photo = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return LabelMap(sem, inst), photo


def _edit(lm: LabelMap, steps: str) -> LabelMap:
    return Recipe.from_yaml(steps)(lm, seed=0, vocab=get_vocabulary("toycity"))


def test_flip_moves_the_photo_and_opens_no_hole():
    lm, photo = _scene()
    out = attach_photo(_edit(track_source_pixels(lm), "edits: [{op: hflip}]"), lm, photo)
    assert not out.meta["hole"].any()
    np.testing.assert_array_equal(out.meta["photo"], photo[:, ::-1])
    assert "source_pixel" not in out.meta


def test_removed_object_is_the_hole_and_the_rest_keeps_the_photo():
    lm, photo = _scene()
    out = attach_photo(_edit(track_source_pixels(lm), "edits: [{op: remove_instances}]"),
                       lm, photo, grow=2)
    hole = out.meta["hole"]
    assert hole[10:20, 30:40].all()  # the object's pixels
    assert hole[8, 35] and not hole[7, 35]  # grown by two pixels
    assert hole.sum() < 0.2 * H * W
    np.testing.assert_array_equal(out.meta["photo"][~hole], photo[~hole])
    assert (out.meta["photo"][hole] == 0).all()


def test_holes_are_boxes_by_default_as_sesame_is_trained():
    lm, photo = _scene()
    lm.semantic[10:20, 35:40] = 0  # an L-shaped object instead of a square
    lm.instance[10:20, 35:40] = 0
    lm.semantic[15:20, 35:40], lm.instance[15:20, 35:40] = 8, 3
    edited = _edit(track_source_pixels(lm), "edits: [{op: remove_instances}]")
    box = attach_photo(edited, lm, photo, grow=0).meta["hole"]
    region = attach_photo(edited, lm, photo, grow=0, shape="region").meta["hole"]
    assert box[10:20, 30:40].all() and box.sum() == 100
    assert region.sum() == 75 and not region[10:15, 35:40].any()
    with pytest.raises(ValueError, match="box"):
        attach_photo(edited, lm, photo, shape="ellipse")


def test_padding_creates_pixels_to_synthesize():
    lm, photo = _scene()
    edited = _edit(track_source_pixels(lm), "edits: [{op: pad, size: [32, 80]}]")
    out = attach_photo(edited, lm, photo, grow=0)
    assert out.shape == (32, 80)
    assert out.meta["hole"][:, :8].all() and out.meta["hole"][:, -8:].all()
    assert not out.meta["hole"][:, 8:-8].any()
    np.testing.assert_array_equal(out.meta["photo"][:, 8:-8], photo)


@pytest.fixture(scope="module")
def sesame():
    torch.manual_seed(0)
    return build_model("sesame", dataset="toycity", ngf=4, spade_hidden=8, height=H,
                       width=W).eval()


def test_sesame_keeps_the_photo_outside_the_hole(sesame):
    src = sources.open("toycity", split="val", size=(H, W), length=4)
    gen = Generator.from_model(TorchEngine(sesame, "cpu"), sesame)
    assert gen.takes_photo
    path = SamplePath(src, Recipe.from_yaml("edits: [{op: remove_instances}]"), (H, W),
                      with_photo=True)
    prepared = path.prepare([0], build_inputs=False)
    assert not prepared.errors
    lm = prepared.samples[0].labelmap
    inputs = gen.prepare([lm], [0])
    assert len(inputs) == 7 and inputs[5].shape == (1, 3, H, W) and inputs[6].shape == (1, 1, H, W)
    image = gen.generate([lm], [0])[0]
    hole = lm.meta["hole"]
    assert hole.any() and not hole.all()
    np.testing.assert_array_equal(image[~hole], src.photo(0)[~hole])
    assert not np.array_equal(image[hole], src.photo(0)[hole])
    # a map without a photo is synthesized whole
    plain = gen.prepare([src.load(0)], [0])
    assert torch.equal(plain[6], torch.ones(1, 1, H, W))


def test_generate_cli_edits_photos_with_sesame(sesame, tmp_path):
    sesame.save(tmp_path / "m")
    rc = main(["generate", "--model", str(tmp_path / "m"), "--source", "toycity", "--split",
               "val", "--out", str(tmp_path / "out"), "--limit", "2", "--writers", "folder",
               "--recipe", "edits: [{op: remove_instances}]"])
    assert rc == 0
    manifest = [json.loads(x) for x in (tmp_path / "out" / "manifest.jsonl").read_text()
                .splitlines()]
    assert sum(r.get("status") == "ok" for r in manifest) == 2, manifest
