"""Integrations: on-the-fly dataset, synthetic swap, mixing, framework registration."""

from __future__ import annotations

import itertools
import json
import sys
import types

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sisgen import LabelMap, get_vocabulary, sources
from sisgen.edits import Recipe
from sisgen.engines import Generator
from sisgen.engines.torch_engine import TorchEngine
from sisgen.generate import sample_seed
from sisgen.integrations import (
    MissingDependencyError,
    MixedDataset,
    MixedIterableDataset,
    SynthesisDataset,
    SyntheticSwap,
    epoch_plan,
    load_hf_dataset,
    register_detectron2,
    register_mmseg_dataset,
)
from sisgen.models import build_model

H, W = 32, 64
RECIPE = [{"op": "relabel", "mapping": {"terrain": "vegetation"}, "p": 0.5},
          {"op": "swap", "a": "car", "b": "person", "p": 0.5}]


def tiny_generator() -> Generator:
    torch.manual_seed(0)  # the same weights in every worker
    m = build_model("spade", dataset="toycity", ngf=2, spade_hidden=4, z_dim=4, height=H,
                    width=W)
    return Generator(TorchEngine(m, "cpu"), m.vocabulary, (H, W), m.noise_spec(), m.model_name,
                     "testhash", m.uses_edges, backend="torch")


class ConstEngine:
    """An engine returning one grey image per sample (for cheap statistics)."""

    input_names = ("labels", "edges")

    def __call__(self, labels, edges, noise):
        return torch.zeros(labels.shape[0], 3, *labels.shape[1:])


def const_generator(size=(8, 8)) -> Generator:
    return Generator(ConstEngine(), None, size, {})


class SeedEngine:
    """A cheap engine whose image depends on the labels and the noise (hence the seed)."""

    input_names = ("labels", "edges", "noise")

    def __call__(self, labels, edges, noise):
        return torch.tanh(noise[:, :, None, None] + labels[:, None].float() / 10)


def seed_generator() -> Generator:
    vocab = sources.open("toycity", length=1).vocabulary
    return Generator(SeedEngine(), vocab, (H, W), {"shape": [3]})


@pytest.fixture(scope="module")
def src():
    return sources.open("toycity", split="val", size=(H, W), length=3)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    m = build_model("spade", dataset="toycity", ngf=2, spade_hidden=4, z_dim=4, height=H,
                    width=W)
    return m.save(tmp_path_factory.mktemp("model") / "tiny")


def _by_index(items):
    return {int(x["index"]): x for x in items}


# ------------------------------------------------------------------------ SynthesisDataset
def test_dataset_is_deterministic_and_matches_direct_generation(src):
    ds = SynthesisDataset(src, tiny_generator, recipe=RECIPE, seed=5, samples_per_map=2,
                          batch_size=4)
    a, b = list(ds), list(ds)
    assert len(a) == len(ds) == 6
    assert [x["index"] for x in a] == list(range(6))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["label"], y["label"])
    first = a[0]
    assert first["image"].shape == (H, W, 3) and first["image"].dtype == np.uint8
    assert first["label"].shape == (H, W) and first["label"].dtype == np.int64
    assert first["instance"].shape == (H, W)
    assert first["seed"] == sample_seed(5, 0) and first["id"].endswith("_s0")
    # the same image as editing + generating sample 3 by hand
    gen = tiny_generator()
    lm = Recipe.load(RECIPE)(src.load(1), seed=sample_seed(5, 3), vocab=src.vocabulary)
    np.testing.assert_array_equal(gen.generate([lm], [sample_seed(5, 3)])[0], a[3]["image"])
    np.testing.assert_array_equal(lm.semantic, a[3]["label"])
    other = list(SynthesisDataset(src, tiny_generator, recipe=RECIPE, seed=6,
                                  samples_per_map=2))
    assert not np.array_equal(other[0]["image"], first["image"])


