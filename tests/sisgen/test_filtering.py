"""Quality filtering with tiny TorchScript / ONNX segmenters that read colour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sisgen import LabelMap, get_vocabulary
from sisgen.errors import SisgenInputError
from sisgen.filtering import QualityFilter, score_prediction
from sisgen.segmenter import Segmenter, class_map_from_train_ids

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def colour_net(scale: float = 1.0) -> torch.nn.Module:
    """A 1x1 conv whose logit for class c is colour channel c (red 0, green 1, blue 2)."""
    conv = torch.nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * scale)
        conv.bias.zero_()
    return conv.eval()


class Downsampled(torch.nn.Module):
    """Colour logits at half resolution (the segmenter output is resized back)."""

    def __init__(self):
        super().__init__()
        self.conv = colour_net()

    def forward(self, x):
        return {"out": torch.nn.functional.avg_pool2d(self.conv(x), 2)}


def scene() -> tuple[np.ndarray, np.ndarray]:
    """Label: left half 0, right half 1 (8x8). Image: left red, cols 4-5 green, 6-7 blue."""
    label = np.zeros((8, 8), np.uint8)
    label[:, 4:] = 1
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = RED
    image[:, 4:6] = GREEN
    image[:, 6:] = BLUE
    return image, label


@pytest.fixture(scope="module")
def ts_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "seg.pt"
    torch.jit.script(colour_net()).save(str(path))
    return path


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "seg.onnx"
    torch.onnx.export(colour_net(), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "b", 2: "h", 3: "w"},
                                    "logits": {0: "b", 2: "h", 3: "w"}})
    return path


def expected_prediction() -> np.ndarray:
    pred = np.zeros((8, 8), np.int64)
    pred[:, 4:6] = 1
    pred[:, 6:] = 2
    return pred


@pytest.mark.parametrize("which", ["torchscript", "onnx"])
def test_segmenters_predict_colours(which, ts_path, onnx_path):
    seg = Segmenter(ts_path if which == "torchscript" else onnx_path)
    image, _ = scene()
    pred = seg.predict(np.stack([image, image[:, ::-1]]))
    assert pred.shape == (2, 8, 8) and pred.dtype == np.int64
    np.testing.assert_array_equal(pred[0], expected_prediction())
    np.testing.assert_array_equal(pred[1], expected_prediction()[:, ::-1])
    logits = seg.logits([image])
    assert logits.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(logits[0, 0, 0, 0], 1.0, atol=1e-6)


def test_normalisation_and_class_map(ts_path):
    image, _ = scene()
    # 0..255 input range, mean 128, std 64: the red pixel's red channel is (255-128)/64
    seg = Segmenter(ts_path, input_range=(0, 255), mean=(128, 128, 128), std=(64, 64, 64),
                    class_map={0: 5, 1: 7})
    np.testing.assert_allclose(seg.logits([image])[0, 0, 0, 0], 127 / 64, rtol=1e-5)
    pred = seg.predict([image])[0]
    assert set(np.unique(pred[:, :4])) == {5}
    assert set(np.unique(pred[:, 4:6])) == {7}
    assert set(np.unique(pred[:, 6:])) == {255}  # channel 2 is unmapped
    by_seq = Segmenter(ts_path, class_map=[9, 8, 7]).predict([image])[0]
    np.testing.assert_array_equal(by_seq, np.array([9, 8, 7])[expected_prediction()])


def test_callable_segmenter_with_dict_output_is_resized():
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = GREEN
    image[:, 4:] = BLUE
    pred = Segmenter(Downsampled()).predict([image])[0]
    assert pred.shape == (8, 8)
    assert set(np.unique(pred[:, :3])) == {1} and set(np.unique(pred[:, 5:])) == {2}


def test_scores_drop_and_ignore_modes(onnx_path):
    image, label = scene()
    seg = Segmenter(onnx_path)
    miou, acc, ious = score_prediction(expected_prediction(), label)
    assert ious == {0: 1.0, 1: 0.5}
    assert miou == pytest.approx(0.75) and acc == pytest.approx(0.75)

    strict = QualityFilter(seg, min_miou=0.8)
    lenient = QualityFilter(seg, min_miou=0.7)
    [r] = strict.apply([image], [label])
    assert not r.keep and r.miou == pytest.approx(0.75) and r.pixel_acc == pytest.approx(0.75)
    [r] = lenient.apply([image], [LabelMap(label)])
    assert r.keep and r.ignored_pixels == 0
    np.testing.assert_array_equal(r.labelmap.semantic, label)
    assert not QualityFilter(seg, min_miou=0.7, min_pixel_acc=0.8).apply([image], [label])[0].keep

    perfect = image.copy()
    perfect[:, 4:] = GREEN
    ignore = QualityFilter(seg, min_miou=0.5, mode="ignore_disagreement")
    inst = np.arange(64, dtype=np.int32).reshape(8, 8)
    res = ignore.apply([image, perfect], [LabelMap(label, inst, {"id": "a"}), label])
    assert [r.keep for r in res] == [True, True]
    assert res[1].miou == 1.0 and res[1].ignored_pixels == 0
    out = res[0].labelmap.semantic
    assert res[0].ignored_pixels == 16
    np.testing.assert_array_equal(out[:, 6:], 255)
    np.testing.assert_array_equal(out[:, :6], label[:, :6])
    np.testing.assert_array_equal(label[:, 6:], 1)  # the input map is not modified
    np.testing.assert_array_equal(res[0].labelmap.instance, inst)
    assert res[0].labelmap.id == "a"
    assert res[0].to_dict() == {"keep": True, "miou": 0.75, "pixel_acc": 0.75,
                                "ignored_pixels": 16, "ignored_fraction": 0.25,
                                "class_ignored": {"0": 0.0, "1": 0.5}}
    assert "ignored_fraction" not in strict.apply([image], [label])[0].to_dict()


def test_ignored_label_pixels_are_not_scored(ts_path):
    image, label = scene()
    label = label.copy()
    label[:, 4:] = 255  # only the red half is labelled
    [r] = QualityFilter(Segmenter(ts_path), min_miou=0.9).apply([image], [label])
    assert r.keep and r.miou == 1.0 and r.pixel_acc == 1.0
    [r] = QualityFilter(Segmenter(ts_path)).apply([image], [np.full((8, 8), 255, np.uint8)])
    assert r.keep and math.isnan(r.miou) and r.to_dict()["miou"] is None


def test_errors_and_train_id_class_map(tmp_path):
    with pytest.raises(SisgenInputError, match="no such segmenter"):
        Segmenter(tmp_path / "missing.pt")
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(SisgenInputError, match="ONNX"):
        Segmenter(tmp_path / "bad.onnx")
    with pytest.raises(ValueError, match="mode"):
        QualityFilter(Segmenter(colour_net()), mode="nope")
    with pytest.raises(ValueError, match="size"):
        QualityFilter(Segmenter(colour_net())).apply([np.zeros((4, 4, 3), np.uint8)],
                                                     [np.zeros((8, 8), np.uint8)])
    vocab = get_vocabulary("cityscapes")
    cmap = class_map_from_train_ids(vocab)
    assert len(cmap) == 19 and cmap[0] == vocab.resolve("road")


def test_segmenter_names_stay_importable_from_filtering():
    import sisgen.filtering as filtering
    import sisgen.segmenter as segmenter

    for name in ("Segmenter", "SEGMENTER_FORMAT", "class_map_from_train_ids",
                 "segmenter_metadata", "sidecar_path"):
        assert getattr(filtering, name) is getattr(segmenter, name)
