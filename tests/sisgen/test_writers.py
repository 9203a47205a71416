from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from sisgen import LabelMap, SisgenInputError, get_vocabulary
from sisgen.io import read_label_png, read_rgb
from sisgen.writers import available_writers, get_writer, safe_stem
from sisgen.writers.cityscapes import cityscapes_instance_ids
from sisgen.writers.coco import mask_to_polygons

ROAD, SKY, BUILDING, PERSON, RIDER, CAR = 7, 23, 11, 24, 25, 26


@pytest.fixture(scope="module")
def cs_vocab():
    return get_vocabulary("cityscapes")


@pytest.fixture(scope="module")
def coco_vocab():
    return get_vocabulary("coco_stuff")


def city_map(seed: int = 0) -> LabelMap:
    """Sky/building/road with cars and persons (mixed id styles) and a crowd of cars."""
    rng = np.random.default_rng(seed)
    h, w = 48, 64
    sem = np.full((h, w), ROAD, np.uint8)
    sem[:12] = SKY
    sem[12:20, :30] = BUILDING
    sem[0, 0:3] = 255
    inst = np.zeros((h, w), np.int32)
    # cars: a Cityscapes-style id, a plain id, a disc-ish blob with a hole
    sem[22:30, 4:16] = CAR
    inst[22:30, 4:16] = 26003
    sem[24:34, 20:28] = CAR
    inst[24:34, 20:28] = 7
    yy, xx = np.mgrid[:h, :w]
    blob = (yy - 38) ** 2 + (xx - 45) ** 2 < 40 + int(rng.integers(0, 20))
    sem[blob] = CAR
    inst[blob] = 12
    hole = (yy - 38) ** 2 + (xx - 45) ** 2 < 4
    sem[hole] = ROAD
    inst[hole] = 0
    # persons: plain ids; one whose id is a *car*-style id (must be renumbered)
    sem[14:26, 34:37] = PERSON
    inst[14:26, 34:37] = 3
    sem[14:26, 40:42] = PERSON
    inst[14:26, 40:42] = 26001
    # a crowd of cars without instance ids, and a rider without one
    sem[40:46, 2:12] = CAR
    sem[40:44, 14:16] = RIDER
    return LabelMap(sem, inst, {"id": f"city/{seed}"})


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
        cls = (0, 2, 17, 0)[k]
        sem[y : y + 8, x : x + 9] = cls
        inst[y : y + 8, x : x + 9] = k + 1
    sem[2:6, 40:46] = 0  # a crowd of people (instance 0)
    return LabelMap(sem, inst, {"id": f"coco_{seed}"})


def photo(lm: LabelMap) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (*lm.shape, 3), dtype=np.uint8)


def test_registry_and_errors(tmp_path, cs_vocab):
    assert {"cityscapes", "coco"} <= set(available_writers())
    with pytest.raises(SisgenInputError, match="unknown writer"):
        get_writer("nope", tmp_path, cs_vocab)
    with pytest.raises(SisgenInputError, match="unknown option"):
        get_writer("cityscapes", tmp_path, cs_vocab, colour=True)
    with pytest.raises(SisgenInputError, match="segmentation"):
        get_writer("coco", tmp_path, cs_vocab, segmentation="mask")
    lm = city_map()
    with get_writer("cityscapes", tmp_path, "cityscapes") as w:
        with pytest.raises(SisgenInputError, match="differs"):
            w.write("x", np.zeros((4, 4, 3), np.uint8), lm)
        with pytest.raises(SisgenInputError, match="uint8 RGB"):
            w.write("x", np.zeros(lm.shape, np.uint8), lm)
        bad = LabelMap(np.full(lm.shape, 200, np.uint8))
        with pytest.raises(SisgenInputError, match="outside"):
            w.write("x", photo(bad), bad)
    with pytest.raises(RuntimeError, match="closed"):
        w.write("y", photo(lm), lm)


def test_safe_stem():
    assert safe_stem("a/b\\c d.png") == "a_b_c_d.png"
    assert safe_stem("../../etc/passwd") == "_.._etc_passwd"
    assert safe_stem("...") == "sample"
    assert safe_stem("frankfurt_000000_000294") == "frankfurt_000000_000294"
    assert len(safe_stem("x" * 500)) == 150


