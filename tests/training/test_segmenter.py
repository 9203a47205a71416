"""The compact segmenter: network, stream sampling, loss, training and evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from sisgen import get_vocabulary, sources
from sisgen.errors import SisgenInputError
from sisgen.segmenter import Segmenter
from sisgen.training.segmenter import (
    SegNet,
    SourcePairs,
    StreamSampler,
    evaluate_segmenter,
    pixel_loss,
    train_segmenter,
)
from sisgen.training.segmenter.trainer import augment, class_weights

H, W = 32, 64


pytestmark = pytest.mark.usefixtures("one_thread")


def toycity_pairs(length=8, split="train"):
    return SourcePairs(sources.open("toycity", split=split, size=(H, W), length=length, seed=0))


class Pairs(Dataset):
    """Items from arrays: images [N,3,H,W] in 0..1, labels [N,H,W]."""

    def __init__(self, images, labels, vocabulary=None):
        self.images, self.labels = images, labels
        if vocabulary is not None:
            self.vocabulary = vocabulary

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i], "name": f"p{i}"}


def encoded_pairs(n=4, classes=3, seed=0):
    """Images whose first channel encodes the label (a perfect segmenter is easy to write)."""
    rng = np.random.default_rng(seed)
    labels = torch.from_numpy(rng.integers(0, classes, (n, 8, 8))).repeat_interleave(4, 1)
    labels = labels.repeat_interleave(4, 2)
    images = torch.zeros(n, 3, 32, 32)
    images[:, 0] = labels.float() / 10
    return Pairs(images, labels)


# ----------------------------------------------------------------------------- network
def test_segnet_maps_images_to_logits_of_their_size():
    net = SegNet(5, width=4, depth=3).eval()
    assert net(torch.rand(2, 3, H, W)).shape == (2, 5, H, W)
    assert net(torch.rand(1, 3, 24, 40)).shape == (1, 5, 24, 40)  # not a multiple of 8
    assert net.class_ids == [0, 1, 2, 3, 4]
    assert SegNet(2, width=4, class_ids=[7, 3]).class_ids == [7, 3]
    with pytest.raises(ValueError, match="class_ids"):
        SegNet(3, class_ids=[0, 1])
    with pytest.raises(ValueError):
        SegNet(0)


def test_segnet_every_parameter_is_trained(unconnected):
    net = SegNet(4, width=4, depth=4)
    loss = pixel_loss(net(torch.rand(2, 3, H, W)), torch.randint(0, 4, (2, H, W)))
    assert unconnected(net, loss) == []


# ----------------------------------------------------------------------------- sampling
def test_streams_mix_in_the_stated_proportions_and_cover_each_epoch():
    sampler = StreamSampler([10, 7], [3, 5], seed=1)
    draws = [sampler.draw() for _ in range(14)]  # 42 of stream 0, 70 of stream 1
    assert all(len(a) == 3 and len(b) == 5 for a, b in draws)
    first = np.concatenate([a for a, _ in draws])
    second = np.concatenate([b for _, b in draws])
    for i in range(4):  # four whole epochs of stream 0: every item once in each
        assert sorted(first[10 * i:10 * (i + 1)]) == list(range(10))
    for i in range(10):
        assert sorted(second[7 * i:7 * (i + 1)]) == list(range(7))
    assert not np.array_equal(first[:10], first[10:20])  # a new order each epoch
    again = StreamSampler([10, 7], [3, 5], seed=1)
    assert all(np.array_equal(x, y) for d in draws for x, y in zip(d, again.draw(), strict=True))


def test_trainer_draws_each_stream_per_step():
    real, syn = encoded_pairs(5), encoded_pairs(3, seed=1)
    _, log = train_segmenter([(real, 3), (syn, 1)], num_classes=3, steps=4, width=4, depth=2)
    assert log.drawn == [12, 4] and log.steps == 4
    _, log = train_segmenter([real, syn], batch_size=5, num_classes=3, steps=2, width=4,
                             depth=2)  # bare datasets share the batch
    assert log.drawn == [6, 4]
    with pytest.raises(ValueError, match="batch_size"):
        train_segmenter([(real, 3)], batch_size=4, num_classes=3, steps=1)


# ----------------------------------------------------------------------------- loss
def test_ignored_pixels_do_not_contribute_to_the_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, 6, requires_grad=True)
    target = torch.randint(0, 4, (2, 6, 6))
    target[:, :3] = 255
    loss = pixel_loss(logits, target)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.count_nonzero(grad[:, :, :3]) == 0 and torch.count_nonzero(grad[:, :, 3:]) > 0
    other = logits.detach().clone()
    other[:, :, :3] = torch.randn(2, 4, 3, 6) * 10
    assert torch.allclose(pixel_loss(other, target), loss)
    expected = torch.nn.functional.cross_entropy(logits[:, :, 3:], target[:, 3:])
    assert torch.allclose(loss, expected)
    none = pixel_loss(logits, torch.full((2, 6, 6), 255))
    assert float(none.detach()) == 0.0


def test_class_weights_favour_rare_classes():
    w = class_weights(np.array([900, 100, 0]), 0.5)
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == w[1]
    assert float((w[:2] * np.array([0.9, 0.1])).sum()) == pytest.approx(1.0)
    assert np.all(class_weights(np.array([5, 1]), 0.0) == 1.0)


def test_augment_moves_image_and_label_together():
    labels = torch.arange(W).repeat(2, H, 1)  # label = column index
    images = labels[:, None].float().repeat(1, 3, 1, 1) / W
    rng = np.random.default_rng(0)
    out_images, out_labels = augment(images, labels, rng, max_scale=1.5)
    assert out_images.shape == images.shape and out_labels.shape == labels.shape
    # the image follows its label: column values agree up to the bilinear blur
    diff = (out_images[:, 0] * W - out_labels.float()).abs()
    assert float(diff.median()) < 1.0
    flips = augment(images, labels, np.random.default_rng(3))[1]
    for k in range(2):
        assert torch.equal(flips[k], labels[k]) or torch.equal(flips[k], labels[k].flip(-1))


# ----------------------------------------------------------------------------- training
def test_loss_goes_down_on_a_tiny_set():
    data = toycity_pairs(8)
    net, log = train_segmenter([(data, 4)], steps=40, lr=1e-2, warmup=5, width=8, depth=3,
                               seed=0)
    assert not net.training and net.class_ids == list(range(10))
    assert np.mean(log.loss[-8:]) < 0.7 * np.mean(log.loss[:4])
    assert log.to_dict()["steps"] == 40 and len(log.lr) == 40


def test_training_is_deterministic_for_a_seed_and_leaves_the_global_rng_alone():
    data = encoded_pairs(6)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, log_a = train_segmenter([(data, 3)], num_classes=3, steps=5, width=4, depth=2, seed=4,
                               max_scale=1.3)
    assert torch.equal(torch.rand(1), before)
    b, log_b = train_segmenter([(data, 3)], num_classes=3, steps=5, width=4, depth=2, seed=4,
                               max_scale=1.3)
    c, _ = train_segmenter([(data, 3)], num_classes=3, steps=5, width=4, depth=2, seed=5)
    assert log_a.loss == log_b.loss
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert any(not torch.equal(p, r) for p, r in zip(a.state_dict().values(),
                                                      c.state_dict().values(), strict=True))


def test_ignored_pixels_are_not_learned_as_a_class():
    # left half dark = class 1, right half bright = class 2 -- or ignored in a curated copy
    images = torch.full((4, 3, 16, 32), 0.1)
    images[..., 16:] = 0.9
    labels = torch.full((4, 16, 32), 1)
    labels[..., 16:] = 2
    curated = labels.clone()
    curated[..., 16:] = 255
    preds = []
    for lab in (labels, curated):
        net, _ = train_segmenter([(Pairs(images, lab), 4)], num_classes=3, steps=15, lr=1e-2,
                                 warmup=2, width=4, depth=2)
        with torch.no_grad():
            preds.append(net(images).argmax(1))
    assert (preds[0][..., 16:] == 2).float().mean() > 0.9  # labeled: learned
    assert not (preds[1] == 2).any()  # ignored: nothing teaches class 2


def test_vocabulary_channels_follow_its_ids_and_labels_map_to_channels():
    vocab = get_vocabulary("toycity")
    data = toycity_pairs(4)
    net, _ = train_segmenter([(data, 2)], steps=2, width=4, depth=2)
    assert net.class_ids == vocab.ids and net.num_classes == len(vocab)


def test_mismatched_vocabularies_and_unknown_ids_are_clear_errors():
    data = toycity_pairs(4)
    with pytest.raises(SisgenInputError, match="vocabulary 'toycity'.*'cityscapes'"):
        train_segmenter([(data, 2)], vocabulary="cityscapes", steps=1, width=4, depth=2)
    labels = torch.full((2, 8, 8), 7)
    with pytest.raises(SisgenInputError, match=r"label ids \[7\]"):
        train_segmenter([(Pairs(torch.rand(2, 3, 8, 8), labels), 2)], num_classes=3, steps=1,
                        width=4, depth=2)
    with pytest.raises(SisgenInputError, match="no items"):
        train_segmenter([(Pairs(torch.rand(0, 3, 8, 8), labels[:0]), 2)], num_classes=3,
                        steps=1)
    with pytest.raises(ValueError, match="num_classes or vocabulary"):
        train_segmenter([(encoded_pairs(2), 1)], steps=1)


def test_items_of_another_size_are_resized_to_the_training_size():
    big = SourcePairs(sources.open("toycity", size=(64, 128), length=2, seed=0))
    net, log = train_segmenter([(big, 2)], steps=1, width=4, depth=2, size=(H, W))
    assert log.steps == 1
    # without a size, the first stream's first item sets it
    net, log = train_segmenter([(toycity_pairs(2), 1), (big, 1)], steps=2, width=4, depth=2)
    assert log.drawn == [2, 2]


# ----------------------------------------------------------------------------- evaluation
class Oracle:
    """Logits read back from the encoded image (perfect) or shifted by one class."""

    def __init__(self, classes=3, shift=0):
        self.classes, self.shift = classes, shift

    def __call__(self, x):
        label = (x[:, 0] * 10).round().long()
        label = (label + self.shift) % self.classes
        return torch.nn.functional.one_hot(label, self.classes).permute(0, 3, 1, 2).float()


def test_evaluation_scores_one_confusion_matrix_in_percent():
    data = encoded_pairs(5)
    perfect = evaluate_segmenter(Segmenter(Oracle()), data, batch_size=2)
    assert perfect["miou"] == pytest.approx(100.0) and perfect["pixel_acc"] == 100.0
    assert set(perfect["iou"]) == {"0", "1", "2"} and perfect["images"] == 5
    wrong = evaluate_segmenter(Segmenter(Oracle(shift=1)), data, batch_size=3,
                               vocabulary="toycity")
    assert wrong["miou"] == 0.0 and set(wrong["iou"]) == {"sky", "road", "sidewalk"}


def test_evaluation_leaves_out_ignore_pixels_and_maps_channels_to_class_ids():
    data = encoded_pairs(3)
    data.labels = data.labels.clone()
    data.labels[:, :8] = 255
    seg = Segmenter(Oracle(), class_map=[0, 1, 2])
    assert evaluate_segmenter(seg, data)["pixel_acc"] == 100.0
    net = SegNet(3, width=4, depth=2, class_ids=[4, 5, 6]).eval()
    scores = evaluate_segmenter(net, data)
    assert set(scores["iou"]) <= {"0", "1", "2", "4", "5", "6"}
    assert scores["pixel_acc"] == 0.0  # channels predict ids 4..6, labels are 0..2


def test_evaluation_of_a_source_and_of_a_trained_net():
    data = toycity_pairs(8)
    net, _ = train_segmenter([(data, 4)], steps=30, lr=1e-2, warmup=3, width=8, depth=3)
    val = sources.open("toycity", split="val", size=(H, W), length=6)
    scores = evaluate_segmenter(net, val, batch_size=4)
    assert scores["images"] == 6 and 0.0 <= scores["miou"] <= 100.0
    assert scores["pixel_acc"] > 40.0  # the trained net beats chance (10 classes)
    assert set(scores["iou"]) <= set(get_vocabulary("toycity").names)
    with pytest.raises(SisgenInputError, match="empty"):
        evaluate_segmenter(net, Pairs(torch.rand(0, 3, 4, 4), torch.zeros(0, 4, 4)))


def test_class_transfer_finds_the_class_the_synthetic_set_gets_wrong(tmp_path):
    from sisgen.training.segmenter import ClassTransfer, class_transfer

    vocab = get_vocabulary("toycity")
    real = encoded_pairs(12, seed=2)
    real.vocabulary = vocab
    # a "generator" that draws sidewalk (2) where the map says road (1): images right,
    # labels wrong for one class
    labels = real.labels.clone()
    labels[labels == 2] = 1
    synthetic = Pairs(real.images, labels, vocabulary=vocab)
    t = class_transfer(synthetic, real, steps=60, batch_size=4, width=8, threads=1)
    sky, sidewalk = t.classes["sky"], t.classes["sidewalk"]
    assert sky["ratio"] is not None and sky["ratio"] > 0.8
    assert sidewalk["synthetic_to_real"] < 5 and sidewalk["real_to_real"] > 50
    # road loses too: the synthetic-trained net calls the real sidewalk road
    assert "sidewalk" in t.poor_classes(0.8) and "sky" not in t.poor_classes(0.8)
    assert t.classes["road"]["ratio"] < sky["ratio"]
    assert t.classes["car"]["ratio"] is None  # no car in the held-out pairs
    assert t.config["real_train"] == 6 and t.config["real_scored"] == 6
    t.save(tmp_path / "t.json")
    assert ClassTransfer.load(tmp_path / "t.json", vocabulary=vocab) == t
    with pytest.raises(SisgenInputError, match="t.json"):
        ClassTransfer.load(tmp_path / "t.json", vocabulary=get_vocabulary("cityscapes"))
    with pytest.raises(SisgenInputError, match="not the real pairs'"):
        class_transfer(Pairs(real.images, labels, vocabulary=get_vocabulary("cityscapes")),
                       real, steps=1)
    with pytest.raises(SisgenInputError, match="hold out"):
        class_transfer(synthetic, Pairs(real.images[:1], labels[:1], vocabulary=vocab), steps=1)
