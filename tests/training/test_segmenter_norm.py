"""Batch-norm statistics per domain: per-stream training and recalibration (AdaBN)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import Dataset

from sisgen.training.ema import batch_norms
from sisgen.training.segmenter import SegNet, recalibrate_norm, train_segmenter
from sisgen.training.segmenter.norm import per_stream_forward

pytestmark = pytest.mark.usefixtures("one_thread")


class Flat(Dataset):
    """Grey images with a darker middle band, labelled as such; flips change nothing."""

    def __init__(self, level, n=4, size=(16, 32)):
        self.level, self.n, self.size = level, n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        image = torch.full((3, *self.size), float(self.level))
        middle = slice(self.size[1] // 4, 3 * self.size[1] // 4)
        image[0, :, middle] *= 0.5  # two regions (symmetric: flips change nothing)
        label = torch.zeros(self.size, dtype=torch.long)
        label[:, middle] = 1
        return {"image": image, "label": label}


def small_net(seed=0):
    torch.manual_seed(seed)
    return SegNet(3, width=4, depth=2)


def running(net):
    return [(m.running_mean.clone(), m.running_var.clone()) for m in batch_norms(net)]


def test_per_stream_forward_normalises_each_part_alone_and_keeps_the_first_parts_stats():
    net = small_net().train()
    alone = copy.deepcopy(net)
    second = copy.deepcopy(net)
    torch.manual_seed(1)
    a, b = torch.rand(3, 3, 16, 32), torch.rand(2, 3, 16, 32) * 0.3 + 0.6
    out = per_stream_forward(net, torch.cat([a, b]), [3, 2])
    torch.testing.assert_close(out[:3], alone(a))
    torch.testing.assert_close(out[3:], second(b))
    for (mean, var), (mean_a, var_a) in zip(running(net), running(alone), strict=True):
        torch.testing.assert_close(mean, mean_a)
        torch.testing.assert_close(var, var_a)
    assert all(m.momentum == 0.1 for m in batch_norms(net))
    mixed = copy.deepcopy(small_net()).train()
    mixed(torch.cat([a, b]))  # one pass: the statistics of both parts
    assert not torch.allclose(running(mixed)[0][0], running(net)[0][0])


def test_separate_norm_keeps_the_real_streams_running_statistics():
    real, synthetic = Flat(0.2), Flat(0.9)
    kw = {"num_classes": 3, "steps": 3, "width": 4, "depth": 2, "lr": 0.0, "seed": 0}
    real_only, _ = train_segmenter([(real, 2)], **kw)
    separate, _ = train_segmenter([(real, 2), (synthetic, 2)], separate_norm=True, **kw)
    shared, _ = train_segmenter([(real, 2), (synthetic, 2)], **kw)
    for (mean, var), (mean_r, var_r) in zip(running(separate), running(real_only), strict=True):
        torch.testing.assert_close(mean, mean_r)
        torch.testing.assert_close(var, var_r)
    assert not torch.allclose(running(shared)[0][0], running(real_only)[0][0])


def test_recalibrated_eval_output_matches_the_batch_statistics_of_its_images():
    net = small_net().eval()
    torch.manual_seed(2)
    images = torch.rand(8, 3, 16, 32) * 0.4 + 0.5
    before = net(images)
    assert recalibrate_norm(net, images, batch_size=8) == 8
    assert not net.training and all(m.momentum == 0.1 for m in batch_norms(net))
    after = net(images)
    batch_stats = copy.deepcopy(net).train()(images)
    assert (after - batch_stats).abs().max() < 1e-2 * batch_stats.abs().max()
    assert not torch.allclose(before, after)
    # a dataset of dicts gives the same statistics as the tensor; labels are not read
    items = [{"image": image} for image in images]
    other = small_net().eval()
    recalibrate_norm(other, items, batch_size=8)
    for (mean, var), (mean_o, var_o) in zip(running(net), running(other), strict=True):
        torch.testing.assert_close(mean, mean_o)
        torch.testing.assert_close(var, var_o)


def test_recalibration_averages_batches_and_respects_the_limit():
    images = torch.rand(6, 3, 16, 32)
    whole, batched, limited = small_net(), small_net(), small_net()
    recalibrate_norm(whole, images, batch_size=6)
    recalibrate_norm(batched, images, batch_size=3)
    assert recalibrate_norm(limited, images, batch_size=3, limit=3) == 3
    # the first norm follows a linear layer: the mean of equal batches' means is the mean
    torch.testing.assert_close(running(batched)[0][0], running(whole)[0][0])
    assert not torch.allclose(running(limited)[0][0], running(whole)[0][0])


def test_recalibration_refuses_no_images_and_nets_without_batch_norm():
    with pytest.raises(ValueError, match="at least one image"):
        recalibrate_norm(small_net(), torch.zeros(0, 3, 16, 32))
    with pytest.raises(ValueError, match="no batch norm"):
        recalibrate_norm(torch.nn.Conv2d(3, 3, 1), torch.zeros(1, 3, 4, 4))
