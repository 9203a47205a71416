"""CachedSource: maps read from the cache equal the wrapped source's, and stale entries renew."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from sisgen import LabelMap, SisgenInputError, sources
from sisgen.io import encode_arrays, read_arrays
from sisgen.sources.cached import CachedSource, describe_source


def same_map(a: LabelMap, b: LabelMap) -> None:
    assert a.semantic.dtype == b.semantic.dtype
    np.testing.assert_array_equal(a.semantic, b.semantic)
    assert (a.instance is None) == (b.instance is None)
    if a.instance is not None:
        assert a.instance.dtype == b.instance.dtype == np.int32
        np.testing.assert_array_equal(a.instance, b.instance)
    assert a.meta == b.meta
    assert [type(v) for v in a.meta.values()] == [type(v) for v in b.meta.values()]


def toycity(size=(32, 64), length=4):
    return sources.open("toycity", None, split="val", size=size, length=length)


def test_arrays_blob_round_trip(tmp_path):
    arrays = {"a": np.arange(12, dtype=np.int32).reshape(3, 4), "b": np.ones((2,), np.uint8),
              "empty": np.zeros((0, 5), np.uint16)}
    path = tmp_path / "x.map"
    path.write_bytes(encode_arrays(arrays, {"k": [1, "two"]}))
    got, header = read_arrays(path)
    assert header == {"k": [1, "two"]}
    for name, a in arrays.items():
        assert got[name].dtype == a.dtype
        np.testing.assert_array_equal(got[name], a)
    got["a"][0, 0] = 7  # writable
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(SisgenInputError, match="x.map"):
        read_arrays(path)
    path.write_bytes(b"not a blob at all")
    with pytest.raises(SisgenInputError, match="not an array blob"):
        read_arrays(path)


def test_cached_toycity_equals_source_and_reads_back(tmp_path):
    src = toycity()
    cached = CachedSource(src, tmp_path)
    assert cached.keys() == src.keys() and len(cached) == len(src)
    assert (cached.kind, cached.vocabulary) == (src.kind, src.vocabulary)
    first = [cached.load(i) for i in range(len(src))]
    assert all(cached.entry_path(i).is_file() for i in range(len(src)))
    again = CachedSource(src, tmp_path)  # a new process would open it like this
    for i in range(len(src)):
        same_map(first[i], src.load(i))
        same_map(again.load(i), src.load(i))


def test_cached_at_run_size_equals_resized(tmp_path):
    src = toycity(size=(32, 64))
    cached = CachedSource(src, tmp_path, size=(16, 24))
    plain = CachedSource(src, tmp_path)
    assert cached.folder != plain.folder  # one folder per size
    for i in range(len(src)):
        same_map(cached.load(i), src.load(i).resized((16, 24)))
        same_map(CachedSource(src, tmp_path, size=(16, 24)).load(i),
                 src.load(i).resized((16, 24)))


def test_description_separates_sources():
    a, b = describe_source(toycity((32, 64))), describe_source(toycity((32, 48)))
    assert a != b
    assert describe_source(toycity((32, 64))) == a


def test_bad_size_and_folder(tmp_path):
    with pytest.raises(SisgenInputError, match="cache size"):
        CachedSource(toycity(), tmp_path, size=(0, 4))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SisgenInputError, match="cache folder"):
        CachedSource(toycity(), blocker / "sub")


def test_corrupt_entry_is_decoded_again(tmp_path):
    src = toycity()
    cached = CachedSource(src, tmp_path)
    cached.load(1)
    cached.entry_path(1).write_bytes(b"garbage")
    same_map(cached.load(1), src.load(1))
    read_arrays(cached.entry_path(1))  # rewritten


def write_cityscapes(root, sem, inst):
    folder = root / "gtFine" / "val" / "x"
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "x_000000_000001_gtFine_labelIds.png"), sem)
    cv2.imwrite(str(folder / "x_000000_000001_gtFine_instanceIds.png"), inst)
    return folder / "x_000000_000001_gtFine_labelIds.png"


def test_changed_file_invalidates_its_entry(tmp_path):
    sem = np.full((6, 8), 7, np.uint8)
    sem[2:4, 2:5] = 26
    inst = sem.astype(np.uint16)
    inst[2:4, 2:5] = 26001
    label = write_cityscapes(tmp_path / "cs", sem, inst)
    src = sources.open("cityscapes", tmp_path / "cs", split="val")
    cached = CachedSource(src, tmp_path / "cache")
    same_map(cached.load(0), src.load(0))
    sem[0, 0] = 11
    write_cityscapes(tmp_path / "cs", sem, inst)
    os.utime(label, ns=(1, 1))  # another stamp, whatever the clock's resolution
    got = cached.load(0)
    assert got.semantic[0, 0] == 11
    same_map(got, src.load(0))


def test_bad_map_is_not_cached(tmp_path):
    sem = np.full((4, 4), 99, np.uint8)  # not a Cityscapes id
    write_cityscapes(tmp_path / "cs", sem, sem.astype(np.uint16))
    cached = CachedSource(sources.open("cityscapes", tmp_path / "cs", split="val"),
                          tmp_path / "cache")
    with pytest.raises(SisgenInputError, match="outside"):
        cached.load(0)
    assert not cached.entry_path(0).exists()


def test_real_cityscapes_maps(tmp_path, cityscapes_root):
    src = sources.open("cityscapes", cityscapes_root, split="val")
    cached = CachedSource(src, tmp_path, size=(64, 128))
    for i in (0, len(src) - 1):
        cached.load(i)
        same_map(CachedSource(src, tmp_path, size=(64, 128)).load(i),
                 src.load(i).resized((64, 128)))
