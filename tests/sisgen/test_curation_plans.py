"""Plans: the plan file, FreeMask's rank rule, hardness and class-balanced plans."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from sisgen import get_vocabulary, sources
from sisgen.curation import (
    Plan,
    balance_counts,
    balance_plan,
    compute_reference_stats,
    hardness_plan,
    hardness_scores,
    photo_pairs,
    rank_counts,
    target_shares,
)
from sisgen.errors import SisgenInputError
from sisgen.segmenter import Segmenter

SIZE = (32, 64)


@pytest.fixture(scope="module")
def city():
    return sources.open("toycity", split="val", size=SIZE, length=8)


@pytest.fixture(scope="module")
def seg():
    torch.manual_seed(1)
    return Segmenter(torch.nn.Conv2d(3, 10, 1).eval(), vocabulary="toycity", batch_size=4)


def test_plan_file_round_trip_and_source_checks(city, tmp_path):
    plan = Plan.from_counts(city, [1, 0, 3, 2], "hardness", {"note": 1})
    assert plan.maps == 4 and plan.total == 6 and plan.counts(city) == [1, 0, 3, 2]
    assert list(plan.samples) == city.keys()[:4]
    path = tmp_path / "plan.json"
    plan.save(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == plan.digest()
    back = Plan.load(path, source=city)
    assert back.samples == plan.samples and back.mode == "hardness"
    assert back.report == {"note": 1} and back.digest() == plan.digest()
    # a longer source with the same first maps still fits (the plan covers a prefix)
    Plan.load(path, source=sources.open("toycity", split="val", size=SIZE, length=20))
    wrong = {
        "split 'val', not 'train'": sources.open("toycity", split="train", size=SIZE, length=8),
        "covers 4 maps.*has only 2": sources.open("toycity", split="val", size=SIZE, length=2),
    }
    for message, src in wrong.items():
        with pytest.raises(SisgenInputError, match=rf"plan\.json.*{message}"):
            Plan.load(path, source=src)
    other = Plan.from_counts(city, [1, 1], "balance")
    other.samples = {"a": 1, "b": 1}
    other.save(tmp_path / "other.json")
    with pytest.raises(SisgenInputError, match=r"other\.json.*keys differ: map 0 is 'a'"):
        Plan.load(tmp_path / "other.json", source=city)
    other = Plan.from_counts(city, [1, 1], "balance")
    other.vocabulary = {"name": "cityscapes", "ids": get_vocabulary("cityscapes").ids,
                        "names": get_vocabulary("cityscapes").names}
    other.save(tmp_path / "voc.json")
    with pytest.raises(SisgenInputError, match=r"voc\.json.*vocabulary 'cityscapes'"):
        Plan.load(tmp_path / "voc.json", source=city)
    (tmp_path / "neg.json").write_text(path.read_text().replace(": 3", ": -3"))
    with pytest.raises(SisgenInputError, match=r"neg\.json.*malformed"):
        Plan.load(tmp_path / "neg.json")


def test_rank_rule():
    # N = 5, K = 4: rank r gets min(1 + round(r / 5 * 4), 4) -> 1, 2, 3, 3, 4
    scores = [0.5, 0.1, 0.9, 0.3, 0.7]
    assert rank_counts(scores, 4) == [3, 1, 4, 2, 3]
    assert rank_counts([0.2, 0.2, 0.2], 3) == [1, 2, 3]  # ties by map order
    assert rank_counts([0.3, math.nan, 0.1], 2) == [2, 0, 1]
    assert rank_counts([1.0], 4) == [1]
    with pytest.raises(SisgenInputError):
        rank_counts([1.0], 0)


def test_hardness_scores_and_plan(city, seg):
    scores, skipped = hardness_scores(seg, photo_pairs(city), 6, batch_size=4)
    assert not skipped and scores.shape == (6,)
    labels = np.stack([city.load(i).semantic for i in range(6)])
    photos = np.stack([city.photo(i) for i in range(6)])
    loss, pred = seg.loss_and_prediction(photos, labels)
    expected = (loss * (pred != labels)).reshape(6, -1).mean(axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    plan = hardness_plan(seg, city, 3, limit=6)
    assert plan.mode == "hardness" and plan.maps == 6
    assert plan.counts() == rank_counts(scores, 3)
    assert plan.report["images"] == "photos" and plan.report["score"] == "ce_error"
    assert set(plan.report["hardness"]) == set(plan.samples)
    # the per-class normalisation by reference statistics changes the score, not the rule
    stats = compute_reference_stats(seg, city)
    normed = hardness_plan(seg, city, 3, limit=6, stats=stats)
    assert normed.report["score"] == "ce_error/class_mean"
    # images from a callable, or a first synthetic pass
    from_images = hardness_plan(seg, city, 3, limit=6,
                                images=lambda idx: [city.photo(i) for i in idx])
    assert from_images.counts() == plan.counts() and from_images.report["images"] == "images"
    with pytest.raises(SisgenInputError, match="one image origin"):
        hardness_plan(seg, city, 3, photos=True, images=lambda idx: [])


def test_hardness_plan_from_a_synthetic_pass(city, seg):
    from sisgen.engines import Generator
    from sisgen.engines.torch_engine import TorchEngine
    from sisgen.models import build_model
    from sisgen.samples import SamplePath, run_engine

    torch.manual_seed(0)
    model = build_model("spade", dataset="toycity", ngf=2, spade_hidden=4, z_dim=4,
                        height=SIZE[0], width=SIZE[1]).eval()
    gen = Generator.from_model(TorchEngine(model, "cpu"), model, model_hash="t")
    plan = hardness_plan(seg, city, 2, generator=gen, seed=7, limit=4)
    assert plan.report["images"] == "synthetic" and plan.report["seed"] == 7
    # the images scored are `generate --seed 7`'s samples
    path = SamplePath(city, None, gen.resolution, seed=7, input_spec=gen.input_spec)
    batch = path.prepare(range(4))
    images = run_engine(gen, batch)
    scores = hardness_plan(seg, city, 2, images=lambda idx: [images[i] for i in idx], limit=4)
    assert scores.report["hardness"] == plan.report["hardness"]


def test_target_shares():
    shares = np.array([0.64, 0.16, 0.04, 0.0])
    names = ["a", "b", "c", "d"]
    np.testing.assert_allclose(target_shares(shares, "sqrt", names),
                               np.array([0.8, 0.4, 0.2, 0]) / 1.4)
    np.testing.assert_allclose(target_shares(shares, "uniform", names), [1 / 3] * 3 + [0])
    np.testing.assert_allclose(target_shares(shares, {"c": 1.0, "d": 5.0}, names), [0, 0, 1, 0])
    with pytest.raises(SisgenInputError, match="unknown classes"):
        target_shares(shares, {"zz": 1.0}, names)
    with pytest.raises(SisgenInputError, match="target must be"):
        target_shares(shares, "log", names)


def test_balance_counts_prefer_maps_of_rare_classes_within_bounds():
    pixels = np.array([[100, 0], [90, 10], [50, 50], [100, 0]])  # class 1 is rare
    target = np.array([0.5, 0.5])
    n = balance_counts(pixels, target, 8, np.ones(4, np.int64), np.full(4, 3))
    assert n.sum() == 8 and n.min() >= 1 and n.max() <= 3
    assert n[2] == 3 and n[1] >= n[0] and n[1] >= n[3]
    # a zero bound skips a map; the total is clipped to what the bounds allow
    n = balance_counts(pixels, target, 100, np.array([0, 1, 1, 1]), np.array([0, 2, 2, 2]))
    assert list(n) == [0, 2, 2, 2]
    # a base plan's counts multiply the score
    n = balance_counts(pixels, target, 5, np.ones(4, np.int64), np.full(4, 3),
                       scale=np.array([1, 4, 1, 1]))
    assert n[1] == 2


def test_balance_plan_raises_rare_class_shares(city, seg):
    plan = balance_plan(city, max_samples=4)
    rep = plan.report
    before, after = rep["pixel_share"]["source"], rep["pixel_share"]["plan"]
    assert plan.mode == "balance" and plan.total == rep["total"]
    assert min(plan.counts()) >= 1 and max(plan.counts()) <= 4
    assert plan.total == round(8 * 5 / 2)
    target = rep["pixel_share"]["target"]
    present = [n for n, v in before.items() if v > 0]
    rarest = min(present, key=lambda n: before[n])
    commonest = max(present, key=lambda n: before[n])
    assert after[rarest] > before[rarest] and after[commonest] < before[commonest]
    assert sum(after.values()) == pytest.approx(1.0, abs=1e-4)

    def cross_entropy(shares):
        return -sum(target[n] * math.log(shares[n]) for n in present)

    assert cross_entropy(after) < cross_entropy(before)
    # on top of a hardness plan: same total by default, skipped maps stay skipped
    base = Plan.from_counts(city, [2, 0, 3, 1, 4, 1, 2, 3], "hardness")
    both = balance_plan(city, base=base, max_samples=4)
    assert both.mode == "hardness+balance" and both.total == base.total
    assert both.counts()[1] == 0 and "base" in both.report["pixel_share"]
    assert both.report["base"]["sha256"] == base.digest()
    fixed = balance_plan(city, total=20, max_samples=4, limit=5)
    assert fixed.total == 20 and fixed.maps == 5
