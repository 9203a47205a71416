"""The mmseg, yolo, folder and hf writers and the COCO panoptic output."""

from __future__ import annotations

import json
import runpy

import cv2
import numpy as np
import pytest
import yaml

from sisgen import LabelMap, SisgenInputError, get_vocabulary, sources
from sisgen.io import read_label_png, read_rgb
from sisgen.vocab import ClassInfo, Vocabulary
from sisgen.writers import available_writers, get_writer
from sisgen.writers.coco import rgb2id
from sisgen.writers.folder import uint16_instances
from sisgen.writers.yolo import part_polygons

ROAD, SKY, BUILDING, PERSON, RIDER, CAR = 7, 23, 11, 24, 25, 26


@pytest.fixture(scope="module")
def cs_vocab():
    return get_vocabulary("cityscapes")


@pytest.fixture(scope="module")
def coco_vocab():
    return get_vocabulary("coco_stuff")


def city_map(seed: int = 0) -> LabelMap:
    """Sky/building/road, cars (one in two parts, one with a hole), persons, crowds, ignore."""
    rng = np.random.default_rng(seed)
    h, w = 48, 64
    sem = np.full((h, w), ROAD, np.uint8)
    sem[:12] = SKY
    sem[12:20, :30] = BUILDING
    sem[0, 0:3] = 255
    inst = np.zeros((h, w), np.int32)
    sem[22:30, 4:16] = CAR
    inst[22:30, 4:16] = 26003
    sem[24:34, 20:28] = CAR  # one car in two parts (an occluder splits it)
    inst[24:34, 20:28] = 7
    sem[24:34, 23:25] = PERSON
    inst[24:34, 23:25] = 4
    yy, xx = np.mgrid[:h, :w]
    blob = (yy - 38) ** 2 + (xx - 45) ** 2 < 40 + int(rng.integers(0, 20))
    sem[blob] = CAR
    inst[blob] = 12
    hole = (yy - 38) ** 2 + (xx - 45) ** 2 < 4
    sem[hole] = ROAD
    inst[hole] = 0
    sem[14:26, 34:37] = PERSON
    inst[14:26, 34:37] = 3
    sem[40:46, 2:12] = CAR  # a crowd of cars without instance ids
    sem[40:44, 14:16] = RIDER
    return LabelMap(sem, inst, {"id": f"city_{seed}"})


def coco_map(seed: int = 0) -> LabelMap:
    """COCO-Stuff ids: person 0, car 2, dog 17 (things); grass 123, sky-other 156 (stuff)."""
    rng = np.random.default_rng(seed)
    h, w = 40, 56
    sem = np.full((h, w), 123, np.uint8)
    sem[:15] = 156
    sem[38:, 50:] = 255
    inst = np.zeros((h, w), np.int32)
    for k in range(4):
        y, x = int(rng.integers(15, 30)), 3 + 13 * k
        sem[y : y + 8, x : x + 9] = (0, 2, 17, 0)[k]
        inst[y : y + 8, x : x + 9] = k + 1
    sem[2:6, 40:46] = 0  # a crowd of people (instance 0)
    return LabelMap(sem, inst, {"id": f"coco_{seed}"})


def photo(lm: LabelMap, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*lm.shape, 3), dtype=np.uint8)


def instances_of(lm: LabelMap, vocab: Vocabulary) -> list[tuple[int, int, np.ndarray]]:
    """(instance id, class, mask) of the thing instances, in (instance id, class) order."""
    thing = np.isin(lm.semantic, vocab.thing_ids) & (lm.instance != 0)
    keys = sorted({(int(i), int(c)) for i, c in zip(lm.instance[thing], lm.semantic[thing],
                                                      strict=True)})
    return [(i, c, thing & (lm.instance == i) & (lm.semantic == c)) for i, c in keys]


# --------------------------------------------------------------------------- registry
@pytest.mark.parametrize("kind", ["mmseg", "yolo", "folder"])
def test_registry_and_image_format(tmp_path, cs_vocab, kind):
    assert {"mmseg", "yolo", "folder", "hf", "coco", "cityscapes"} <= set(available_writers())
    with pytest.raises(SisgenInputError, match="image_format"):
        get_writer(kind, tmp_path, cs_vocab, image_format="bmp")
    with pytest.raises(SisgenInputError, match="unknown option"):
        get_writer(kind, tmp_path, cs_vocab, colour=True)
    lm = city_map()
    w = get_writer(kind, tmp_path, cs_vocab, image_format="png")
    paths = w.write("a/b", photo(lm), lm)
    w.close()
    w.close()
    np.testing.assert_array_equal(read_rgb(tmp_path / paths["image"]), photo(lm))
    with pytest.raises(RuntimeError, match="closed"):
        w.write("c", photo(lm), lm)
    assert not list(tmp_path.rglob("*.tmp"))


