"""Tests of the label-map sources on the real samples and on bad input in tmp_path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import sisgen.sources as sources
from sisgen.errors import SisgenInputError
from sisgen.io import write_image, write_json
from sisgen.sources.coco import rle_string_counts
from sisgen.sources.coco_stuff import spade_instances_to_ids
from sisgen.vocab import get_vocabulary

CITYSCAPES_COUNTS = {"train": 8, "val": 15}
COCO_COUNTS = {"train2017": 13, "val2017": 8}


# ------------------------------------------------------------------------- Cityscapes
@pytest.mark.samples
@pytest.mark.parametrize("split", ["train", "val"])
def test_cityscapes_all_maps_load(cityscapes_root: Path, split: str) -> None:
    src = sources.open("cityscapes", cityscapes_root, split=split)
    assert len(src) == CITYSCAPES_COUNTS[split]
    keys = src.keys()
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    thing = np.zeros(256, bool)
    thing[src.vocabulary.thing_ids] = True
    for i, lm in enumerate(src):
        assert lm.id == keys[i] and "_gtFine" not in lm.id
        assert lm.semantic.dtype == np.uint8 and lm.shape == (1024, 2048)
        assert lm.instance is not None and lm.instance.dtype == np.int32
        assert lm.meta["source"] == "cityscapes" and lm.meta["size"] == (1024, 2048)
        assert Path(lm.meta["file"]).name == f"{lm.id}_gtFine_labelIds.png"
        inst = lm.instance
        assert set(np.unique(inst).tolist()) <= {0} | set(range(1000, 34000))
        on = inst > 0
        assert thing[lm.semantic[on]].all()  # instance ids only on thing-class pixels
        assert (inst[on] // 1000 == lm.semantic[on]).all()
    if split == "train":
        photo = src.photo(0)
        assert photo is not None and photo.shape == (1024, 2048, 3) and photo.dtype == np.uint8
    else:
        assert src.photo(0) is None
    assert src.keys()[0] == ("aachen_000000_000019" if split == "train"
                             else "frankfurt_000000_000576")


def _copy_cityscapes_pair(cityscapes_root: Path, dst: Path, stem: str = "aachen_000000_000019",
                          ) -> Path:
    city_dir = dst / "gtFine" / "train" / "aachen"
    city_dir.mkdir(parents=True)
    for kind in ("labelIds", "instanceIds"):
        name = f"{stem}_gtFine_{kind}.png"
        shutil.copy(cityscapes_root / "gtFine" / "train" / "aachen" / name, city_dir / name)
    return city_dir


@pytest.mark.samples
def test_cityscapes_missing_instance_file_gives_none(cityscapes_root: Path,
                                                     tmp_path: Path) -> None:
    city_dir = _copy_cityscapes_pair(cityscapes_root, tmp_path)
    (city_dir / "aachen_000000_000019_gtFine_instanceIds.png").unlink()
    src = sources.open("cityscapes", tmp_path, split="train")
    lm = src.load(0)
    assert lm.instance is None and src.photo(0) is None


@pytest.mark.samples
def test_cityscapes_bad_files(cityscapes_root: Path, tmp_path: Path) -> None:
    city_dir = _copy_cityscapes_pair(cityscapes_root, tmp_path)
    label = city_dir / "aachen_000000_000019_gtFine_labelIds.png"
    inst = city_dir / "aachen_000000_000019_gtFine_instanceIds.png"
    src = sources.open("cityscapes", tmp_path, split="train")

    sem = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    bad = sem.copy()
    bad[0, 0] = 40  # not a labelId
    write_image(label, bad)
    with pytest.raises(SisgenInputError, match=label.name):
        src.load(0)

    write_image(label, sem)
    write_image(inst, np.zeros((512, 1024), np.uint16))  # size mismatch
    with pytest.raises(SisgenInputError, match=inst.name):
        src.load(0)

    label.write_bytes(label.read_bytes()[:2000])  # truncated PNG
    with pytest.raises(SisgenInputError, match=label.name):
        src.load(0)

    with pytest.raises(SisgenInputError, match="gtFine"):
        sources.open("cityscapes", tmp_path, split="test")
    with pytest.raises(SisgenInputError, match="missing"):
        sources.open("cityscapes", tmp_path / "missing", split="train")
    (tmp_path / "gtFine" / "val").mkdir()
    with pytest.raises(SisgenInputError, match="_gtFine_labelIds.png"):
        sources.open("cityscapes", tmp_path, split="val")


# ------------------------------------------------------------------------- COCO-Stuff
@pytest.mark.samples
@pytest.mark.parametrize("split", ["train2017", "val2017"])
def test_coco_stuff_all_maps_load(coco_root: Path, split: str) -> None:
    src = sources.open("coco_stuff", coco_root, split=split)
    assert len(src) == COCO_COUNTS[split]
    vocab = get_vocabulary("coco_stuff")
    thing = np.zeros(256, bool)
    thing[vocab.thing_ids] = True
    for i in range(len(src)):
        lm = src.load(i)
        assert lm.semantic.dtype == np.uint8 and lm.semantic.ndim == 2
        assert lm.meta["image_id"] == int(lm.id) and lm.meta["source"] == "coco_stuff"
        assert lm.instance is not None and lm.instance.shape == lm.shape
        on = lm.instance > 0
        assert on.any() and thing[lm.semantic[on]].all()
        photo = src.photo(i)
        assert photo is not None and photo.shape == (*lm.shape, 3)


@pytest.mark.samples
def test_coco_stuff_short_split_name(coco_root: Path) -> None:
    assert sources.open("coco_stuff", coco_root, split="val").split == "val2017"


def test_spade_instance_conversion() -> None:
    vocab = get_vocabulary("coco_stuff")
    # person (0) as counter 0, dog (17) as counter 1, uncovered truck (7) pixels keeping
    # their label value 7 (outside the counter run 0..1), sky (156) and unlabeled.
    semantic = np.array([[0, 0, 17, 17], [7, 7, 156, 255]], np.uint8)
    raw = np.array([[0, 0, 1, 1], [7, 7, 156, 255]], np.uint8)
    ids = spade_instances_to_ids(raw, semantic, vocab)
    np.testing.assert_array_equal(ids, [[1, 1, 2, 2], [0, 0, 0, 0]])


# -------------------------------------------------------------------------------- COCO
@pytest.mark.samples
@pytest.mark.parametrize("split", ["train2017", "val2017"])
def test_coco_json_matches_distributed_maps(coco_root: Path, split: str) -> None:
    src = sources.open("coco", coco_root, split=split)
    ref = sources.open("coco_stuff", coco_root, split=split)
    assert src.keys() == ref.keys()
    figures = []
    for i in range(len(src)):
        lm = src.load(i)
        expected = ref.load(i)
        assert lm.shape == expected.shape and lm.semantic.dtype == np.uint8
        assert lm.meta["image_id"] == expected.meta["image_id"] and lm.id == expected.id
        agreement = float((lm.semantic == expected.semantic).mean())
        figures.append((lm.id, agreement))
        assert agreement >= 0.97, f"{lm.id}: {agreement:.4f}"
        # instance ids: 1..N in annotation order, things only
        recs = lm.meta["instances"]
        assert [r["id"] for r in recs] == list(range(1, len(recs) + 1))
        on = lm.instance > 0
        assert set(np.unique(lm.instance[on]).tolist()) <= {r["id"] for r in recs}
        assert (lm.semantic[on] < 91).all()
        for r in recs:
            assert r["area"] == int((lm.instance == r["id"]).sum())
        assert src.photo(i).shape == (*lm.shape, 3)
    print(f"\ncoco vs stuffthingmaps agreement ({split}):")
    for key, a in figures:
        print(f"  {key}: {a:.4f}")
    print(f"  min {min(a for _, a in figures):.4f}, mean "
          f"{np.mean([a for _, a in figures]):.4f}")


def _image(iid: int = 1, w: int = 20, h: int = 10) -> dict:
    return {"id": iid, "file_name": f"{iid:012d}.jpg", "width": w, "height": h}


def _square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _coco_dir(tmp_path: Path, things: dict | None, stuff: dict | None,
              split: str = "val2017") -> Path:
    ann = tmp_path / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    if things is not None:
        write_json(ann / f"instances_{split}.json", things)
    if stuff is not None:
        write_json(ann / f"stuff_{split}.json", stuff)
    return tmp_path


def _dataset(images: list[dict], anns: list[dict]) -> dict:
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]}


def _ann(aid: int, iid: int, cat: int, seg: object) -> dict:
    return {"id": aid, "image_id": iid, "category_id": cat, "segmentation": seg, "iscrowd": 0}


def test_coco_paint_order_other_class_and_rle(tmp_path: Path) -> None:
    from pycocotools import mask as mask_utils

    h, w = 10, 20
    sky = np.zeros((h, w), np.uint8, order="F")
    sky[:5] = 1
    rle = mask_utils.encode(np.asfortranarray(sky))
    rle["counts"] = rle["counts"].decode("ascii")
    assert sum(rle_string_counts(rle["counts"])) == h * w
    other = {"size": [h, w], "counts": [150, 50]}  # uncompressed RLE: columns 15..19
    stuff = _dataset([_image()], [_ann(10, 1, 157, rle), _ann(11, 1, 183, other)])
    things = _dataset([_image()], [
        _ann(1, 1, 47, _square(2, 6, 4, 8)),  # small cup, listed first
        _ann(2, 1, 67, _square(0, 5, 12, 10)),  # large dining table over it
        _ann(3, 1, 1, [[1, 1, 2, 2]]),  # degenerate polygon: legal, no pixels
    ])
    src = sources.open("coco", _coco_dir(tmp_path, things, stuff), split="val")
    assert src.split == "val2017" and src.keys() == ["000000000001"]
    lm = src.load(0)
    assert (lm.semantic[:5] == 156).all()  # sky-other, stuff id 157 - 1
    assert lm.semantic[6, 16] == 255  # "other" (183) stays unlabeled
    assert lm.semantic[7, 3] == 46 and lm.instance[7, 3] == 1  # small cup stays visible
    assert lm.semantic[9, 10] == 66 and lm.instance[9, 10] == 2
    assert [r["area"] for r in lm.meta["instances"]][2] == 0
    assert lm.instance[:5].max() == 0
    assert src.photo(0) is None


def test_coco_stuff_only_and_things_only(tmp_path: Path) -> None:
    stuff = _dataset([_image()], [_ann(10, 1, 157, {"size": [10, 20], "counts": [0, 200]})])
    src = sources.open("coco", _coco_dir(tmp_path / "s", None, stuff), split="val2017")
    lm = src.load(0)
    assert lm.instance is None and (lm.semantic == 156).all()
    things = _dataset([_image()], [_ann(1, 1, 1, _square(0, 0, 5, 5))])
    src = sources.open("coco", _coco_dir(tmp_path / "t", things, None), split="val2017")
    lm = src.load(0)
    assert lm.instance is not None and lm.semantic[2, 2] == 0 and lm.semantic[8, 15] == 255


@pytest.mark.parametrize("content, problem", [
    ("{not json", "malformed JSON"),
    (json.dumps({"annotations": [], "categories": []}), "'images'"),
    (json.dumps({"images": [], "categories": []}), "'annotations'"),
    (json.dumps({"images": [_image()], "annotations": []}), "'categories'"),
    (json.dumps(_dataset([_image()], [_ann(1, 99, 1, _square(0, 0, 2, 2))])), "image 99"),
    (json.dumps(_dataset([{"id": 1}], [])), "image record"),
    (json.dumps([1, 2]), "top level"),
])
def test_coco_malformed_json(tmp_path: Path, content: str, problem: str) -> None:
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "instances_val2017.json").write_text(content)
    with pytest.raises(SisgenInputError, match="instances_val2017.json") as err:
        sources.open("coco", tmp_path, split="val2017")
    assert problem in str(err.value)


@pytest.mark.parametrize("seg", [
    [[1, 2, "x", 4, 5, 6]],  # unparsable polygon
    [[0, 0, 5, 0, 5]],  # odd number of coordinates
    [[0, 0, 5, 0, float("nan"), 5]],  # non-finite
    [[0, 0, 1e9, 0, 5, 5]],  # far outside the image
    [0, 0, 5, 0, 5, 5],  # flat list instead of a list of polygons
    {"size": [10, 20], "counts": [5, 5]},  # runs do not cover the image
    {"size": [10, 20], "counts": "zz!!"},  # garbage compressed RLE
    {"size": [11, 20], "counts": [220]},  # wrong size
    "polygon",
])
def test_coco_bad_annotation_fails_only_its_image(tmp_path: Path, seg: object) -> None:
    things = _dataset([_image(1), _image(2)], [
        _ann(5, 1, 1, _square(0, 0, 4, 4)),
        _ann(6, 2, 1, seg),
        _ann(7, 2, 1, _square(0, 0, 4, 4)),
    ])
    src = sources.open("coco", _coco_dir(tmp_path, things, None), split="val2017")
    assert len(src) == 2
    assert src.load(0).semantic[1, 1] == 0
    with pytest.raises(SisgenInputError, match="instances_val2017.json") as err:
        src.load(1)
    assert "annotation 6" in str(err.value) and "image 2" in str(err.value)


def test_coco_unknown_category_fails_only_its_image(tmp_path: Path) -> None:
    things = _dataset([_image(1), _image(2)], [
        _ann(5, 1, 1, _square(0, 0, 4, 4)),
        _ann(6, 2, 200, _square(0, 0, 4, 4)),
    ])
    src = sources.open("coco", _coco_dir(tmp_path, things, None), split="val2017")
    src.load(0)
    with pytest.raises(SisgenInputError, match="instances_val2017.json"):
        src.load(1)


def test_coco_missing_files(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    with pytest.raises(SisgenInputError, match="instances_val2017.json"):
        sources.open("coco", tmp_path, split="val2017")
    with pytest.raises(SisgenInputError, match="nope.json"):
        sources.open("coco", tmp_path, split="val2017", stuff_json=tmp_path / "nope.json")
    with pytest.raises(SisgenInputError, match="absent"):
        sources.open("coco", tmp_path / "absent", split="val2017")


@pytest.mark.samples
def test_coco_real_json_with_one_bad_polygon(coco_root: Path, tmp_path: Path) -> None:
    data = json.loads((coco_root / "annotations" / "instances_val2017.json").read_text())
    victim = data["annotations"][3]
    victim["segmentation"] = [[1.0, 2.0, "oops"]]
    _coco_dir(tmp_path, data, None)
    src = sources.open("coco", tmp_path, split="val2017")
    bad = src.image_ids.index(victim["image_id"])
    for i in range(len(src)):
        if i == bad:
            with pytest.raises(SisgenInputError, match="instances_val2017.json") as err:
                src.load(i)
            assert f"annotation {victim['id']!r}" in str(err.value)
        else:
            src.load(i)


# ------------------------------------------------------------------------------ folder
def _toy_maps(n: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        sem = rng.integers(0, 3, size=(12, 16)).astype(np.uint8)
        sem[0, 0] = 255
        inst = np.where(sem == 2, rng.integers(1, 700, size=sem.shape), 0).astype(np.uint16)
        out.append((sem, inst))
    return out


def _vocab_dict() -> dict:
    return {"name": "toy", "classes": [
        {"id": 0, "name": "ground"}, {"id": 1, "name": "sky"},
        {"id": 2, "name": "car", "is_thing": True},
    ]}


def test_folder_round_trip_and_vocabulary_discovery(tmp_path: Path) -> None:
    maps = _toy_maps()
    for k, (sem, inst) in enumerate(maps):
        write_image(tmp_path / "labels" / f"s{k}.png", sem)
        write_image(tmp_path / "instances" / f"s{k}.png", inst)
    write_image(tmp_path / "images" / "s1.jpg", np.full((12, 16, 3), 128, np.uint8))
    write_json(tmp_path / "vocabulary.json", _vocab_dict())

    src = sources.open("folder", tmp_path, split="train")  # no train/ folder: split ignored
    assert src.vocabulary.name == "toy" and src.keys() == ["s0", "s1", "s2"]
    for k, lm in enumerate(src):
        np.testing.assert_array_equal(lm.semantic, maps[k][0])
        np.testing.assert_array_equal(lm.instance, maps[k][1].astype(np.int32))
        assert lm.instance.dtype == np.int32 and lm.meta["source"] == "folder"
        assert lm.id == f"s{k}" and lm.meta["size"] == (12, 16)
    assert src.photo(0) is None and src.photo(1).shape == (12, 16, 3)

    # a preset/explicit vocabulary wins over the discovered file
    assert sources.open("folder", tmp_path, vocabulary="cityscapes").vocabulary.name == "cityscapes"


def test_folder_flat_layout_split_and_yaml(tmp_path: Path) -> None:
    sem, _ = _toy_maps(1)[0]
    write_image(tmp_path / "val" / "a b.png", sem)  # PNGs directly in root/{split}
    (tmp_path / "val" / "vocabulary.yaml").write_text(
        "name: toy\nclasses:\n  - {id: 0, name: ground}\n  - {id: 1, name: sky}\n"
        "  - {id: 2, name: car, is_thing: true}\n"
    )
    src = sources.open("folder", tmp_path, split="val")
    assert src.keys() == ["a_b"]
    lm = src.load(0)
    assert lm.instance is None and lm.id == "a_b"


def test_folder_bad_input(tmp_path: Path) -> None:
    sem, inst = _toy_maps(1)[0]
    labels = tmp_path / "labels"
    write_image(labels / "a.png", sem)
    with pytest.raises(SisgenInputError, match="vocabulary"):
        sources.open("folder", tmp_path)
    write_json(tmp_path / "vocabulary.json", _vocab_dict())

    bad = sem.copy()
    bad[3, 3] = 7  # not in the vocabulary
    write_image(labels / "b.png", bad)
    write_image(labels / "c.png", sem)
    write_image(tmp_path / "instances" / "c.png", inst[:6])  # size mismatch
    (labels / "d.png").write_bytes((labels / "a.png").read_bytes()[:40])  # truncated
    write_image(labels / "e.jpg", np.stack([sem] * 3, -1))  # a JPEG label map
    write_image(tmp_path / "jpeg_as_png.jpg", np.stack([sem] * 3, -1))
    shutil.copy(tmp_path / "jpeg_as_png.jpg", labels / "f.png")  # JPEG bytes, .png name

    src = sources.open("folder", tmp_path)
    assert src.keys() == ["a", "b", "c", "d", "e", "f"]
    src.load(0)
    for i, name in [(1, "b.png"), (2, "instances/c.png"), (3, "d.png"), (4, "e.jpg"),
                    (5, "f.png")]:
        with pytest.raises(SisgenInputError, match=name):
            src.load(i)
    with pytest.raises(SisgenInputError, match="ids outside"):
        src.load(1)
    with pytest.raises(SisgenInputError, match="not a PNG"):
        src.load(4)

    with pytest.raises(SisgenInputError, match="nowhere"):
        sources.open("folder", tmp_path / "nowhere", vocabulary="cityscapes")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SisgenInputError, match=r"empty.*labels/\*\.png"):
        sources.open("folder", tmp_path / "empty", vocabulary="cityscapes")
    with pytest.raises(SisgenInputError, match="missing.json"):
        sources.open("folder", tmp_path, vocabulary=str(tmp_path / "missing.json"))


@pytest.mark.samples
def test_coco_stuff_bad_files(coco_root: Path, tmp_path: Path) -> None:
    name = "000000000139.png"
    maps = tmp_path / "stuffthingmaps_trainval2017" / "val2017"
    maps.mkdir(parents=True)
    inst_dir = tmp_path / "instance_maps" / "val2017"
    inst_dir.mkdir(parents=True)
    sem = cv2.imread(str(coco_root / "stuffthingmaps_trainval2017" / "val2017" / name),
                     cv2.IMREAD_UNCHANGED)
    bad = sem.copy()
    bad[0, 0] = 200  # outside the 0..181 + 255 vocabulary
    write_image(maps / name, bad)
    src = sources.open("coco_stuff", tmp_path, split="val2017")
    with pytest.raises(SisgenInputError, match=name):
        src.load(0)
    write_image(maps / name, sem)
    write_image(inst_dir / name, sem[:100])
    with pytest.raises(SisgenInputError, match=f"instance_maps.*{name}"):
        src.load(0)
    with pytest.raises(SisgenInputError, match="stuffthingmaps"):
        sources.open("coco_stuff", tmp_path, split="train2017")


def test_cityscapes_loads_after_fork(cityscapes_root):
    """The instance PNG decodes on a helper thread; a forked child makes its own."""
    import multiprocessing

    src = sources.open("cityscapes", cityscapes_root, split="val")
    first = src.load(0)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        sem, inst = pool.apply_async(_load_arrays, (src, 0)).get(timeout=60)
    np.testing.assert_array_equal(sem, first.semantic)
    np.testing.assert_array_equal(inst, first.instance)


def _load_arrays(src, index):
    lm = src.load(index)
    return lm.semantic, lm.instance