def test_two_workers_cover_each_index_once_with_the_same_images(src, model_dir):
    ds = SynthesisDataset(src, model_dir, seed=1, samples_per_map=2, batch_size=2, epochs=2)
    single = _by_index(x for x in ds if x["epoch"] == 1)
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    items = list(loader)
    assert len(items) == 12
    for epoch in (0, 1):
        idx = sorted(int(x["index"]) for x in items if int(x["epoch"]) == epoch)
        assert idx == list(range(6))
    for x in items:
        if int(x["epoch"]) == 1:
            ref = single[int(x["index"])]
            np.testing.assert_array_equal(np.asarray(x["image"]), ref["image"])
            assert int(x["seed"]) == ref["seed"]
    seeds = {int(x["seed"]) for x in items}
    assert len(seeds) == 12  # epochs differ


def test_rank_split_is_exact_and_lengths_add_up(src):
    kw = {"recipe": RECIPE, "seed": 2, "length": 7, "shuffle": True}
    parts = [SynthesisDataset(src, seed_generator, rank=r, world_size=3, **kw) for r in range(3)]
    seen = [[x["index"] for x in p] for p in parts]
    assert [len(s) for s in seen] == [len(p) for p in parts] == [3, 2, 2]
    assert sorted(itertools.chain(*seen)) == list(range(7))
    whole = _by_index(SynthesisDataset(src, seed_generator, **kw))
    for p in parts:
        for x in p:
            np.testing.assert_array_equal(x["image"], whole[x["index"]]["image"])
    with pytest.raises(ValueError, match="rank"):
        list(SynthesisDataset(src, seed_generator, rank=3, world_size=3))


def test_tensor_output_resize_infinite_and_map_view():
    big = sources.open("toycity", split="val", size=(64, 128), length=2)
    ds = SynthesisDataset(big, seed_generator, to_tensor=True, epochs=None, seed=4)
    with pytest.raises(TypeError):
        len(ds)
    items = list(itertools.islice(iter(ds), 5))
    assert [x["index"] for x in items] == [0, 1, 0, 1, 0]
    assert [x["epoch"] for x in items] == [0, 0, 1, 1, 2]
    x = items[0]
    assert x["image"].shape == (3, H, W) and x["image"].dtype == torch.float32
    assert 0.0 <= float(x["image"].min()) and float(x["image"].max()) <= 1.0
    assert x["label"].shape == (H, W) and x["label"].dtype == torch.int64
    np.testing.assert_array_equal(x["label"].numpy(), big.load(0).resized((H, W)).semantic)
    view = ds.as_map_style(epoch=1)
    assert len(view) == 2
    torch.testing.assert_close(view[1]["image"], items[3]["image"])


def test_vocabulary_mismatch_and_bad_recipe(src):
    with pytest.raises(Exception, match="nonexistent"):
        SynthesisDataset(src, tiny_generator, recipe=[{"op": "relabel",
                                                       "mapping": {"nonexistent": "car"}}])
    gen = const_generator((H, W))
    gen.vocabulary = get_vocabulary("cityscapes")
    with pytest.raises(Exception, match="does not match"):
        list(SynthesisDataset(src, gen))


# ------------------------------------------------------------------------ SyntheticSwap
def test_swap_probability_and_reproducibility():
    image = np.full((6, 10, 3), 7, np.uint8)
    label = np.zeros((6, 10), np.int64)
    swap = SyntheticSwap(const_generator(), p=0.3, seed=0)
    swapped = []
    for _ in range(2000):
        out, lab = swap(image, label)
        assert out.shape == image.shape and lab is label
        swapped.append(swap.last_swapped)
        assert (out[0, 0, 0] == 128) == swap.last_swapped
    assert abs(np.mean(swapped) - 0.3) < 0.04
    again = SyntheticSwap(const_generator(), p=0.3, seed=0)
    flags = []
    for _ in range(200):
        again(image, label)
        flags.append(again.last_swapped)
    assert flags == swapped[:200]
    assert sum(SyntheticSwap(const_generator(), p=0.0)(image, label)[0][0, 0, 0] == 128
               for _ in range(20)) == 0
    with pytest.raises(ValueError):
        SyntheticSwap(const_generator(), p=1.5)


