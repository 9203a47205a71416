"""Training datasets: every source kind, the papers' augmentations, determinism, validation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sisgen.errors import SisgenInputError
from sisgen.labelmap import LabelMap, instance_edges
from sisgen.sources import open as open_source
from sisgen.training.data import (
    Augmentation,
    PairedDataset,
    build_dataset,
    item_rng,
    open_run_source,
    palette_to_ids,
    to_training_tensors,
)
from sisgen.vocab import Vocabulary, get_vocabulary

KEYS = {"labels", "instances", "edges", "image"}
COLOURS = [(128, 64, 128), (70, 70, 70), (107, 142, 35), (220, 20, 60), (0, 0, 142)]


# ----------------------------------------------------------------------------- helpers
def _vocab_dict() -> dict:
    return {"name": "tiny", "classes": [
        {"id": i, "name": f"c{i}", "color": list(c), "is_thing": i >= 3}
        for i, c in enumerate(COLOURS)]}


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _write_gray(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)


def _block_maps(seed: int, shape=(48, 96), block=4) -> tuple[np.ndarray, np.ndarray]:
    """Labels of ``block``-aligned squares; instances ``class*1000 + k`` on thing classes."""
    rng = np.random.default_rng(seed)
    h, w = shape
    small = rng.integers(0, len(COLOURS), (h // block, w // block)).astype(np.uint8)
    sem = np.kron(small, np.ones((block, block), np.uint8))
    ids = np.arange(sem.size // block**2).reshape(small.shape) % 7 + 1
    inst = np.where(sem >= 3, sem.astype(np.int32) * 1000
                    + np.kron(ids, np.ones((block, block), np.int64)), 0).astype(np.uint16)
    return sem, inst


def _folder(tmp_path: Path, n: int = 3, shape=(48, 96)) -> Path:
    """A custom folder dataset whose photos are the labels painted in the class colours."""
    root = tmp_path / "custom"
    root.mkdir()
    (root / "vocabulary.json").write_text(json.dumps(_vocab_dict()))
    pal = np.array(COLOURS, np.uint8)
    for i in range(n):
        sem, inst = _block_maps(i, shape)
        _write_gray(root / "labels" / f"s{i}.png", sem)
        _write_gray(root / "instances" / f"s{i}.png", inst)
        _write_rgb(root / "images" / f"s{i}.png", pal[sem])
    return root


def _photo_u8(item: dict) -> np.ndarray:
    return ((item["image"].permute(1, 2, 0).numpy() + 1.0) * 127.5).round().astype(np.uint8)


def _check_item(item: dict, size: tuple[int, int], vocab: Vocabulary) -> None:
    assert set(item) == KEYS
    h, w = size
    assert item["labels"].dtype == torch.int64 and item["labels"].shape == (h, w)
    assert item["instances"].dtype == torch.int64 and item["instances"].shape == (h, w)
    assert item["edges"].dtype == torch.float32 and item["edges"].shape == (1, h, w)
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, h, w)
    assert item["image"].min() >= -1.0 and item["image"].max() <= 1.0
    assert set(item["labels"].unique().tolist()) <= set(vocab.ids) | {255}
    assert set(item["edges"].unique().tolist()) <= {0.0, 1.0}


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in KEYS)


# ------------------------------------------------------------------------ real samples
def test_cityscapes_items_are_aligned(cityscapes_root: Path) -> None:
    src = open_source("cityscapes", cityscapes_root, split="train")
    ds = PairedDataset(src, (64, 128), seed=3, validate=False)
    ds.validate(limit=2)
    for i in range(2):
        item = ds[i]
        _check_item(item, (64, 128), ds.vocabulary)
        inst, lab = item["instances"], item["labels"]
        has = inst > 0
        assert has.any() and torch.equal(inst[has] // 1000, lab[has])  # same nearest pixels
        assert np.array_equal(item["edges"][0].numpy(), instance_edges(inst.numpy()))


def test_coco_json_items(coco_root: Path) -> None:
    ds = build_dataset({"kind": "coco", "root": str(coco_root), "split": "train2017"},
                       (64, 64), {"mode": "resize_and_crop", "load_size": 72, "crop_size": 64},
                       seed=1, validate=False)
    ds.validate(limit=3)
    for i in range(3):
        item = ds[i]
        _check_item(item, (64, 64), ds.vocabulary)
        cls_of = {r["id"]: r["class_id"] for r in ds.source.load(i).meta["instances"]}
        inst, lab = item["instances"], item["labels"]
        for k in inst.unique().tolist():
            if k:
                assert (lab[inst == k] == cls_of[k]).all()


def test_coco_stuff_png_items(coco_root: Path) -> None:
    ds = build_dataset({"kind": "coco_stuff", "root": str(coco_root), "split": "val2017"},
                       (64, 64), {"mode": "scale_shortside_and_crop", "load_size": 64},
                       validate=False)
    ds.validate(limit=2)
    item = ds[1]
    _check_item(item, (64, 64), ds.vocabulary)
    src_ids = set(np.unique(ds.source.load(1).semantic).tolist())
    assert set(item["labels"].unique().tolist()) <= src_ids


# ------------------------------------------------------------------- synthetic sources
def test_ade20k_fake_layout(tmp_path: Path) -> None:
    base = tmp_path / "ADEChallengeData2016"
    rng = np.random.default_rng(0)
    for i in range(2):
        sem = np.kron(rng.integers(0, 151, (6, 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
        _write_gray(base / "annotations" / "training" / f"ADE_train_{i + 1:08d}.png", sem)
        _write_rgb(base / "images" / "training" / f"ADE_train_{i + 1:08d}.jpg",
                   rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    ds = build_dataset({"kind": "ade20k", "root": str(tmp_path), "split": "train"}, (32, 32),
                       {"mode": "resize_and_crop", "load_size": 40, "crop_size": 32})
    assert len(ds) == 2 and ds.vocabulary.name == "ade20k"
    item = ds[1]
    _check_item(item, (32, 32), ds.vocabulary)
    assert not item["instances"].any()  # no instance maps in ADE20K: class boundaries
    assert np.array_equal(item["edges"][0].numpy(), instance_edges(item["labels"].numpy()))


def test_toycity_defaults_and_cache() -> None:
    ds = build_dataset({"kind": "toycity", "length": 4}, (32, 64), seed=5, cache=True)
    assert ds.source.size == (32, 64) and len(ds) == 4
    calls = []
    load = ds.source.load
    ds.source.load = lambda i: calls.append(i) or load(i)
    item = ds[2]
    _check_item(item, (32, 64), ds.vocabulary)
    assert calls == []  # validation filled the cache
    fresh = build_dataset({"kind": "toycity", "length": 4}, (32, 64), seed=5, validate=False)
    assert _same(fresh[2], item)


def test_run_source_defaults_come_from_the_source() -> None:
    src = open_run_source({"kind": "toycity", "length": 2}, (32, 64), seed=5)
    assert (src.size, src.split, src.city.seed) == ((32, 64), "train", 5)
    ev = open_run_source({"kind": "toycity", "length": 2}, (32, 64), seed=5, evaluation=True)
    assert (ev.size, ev.split, ev.city.seed) == ((32, 64), "val", 0)
    given = open_run_source({"kind": "toycity", "size": [16, 16], "split": "test"}, (32, 64),
                            evaluation=True)
    assert (given.size, given.split) == ((16, 16), "test")
    with pytest.raises(SisgenInputError, match="needs a 'kind'"):
        open_run_source({"length": 2}, (32, 64))


def test_folder_flip_and_crop_keep_everything_aligned(tmp_path: Path) -> None:
    src = open_source("folder", _folder(tmp_path, n=2))
    pal = np.array(COLOURS, np.uint8)
    ds = PairedDataset(src, (32, 64), {"mode": "resize_and_crop", "load_size": [48, 96]})
    flips, crops = set(), set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        item = ds[0]
        lab, inst = item["labels"].numpy(), item["instances"].numpy()
        assert np.array_equal(_photo_u8(item), pal[lab])  # photo follows the labels exactly
        assert np.array_equal(np.where(inst > 0, inst // 1000, lab), lab)
        assert np.array_equal(item["edges"][0].numpy(), instance_edges(inst))
        g = ds.augmentation.plan((48, 96), item_rng(0, epoch, 0))
        full = src.load(0).semantic[:, ::-1] if g.flip else src.load(0).semantic
        y, x = g.offset
        x = 96 - 64 - x if g.flip else x
        assert np.array_equal(lab, full[y:y + 32, x:x + 64])
        flips.add(g.flip)
        crops.add(g.offset)
    assert flips == {True, False} and len(crops) > 1


def test_resize_is_nearest_for_labels_and_area_for_photos(tmp_path: Path) -> None:
    src = open_source("folder", _folder(tmp_path, n=1))
    pal = np.array(COLOURS, np.uint8)
    # 2x down: 4-pixel blocks stay whole, so the area-averaged photo matches exactly
    item = PairedDataset(src, (24, 48), flip=False)[0]
    assert np.array_equal(_photo_u8(item), pal[item["labels"].numpy()])
    # odd scales: no id is invented, in labels or instances
    lm = src.load(0)
    for aug in ({"mode": "resize_and_crop", "load_size": [37, 71], "crop_size": [21, 33]},
                {"mode": "scale_width_and_crop", "load_size": 150},
                {"mode": "fixed"}):
        ds = PairedDataset(src, (21, 33), aug, seed=2)
        for epoch in range(3):
            ds.set_epoch(epoch)
            it = ds[0]
            assert set(it["labels"].unique().tolist()) <= set(np.unique(lm.semantic).tolist())
            assert set(it["instances"].unique().tolist()) <= set(np.unique(lm.instance).tolist())


def test_nearest_matches_pixel_centre_sampling() -> None:
    lm = LabelMap(np.arange(16, dtype=np.uint8)[None].repeat(4, 0))
    photo = np.zeros((4, 16, 3), np.uint8)
    down = to_training_tensors(lm, photo, (4, 4))["labels"][0].tolist()
    up = to_training_tensors(lm, photo, (4, 40))["labels"][0].tolist()
    assert down == [2, 6, 10, 14]  # PIL NEAREST, as the official pipelines resize
    assert up[:10] == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]


# ---------------------------------------------------------------------- determinism
def test_items_depend_only_on_seed_epoch_index(tmp_path: Path) -> None:
    root = _folder(tmp_path, n=2)
    aug = {"mode": "resize_and_crop", "load_size": [40, 80], "crop_size": [32, 64]}
    a = PairedDataset(open_source("folder", root), (32, 64), aug, seed=7)
    b = PairedDataset(open_source("folder", root), (32, 64), aug, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    torch.manual_seed(0)
    np.random.seed(0)
    first = a[1]
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    assert _same(first, b[1])  # other process / rank / resumed run: the same item
    assert torch.equal(states[0], torch.get_rng_state())  # no global RNG consumed
    assert np.array_equal(states[1], np.random.get_state()[1]) and states[2] == random.getstate()
    items = []
    for epoch in range(4):
        b.set_epoch(epoch)
        items.append(b[1])
    assert not all(_same(items[0], it) for it in items[1:])  # other epochs: other crops
    plans = {Augmentation.from_dict(aug, (32, 64)).plan((48, 96), item_rng(s, 3, 1))
             for s in range(6)}
    assert len(plans) > 1


def test_dataloader_workers_give_the_same_items(tmp_path: Path) -> None:
    ds = PairedDataset(open_source("folder", _folder(tmp_path, n=4)), (32, 64),
                       {"mode": "resize_and_crop", "load_size": [40, 80]}, seed=4)
    ds.set_epoch(2)
    ctx = "fork" if "fork" in torch.multiprocessing.get_all_start_methods() else None
    loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context=ctx)
    batches = list(loader)
    for j, batch in enumerate(batches):
        for k in range(2):
            assert _same({key: batch[key][k] for key in KEYS}, ds[2 * j + k])


# ------------------------------------------------------------------------ validation
def test_rgb_palette_label_is_rejected_with_conversion_hint(tmp_path: Path) -> None:
    root = _folder(tmp_path, n=2)
    vocab = get_vocabulary(root / "vocabulary.json")
    sem, _ = _block_maps(1)
    bad = root / "labels" / "s1.png"
    _write_rgb(bad, vocab.colorize(sem))
    with pytest.raises(SisgenInputError) as e:
        build_dataset({"kind": "folder", "root": str(root)}, (32, 64))
    assert e.value.path == str(bad)
    assert "RGB" in str(e.value) and "palette_to_ids" in str(e.value)
    # the suggested conversion gives the ids back
    rgb = cv2.cvtColor(cv2.imread(str(bad)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(palette_to_ids(rgb, vocab, bad), sem)
    # colours of no vocabulary: a generic conversion message
    _write_rgb(bad, np.random.default_rng(0).integers(0, 256, (48, 96, 3), dtype=np.uint8))
    with pytest.raises(SisgenInputError, match="convert the colours to class ids") as e:
        build_dataset({"kind": "folder", "root": str(root)}, (32, 64))
    assert e.value.path == str(bad)


def test_indexed_palette_png_is_rejected(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    root = _folder(tmp_path, n=1)
    sem, _ = _block_maps(0)
    p = image.fromarray(sem, mode="P")
    p.putpalette([v for c in COLOURS for v in c])
    bad = root / "labels" / "s0.png"
    p.save(bad)
    with pytest.raises(SisgenInputError, match="indexed-colour") as e:
        build_dataset({"kind": "folder", "root": str(root)}, (32, 64))
    assert e.value.path == str(bad)


@pytest.mark.parametrize("name,fmt", [("s9.jpg", ".jpg"), ("s9.jpg", ".png"),
                                      ("s9.png", ".jpg")])
def test_jpeg_label_maps_are_rejected(tmp_path: Path, name: str, fmt: str) -> None:
    root = _folder(tmp_path, n=1)
    sem, _ = _block_maps(9)
    ok, buf = cv2.imencode(fmt, sem)
    bad = root / "labels" / name
    bad.write_bytes(buf.tobytes())
    _write_rgb(root / "images" / "s9.png", np.zeros((48, 96, 3), np.uint8))
    with pytest.raises(SisgenInputError, match="JPEG") as e:
        build_dataset({"kind": "folder", "root": str(root)}, (32, 64))
    assert e.value.path == str(bad)


def test_out_of_vocabulary_ids_are_rejected(tmp_path: Path) -> None:
    root = _folder(tmp_path, n=3)
    sem, _ = _block_maps(2)
    sem[5, 7] = 9
    bad = root / "labels" / "s2.png"
    _write_gray(bad, sem)
    spec = {"kind": "folder", "root": str(root), "validate": False}  # the source does not check
    with pytest.raises(SisgenInputError, match="outside the 'tiny' vocabulary: 9") as e:
        build_dataset(spec, (48, 96))
    assert e.value.path == str(bad)
    ds = build_dataset(spec, (48, 96), validate=False)
    ds.validate(limit=2)  # the bad map is the third
    with pytest.raises(SisgenInputError, match="9"):
        ds[2]  # checked per item too, even without validation


def test_validation_in_worker_processes_reports_the_first_bad_file(tmp_path: Path) -> None:
    root = _folder(tmp_path, n=5)
    for i in (1, 3):
        sem, _ = _block_maps(i)
        sem[0, 0] = 7
        _write_gray(root / "labels" / f"s{i}.png", sem)
    ds = build_dataset({"kind": "folder", "root": str(root), "validate": False}, (48, 96),
                       validate=False)
    ds.validate(limit=1, workers=2)
    with pytest.raises(SisgenInputError, match="vocabulary: 7") as e:
        ds.validate(workers=2)
    assert e.value.path == str(root / "labels" / "s1.png")


def test_photo_problems(tmp_path: Path) -> None:
    root = _folder(tmp_path, n=2)
    spec = {"kind": "folder", "root": str(root)}
    # a pixel of difference is resized away
    _write_rgb(root / "images" / "s1.png", np.zeros((49, 96, 3), np.uint8))
    assert build_dataset(spec, (32, 64))[1]["image"].shape == (3, 32, 64)
    # a uniform scale is fine too
    _write_rgb(root / "images" / "s1.png", np.zeros((96, 192, 3), np.uint8))
    assert build_dataset(spec, (32, 64))[1]["image"].shape == (3, 32, 64)
    _write_rgb(root / "images" / "s1.png", np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(SisgenInputError, match="aspect ratios differ") as e:
        build_dataset(spec, (32, 64))
    assert "s1" in str(e.value)
    (root / "images" / "s1.png").unlink()
    with pytest.raises(SisgenInputError, match="no paired photo") as e:
        build_dataset(spec, (32, 64))
    assert "s1" in str(e.value)


def test_augment_config_errors_and_shapes() -> None:
    size = (32, 32)
    for bad in ({"mode": "zoom"}, {"crop_size": 48}, {"mode": "resize_and_crop", "load_size": 16},
                {"mode": "fixed", "load_size": 64}, {"load": 3}, {"load_size": "big"}):
        with pytest.raises(SisgenInputError):
            Augmentation.from_dict(bad, size)
    shape = (48, 64)
    assert Augmentation.from_dict(None, size).resized_shape(shape) == (32, 32)
    assert Augmentation.from_dict(None, size).flip
    assert not Augmentation.from_dict({"flip": False}, size).flip
    assert Augmentation.from_dict({"flip": False}, size, flip=True).flip
    assert Augmentation.from_dict({"mode": "resize_and_crop", "load_size": 40},
                                  size).resized_shape(shape) == (40, 40)
    sw = Augmentation.from_dict({"mode": "scale_width_and_crop", "load_size": 96}, size)
    assert sw.resized_shape(shape) == (72, 96)
    assert sw.resized_shape((8, 200)) == (32, 800)  # scaled up to cover the crop
    ss = Augmentation.from_dict({"mode": "scale_shortside_and_crop", "load_size": 40}, size)
    assert ss.resized_shape(shape) == (40, 53)
    with pytest.raises(SisgenInputError, match="kind"):
        build_dataset({"root": "x"}, size)


def test_palette_to_ids_shared_and_unknown_colours() -> None:
    vocab = Vocabulary.from_dict({"name": "v", "classes": [
        {"id": 0, "name": "void", "color": [0, 0, 0]},
        {"id": 1, "name": "road", "color": [128, 64, 128]},
        {"id": 2, "name": "static", "color": [0, 0, 0]}]})
    rgb = np.array([[[0, 0, 0], [128, 64, 128]]], np.uint8)
    assert palette_to_ids(rgb, vocab).tolist() == [[0, 1]]
    with pytest.raises(SisgenInputError, match=r"\(1, 2, 3\)"):
        palette_to_ids(np.array([[[1, 2, 3]]], np.uint8), vocab, "x.png")
