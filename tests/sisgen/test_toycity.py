"""ToyCity: the procedural street-scene dataset and its source."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import sisgen
from sisgen.sources.toycity import CAR, PERSON, ToyCity

SIZE = (64, 128)


@pytest.fixture(scope="module")
def samples():
    city = ToyCity(SIZE, seed=0)
    return [city.sample(i) for i in range(20)]


def test_vocabulary():
    voc = sisgen.get_vocabulary("toycity")
    assert voc.name == "toycity"
    assert len(voc) >= 8
    assert voc.ids == list(range(len(voc)))
    assert len(voc.thing_ids) >= 2
    assert {CAR, PERSON} <= set(voc.thing_ids)
    assert ToyCity(SIZE).vocabulary == voc
    assert (voc[CAR].name, voc[PERSON].name) == ("car", "person")
    assert len({c.color for c in voc.classes}) == len(voc)


def test_sample_format(samples):
    lm, photo = samples[0]
    assert lm.semantic.shape == SIZE and lm.semantic.dtype == np.uint8
    assert lm.instance is not None and lm.instance.dtype == np.int32
    assert photo.shape == (*SIZE, 3) and photo.dtype == np.uint8
    assert lm.meta["id"] == "toycity_train_000000"
    assert lm.meta["source"] == "toycity"
    assert tuple(lm.meta["size"]) == SIZE
    assert lm.semantic.max() < len(sisgen.get_vocabulary("toycity"))


def test_several_instances_per_image(samples):
    cars = people = 0
    for lm, _ in samples:
        ids = np.unique(lm.instance)
        cars += int(np.sum(ids // 1000 == CAR))
        people += int(np.sum(ids // 1000 == PERSON))
    assert cars / len(samples) >= 2
    assert people / len(samples) >= 2


def test_instances_consistent_with_labels(samples):
    things = set(sisgen.get_vocabulary("toycity").thing_ids)
    for lm, _ in samples:
        sem, inst = lm.semantic, lm.instance
        is_thing = np.isin(sem, list(things))
        assert np.all(inst[~is_thing] == 0)
        assert np.all(inst[is_thing] > 0)
        assert np.array_equal(inst[is_thing] // 1000, sem[is_thing].astype(np.int32))
        for c in things:  # k counts 0, 1, ... per class
            ks = np.unique(inst[sem == c]) % 1000
            assert list(ks) == list(range(len(ks)))


def test_deterministic_and_order_independent():
    a = ToyCity(SIZE, seed=3)
    b = ToyCity(SIZE, seed=3)
    b.sample(7)  # a different call history must not matter
    lm1, p1 = a.sample(5)
    lm2, p2 = b.sample(5)
    assert np.array_equal(lm1.semantic, lm2.semantic)
    assert np.array_equal(lm1.instance, lm2.instance)
    assert np.array_equal(p1, p2)
    lm3, p3 = a.sample(6)
    assert not np.array_equal(lm1.semantic, lm3.semantic)
    assert not np.array_equal(p1, p3)
    lm4, _ = ToyCity(SIZE, seed=4).sample(5)
    assert not np.array_equal(lm1.semantic, lm4.semantic)


@pytest.mark.parametrize("size", [(64, 128), (96, 96), (256, 512), (17, 33)])
def test_any_resolution(size):
    lm, photo = ToyCity(size).sample(1)
    assert lm.semantic.shape == size and photo.shape == (*size, 3)
    present = set(np.unique(lm.semantic).tolist())
    assert present <= set(range(len(sisgen.get_vocabulary("toycity"))))
    if min(size) >= 64:
        assert {0, 1, 3} <= present  # sky, road, building


def test_photo_classes_distinct_but_varied(samples):
    n = len(sisgen.get_vocabulary("toycity"))
    total = np.zeros((n, 3))
    count = np.zeros(n)
    car_colours = []
    for lm, photo in samples:
        ph = photo.reshape(-1, 3).astype(np.float64)
        sem = lm.semantic.ravel()
        np.add.at(total, sem, ph)
        count += np.bincount(sem, minlength=n)
        inst = lm.instance.ravel()
        for i in np.unique(inst[sem == CAR]):
            m = inst == i
            if m.sum() >= 20:
                car_colours.append(np.median(ph[m], axis=0))
    assert np.all(count > 0), "every class appears in 20 samples"
    mean = total / count[:, None]
    dist = np.linalg.norm(mean[:, None] - mean[None], axis=-1) + np.eye(n) * 1e9
    assert dist.min() >= 10.0, dist.min()
    # Within-class variety: car instances come in clearly different colours.
    cc = np.array(car_colours)
    assert len(cc) >= 10
    spread = np.linalg.norm(cc[:, None] - cc[None], axis=-1)
    assert np.median(spread) > 40
    assert cc.std(axis=0).mean() > 20


def test_photo_regions_follow_labels():
    # The photo is drawn from the same primitive map: every vegetation pixel is green-ish
    # and every sky pixel brighter in blue than in red, pixel for pixel.
    lm, photo = ToyCity((128, 256), seed=1).sample(2)
    ph = photo.astype(np.int32)
    sky = lm.semantic == 0
    assert np.mean(ph[sky][:, 2] >= ph[sky][:, 0]) > 0.95
    veg = lm.semantic == 4
    if veg.any():
        assert np.mean(ph[veg][:, 1] >= ph[veg][:, 2]) > 0.95


def test_source():
    src = sisgen.sources.open("toycity", size=SIZE, length=5, seed=0)
    assert "toycity" in sisgen.sources.available_sources()
    assert len(src) == 5 and src.vocabulary.name == "toycity"
    assert src.keys()[2] == "toycity_train_000002"
    lm = src[2]
    photo = src.photo(2)
    ref_lm, ref_photo = ToyCity(SIZE, seed=0).sample(2)
    assert np.array_equal(lm.semantic, ref_lm.semantic)
    assert np.array_equal(photo, ref_photo)
    assert photo.shape == (*SIZE, 3)
    val = sisgen.sources.open("toycity", split="val", size=SIZE, length=5)
    assert val[2].id == "toycity_val_000002"
    assert not np.array_equal(val[2].semantic, lm.semantic)
    with pytest.raises(IndexError):
        src[5]
    default = sisgen.sources.open("toycity")
    assert len(default) == 1000 and default[0].shape == (128, 256)


def test_label_maps_need_no_photo(monkeypatch):
    """Loading a map does not paint its photo; a photo painted later is the same one."""
    render_module = importlib.import_module("sisgen.sources.toycity.render")
    painted = []
    real_paint = render_module.paint

    def counting_paint(*args):
        painted.append(1)
        return real_paint(*args)

    monkeypatch.setattr(render_module, "paint", counting_paint)
    src = sisgen.sources.open("toycity", size=SIZE, length=8, seed=0)
    maps = [src.load(i) for i in range(8)]
    assert not painted
    ref_lm, ref_photo = ToyCity(SIZE, seed=0).sample(6)
    assert len(painted) == 1
    assert np.array_equal(maps[6].instance, ref_lm.instance)
    assert np.array_equal(src.photo(6), ref_photo)
    assert np.array_equal(src.photo(6), ref_photo)  # painted once, kept with the scene
    assert len(painted) == 2
    maps[6].semantic[:] = 0  # a loaded map is the caller's copy
    assert np.array_equal(src.load(6).semantic, ref_lm.semantic)
