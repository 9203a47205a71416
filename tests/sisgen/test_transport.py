"""Arrays through shared memory (sisgen.transport) and runs that use it."""

from __future__ import annotations

import os

import numpy as np
import pytest

import sisgen.generate as generate_module
import sisgen.transport as transport
import sisgen.writers.stage as stage_module
from sisgen import sources
from sisgen.engines import Generator
from sisgen.generate import generate
from sisgen.labelmap import LabelMap
from sisgen.transport import (
    end_loan,
    pack,
    release,
    remove_folder,
    shared_folder,
    unpack,
)


def _payload():
    rng = np.random.default_rng(0)
    big = rng.integers(0, 1 << 20, (128, 256), dtype=np.int32)  # 128 KB: out of band
    image = rng.integers(0, 255, (2, 64, 128, 3), dtype=np.uint8)  # 48 KB: in band
    # the semantic map (32 KB) stays in band too
    return {"map": LabelMap(big.astype(np.uint8), big, {"id": "m"}), "image": image,
            "view": big[:, ::2], "name": "x"}  # a strided view cannot go out of band


def _check(out, ref):
    assert out["name"] == "x" and out["map"].meta == {"id": "m"}
    for a, b in [(out["map"].semantic, ref["map"].semantic),
                 (out["map"].instance, ref["map"].instance), (out["image"], ref["image"]),
                 (out["view"], ref["view"])]:
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_large_arrays_travel_in_a_shared_file(tmp_path):
    folder = shared_folder(tmp_path, min_free=0)
    ref = _payload()
    packed = pack(ref, folder)
    assert packed.path is not None and packed.spans == ((0, 0, 128 * 256 * 4),)  # instance ids
    assert len(packed.data) < 160_000  # the small arrays and the strided view
    out = unpack(packed)
    _check(out, ref)
    assert not list(folder.iterdir())  # one reader: the name goes once it is mapped
    inst = out["map"].instance
    assert inst.flags.writeable and not inst.flags.owndata
    inst[0, 0] = -1  # a private, writable view
    remove_folder(folder)
    assert not folder.exists() and inst[0, 0] == -1  # views outlive the file's name


def test_several_readers_and_release(tmp_path):
    folder = shared_folder(tmp_path, min_free=0)
    ref = _payload()
    packed = pack(ref, folder)
    _check(unpack(packed, keep_file=True), ref)
    _check(unpack(packed, keep_file=True), ref)
    release(packed)
    release(packed)  # twice is harmless
    assert not list(folder.iterdir())


def test_a_lent_file_is_referred_to_not_copied(tmp_path):
    """Arrays passed on (prepare -> main -> writers) are not copied into a second file."""
    folder = shared_folder(tmp_path, min_free=0)
    ref = _payload()
    first = pack(ref, folder)
    got = unpack(first, lend=True)
    image = np.arange(300_000, dtype=np.uint8)  # new memory: copied
    again = pack({"map": got["map"], "image": image}, folder)
    assert again.borrowed == (first.path,)
    assert [k for k, _, _ in again.spans] == [1, 0]  # the instance ids borrowed, image copied
    assert os.path.getsize(again.path) < 310_000
    out = unpack(again, keep_file=True)
    assert np.array_equal(out["map"].instance, ref["map"].instance)
    assert np.array_equal(out["image"], image)
    out["map"].instance[0, 0] = -7  # a reader's write stays its own (copy-on-write)
    assert got["map"].instance[0, 0] == ref["map"].instance[0, 0]
    end_loan(first)
    assert os.path.exists(first.path)  # still borrowed
    release(again)
    release(again)
    assert not list(folder.iterdir())  # both names gone once nobody holds them
    assert pack({"map": got["map"]}, folder).borrowed == ()  # no longer lent: copied


