"""Tests of vocabulary remapping (sisgen.remap) and of sources opened with remap=."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sisgen.sources as sources
from sisgen.errors import SisgenInputError
from sisgen.io import write_image
from sisgen.labelmap import LabelMap
from sisgen.remap import Remap, available_remaps, get_remap, load_remap, remap
from sisgen.sources import RemappedSource
from sisgen.vocab import get_vocabulary

BUILTIN = {"cityscapes->cityscapes_trainid", "cityscapes_trainid->cityscapes",
           "coco_stuff->cityscapes", "ade20k->cityscapes"}


def test_builtin_tables_load() -> None:
    assert BUILTIN <= set(available_remaps())
    for name in available_remaps():
        r = get_remap(name)
        src, dst = name.split("->")
        assert r.name == name and r.source.name == src and r.target.name == dst
        assert r.table.shape == (256,) and r.table.dtype == np.uint8
        assert r.table[255] == 255
        mapped = r.table[r.table != 255]
        assert np.isin(mapped, r.target.ids).all()


def test_cityscapes_trainid_table_matches_vocabulary() -> None:
    r = get_remap("cityscapes->cityscapes_trainid")
    cs = get_vocabulary("cityscapes")
    assert (r.table == cs.train_id_table()).all()
    tv = get_vocabulary("cityscapes_trainid")
    assert tv.ids == list(range(19)) and tv.thing_ids == list(range(11, 19))
    assert r.lookup("road") == 0 and r.lookup("bicycle") == 18 and r.lookup(26) == 13
    assert r.lookup("parking") == 255 and r.lookup("unlabeled") == 255


def test_trainid_labelid_round_trip() -> None:
    fwd = get_remap("cityscapes->cityscapes_trainid")
    inv = get_remap("cityscapes_trainid->cityscapes")
    train = np.arange(19, dtype=np.uint8)
    assert (fwd.apply(inv.apply(train)) == train).all()
    labels = np.array(get_vocabulary("cityscapes").ids, dtype=np.uint8)
    back = inv.apply(fwd.apply(labels))
    evaluated = fwd.table[labels] != 255
    assert evaluated.sum() == 19
    assert (back[evaluated] == labels[evaluated]).all() and (back[~evaluated] == 255).all()
    cs, tv = get_vocabulary("cityscapes"), get_vocabulary("cityscapes_trainid")
    assert inv.inverse_pairs() == {cs[n].id: [tv[n].id] for n in tv.names}


def test_coco_stuff_to_cityscapes_lookups() -> None:
    r = get_remap("coco_stuff->cityscapes")
    cs = get_vocabulary("cityscapes")
    expect = {
        "person": "person", "bicycle": "bicycle", "car": "car", "motorcycle": "motorcycle",
        "bus": "bus", "truck": "truck", "train": "train", "traffic light": "traffic light",
        "stop sign": "traffic sign", "road": "road", "pavement": "sidewalk",
        "building-other": "building", "house": "building", "skyscraper": "building",
        "tree": "vegetation", "bush": "vegetation", "plant-other": "vegetation",
        "grass": "terrain", "dirt": "terrain", "sand": "terrain", "gravel": "terrain",
        "sky-other": "sky", "clouds": "sky", "fence": "fence", "wall-brick": "wall",
        "wall-concrete": "wall", "wall-other": "wall", "railroad": "rail track",
        "bridge": "bridge",
    }
    for src, dst in expect.items():
        assert r.lookup(src) == cs[dst].id, src
    for ignored in ("airplane", "pizza", "toothbrush", "sea", "ceiling-other", "floor-wood"):
        assert r.lookup(ignored) == 255, ignored


def test_ade20k_to_cityscapes_lookups() -> None:
    r = get_remap("ade20k->cityscapes")
    cs = get_vocabulary("cityscapes")
    for src, dst in {"road": "road", "sky": "sky", "tree": "vegetation", "car": "car",
                     "person": "person", "building": "building", "van": "car",
                     "streetlight": "pole", "bicycle": "bicycle"}.items():
        assert r.lookup(src) == cs[dst].id, src
    assert r.lookup("other") == 255 and r.lookup("bed") == 255


def test_remap_labelmap_semantic_and_instances() -> None:
    r = get_remap("coco_stuff->cityscapes")
    coco = get_vocabulary("coco_stuff")
    sem = np.array([[coco["person"].id, coco["person"].id, coco["tree"].id],
                    [coco["railing"].id, 255, coco["pizza"].id]], np.uint8)
    inst = np.array([[3, 4, 0], [7, 0, 9]], np.int32)
    lm = LabelMap(sem, inst, {"id": "x", "source": "coco"})
    out = r.remap(lm)
    cs = get_vocabulary("cityscapes")
    assert out.semantic.tolist() == [[cs["person"].id, cs["person"].id, cs["vegetation"].id],
                                     [cs["fence"].id, 255, 255]]
    assert out.instance is not None
    assert out.instance.tolist() == [[3, 4, 0], [0, 0, 0]]  # kept on things only
    assert out.meta["remap"] == "coco_stuff->cityscapes" and out.meta["vocabulary"] == "cityscapes"
    assert out.meta["source"] == "coco" and "remap" not in lm.meta  # input untouched
    assert (lm.semantic == sem).all()
    assert remap(lm, "coco_stuff->cityscapes").semantic.tolist() == out.semantic.tolist()
    assert r(lm).semantic.tolist() == out.semantic.tolist()
    assert r.remap(LabelMap(sem)).instance is None
    wide = np.array([[-1, 0, 300]], np.int32)
    assert r.apply(wide).tolist() == [[255, cs["person"].id, 255]]


def _user_table(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "my_table.yaml"
    p.write_text(text)
    return p


def test_user_table(tmp_path: Path) -> None:
    p = _user_table(tmp_path, """