def test_swap_keeps_label_and_sizes(src):
    lm = src.load(0).resized((48, 80))
    photo = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    keep_label = SyntheticSwap(tiny_generator, p=1.0, keep="label_size")
    img, lab, inst = keep_label(photo, lm.semantic, lm.instance, seed=3)
    assert img.shape == (48, 80, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(lab, lm.semantic)
    np.testing.assert_array_equal(inst, lm.instance)
    again, _, _ = keep_label(photo, lm.semantic, lm.instance, seed=3)
    np.testing.assert_array_equal(again, img)

    model_size = SyntheticSwap(tiny_generator, p=1.0, keep="model_size")
    img, lab = model_size(photo, lm.semantic, seed=3)
    small = lm.resized((H, W))
    np.testing.assert_array_equal(lab, small.semantic)
    assert img.shape == (H, W, 3)
    # the swapped image is the generator's image of the (resized) label map
    gen = tiny_generator()
    rng = np.random.default_rng(3)
    rng.random()
    ref = gen.generate([LabelMap(small.semantic)], [int(rng.integers(2**63))])[0]
    np.testing.assert_array_equal(img, ref)
    never = SyntheticSwap(tiny_generator, p=0.0, keep="model_size")
    img, lab = never(photo, lm.semantic)
    assert img.shape == (H, W, 3) and lab.shape == (H, W)


# ------------------------------------------------------------------------ mixing
def _real(n):
    return [{"kind": "real", "i": i} for i in range(n)]


def _syn(n):
    return [{"kind": "syn", "i": i} for i in range(n)]


def test_mixed_dataset_ratio_and_determinism():
    mixed = MixedDataset(_real(100), _syn(50), ratio=0.3, seed=1)
    items = [mixed[i] for i in range(len(mixed))]
    assert len(mixed) == 100
    assert sum(x["kind"] == "syn" for x in items) == 30
    assert all(x["synthetic"] == (x["kind"] == "syn") for x in items)
    assert sorted(x["i"] for x in items if x["kind"] == "syn") == list(range(30))
    real_idx = [x["i"] for x in items if x["kind"] == "real"]
    assert len(set(real_idx)) == 70
    same = MixedDataset(_real(100), _syn(50), ratio=0.3, seed=1)
    assert [same[i] for i in range(100)] == items
    mixed.set_epoch(1)
    nxt = [mixed[i] for i in range(100)]
    assert nxt != items
    assert sorted(x["i"] for x in nxt if x["kind"] == "syn") == sorted(
        (30 + j) % 50 for j in range(30))
    assert len(MixedDataset(_real(10), _syn(5), ratio=0.5, length=40)) == 40
    with pytest.raises(ValueError):
        MixedDataset(_real(3), _syn(3), ratio=-0.1)


class Counter:
    """An endless iterable of synthetic dicts."""

    def __iter__(self):
        for i in itertools.count():
            yield {"kind": "syn", "i": i}


def test_mixed_iterable_matches_layout_across_workers():
    mixed = MixedIterableDataset(_real(40), Counter(), ratio=0.25, seed=3, epochs=2)
    items = list(DataLoader(mixed, batch_size=None, num_workers=2))
    assert len(items) == 80
    assert sum(x["kind"] == "syn" for x in items) == 20
    ref = MixedDataset(_real(40), _syn(10), ratio=0.25, seed=3)
    real_ref = sorted(x["i"] for x in (ref[i] for i in range(40)) if x["kind"] == "real")
    one_epoch = list(MixedIterableDataset(_real(40), Counter(), ratio=0.25, seed=3))
    assert sorted(x["i"] for x in one_epoch if x["kind"] == "real") == real_ref
    assert sorted(x["i"] for x in one_epoch if x["kind"] == "syn") == list(range(10))
    halves = [list(MixedIterableDataset(_real(40), Counter(), ratio=0.25, seed=3, rank=r,
                                        world_size=2)) for r in (0, 1)]
    assert [len(h) for h in halves] == [20, 20] and len(mixed) == 80
    assert sorted(x["i"] for h in halves for x in h if x["kind"] == "real") == real_ref
    synthetic, rank = epoch_plan(40, 0.25, 3, 0)
    assert synthetic.sum() == 10 and sorted(rank[synthetic]) == list(range(10))


# ------------------------------------------------------------------------ registration
@pytest.mark.parametrize("module, call, package", [
    ("mmseg", lambda p: register_mmseg_dataset("x", p, "toycity"), "mmsegmentation"),
    ("detectron2", lambda p: register_detectron2("x", p), "detectron2"),
    ("datasets", lambda p: load_hf_dataset(p), "datasets"),
])
def test_missing_framework_names_the_package(monkeypatch, tmp_path, module, call, package):
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependencyError, match=f"pip install {package}"):
        call(tmp_path)