# ------------------------------------------------------------------------------ mmseg
def test_mmseg_layout_meta_and_config(tmp_path, cs_vocab):
    maps = [city_map(s) for s in range(3)]
    with get_writer("mmseg", tmp_path, cs_vocab) as w:
        p0 = w.write(maps[0].id, photo(maps[0]), maps[0])
        w.write(maps[1].id, photo(maps[1]), maps[1])
    assert p0 == {"image": "img_dir/train/city_0.jpg", "label": "ann_dir/train/city_0.png"}
    assert (tmp_path / p0["image"]).read_bytes()[:2] == b"\xff\xd8"
    with get_writer("mmseg", tmp_path, cs_vocab, split="val", image_format="png") as w:
        pv = w.write(maps[2].id, photo(maps[2]), maps[2])
    assert pv["image"] == "img_dir/val/city_2.png"
    for lm, split in ((maps[0], "train"), (maps[1], "train"), (maps[2], "val")):
        ann = read_label_png(tmp_path / f"ann_dir/{split}/{lm.id}.png")
        assert ann.dtype == np.uint8
        np.testing.assert_array_equal(ann, lm.semantic)  # raw ids, 255 kept
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["ignore_index"] == 255 and meta["reduce_zero_label"] is False
    assert meta["classes"] == cs_vocab.names and len(meta["palette"]) == len(cs_vocab)
    np.testing.assert_array_equal(np.array(meta["palette"]), cs_vocab.palette()[cs_vocab.ids])
    assert meta["splits"]["train"]["num_samples"] == 2 and meta["splits"]["val"]["num_samples"] == 1
    assert Vocabulary.from_dict(meta["vocabulary"]) == cs_vocab
    cfg = runpy.run_path(str(tmp_path / "dataset_config.py"))
    train, val = cfg["train_dataset"], cfg["val_dataset"]
    assert train["type"] == "BaseSegDataset" and train["data_root"] == str(tmp_path.resolve())
    assert train["data_prefix"] == {"img_path": "img_dir/train", "seg_map_path": "ann_dir/train"}
    assert (train["img_suffix"], val["img_suffix"]) == (".jpg", ".png")
    assert train["seg_map_suffix"] == ".png" and train["reduce_zero_label"] is False
    assert train["ignore_index"] == 255
    assert train["metainfo"]["classes"] == tuple(cs_vocab.names)
    assert train["metainfo"]["palette"] == meta["palette"]
    assert cfg["metainfo"] == train["metainfo"]


def test_mmseg_resume_gaps_and_vocab_check(tmp_path):
    vocab = Vocabulary("gappy", [ClassInfo(0, "ground", (1, 2, 3)),
                                 ClassInfo(3, "tree", (4, 5, 6), True)])
    lm = LabelMap(np.array([[0, 3], [255, 3]], np.uint8))
    with get_writer("mmseg", tmp_path, vocab) as w:
        w.write("a", photo(lm), lm)
    lm2 = LabelMap(np.array([[3, 3], [0, 0]], np.uint8))
    with get_writer("mmseg", tmp_path, vocab, image_format="png") as w:
        w.write("a", photo(lm2), lm2)  # re-written: replaces, format switch drops the .jpg
        w.write("b", photo(lm), lm)
    assert sorted(p.name for p in (tmp_path / "img_dir/train").iterdir()) == ["a.png", "b.png"]
    np.testing.assert_array_equal(read_label_png(tmp_path / "ann_dir/train/a.png"), lm2.semantic)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["classes"] == ["ground", "unused_1", "unused_2", "tree"]
    assert meta["palette"] == [[1, 2, 3], [0, 0, 0], [0, 0, 0], [4, 5, 6]]
    assert meta["splits"]["train"]["num_samples"] == 2
    assert runpy.run_path(str(tmp_path / "dataset_config.py"))["train_dataset"][
        "img_suffix"] == ".png"
    with pytest.raises(SisgenInputError, match="another vocabulary"):
        get_writer("mmseg", tmp_path, "cityscapes")


# ------------------------------------------------------------------------------- yolo
def parse_yolo(path) -> list[tuple[int, np.ndarray]]:
    out = []
    for line in path.read_text().splitlines():
        vals = line.split()
        assert len(vals) >= 7 and len(vals) % 2 == 1, line
        out.append((int(vals[0]), np.array(vals[1:], np.float64).reshape(-1, 2)))
    return out