source: cityscapes
target: cityscapes_trainid
map:
  road: road
  parking: road        # many to one
  26: car              # ids work as keys
  truck: 13            # and as values
  bus: ignore
""")
    r = get_remap(p)
    assert r.name == "my_table" and isinstance(r, Remap)
    assert r.lookup("road") == 0 and r.lookup("parking") == 0 and r.lookup("car") == 13
    assert r.lookup("truck") == 13 and r.lookup("bus") == 255 and r.lookup("sky") == 255
    assert get_remap(r) is r


@pytest.mark.parametrize("body,match", [
    ("source: cityscapes\ntarget: cityscapes_trainid\nmap:\n  spaceship: road\n", "spaceship"),
    ("source: cityscapes\ntarget: cityscapes_trainid\nmap:\n  road: motorway\n", "motorway"),
    ("source: cityscapes\ntarget: cityscapes_trainid\nmap:\n  99: road\n", "99"),
    ("source: cityscapes\ntarget: cityscapes_trainid\nmap:\n  road: road\n  7: sidewalk\n",
     "twice"),
    ("source: klingon\ntarget: cityscapes\nmap: {}\n", "klingon"),
    ("source: cityscapes\nmap: {}\n", "target"),
    ("source: cityscapes\ntarget: cityscapes\nmap: [1, 2]\n", "map"),
    ("source: [cityscapes\n", "parse"),
])
def test_user_table_errors_name_the_file(tmp_path: Path, body: str, match: str) -> None:
    p = _user_table(tmp_path, body)
    with pytest.raises(SisgenInputError, match=match) as e:
        load_remap(p)
    assert e.value.path == str(p)


def test_unknown_remap_name() -> None:
    with pytest.raises(SisgenInputError, match="coco_stuff->cityscapes"):
        get_remap("cityscapes->klingon")
    with pytest.raises(SisgenInputError, match="not found"):
        get_remap("nowhere.yaml")


def test_open_with_remap_wraps_source(tmp_path: Path) -> None:
    folder = tmp_path / "labels"
    folder.mkdir()
    sem = np.array([[7, 8, 26], [26, 9, 0]], np.uint8)
    write_image(folder / "a.png", sem)
    src = sources.open("folder", tmp_path, vocabulary="cityscapes",
                       remap="cityscapes->cityscapes_trainid")
    assert isinstance(src, RemappedSource)
    assert src.vocabulary.name == "cityscapes_trainid" and src.kind == "folder"
    assert src.keys() == ["a"] and len(src) == 1 and src.photo(0) is None
    lm = src[0]
    assert lm.semantic.tolist() == [[0, 1, 13], [13, 255, 255]]
    assert lm.meta["remap"] == "cityscapes->cityscapes_trainid"
    with pytest.raises(SisgenInputError, match="coco_stuff"):
        sources.open("folder", tmp_path, vocabulary="cityscapes",
                      remap="coco_stuff->cityscapes")


@pytest.mark.samples
def test_coco_stuff_sample_to_cityscapes(coco_root: Path) -> None:
    plain = sources.open("coco_stuff", coco_root, split="train2017")
    src = sources.open("coco_stuff", coco_root, split="train2017",
                       remap="coco_stuff->cityscapes")
    r = get_remap("coco_stuff->cityscapes")
    cs = get_vocabulary("cityscapes")
    coco = get_vocabulary("coco_stuff")
    seen: set[int] = set()
    for i in range(len(src)):
        a, b = plain.load(i), src.load(i)
        assert b.shape == a.shape and b.id == a.id
        assert (b.semantic == r.table[a.semantic]).all()
        people = a.semantic == coco["person"].id
        assert (b.semantic[people] == cs["person"].id).all()
        assert np.isin(b.semantic, [*cs.ids, 255]).all()
        assert b.instance is not None
        on = b.instance > 0
        assert np.isin(b.semantic[on], cs.thing_ids).all()
        seen |= set(np.unique(b.semantic).tolist())
    assert cs["person"].id in seen and len(seen - {255}) >= 3
