"""Tests of the coco_panoptic and ade20k sources and of Cityscapes polygons, on tmp_path data."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import sisgen.sources as sources
from sisgen.errors import SisgenInputError
from sisgen.io import write_image, write_json
from sisgen.sources.cityscapes import rasterize_polygons
from sisgen.sources.coco_panoptic import rgb_to_segment_ids, segment_ids_to_rgb
from sisgen.vocab import COCO_PANOPTIC_CATEGORY_IDS, get_vocabulary


# ---------------------------------------------------------------------- coco panoptic
def _cid(name: str) -> int:
    """COCO panoptic category id of a class name."""
    return COCO_PANOPTIC_CATEGORY_IDS[get_vocabulary("coco_panoptic")[name].id]


def _synthetic_panoptic(h: int = 24, w: int = 32) -> tuple[np.ndarray, list[dict], np.ndarray,
                                                           np.ndarray]:
    """A segment-id map, its segments_info and the expected semantic / instance maps."""
    vocab = get_vocabulary("coco_panoptic")
    ids = np.zeros((h, w), np.int64)  # void border column
    ids[:, 1:] = 5000                                # sky-other-merged (stuff)
    ids[h // 2:, 1:] = 70000                         # road (stuff)
    ids[4:10, 3:9] = 1 + 256 * 3                     # person #1
    ids[12:20, 10:16] = 2 + 256**2 * 200             # person #2 (large id, blue channel)
    ids[14:22, 20:30] = 77777                        # car
    ids[2:6, 20:26] = 424242                         # crowd of people
    table = [  # (segment id, class name, iscrowd); bus is listed but not in the PNG
        (5000, "sky-other-merged", 0), (1 + 256 * 3, "person", 0), (70000, "road", 0),
        (2 + 256**2 * 200, "person", 0), (77777, "car", 0), (424242, "person", 1),
        (999, "bus", 0),
    ]
    segs = [{"id": i, "category_id": _cid(n), "iscrowd": c} for i, n, c in table]
    cls = {0: 255}
    inst = {0: 0}
    count = 0
    for i, n, c in table:
        cls[i] = vocab[n].id
        inst[i] = 0
        if vocab[n].is_thing and not c:
            count += 1
            inst[i] = count
    sem = np.vectorize(cls.get)(ids).astype(np.uint8)
    ins = np.vectorize(inst.get)(ids).astype(np.int32)
    return ids, segs, sem, ins


def _write_panoptic(root: Path, split: str = "val2017", n: int = 2) -> list[tuple]:
    ann_dir = root / "annotations"
    png_dir = ann_dir / f"panoptic_{split}"
    png_dir.mkdir(parents=True)
    images, anns, truth = [], [], []
    for k in range(n):
        ids, segs, sem, ins = _synthetic_panoptic()
        if k:  # the second image: mirrored
            ids, sem, ins = ids[:, ::-1].copy(), sem[:, ::-1].copy(), ins[:, ::-1].copy()
        iid = 100 + k
        stem = f"{iid:012d}"
        write_image(png_dir / f"{stem}.png", segment_ids_to_rgb(ids))
        images.append({"id": iid, "file_name": f"{stem}.jpg", "height": ids.shape[0],
                       "width": ids.shape[1]})
        anns.append({"image_id": iid, "file_name": f"{stem}.png", "segments_info": segs})
        truth.append((stem, sem, ins, segs))
    cats = [{"id": c, "name": n_, "isthing": int(i < 80)} for i, (c, n_) in
            enumerate(zip(COCO_PANOPTIC_CATEGORY_IDS, get_vocabulary("coco_panoptic").names,
                          strict=True))]
    write_json(ann_dir / f"panoptic_{split}.json",
               {"images": images[::-1], "annotations": anns[::-1], "categories": cats})
    return truth


def test_coco_panoptic_vocabulary() -> None:
    v = get_vocabulary("coco_panoptic")
    assert len(v) == 133 and v.ids == list(range(133))
    assert len(v.thing_ids) == 80 and v.thing_ids == list(range(80))
    assert len(set(COCO_PANOPTIC_CATEGORY_IDS)) == 133
    assert list(COCO_PANOPTIC_CATEGORY_IDS) == sorted(COCO_PANOPTIC_CATEGORY_IDS)
    assert COCO_PANOPTIC_CATEGORY_IDS[0] == 1 and COCO_PANOPTIC_CATEGORY_IDS[-1] == 200
    assert v[79].name == "toothbrush" and COCO_PANOPTIC_CATEGORY_IDS[79] == 90
    assert v[80].name == "banner" and COCO_PANOPTIC_CATEGORY_IDS[80] == 92
    assert COCO_PANOPTIC_CATEGORY_IDS[v["sky-other-merged"].id] == 187


def test_segment_id_codec_round_trip() -> None:
    ids = np.array([[0, 1, 255, 256], [65535, 65536, 256**3 - 1, 123456]], np.int64)
    rgb = segment_ids_to_rgb(ids)
    assert rgb.dtype == np.uint8 and tuple(rgb[0, 3]) == (0, 1, 0)
    assert (rgb_to_segment_ids(rgb) == ids).all()


def test_coco_panoptic_round_trip(tmp_path: Path) -> None:
    truth = _write_panoptic(tmp_path)
    for split in ("val2017", "val"):
        src = sources.open("coco_panoptic", tmp_path, split=split)
        assert src.vocabulary.name == "coco_panoptic" and src.split == "val2017"
        assert src.keys() == [t[0] for t in truth]  # sorted by image id
        for i, (stem, sem, ins, segs) in enumerate(truth):
            lm = src.load(i)
            assert lm.id == stem and lm.meta["image_id"] == 100 + i
            assert lm.semantic.dtype == np.uint8 and (lm.semantic == sem).all()
            assert lm.instance is not None and (lm.instance == ins).all()
            assert set(np.unique(lm.instance).tolist()) == {0, 1, 2, 3}
            assert lm.meta["size"] == sem.shape
            assert Path(lm.meta["file"]).name == f"{stem}.png"
            recs = {r["segment_id"]: r for r in lm.meta["segments"]}
            assert len(recs) == len(segs)
            assert recs[424242]["iscrowd"] == 1 and recs[424242]["instance_id"] == 0
            assert recs[5000]["class_id"] == src.vocabulary["sky-other-merged"].id
    assert src.photo(0) is None
    photo = np.full((24, 32, 3), 7, np.uint8)
    write_image(tmp_path / "val2017" / f"{truth[0][0]}.png", photo)
    (tmp_path / "val2017" / f"{truth[0][0]}.png").rename(
        tmp_path / "val2017" / f"{truth[0][0]}.jpg")
    got = src.photo(0)
    assert got is not None and got.shape == (24, 32, 3)


def test_coco_panoptic_bad_input(tmp_path: Path) -> None:
    truth = _write_panoptic(tmp_path)
    ann = tmp_path / "annotations" / "panoptic_val2017.json"
    png = tmp_path / "annotations" / "panoptic_val2017" / f"{truth[0][0]}.png"
    src = sources.open("coco_panoptic", tmp_path, split="val2017")

    # a segment id in the PNG that segments_info does not list
    ids = rgb_to_segment_ids(cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB))
    bad = ids.copy()
    bad[0, 5] = 31337
    write_image(png, segment_ids_to_rgb(bad))
    with pytest.raises(SisgenInputError, match=rf"{png.name}.*31337"):
        src.load(0)
    src.load(1)  # the other sample is fine

    # missing PNG
    png.unlink()
    with pytest.raises(SisgenInputError, match=png.name):
        src.load(0)

    # a JPEG where the PNG should be
    png.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    with pytest.raises(SisgenInputError, match="not a PNG"):
        src.load(0)

    # wrong size
    write_image(png, segment_ids_to_rgb(ids[:10]))
    with pytest.raises(SisgenInputError, match=png.name):
        src.load(0)

    # unknown category (not one of the 133)
    data = json.loads(ann.read_text())
    write_image(png, segment_ids_to_rgb(ids))
    data["annotations"][1]["segments_info"][0]["category_id"] = 91
    write_json(ann, data)
    with pytest.raises(SisgenInputError, match=rf"{ann.name}.*category_id 91"):
        sources.open("coco_panoptic", tmp_path, split="val2017").load(0)

    # malformed JSON: syntax, structure, dangling image id
    ann.write_text("{not json")
    with pytest.raises(SisgenInputError, match=ann.name):
        sources.open("coco_panoptic", tmp_path, split="val2017")
    write_json(ann, {"images": [], "annotations": {}})
    with pytest.raises(SisgenInputError, match=rf"{ann.name}.*annotations"):
        sources.open("coco_panoptic", tmp_path, split="val2017")
    write_json(ann, {"images": [], "annotations": [
        {"image_id": 5, "file_name": "x.png", "segments_info": []}]})
    with pytest.raises(SisgenInputError, match=rf"{ann.name}.*image 5"):
        sources.open("coco_panoptic", tmp_path, split="val2017")
    write_json(ann, {"images": [{"id": 5, "file_name": "x.jpg", "width": 4, "height": 4}],
                     "annotations": [{"image_id": 5, "file_name": "x.png",
                                      "segments_info": [{"id": "a", "category_id": 1}]}]})
    with pytest.raises(SisgenInputError, match=ann.name):
        sources.open("coco_panoptic", tmp_path, split="val2017")
    with pytest.raises(SisgenInputError, match="panoptic_test2017.json"):
        sources.open("coco_panoptic", tmp_path, split="test2017")


# ---------------------------------------------------------------------------- ADE20K
def _write_ade(root: Path, n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    maps = []
    for split, prefix in (("training", "ADE_train"), ("validation", "ADE_val")):
        (root / "annotations" / split).mkdir(parents=True)
        (root / "images" / split).mkdir(parents=True)
        for k in range(n):
            m = rng.integers(0, 151, (12, 16)).astype(np.uint8)
            write_image(root / "annotations" / split / f"{prefix}_{k + 1:08d}.png", m)
            if split == "training":
                maps.append(m)
                write_image(root / "images" / split / f"{prefix}_{k + 1:08d}.jpg",
                            np.zeros((12, 16, 3), np.uint8))
    return maps


def test_ade20k_source(tmp_path: Path) -> None:
    root = tmp_path / "ADEChallengeData2016"
    maps = _write_ade(root)
    for r, split in ((root, "training"), (tmp_path, "train")):  # parent folder, alias
        src = sources.open("ade20k", r, split=split)
        assert src.vocabulary.name == "ade20k" and src.split == "training"
        assert src.keys() == [f"ADE_train_{k:08d}" for k in (1, 2, 3)]
        for i, m in enumerate(maps):
            lm = src.load(i)
            assert (lm.semantic == m).all() and lm.instance is None
            assert lm.meta["source"] == "ade20k"
        photo = src.photo(0)
        assert photo is not None and photo.shape == (12, 16, 3)
    val = sources.open("ade20k", root, split="val")
    assert len(val) == 3 and val.photo(0) is None


def test_ade20k_bad_input(tmp_path: Path) -> None:
    _write_ade(tmp_path)
    f = tmp_path / "annotations" / "training" / "ADE_train_00000002.png"
    write_image(f, np.full((12, 16), 151, np.uint8))
    src = sources.open("ade20k", tmp_path, split="train")
    src.load(0)
    with pytest.raises(SisgenInputError, match=rf"{f.name}.*151"):
        src.load(1)
    with pytest.raises(SisgenInputError, match="annotations/testing"):
        sources.open("ade20k", tmp_path, split="testing")
    (tmp_path / "annotations" / "empty").mkdir()
    with pytest.raises(SisgenInputError, match="no label maps"):
        sources.open("ade20k", tmp_path, split="empty")


# ----------------------------------------------------------------- Cityscapes polygons
def _poly(x0: int, y0: int, x1: int, y1: int) -> list[list[int]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _polygons_doc() -> dict:
    return {
        "imgHeight": 40, "imgWidth": 60,
        "objects": [
            {"label": "sky", "polygon": _poly(0, 0, 59, 14)},
            {"label": "road", "polygon": _poly(0, 25, 59, 39)},
            {"label": "car", "polygon": _poly(5, 20, 20, 30)},          # car 26000
            {"label": "car", "polygon": _poly(15, 22, 30, 32)},         # 26001, over 26000
            {"label": "cargroup", "polygon": _poly(40, 20, 55, 30)},    # car, no instance
            {"label": "person", "polygon": _poly(44, 10, 48, 28)},      # 24000, over group
            {"label": "license plate", "polygon": _poly(8, 26, 12, 28)},  # not drawn
            {"label": "pole", "polygon": _poly(33, 0, 34, 39), "deleted": 1},
            {"label": "rider", "polygon": [[1, 1], [3, 1], [2, 3]]},   # 25000
            {"label": "traffic sign", "polygon": _poly(0, 0, 2, 2)},    # over the rider
        ],
    }


def test_rasterize_polygons_order_groups_instances() -> None:
    vocab = get_vocabulary("cityscapes")
    sem, inst = rasterize_polygons(_polygons_doc(), vocab)
    assert sem.shape == (40, 60) and sem.dtype == np.uint8 and inst.dtype == np.int32
    vid = {n: vocab[n].id for n in ("sky", "road", "car", "person", "rider", "traffic sign")}
    assert sem[5, 40] == vid["sky"] and inst[5, 40] == 0
    assert sem[20, 0] == 0 and sem[35, 35] == vid["road"]          # unlabeled gap, road
    assert sem[25, 8] == vid["car"] and inst[25, 8] == 26000
    assert sem[27, 10] == vid["car"] and inst[27, 10] == 26000     # license plate skipped
    assert sem[25, 18] == vid["car"] and inst[25, 18] == 26001     # later object on top
    assert sem[25, 52] == vid["car"] and inst[25, 52] == 0         # cargroup: no instance
    assert sem[25, 46] == vid["person"] and inst[25, 46] == 24000  # person over group
    assert (sem[:, 33] != vocab["pole"].id).all()                  # deleted object
    assert sem[1, 1] == vid["traffic sign"] and inst[1, 1] == 0    # stuff over a thing
    assert sem[3, 2] == vid["rider"] and inst[3, 2] == 25000
    assert sem[30, 30] == vid["car"] and sem[30, 31] == vid["road"]  # boundary included
    assert set(np.unique(inst).tolist()) == {0, 24000, 25000, 26000, 26001}


def test_rasterize_polygons_bad_input() -> None:
    vocab = get_vocabulary("cityscapes")
    doc = _polygons_doc()
    doc["objects"].append({"label": "spaceship", "polygon": _poly(0, 0, 3, 3)})
    with pytest.raises(SisgenInputError, match=r"x\.json.*spaceship"):
        rasterize_polygons(doc, vocab, "x.json")
    doc["objects"][-1] = {"label": "bananagroup", "polygon": _poly(0, 0, 3, 3)}
    with pytest.raises(SisgenInputError, match="bananagroup"):
        rasterize_polygons(doc, vocab, "x.json")
    doc["objects"][-1] = {"label": "car", "polygon": [[0, 0], [1]]}
    with pytest.raises(SisgenInputError, match="polygon"):
        rasterize_polygons(doc, vocab, "x.json")
    with pytest.raises(SisgenInputError, match="imgHeight"):
        rasterize_polygons({"imgWidth": 3, "objects": []}, vocab, "x.json")
    with pytest.raises(SisgenInputError, match="objects"):
        rasterize_polygons({"imgWidth": 3, "imgHeight": 3}, vocab, "x.json")


def test_cityscapes_polygons_source(tmp_path: Path) -> None:
    city = tmp_path / "gtFine" / "val" / "bonn"
    city.mkdir(parents=True)
    write_json(city / "bonn_000001_000019_gtFine_polygons.json", _polygons_doc())
    doc = _polygons_doc()
    doc["objects"].append({"label": "unicorn", "polygon": _poly(0, 0, 3, 3)})
    bad = city / "bonn_000002_000019_gtFine_polygons.json"
    write_json(bad, doc)
    write_image(city / "bonn_000001_000019_gtFine_labelIds.png", np.zeros((40, 60), np.uint8))

    src = sources.open("cityscapes", tmp_path, split="val", annotations="polygons")
    assert src.keys() == ["bonn_000001_000019", "bonn_000002_000019"]
    lm = src.load(0)
    sem, inst = rasterize_polygons(_polygons_doc(), get_vocabulary("cityscapes"))
    assert (lm.semantic == sem).all() and lm.instance is not None and (lm.instance == inst).all()
    assert lm.meta["file"].endswith("_gtFine_polygons.json") and lm.meta["city"] == "bonn"
    with pytest.raises(SisgenInputError, match=rf"{bad.name}.*unicorn"):
        src.load(1)
    # the default keeps reading the labelIds PNGs
    png = sources.open("cityscapes", tmp_path, split="val")
    assert png.keys() == ["bonn_000001_000019"] and png.load(0).instance is None
    with pytest.raises(SisgenInputError, match="annotations"):
        sources.open("cityscapes", tmp_path, split="val", annotations="instanceIds")


def _trace_labelids(sem: np.ndarray, vocab) -> dict:
    """A polygons document tracing every connected region of a labelIds map."""
    objects = []
    for cid in np.unique(sem):
        if cid == 0:
            continue
        mask = (sem == cid).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for c in contours:
            objects.append({"label": vocab[int(cid)].name + ("group" if vocab[int(cid)].is_thing
                                                              else ""),
                            "polygon": c[:, 0, :].tolist()})
    return {"imgHeight": int(sem.shape[0]), "imgWidth": int(sem.shape[1]), "objects": objects}


@pytest.mark.samples
def test_cityscapes_polygons_trace_real_sample(cityscapes_root: Path) -> None:
    """Tracing a real labelIds map into polygons and rasterizing it gives the map back."""
    vocab = get_vocabulary("cityscapes")
    f = cityscapes_root / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    sem = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)[::4, ::4].copy()  # 256x512: fast
    doc = json.loads(json.dumps(_trace_labelids(sem, vocab)))
    got, inst = rasterize_polygons(doc, vocab)
    # outer contours of regions with holes paint over the holes' classes when drawn later,
    # so agreement is high but not total; every region is at least drawn with its class
    agree = (got == sem).mean()
    assert agree > 0.9, agree
    assert set(np.unique(got).tolist()) <= set(np.unique(sem).tolist())
    assert (inst == 0).all()  # *group labels carry no instance id