def test_cityscapes_instance_ids_convention():
    sem = np.array([[ROAD, CAR, CAR, PERSON, PERSON, CAR, SKY, CAR]], np.uint8)
    inst = np.array([[0, 26005, 26005, 9, 24002, 4, 5, 0]], np.int32)
    out = cityscapes_instance_ids(sem, inst, [PERSON, CAR])
    # kept: 26005, 24002; renumbered in order of appearance with the smallest free k:
    # person id 9 -> 24000; car id 4 -> 26000; stuff keeps class id even with an instance;
    # a car pixel without instance keeps its class id.
    np.testing.assert_array_equal(out, [[ROAD, 26005, 26005, 24000, 24002, 26000, SKY, CAR]])
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(cityscapes_instance_ids(sem, None, [CAR]), sem)
    with pytest.raises(SisgenInputError, match="class 0"):
        cityscapes_instance_ids(np.zeros((1, 2), np.uint8), np.ones((1, 2), np.int32), [0])
    with pytest.raises(SisgenInputError, match="65535"):
        cityscapes_instance_ids(np.full((1, 2), 90, np.uint8), np.ones((1, 2), np.int32), [90])


def test_cityscapes_writer(tmp_path, cs_vocab):
    lm = city_map()
    img = photo(lm)
    w = get_writer("cityscapes", tmp_path, cs_vocab, split="val", city="synth")
    paths = w.write("frankfurt/000001", img, lm)
    w.close()
    w.close()  # idempotent
    stem = "frankfurt_000001"
    assert paths == {
        "image": f"leftImg8bit/val/synth/{stem}_leftImg8bit.jpg",  # JPEG by default
        "label": f"gtFine/val/synth/{stem}_gtFine_labelIds.png",
        "instance": f"gtFine/val/synth/{stem}_gtFine_instanceIds.png",
        "color": f"gtFine/val/synth/{stem}_gtFine_color.png",
    }
    assert read_rgb(tmp_path / paths["image"]).shape == img.shape  # (noise: JPEG is lossy)
    label = read_label_png(tmp_path / paths["label"])
    assert label.dtype == np.uint8
    np.testing.assert_array_equal(label, lm.semantic)
    ids = read_label_png(tmp_path / paths["instance"], allow_16bit=True)
    assert ids.dtype == np.uint16
    exp = lm.semantic.astype(np.uint16)
    car3 = lm.instance == 26003
    exp[car3] = 26003  # already Cityscapes-style: kept
    exp[lm.instance == 7] = 26000  # renumbered in order of first appearance
    exp[lm.instance == 12] = 26001
    exp[lm.instance == 3] = 24000
    exp[lm.instance == 26001] = 24001  # car-style id on person pixels: renumbered
    np.testing.assert_array_equal(ids, exp)
    # decoding the Cityscapes way gives back class ids everywhere
    decoded = np.where(ids >= 1000, ids // 1000, ids)
    np.testing.assert_array_equal(decoded, lm.semantic)
    color = read_rgb(tmp_path / paths["color"])
    np.testing.assert_array_equal(color, cs_vocab.colorize(lm.semantic))
    assert not list(tmp_path.rglob("*.tmp"))


def test_cityscapes_jpg(tmp_path, cs_vocab):
    lm = city_map()
    with get_writer("cityscapes", tmp_path, cs_vocab, image_format="jpg") as w:
        paths = w.write("a", photo(lm), lm)
    assert paths["image"] == "leftImg8bit/train/sisgen/a_leftImg8bit.jpg"
    assert (tmp_path / paths["image"]).read_bytes()[:2] == b"\xff\xd8"


def paint(coco_inst: COCO, coco_stuff: COCO, image_id: int, shape) -> np.ndarray:
    canvas = np.full(shape, 255, np.uint8)
    for c in (coco_stuff, coco_inst):
        for ann in c.loadAnns(c.getAnnIds(imgIds=[image_id])):
            canvas[c.annToMask(ann).astype(bool)] = ann["category_id"] - 1
    return canvas


def write_coco(root, vocab, maps, **options):
    out = []
    with get_writer("coco", root, vocab, **options) as w:
        for lm in maps:
            out.append(w.write(lm.id, photo(lm), lm))
    return out


@pytest.mark.parametrize("vocab_name,make", [("coco_stuff", coco_map), ("cityscapes", city_map)])
def test_coco_writer_rle_exact(tmp_path, vocab_name, make):
    vocab = get_vocabulary(vocab_name)
    maps = [make(s) for s in range(3)]
    paths = write_coco(tmp_path, vocab, maps)
    assert paths[0]["image"].startswith("images/train2017/") and paths[0]["image"].endswith(".jpg")
    assert paths[0]["label"].startswith("labels/train2017/")
    ci = COCO(str(tmp_path / "annotations/instances_train2017.json"))
    cs = COCO(str(tmp_path / "annotations/stuff_train2017.json"))
    imgs = sorted(ci.dataset["images"], key=lambda i: i["id"])
    assert [i["id"] for i in imgs] == [1, 2, 3]
    for lm, p, img in zip(maps, paths, imgs, strict=True):
        assert img["file_name"] == p["image"].rsplit("/", 1)[1]
        assert (img["height"], img["width"]) == lm.shape
        label = read_label_png(tmp_path / p["label"])
        np.testing.assert_array_equal(label, lm.semantic)
        np.testing.assert_array_equal(paint(ci, cs, img["id"], lm.shape), label)
    # categories: id = class id + 1, things in instances, stuff in stuff
    thing_cats = {c["id"]: c for c in ci.dataset["categories"]}
    stuff_cats = {c["id"]: c for c in cs.dataset["categories"]}
    assert set(thing_cats) == {i + 1 for i in vocab.thing_ids}
    assert all(c["supercategory"] == "thing" for c in thing_cats.values())
    assert all(c["supercategory"] == "stuff" for c in stuff_cats.values())
    assert not set(thing_cats) & set(stuff_cats)
    ann_ids = [a["id"] for a in ci.dataset["annotations"] + cs.dataset["annotations"]]
    assert len(set(ann_ids)) == len(ann_ids)


def test_coco_instances_content(tmp_path, coco_vocab):
    lm = coco_map(0)
    write_coco(tmp_path, coco_vocab, [lm])
    ci = COCO(str(tmp_path / "annotations/instances_train2017.json"))
    cats = {c["id"]: c["name"] for c in ci.dataset["categories"]}
    assert cats[1] == "person" and cats[3] == "car" and cats[18] == "dog"  # real COCO ids
    anns = ci.dataset["annotations"]
    single = [a for a in anns if a["iscrowd"] == 0]
    crowd = [a for a in anns if a["iscrowd"] == 1]
    assert len(single) == 4
    assert sorted(a["category_id"] for a in single) == [1, 1, 3, 18]
    assert [(a["category_id"], a["area"], a["bbox"]) for a in crowd] == [
        (1, 24, [40.0, 2.0, 6.0, 4.0])
    ]
    for a in single:
        m = ci.annToMask(a).astype(bool)
        k = int(np.unique(lm.instance[m])[0])
        np.testing.assert_array_equal(m, lm.instance == k)
        assert a["area"] == int(m.sum())
        ys, xs = np.nonzero(m)
        assert a["bbox"] == [float(xs.min()), float(ys.min()),
                             float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
    cs = COCO(str(tmp_path / "annotations/stuff_train2017.json"))
    assert sorted(a["category_id"] for a in cs.dataset["annotations"]) == [124, 157]


@pytest.mark.parametrize("vocab_name,make", [("coco_stuff", coco_map), ("cityscapes", city_map)])
def test_coco_writer_polygons(tmp_path, vocab_name, make):
    vocab = get_vocabulary(vocab_name)
    maps = [make(s) for s in range(3)]
    paths = write_coco(tmp_path, vocab, maps, segmentation="polygon", image_format="png")
    assert paths[0]["image"].endswith(".png")
    ci = COCO(str(tmp_path / "annotations/instances_train2017.json"))
    cs = COCO(str(tmp_path / "annotations/stuff_train2017.json"))
    singles = [a for a in ci.dataset["annotations"] if a["iscrowd"] == 0]
    assert singles and all(isinstance(a["segmentation"], list) for a in singles)
    for lm, img in zip(maps, sorted(ci.dataset["images"], key=lambda i: i["id"]), strict=True):
        painted = paint(ci, cs, img["id"], lm.shape)
        assert (painted == lm.semantic).mean() >= 0.98


def test_mask_to_polygons_close():
    rng = np.random.default_rng(0)
    for _ in range(10):
        m = np.zeros((50, 60), np.uint8)
        cv2.ellipse(m, (int(rng.integers(15, 45)), int(rng.integers(15, 35))),
                    (int(rng.integers(3, 14)), int(rng.integers(3, 14))),
                    float(rng.integers(0, 180)), 0, 360, 1, -1)
        polys = mask_to_polygons(m)
        back = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, 50, 60)))
        assert (back != m).sum() <= max(2, 0.02 * m.sum())
    assert mask_to_polygons(np.zeros((5, 5), np.uint8)) == []