def raster(poly: np.ndarray, shape) -> np.ndarray:
    """Rasterise a normalised polygon as Ultralytics does (cv2.fillPoly at image size)."""
    h, w = shape
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(poly * (w, h)).astype(np.int32)], 1)
    return m.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize("vocab_name,make", [("cityscapes", city_map), ("coco_stuff", coco_map)])
def test_yolo_labels_and_data_yaml(tmp_path, vocab_name, make):
    vocab = get_vocabulary(vocab_name)
    things = [c for c in vocab.classes if c.is_thing]
    maps = [make(s) for s in range(3)]
    with get_writer("yolo", tmp_path, vocab) as w:
        paths = [w.write(lm.id, photo(lm), lm) for lm in maps]
    assert paths[0] == {"image": f"images/train/{maps[0].id}.jpg",
                        "label": f"labels/train/{maps[0].id}.txt"}
    for lm, p in zip(maps, paths, strict=True):
        lines = parse_yolo(tmp_path / p["label"])
        insts = instances_of(lm, vocab)
        union = {k: np.zeros(lm.shape, bool) for k in range(len(insts))}
        for cls_index, poly in lines:
            assert 0 <= cls_index < len(things)
            assert poly.min() >= 0.0 and poly.max() <= 1.0
            m = raster(poly, lm.shape)
            k = max(union, key=lambda k: (m & insts[k][2]).sum())  # the instance it covers
            assert things[cls_index].id == insts[k][1]
            union[k] |= m
        for k, (_, _, mask) in enumerate(insts):
            assert iou(union[k], mask) >= 0.9, (lm.id, k)
        n_parts = sum(cv2.connectedComponents(m.astype(np.uint8), connectivity=8)[0] - 1
                      for _, _, m in insts)
        assert len(lines) == n_parts  # one line per part, no crowd or stuff lines
    if vocab_name == "cityscapes":  # the car split by a person gives two lines
        assert sum(cv2.connectedComponents(m.astype(np.uint8))[0] - 1
                   for i, _, m in instances_of(maps[0], vocab) if i == 7) == 2
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert {"path", "train", "val", "names", "nc"} <= set(data)
    assert data["path"] == str(tmp_path.resolve())
    assert data["train"] == "images/train" and data["val"] == "images/train"
    assert data["names"] == {i: c.name for i, c in enumerate(things)}
    assert data["nc"] == len(things)
    assert (tmp_path / data["path"] / data["train"]).is_dir()


def test_yolo_stuff_resume_and_edge_cases(tmp_path, cs_vocab):
    lm = city_map()
    with get_writer("yolo", tmp_path, cs_vocab, split="val", include_stuff=True) as w:
        w.write(lm.id, photo(lm), lm)
    lines = parse_yolo(tmp_path / f"labels/val/{lm.id}.txt")
    classes = [c.id for c in cs_vocab.classes]
    got = {classes[i] for i, _ in lines}
    assert {ROAD, SKY, BUILDING, CAR, PERSON} <= got and 255 not in got
    sky = [raster(p, lm.shape) for i, p in lines if classes[i] == SKY]
    assert len(sky) == 1 and iou(sky[0], lm.semantic == SKY) >= 0.9
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(cs_vocab.names))
    assert data["train"] == data["val"] == "images/val"
    with pytest.raises(SisgenInputError, match="other class names"):
        get_writer("yolo", tmp_path, cs_vocab)  # things only: other names
    # resume with train split: earlier val kept; rewrite replaces; empty map -> empty file
    with get_writer("yolo", tmp_path, cs_vocab, split="train", include_stuff=True) as w:
        empty = LabelMap(np.full((8, 8), 255, np.uint8), None, {"id": "empty"})
        w.write("empty", photo(empty), empty)
        w.write("empty", photo(empty), empty)
    assert (tmp_path / "labels/train/empty.txt").read_text() == ""
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert (data["train"], data["val"]) == ("images/train", "images/val")
    assert len(list((tmp_path / "images/train").iterdir())) == 1
    # a single pixel and a one-pixel line still give a polygon around them
    m = np.zeros((10, 10), bool)
    m[2, 2] = True
    m[6, 1:8] = True
    polys = part_polygons(m)
    assert len(polys) == 2 and all(len(p) >= 3 for p in polys)
    filled = np.zeros((10, 10), np.uint8)
    cv2.fillPoly(filled, [np.round(p).astype(np.int32) for p in polys], 1)
    assert filled[m].all()
    with pytest.raises(SisgenInputError, match="no thing classes"):
        get_writer("yolo", tmp_path / "x", Vocabulary("s", [ClassInfo(0, "a", (1, 1, 1))]))