def test_a_loan_ended_first_by_the_borrower(tmp_path):
    folder = shared_folder(tmp_path, min_free=0)
    first = pack(_payload(), folder)
    got = unpack(first, lend=True)
    again = pack({"map": got["map"]}, folder)
    assert again.path is None and again.borrowed == (first.path,)  # nothing to copy
    out = unpack(again)
    assert np.array_equal(out["map"].instance, _payload()["map"].instance)
    release(again)
    assert os.path.exists(first.path)  # the lender still holds it
    end_loan(first)
    assert not list(folder.iterdir())


def test_without_a_folder_everything_is_pickled(tmp_path):
    ref = _payload()
    for packed in (pack(ref, None), pack(ref, tmp_path / "missing"),  # unwritable: in band
                   pack({"small": np.zeros(10)}, tmp_path)):
        assert packed.path is None
        out = unpack(packed)
        if "small" not in out:
            _check(out, ref)
    assert shared_folder(tmp_path / "missing") is None
    assert shared_folder(tmp_path, min_free=1 << 62) is None  # not enough room


class LabelColours:
    """An instant engine whose image is a function of the labels (so outputs can differ)."""

    input_names = ("labels",)

    def __call__(self, labels, edges=None, noise=None, **extra):
        ids = np.asarray(labels)
        ids = ids.argmax(1) if ids.ndim == 4 else ids
        return np.stack([ids * 9, ids * 5, 255 - ids * 3], -1).astype(np.uint8)


@pytest.mark.parametrize("workers,write_workers", [(1, 0), (0, 1), (1, 1)])
def test_runs_through_shared_memory_write_the_same_bytes(tmp_path, monkeypatch, workers,
                                                         write_workers):
    monkeypatch.setattr(transport, "SHM_ROOT", tmp_path / "shm")
    (tmp_path / "shm").mkdir()
    monkeypatch.setattr(transport, "MIN_FREE", 0)
    size = (256, 256)  # instance maps of 256 KB: out of band
    src = sources.open("toycity", split="val", size=size, length=3)
    gen = Generator(LabelColours(), src.vocabulary, size, {}, model_name="colours")
    run = dict(writers=("cityscapes", "coco"), recipe=[{"op": "hflip", "p": 0.5}], seed=3,
               samples_per_map=2, batch_size=4, progress=False)
    generate(gen, src, tmp_path / "inline", **run)
    seen = []  # the packed objects this process sent (writes) or received (batches)

    def spy(fn):
        def wrapper(*args, **kwargs):
            out = fn(*args, **kwargs)
            seen.append(out if isinstance(out, transport.Packed) else args[0])
            return out
        return wrapper

    monkeypatch.setattr(generate_module, "unpack", spy(transport.unpack))
    monkeypatch.setattr(stage_module, "pack", spy(transport.pack))
    generate(gen, src, tmp_path / "shared", workers=workers, write_workers=write_workers, **run)
    assert seen and all(p.path is not None for p in seen)  # every batch went through a file
    # with both kinds of workers the label maps go on to the writers by reference
    assert any(p.borrowed for p in seen) == (workers > 0 and write_workers > 0)
    assert not transport._LENT  # every loan ended

    def files(root):
        return {p.relative_to(root).as_posix(): p.read_bytes()
                for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(tmp_path / "inline") == files(tmp_path / "shared")
    assert not list((tmp_path / "shm").iterdir())  # the run's folder is gone


def test_folders_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / f"sisgen-{int(proc.stdout)}-abc"
    (dead / "sub").mkdir(parents=True)
    (dead / "1-0.buf").write_bytes(b"x")
    alive = tmp_path / f"sisgen-{os.getpid()}-def"
    alive.mkdir()
    other = tmp_path / "sisgen-notapid-x"
    other.mkdir()
    mine = shared_folder(tmp_path, min_free=0)
    assert not dead.exists() and alive.is_dir() and other.is_dir()
    assert mine.name.startswith(f"sisgen-{os.getpid()}-")
