"""Curation: segmenter metadata and pixel losses, the loss filter, reference statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sisgen import LabelMap, get_vocabulary, sources
from sisgen.curation import ReferenceStats, compute_reference_stats
from sisgen.errors import SisgenInputError
from sisgen.filtering import QualityFilter
from sisgen.segmenter import Segmenter
from sisgen.vocab import ClassInfo, Vocabulary

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
RGB = Vocabulary("rgb", [ClassInfo(0, "red", RED), ClassInfo(1, "green", GREEN),
                         ClassInfo(2, "blue", BLUE)])


def colour_net(scale: float = 1.0, out: int = 3) -> torch.nn.Module:
    """1x1 conv: logit c = scale x colour channel c (channels past 3 get logit 0)."""
    conv = torch.nn.Conv2d(3, out, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:3, :, 0, 0] = torch.eye(3) * scale
        conv.bias.zero_()
    return conv.eval()


def sidecar(path, **over) -> dict:
    meta = {"format": "sisgen-segmenter", "version": 1, "vocabulary": RGB.to_dict(),
            "class_ids": [0, 1, 2], "input_range": [0, 1], "mean": [0, 0, 0],
            "std": [1, 1, 1], "size": [8, 8]}
    meta.update(over)
    path.with_name(path.name + ".json").write_text(json.dumps(meta))
    return meta


@pytest.fixture()
def seg_file(tmp_path):
    path = tmp_path / "seg.pt"
    torch.jit.script(colour_net(2.0)).save(str(path))
    return path


def test_sidecar_supplies_classes_and_normalisation(seg_file):
    sidecar(seg_file, class_ids=[2, 0, 1], mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    seg = Segmenter(seg_file)
    assert seg.vocabulary.names == ["red", "green", "blue"] and seg.input_size == (8, 8)
    image = np.zeros((1, 8, 8, 3), np.uint8)
    image[0, :, :4] = RED
    image[0, :, 4:] = GREEN
    # channel 0 (red) is class 2, channel 1 (green) class 0
    np.testing.assert_array_equal(seg.predict(image)[0, 0], [2] * 4 + [0] * 4)
    np.testing.assert_allclose(seg.logits(image)[0, 0, 0, 0], 2.0 * (1 - 0.5) / 0.5, rtol=1e-5)
    explicit = Segmenter(seg_file, class_map=[0, 1, 2], mean=(0, 0, 0), std=(1, 1, 1))
    np.testing.assert_array_equal(explicit.predict(image)[0, 0], [0] * 4 + [1] * 4)
    np.testing.assert_allclose(explicit.logits(image)[0, 0, 0, 0], 2.0, rtol=1e-5)
    seg.check_vocabulary(RGB, "the rgb data")
    with pytest.raises(SisgenInputError, match=r"seg\.pt.*do not match the toycity"):
        seg.check_vocabulary(get_vocabulary("toycity"), "the toycity source")


def test_bad_sidecars_name_the_sidecar(seg_file):
    sidecar(seg_file, format="other")
    with pytest.raises(SisgenInputError, match=r"seg\.pt\.json.*format"):
        Segmenter(seg_file)
    sidecar(seg_file, class_ids=[0, 1, 7])
    with pytest.raises(SisgenInputError, match=r"seg\.pt\.json.*not in the metadata"):
        Segmenter(seg_file)
    sidecar(seg_file, mean=[0, 0])
    with pytest.raises(SisgenInputError, match=r"seg\.pt\.json.*mean needs 3"):
        Segmenter(seg_file)
    sidecar(seg_file, class_ids=[0, 1])  # the net has 3 channels
    with pytest.raises(SisgenInputError, match=r"3 channels.*2 class ids"):
        Segmenter(seg_file).predict(np.zeros((1, 8, 8, 3), np.uint8))


def test_segmenter_inputs_given_then_sidecar_then_imagenet(seg_file):
    from sisgen.segmenter import IMAGENET_MEAN, IMAGENET_STD, segmenter_inputs

    assert segmenter_inputs(seg_file) == {"mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                                          "input_range": (0.0, 1.0)}
    assert segmenter_inputs(seg_file, mean=[0.5, 0.5, 0.5])["mean"] == (0.5, 0.5, 0.5)
    sidecar(seg_file)
    assert segmenter_inputs(seg_file) == {"mean": None, "std": None, "input_range": None}
    given = segmenter_inputs(seg_file, std=(2, 2, 2), input_range=(-1, 1))
    assert given == {"mean": None, "std": (2, 2, 2), "input_range": (-1, 1)}
    sidecar(seg_file, version=2)
    with pytest.raises(SisgenInputError, match=r"seg\.pt\.json.*version"):
        segmenter_inputs(seg_file)


def test_vocabulary_check_without_metadata():
    Segmenter(colour_net(), class_map=[0, 1, 2]).check_vocabulary(RGB)
    with pytest.raises(SisgenInputError, match="ids \\[9\\]"):
        Segmenter(colour_net(), class_map={0: 0, 1: 9}).check_vocabulary(RGB, "the rgb data")


def test_input_size_resizes_and_returns_full_size_logits():
    seg = Segmenter(colour_net(), input_size=(4, 4))
    image = np.zeros((1, 8, 8, 3), np.uint8)
    image[0, :, :4] = GREEN
    image[0, :, 4:] = BLUE
    pred = seg.predict(image)[0]
    assert pred.shape == (8, 8)
    assert set(np.unique(pred[:, :3])) == {1} and set(np.unique(pred[:, 5:])) == {2}


def test_pixel_loss_is_the_labels_cross_entropy():
    seg = Segmenter(colour_net(3.0), class_map=[0, 1, 1])  # channels 1 and 2 are class 1
    image = np.zeros((1, 2, 3, 3), np.uint8)
    image[0, :, 0] = RED
    image[0, :, 1] = GREEN
    image[0, :, 2] = BLUE
    labels = np.array([[[0, 1, 1], [255, 0, 2]]])
    loss, pred = seg.loss_and_prediction(image, labels)
    assert loss.dtype == np.float32 and loss.shape == (1, 2, 3)
    e3 = math.exp(3.0)
    lo = 3.0 + math.log(1 + 2 / e3) - 3.0  # -log softmax of the winning channel
    np.testing.assert_allclose(loss[0, 0, 0], lo, rtol=1e-5)           # red labelled red
    # green labelled 1: p(1) = p(ch1) + p(ch2) = (e3 + 1) / (e3 + 2)
    np.testing.assert_allclose(loss[0, 0, 1], -math.log((e3 + 1) / (e3 + 2)), rtol=1e-5)
    assert math.isnan(loss[0, 1, 0])                 # ignore label
    np.testing.assert_allclose(loss[0, 1, 1], -math.log(1 / (e3 + 2)), rtol=1e-5)
    assert math.isnan(loss[0, 1, 2])                 # class 2: no channel predicts it
    np.testing.assert_array_equal(pred[0, 0], [0, 1, 1])
    np.testing.assert_array_equal(seg.pixel_loss(image, labels), loss)


def test_loss_filter_ignores_pixels_above_factor_times_class_mean():
    seg = Segmenter(colour_net(2.0), vocabulary=RGB)
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = RED
    image[:, 4:] = GREEN
    label = np.zeros((8, 8), np.uint8)
    label[:, 4:6] = 1          # green pixels labelled green: low loss
    label[:, 6:] = 2           # green pixels labelled blue: high loss
    label[0, 0] = 255
    loss = seg.pixel_loss([image], [label])[0]
    low, high = float(loss[0, 4]), float(loss[0, 7])
    assert high > 1.25 * low
    reference = {0: low, 1: low, 2: low}     # every class costs `low` on real images
    qf = QualityFilter(seg, mode="loss", reference=reference, min_miou=0.0)
    [r] = qf.apply([image], [LabelMap(label, meta={"id": "x"})])
    assert r.keep and r.ignored_pixels == 16
    out = r.labelmap.semantic
    np.testing.assert_array_equal(out[:, 6:], 255)
    np.testing.assert_array_equal(out[:, :6], label[:, :6])
    assert r.ignored_fraction == pytest.approx(16 / 63)
    assert r.class_ignored == {"red": 0.0, "green": 0.0, "blue": 1.0}
    d = r.to_dict()
    assert d["ignored_fraction"] == pytest.approx(16 / 63, abs=1e-5)
    assert d["class_ignored"]["blue"] == 1.0
    # a class without a reference value is never ignored; max_ignored drops the image
    [r] = QualityFilter(seg, mode="loss", reference={0: low, 1: low}, min_miou=0.0
                        ).apply([image], [label])
    assert r.ignored_pixels == 0
    [r] = QualityFilter(seg, mode="loss", reference=reference, min_miou=0.0, max_ignored=0.2
                        ).apply([image], [label])
    assert not r.keep and r.reason == "max_ignored" and r.to_dict()["reason"] == "max_ignored"
    with pytest.raises(ValueError, match="reference"):
        QualityFilter(seg, mode="loss")
    with pytest.raises(ValueError, match="max_ignored"):
        QualityFilter(seg, max_ignored=0.5)


def toycity_segmenter(seed: int = 0) -> Segmenter:
    torch.manual_seed(seed)
    return Segmenter(torch.nn.Conv2d(3, 10, 1).eval(), vocabulary="toycity", batch_size=2)


@pytest.fixture(scope="module")
def city():
    return sources.open("toycity", split="val", size=(32, 64), length=5)


def test_reference_stats_accumulate_and_round_trip(city, tmp_path):
    seg = toycity_segmenter()
    stats = compute_reference_stats(seg, city, limit=4, batch_size=3)
    labels = np.stack([city.load(i).semantic for i in range(4)])
    photos = np.stack([city.photo(i) for i in range(4)])
    loss = seg.pixel_loss(photos, labels)
    for c in np.unique(labels):
        at = labels == c
        assert stats.pixels[c] == at.sum()
        assert stats.class_loss[int(c)] == pytest.approx(float(loss[at].mean()), rel=1e-4)
    assert stats.images == 4 and stats.source["maps"] == 4 and stats.source["kind"] == "toycity"
    path = tmp_path / "stats.json"
    stats.save(path)
    back = ReferenceStats.load(path, vocabulary=city.vocabulary)
    for c, v in stats.class_loss.items():
        assert (back.class_loss[c] is None) == (v is None)
        if v is not None:
            assert back.class_loss[c] == pytest.approx(v, rel=1e-9)
    np.testing.assert_array_equal(back.pixels, stats.pixels)
    assert back.mean_loss == pytest.approx(stats.mean_loss)
    with pytest.raises(SisgenInputError, match=r"stats\.json.*vocabulary 'toycity'.*cityscapes"):
        ReferenceStats.load(path, vocabulary=get_vocabulary("cityscapes"))
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(SisgenInputError, match=r"bad\.json.*not a reference statistics"):
        ReferenceStats.load(tmp_path / "bad.json")
    # the loss filter takes the statistics, and checks their vocabulary
    qf = QualityFilter(seg, mode="loss", reference=back)
    with pytest.raises(SisgenInputError, match=r"stats\.json"):
        qf.reference.check_vocabulary(get_vocabulary("cityscapes"), "the run")


def test_reference_stats_need_photos_and_matching_classes(tmp_path, city):
    from sisgen.io import write_image

    folder = tmp_path / "maps"
    folder.mkdir()
    write_image(folder / "a.png", np.zeros((8, 8), np.uint8))
    src = sources.open("folder", folder, vocabulary="toycity")
    with pytest.raises(SisgenInputError, match=r"a\.png.*no photo"):
        compute_reference_stats(toycity_segmenter(), src)
    with pytest.raises(SisgenInputError, match="do not match"):
        compute_reference_stats(Segmenter(colour_net(), vocabulary=RGB), city)


def test_segmenter_command_is_dispatched_lazily(capsys):
    pytest.importorskip("sisgen.training.segmenter.cli")
    from sisgen.cli import main

    with pytest.raises(SystemExit) as e:
        main(["segmenter", "--help"])
    assert e.value.code == 0 and "train" in capsys.readouterr().out