def test_mmseg_registration_with_a_stand_in_framework(monkeypatch, tmp_path):
    registered = {}

    class Registry:
        def register_module(self, name, module, force=False):
            registered[name] = module

    class BaseSegDataset:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    mmseg = types.ModuleType("mmseg")
    reg = types.ModuleType("mmseg.registry")
    reg.DATASETS = Registry()
    dsm = types.ModuleType("mmseg.datasets")
    dsm.BaseSegDataset = BaseSegDataset
    for name, mod in (("mmseg", mmseg), ("mmseg.registry", reg), ("mmseg.datasets", dsm)):
        monkeypatch.setitem(sys.modules, name, mod)
    cfg = register_mmseg_dataset("SisgenToy", tmp_path, "toycity", split="val")
    assert cfg["type"] == "SisgenToy" and cfg["data_prefix"]["seg_map_path"] == "ann_dir/val"
    cls = registered["SisgenToy"]
    assert issubclass(cls, BaseSegDataset)
    assert "car" in cls.METAINFO["classes"]
    assert len(cls.METAINFO["palette"]) == len(cls.METAINFO["classes"])
    assert cls(data_root="r").kwargs["seg_map_suffix"] == ".png"


def test_detectron2_registration_with_a_stand_in_framework(monkeypatch, tmp_path):
    calls = {}

    class Catalog(dict):
        def list(self):
            return list(self)

        def remove(self, name):
            self.pop(name)

        def register(self, name, fn):
            self[name] = fn

    class Meta:
        def set(self, **kw):
            calls["meta"] = kw

    class MetaCatalog:
        def get(self, name):
            return Meta()

        def remove(self, name):
            pass

    d2 = types.ModuleType("detectron2")
    data = types.ModuleType("detectron2.data")
    data.DatasetCatalog, data.MetadataCatalog = Catalog(), MetaCatalog()
    dsets = types.ModuleType("detectron2.data.datasets")
    dsets.register_coco_instances = lambda *a: calls.setdefault("coco", a)
    dsets.load_sem_seg = lambda *a, **k: calls.setdefault("sem", (a, k))
    for name, mod in (("detectron2", d2), ("detectron2.data", data),
                      ("detectron2.data.datasets", dsets)):
        monkeypatch.setitem(sys.modules, name, mod)
    with pytest.raises(Exception, match="instances JSON"):
        register_detectron2("syn", tmp_path, "train2017")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps({}))
    (tmp_path / "images" / "train2017").mkdir(parents=True)
    names = register_detectron2("syn", tmp_path, "train2017", vocabulary="toycity")
    assert names == ["syn", "syn_sem_seg"]
    assert calls["coco"][0] == "syn" and calls["coco"][2].endswith("instances_train2017.json")
    assert calls["meta"]["ignore_label"] == 255 and "car" in calls["meta"]["stuff_classes"]
    data.DatasetCatalog["syn_sem_seg"]()
    assert calls["sem"][0][0].endswith("labels/train2017")


def test_hf_dataset_real_path(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"a": [1, 2]}).save_to_disk(str(tmp_path / "d"))
    assert load_hf_dataset(tmp_path / "d")["a"] == [1, 2]
