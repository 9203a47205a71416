"""Atomic file writing: whole files only, and the modes the user's umask asks for."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from sisgen.io import (
    atomic_write_bytes,
    remove_temp_files,
    temp_owner,
    write_image,
    write_json,
)


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        write_json(tmp_path / "b.json", {"a": 1})
        write_image(tmp_path / "c.png", np.zeros((2, 3), np.uint8))
    finally:
        os.umask(old)
    for name in ("a.bin", "b.json", "c.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    atomic_write_bytes(tmp_path / "a.bin", b"old")

    def fail(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(tmp_path / "a.bin", b"new")
    assert (tmp_path / "a.bin").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_temp_files_of_a_killed_writer_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / f".x.png.{dead}.4.tmp").write_bytes(b"half")
    (tmp_path / f".hf.tmp-{dead}-k2j3").mkdir()
    (tmp_path / f".hf.tmp-{dead}-k2j3" / "data.arrow").write_bytes(b"half")
    (tmp_path / "a" / f".y.png.{alive}.0.tmp").write_bytes(b"being written by a live rank")
    (tmp_path / "a" / ".keep").write_bytes(b"")
    (tmp_path / "a" / ".notes.tmp").write_bytes(b"not a name sisgen makes")
    (tmp_path / "a" / "x.png").write_bytes(b"whole")
    assert remove_temp_files(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        ".keep", ".notes.tmp", f".y.png.{alive}.0.tmp", "x.png"]


def test_temp_owner_reads_the_pid_of_sisgen_temp_names():
    assert temp_owner(".instances_val.json.4242.17.tmp") == 4242
    assert temp_owner(".hf.tmp-99-abc_d") == 99
    assert temp_owner(".x.tmp") is None
    assert temp_owner("x.png.12.3.tmp") is None
    assert temp_owner(".hf.tmp-abc") is None


def test_threads_writing_into_a_new_folder_all_succeed(tmp_path):
    """Several threads find the folder missing at once: each makes it (or finds it) and writes."""
    from concurrent.futures import ThreadPoolExecutor

    for round_ in range(20):
        folder = tmp_path / f"r{round_}" / "a" / "b"
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i, f=folder: atomic_write_bytes(f / f"{i}.bin", bytes([i])),
                          range(16)))
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{i}.bin" for i in range(16))
    atomic_write_bytes(tmp_path / "file.bin", b"x")
    with pytest.raises(OSError):  # a folder that cannot be made still fails
        atomic_write_bytes(tmp_path / "file.bin" / "below.bin", b"x")


def test_a_folder_made_by_another_writer_meanwhile_is_used(tmp_path, monkeypatch):
    """The race threads meet: the open fails, another writer makes the folder, we retry."""
    import sisgen.io as sio

    real_open = os.open

    def open_then_lose_the_race(path, *args, **kwargs):
        try:
            return real_open(path, *args, **kwargs)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)  # the other writer wins
            raise

    monkeypatch.setattr(sio.os, "open", open_then_lose_the_race)
    atomic_write_bytes(tmp_path / "new" / "x.bin", b"data")
    assert (tmp_path / "new" / "x.bin").read_bytes() == b"data"
