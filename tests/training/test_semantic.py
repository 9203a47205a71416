"""The semantic consistency term: a frozen segmenter's cross-entropy on generated images."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sisgen import sources
from sisgen.errors import SisgenInputError
from sisgen.models import build_model
from sisgen.training import Trainer
from sisgen.training.config import load_config
from sisgen.training.objective import objective_for
from sisgen.training.segmenter import SourcePairs, train_segmenter
from sisgen.training.segmenter.export import export_segmenter
from sisgen.training.semantic import SemanticConsistency, load_semantic

pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 32, 64


class _Net(nn.Module):
    """A segmenter with a batch norm (to see that it never trains) and 3 channels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.conv(x))


@pytest.fixture(scope="module")
def torchscript(tmp_path_factory):
    """A tiny ToyCity segmenter exported as TorchScript (and ONNX) with sidecars."""
    data = SourcePairs(sources.open("toycity", size=(H, W), length=6, seed=0))
    net, _ = train_segmenter([(data, 3)], steps=3, width=4, depth=3, seed=0)
    folder = tmp_path_factory.mktemp("semantic")
    export_segmenter(net, folder / "seg.onnx", vocabulary="toycity", size=(H, W), check=False)
    return export_segmenter(net, folder / "seg.pt", vocabulary="toycity", size=(H, W),
                            format="torchscript", check=False)


def test_loss_is_the_cross_entropy_of_the_normalised_image_on_mapped_channels():
    torch.manual_seed(0)
    net = _Net()
    # channel 0 is class 5, channel 1 is no class, channel 2 is class 2
    sem = SemanticConsistency(net, [5, 255, 2], input_range=(0, 255), mean=(10, 20, 30),
                              std=(2, 4, 8))
    fake = torch.rand(2, 3, 8, 8) * 2 - 1
    labels = torch.full((2, 8, 8), 5)
    labels[:, :4] = 2
    labels[0, 0, 0] = 7  # a class the segmenter does not know: ignored
    labels[1, 0, 0] = 255
    x = ((fake + 1) * 127.5 - torch.tensor([10.0, 20, 30]).view(1, 3, 1, 1)) \
        / torch.tensor([2.0, 4, 8]).view(1, 3, 1, 1)
    target = torch.where(labels == 5, 0, torch.where(labels == 2, 2, -100))
    expected = F.cross_entropy(net.eval()(x), target, ignore_index=-100)
    assert torch.allclose(sem(fake, labels), expected, rtol=1e-4, atol=1e-5)
    assert sem(fake, torch.full((2, 8, 8), 7)).item() == 0.0


def test_segmenter_stays_frozen_and_gradients_reach_the_image():
    sem = SemanticConsistency(_Net(), [0, 1, 2])
    sem.train()
    assert not sem.net.training and all(not p.requires_grad for p in sem.net.parameters())
    before = sem.net.bn.running_mean.clone()
    fake = (torch.rand(2, 3, 8, 8) * 2 - 1).requires_grad_(True)
    labels = torch.randint(0, 3, (2, 8, 8))
    sem(fake, labels).backward()
    assert torch.equal(sem.net.bn.running_mean, before)
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_logits_of_another_size_are_resized_to_the_labels():
    sem = SemanticConsistency(nn.Sequential(nn.Conv2d(3, 2, 1), nn.AvgPool2d(2)), [0, 1])
    loss = sem(torch.zeros(1, 3, 8, 8), torch.ones(1, 8, 8, dtype=torch.long))
    assert torch.isfinite(loss)


def test_load_semantic_reads_the_sidecar_and_checks_the_vocabulary(torchscript):
    sem = load_semantic(torchscript)
    assert sem.channels == 10 and sem.lut[3].item() == 3
    images = torch.rand(2, 3, H, W) * 2 - 1
    labels = torch.randint(0, 10, (2, H, W))
    assert torch.isfinite(sem(images, labels))
    with pytest.raises(SisgenInputError, match="do not match"):
        load_semantic(torchscript, build_model("spade", dataset="cityscapes", ngf=4).vocabulary)


def test_load_semantic_bad_files(torchscript, tmp_path):
    with pytest.raises(SisgenInputError, match="not found"):
        load_semantic(tmp_path / "missing.pt")
    with pytest.raises(SisgenInputError, match="not ONNX"):
        load_semantic(torchscript.with_name("seg.onnx"))
    bare = tmp_path / "bare.pt"
    bare.write_bytes(torchscript.read_bytes())
    with pytest.raises(SisgenInputError, match="sidecar"):
        load_semantic(bare)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    (tmp_path / "junk.pt.json").write_text(torchscript.with_name("seg.pt.json").read_text())
    with pytest.raises(SisgenInputError, match="junk.pt"):
        load_semantic(junk)


def test_seg_weight_needs_a_segmenter_and_only_spade_family_takes_it():
    g = build_model("spade", dataset="tiny", ngf=4)
    with pytest.raises(SisgenInputError, match="segmenter_weights"):
        objective_for(g, {"seg": 1.0}, {"ndf": 4, "n_layers": 2})
    with pytest.raises(SisgenInputError, match="does not know losses"):
        objective_for(build_model("oasis", dataset="tiny"), {"seg": 1.0})


def test_trainer_logs_the_semantic_term(torchscript, tmp_path):
    cfg = load_config("toycity_spade_vae", [
        "steps=2", "source.length=4", "batch_size=2", f"height={H}", f"width={W}",
        "sample_every=0", "validate=false", f"out_dir={tmp_path / 'run'}", "log_every=1",
        "checkpoint_every=100", "ema_bn_batches=1", "threads=1", "losses.seg=1.0",
        f"segmenter_weights={torchscript}", "cache=false"])
    cfg = dataclasses.replace(cfg, model_args={**cfg.model_args, "ngf": 4, "z_dim": 8},
                              discriminator={**cfg.discriminator, "ndf": 4, "n_layers": 2},
                              encoder={**cfg.encoder, "ngf": 4})
    trainer = Trainer(cfg, progress=False)
    seg_before = {k: v.clone() for k, v in trainer.objective.semantic.state_dict().items()}
    trainer.fit()
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(x["g_seg"] > 0 for x in lines)
    for k, v in trainer.objective.semantic.state_dict().items():
        assert torch.equal(v, seg_before[k])