# ----------------------------------------------------------------------------- folder
def test_folder_round_trip(tmp_path, cs_vocab):
    maps = [city_map(s) for s in range(2)]
    big = city_map(5)
    big.meta["id"] = "big"
    big.instance = np.where(big.instance > 0, big.instance + 70000, 0).astype(np.int32)
    plain = LabelMap(maps[0].semantic.copy(), None, {"id": "plain"})
    with get_writer("folder", tmp_path, cs_vocab, image_format="png") as w:  # lossless
        for lm in [*maps, big]:
            w.write(lm.id, photo(lm), lm)
    with get_writer("folder", tmp_path, cs_vocab, image_format="png") as w:  # resume
        w.write(plain.id, photo(plain, 2), plain)
        w.write(maps[1].id, photo(maps[1], 3), maps[1])
    assert json.loads((tmp_path / "vocabulary.json").read_text()) == cs_vocab.to_dict()
    src = sources.open("folder", tmp_path)
    assert src.vocabulary == cs_vocab
    assert src.keys() == ["big", "city_0", "city_1", "plain"]
    expect = {"city_0": (maps[0], 1), "city_1": (maps[1], 3), "plain": (plain, 2), "big": (big, 1)}
    for i, key in enumerate(src.keys()):
        got = src.load(i)
        lm, seed = expect[key]
        assert got.id == key
        np.testing.assert_array_equal(got.semantic, lm.semantic)
        np.testing.assert_array_equal(src.photo(i), photo(lm, seed))
        if lm.instance is None:
            assert got.instance is None
        elif key == "big":  # ids over 65535: renumbered 1..N, same partition
            ids = np.unique(lm.instance[lm.instance > 0])
            want = np.searchsorted(ids, lm.instance) + 1
            want[lm.instance == 0] = 0
            np.testing.assert_array_equal(got.instance, want)
        else:
            np.testing.assert_array_equal(got.instance, lm.instance)
    assert not (tmp_path / "instances/plain.png").exists()
    with pytest.raises(SisgenInputError, match="another vocabulary"):
        get_writer("folder", tmp_path, "coco_stuff")


def test_uint16_instances():
    a = np.array([[0, 5, 65535]], np.int32)
    assert uint16_instances(a).dtype == np.uint16
    np.testing.assert_array_equal(uint16_instances(a), a)
    np.testing.assert_array_equal(uint16_instances(np.array([[0, 70000, -3, 9]])), [[0, 3, 1, 2]])


# --------------------------------------------------------------------------- panoptic
@pytest.mark.parametrize("vocab_name,make", [("coco_stuff", coco_map), ("cityscapes", city_map)])
def test_coco_panoptic(tmp_path, vocab_name, make):
    vocab = get_vocabulary(vocab_name)
    maps = [make(s) for s in range(3)]
    with get_writer("coco", tmp_path, vocab, split="val2017", panoptic=True) as w:
        paths = [w.write(lm.id, photo(lm), lm) for lm in maps[:2]]
    with get_writer("coco", tmp_path, vocab, split="val2017", panoptic=True) as w:  # resume
        paths.append(w.write(maps[2].id, photo(maps[2]), maps[2]))
        paths[0] = w.write(maps[0].id, photo(maps[0]), maps[0])
    assert paths[0]["panoptic"] == f"annotations/panoptic_val2017/{maps[0].id}.png"
    doc = json.loads((tmp_path / "annotations/panoptic_val2017.json").read_text())
    assert {"info", "licenses", "images", "annotations", "categories"} <= set(doc)
    cats = {c["id"]: c for c in doc["categories"]}
    assert set(cats) == {c.id + 1 for c in vocab.classes}
    assert all(cats[c.id + 1]["isthing"] == int(c.is_thing) for c in vocab.classes)
    assert len(doc["images"]) == len(doc["annotations"]) == 3
    images = {i["id"]: i for i in doc["images"]}
    thing = np.isin(np.arange(256), vocab.thing_ids)
    for lm in maps:
        ann = next(a for a in doc["annotations"] if a["file_name"] == f"{lm.id}.png")
        img = images[ann["image_id"]]
        assert img["file_name"] == f"{lm.id}.jpg" and (img["height"], img["width"]) == lm.shape
        ids = rgb2id(read_rgb(tmp_path / "annotations/panoptic_val2017" / ann["file_name"]))
        segs = ann["segments_info"]
        assert sorted(np.unique(ids[ids > 0]).tolist()) == sorted(s["id"] for s in segs)
        np.testing.assert_array_equal(ids == 0, lm.semantic == 255)  # void = ignore only
        painted = np.full(lm.shape, 255, np.int64)
        expected = {(c + 1, m.tobytes()) for _, c, m in instances_of(lm, vocab)}
        sem = lm.semantic
        crowd = thing[sem] & (lm.instance == 0)
        for c in np.unique(sem[crowd]):
            expected.add((int(c) + 1, (crowd & (sem == c)).tobytes()))
        for c in np.unique(sem[~thing[sem] & (sem != 255)]):
            expected.add((int(c) + 1, (sem == c).tobytes()))
        got = set()
        for s in segs:
            m = ids == s["id"]
            ys, xs = np.nonzero(m)
            assert s["area"] == int(m.sum())
            assert s["bbox"] == [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1,
                                 int(np.ptp(ys)) + 1]
            assert s["iscrowd"] == int(bool(crowd[m].all()))
            assert cats[s["category_id"]]["isthing"] == int(thing[s["category_id"] - 1])
            painted[m] = s["category_id"] - 1
            got.add((s["category_id"], m.tobytes()))
        assert got == expected  # one segment per thing instance, crowd class and stuff class
        np.testing.assert_array_equal(painted, sem)