def test_coco_parts_resume_and_idempotent_close(tmp_path, coco_vocab):
    maps = [coco_map(s) for s in range(3)]
    w = get_writer("coco", tmp_path, coco_vocab, split="val2017")
    w.write(maps[0].id, photo(maps[0]), maps[0])
    parts = tmp_path / "annotations/parts_val2017.jsonl"
    assert len(parts.read_text().splitlines()) == 1  # on disk before close
    w.write(maps[1].id, photo(maps[1]), maps[1])
    w.close()
    inst_path = tmp_path / "annotations/instances_val2017.json"
    first = inst_path.read_bytes()
    w.close()  # idempotent
    assert inst_path.read_bytes() == first
    # a killed run leaves a torn line; a resumed run appends, rewrites one sample, rebuilds
    with open(parts, "a") as f:
        f.write('{"image": {"id": 9, "file_na')
    with get_writer("coco", tmp_path, coco_vocab, split="val2017") as w2:
        w2.write(maps[2].id, photo(maps[2]), maps[2])
        w2.write(maps[0].id, photo(maps[0]), maps[0])  # again: same image id, one record
    ci = COCO(str(inst_path))
    cs = COCO(str(tmp_path / "annotations/stuff_val2017.json"))
    names = {i["file_name"]: i["id"] for i in ci.dataset["images"]}
    assert names == {"coco_0.jpg": 1, "coco_1.jpg": 2, "coco_2.jpg": 3}
    for lm in maps:
        img_id = names[f"{lm.id}.jpg"]
        np.testing.assert_array_equal(paint(ci, cs, img_id, lm.shape), lm.semantic)
    per_image = [len(ci.getAnnIds(imgIds=[i])) for i in (1, 2, 3)]
    assert per_image == [5, 5, 5]
    json.loads(inst_path.read_text())


def test_one_pass_rle_area_bbox_match_pycocotools_per_mask():
    from sisgen.writers.coco import image_records

    vocab = get_vocabulary("toycity")
    rng = np.random.default_rng(0)
    for t in range(60):
        h, w = (int(v) for v in rng.integers(1, 24, 2))
        sem = rng.choice([0, 1, 3, 8, 9, 255], size=(h, w)).astype(np.uint8)
        inst = rng.integers(0, 4, size=(h, w)).astype(np.int32) if t % 3 else None
        things, stuff = image_records(sem, inst, vocab)
        covered = np.zeros((h, w), bool)
        for rec in things + stuff:
            mask = mask_utils.decode(rec["segmentation"]).astype(bool)
            assert not (mask & covered).any()  # segments partition the annotated pixels
            covered |= mask
            assert (sem[mask] == rec["category_id"] - 1).all()
            expected = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            assert rec["segmentation"]["counts"] == expected["counts"].decode("ascii")
            assert rec["area"] == int(mask.sum())
            assert rec["bbox"] == [float(v) for v in mask_utils.toBbox(expected)]
        assert (covered == (sem != 255)).all()
        crowds = [r for r in things if r["iscrowd"]]
        if inst is None:
            assert len(crowds) == len(things)