def test_panoptic_matches_panopticapi(tmp_path, coco_vocab):
    utils = pytest.importorskip("panopticapi.utils")
    lm = coco_map()
    with get_writer("coco", tmp_path, coco_vocab, panoptic=True) as w:
        p = w.write(lm.id, photo(lm), lm)
    rgb = read_rgb(tmp_path / p["panoptic"])
    np.testing.assert_array_equal(utils.rgb2id(rgb), rgb2id(rgb))


def test_coco_without_panoptic_writes_none(tmp_path, coco_vocab):
    lm = coco_map()
    with get_writer("coco", tmp_path, coco_vocab) as w:
        p = w.write(lm.id, photo(lm), lm)
    assert "panoptic" not in p
    assert not list((tmp_path / "annotations").glob("panoptic*"))


# --------------------------------------------------------------------------------- hf
def test_hf_missing_datasets(tmp_path, cs_vocab, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets" or name.startswith("datasets."):
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(SisgenInputError, match="pip install datasets"):
        get_writer("hf", tmp_path, cs_vocab)


def test_hf_dataset(tmp_path, cs_vocab):
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("PIL")
    maps = [city_map(s) for s in range(2)]
    big = city_map(4)
    big.meta["id"] = "big"
    big.instance = np.where(big.instance > 0, big.instance + 1000, 0).astype(np.int32)
    plain = LabelMap(maps[0].semantic.copy(), None, {"id": "plain"})
    with get_writer("hf", tmp_path, cs_vocab) as w:
        p = w.write(maps[0].id, photo(maps[0]), maps[0])
        w.write(maps[1].id, photo(maps[1]), maps[1])
    assert p["image"] == "buffer/images/city_0.jpg"  # JPEG by default
    assert len(datasets.load_from_disk(str(tmp_path / "hf"))) == 2
    # a killed run's sample whose image never landed is left out, not a crash
    (tmp_path / "buffer/labels/torn.png").write_bytes(
        (tmp_path / "buffer/labels/city_0.png").read_bytes())
    with get_writer("hf", tmp_path, cs_vocab, image_format="png") as w:  # resume, lossless
        w.write(big.id, photo(big), big)
        w.write(plain.id, photo(plain), plain)
        w.write(maps[1].id, photo(maps[1], 7), maps[1])
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert set(ds.features) == {"image", "label", "instance", "id"}
    assert isinstance(ds.features["label"], datasets.Image)
    assert ds["id"] == ["big", "city_0", "city_1", "plain"]
    expect = {"city_0": (maps[0], 1), "city_1": (maps[1], 7), "big": (big, 1),
              "plain": (plain, 1)}
    for row in ds:
        lm, seed = expect[row["id"]]
        image = np.array(row["image"].convert("RGB"))
        if row["id"] == "city_0":  # written as JPEG by the first run (lossy)
            assert image.shape == photo(lm, seed).shape
        else:
            np.testing.assert_array_equal(image, photo(lm, seed))
        label = np.array(row["label"])
        assert label.dtype == np.uint8
        np.testing.assert_array_equal(label, lm.semantic)
        if lm.instance is None:
            assert row["instance"] is None
        else:
            np.testing.assert_array_equal(np.array(row["instance"]).astype(np.int64),
                                          lm.instance)
    voc = json.loads((tmp_path / "hf/vocabulary.json").read_text())
    assert Vocabulary.from_dict(voc) == cs_vocab
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf.tmp")]
