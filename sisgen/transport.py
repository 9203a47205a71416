"""Objects full of arrays between processes, with the arrays in shared memory.

A prepared batch of 64 Cityscapes samples at 256x512 holds ~70 MB of arrays. Sent through
a pipe (what ``multiprocessing`` and ``DataLoader`` do with numpy arrays), the receiving
process reads and unpickles it at ~4 ms per sample on one core -- a ceiling of a few
hundred images/s on the run's main process, however many workers prepare and write.

:func:`pack` pickles an object with protocol 5 and copies every large contiguous buffer
(numpy arrays) out of band into one file of a RAM-backed folder (``/dev/shm``);
:func:`unpack` maps that file and rebuilds the object with its arrays as views of the
mapping: no copy, and only the small pickle crosses the pipe. The receiver removes a
one-reader file's name at once (:attr:`Packed.readers` = 1); the memory goes with the last
view. A file read by several processes is removed by its sender (:func:`release`).

Written with ``mmap`` and plain files rather than ``multiprocessing.shared_memory``:
the standard class registers every segment it attaches with the resource tracker, which
unlinks or warns about segments the attaching process does not own (fixed only in Python
3.13), and it cannot be closed while numpy views of it are alive. Torch's tensor sharing
would need torch in the write workers, which start without it.

Each run has its own folder (``sisgen-<pid>-*``), removed at its end; a run killed with
SIGKILL leaves its folder, which the next run's :func:`shared_folder` removes. Without a
RAM-backed folder, or when it is full, objects are pickled whole (``path`` is ``None``).
"""

from __future__ import annotations

import itertools
import mmap
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .io import process_running

SHM_ROOT = Path("/dev/shm")
MIN_BYTES = 1 << 16  # smaller buffers stay inside the pickle
MIN_FREE = 1 << 30  # a RAM folder with less room is not used
_ALIGN = 64
_counter = itertools.count()


@dataclass(frozen=True)
class Packed:
    """A packed object: the pickle, and where its out-of-band buffers are.

    Attributes:
        data: The protocol-5 pickle.
        path: The file holding the buffers (``None``: everything is in ``data``).
        spans: ``(offset, length)`` of each out-of-band buffer, in pickle order.
    """

    data: bytes
    path: str | None = None
    spans: tuple[tuple[int, int], ...] = ()


def shared_folder(root: str | os.PathLike | None = None, min_free: int | None = None
                  ) -> Path | None:
    """A new private folder in RAM-backed ``root`` (default :data:`SHM_ROOT`), or ``None``.

    ``None`` when ``root`` is missing, not writable or has less than ``min_free`` bytes
    (default :data:`MIN_FREE`) free: a container's default 64 MB ``/dev/shm`` is too
    small for a batch. The caller removes the folder (:func:`remove_folder`).
    """
    root = Path(SHM_ROOT if root is None else root)
    min_free = MIN_FREE if min_free is None else min_free
    try:
        if not root.is_dir():
            return None
        remove_stale_folders(root)
        if shutil.disk_usage(root).free < min_free:
            return None
        return Path(tempfile.mkdtemp(prefix=f"sisgen-{os.getpid()}-", dir=root))
    except OSError:
        return None


def remove_stale_folders(root: str | os.PathLike) -> list[Path]:
    """Remove the folders in ``root`` of sisgen processes that no longer run.

    A run killed with SIGKILL cannot remove its folder, and ``/dev/shm`` is RAM: the next
    run that makes a folder clears those of dead processes (``sisgen-<pid>-*``).
    Returns the folders removed.
    """
    removed = []
    for folder in Path(root).glob("sisgen-*-*"):
        try:
            pid = int(folder.name.split("-")[1])
        except ValueError:
            continue
        if folder.is_dir() and not process_running(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def remove_folder(folder: str | os.PathLike | None) -> None:
    """Remove a :func:`shared_folder` and what is left in it (views stay valid)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def pack(obj: Any, folder: str | os.PathLike | None, min_bytes: int = MIN_BYTES) -> Packed:
    """Pickle ``obj`` with its large buffers copied into one file in ``folder``.

    Args:
        obj: Any picklable object; numpy arrays of at least ``min_bytes`` that are
            contiguous go out of band.
        folder: A :func:`shared_folder` (``None``: pickle everything in band).
        min_bytes: The smallest buffer sent out of band.

    Returns:
        The :class:`Packed` object; pickled whole when ``folder`` is ``None``, when there
        is no large buffer, or when the file cannot be written (a full folder).
    """
    if folder is None:
        return Packed(pickle.dumps(obj, protocol=5))
    buffers: list[memoryview] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        raw = buffer.raw()
        if raw.nbytes < min_bytes:
            return True  # in band
        buffers.append(raw)
        return False

    data = pickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
    if not buffers:
        return Packed(data)
    spans, offset = [], 0
    for raw in buffers:
        spans.append((offset, raw.nbytes))
        offset += -(-raw.nbytes // _ALIGN) * _ALIGN
    path = os.path.join(os.fspath(folder), f"{os.getpid()}-{next(_counter)}.buf")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, offset)
            for raw, (start, _) in zip(buffers, spans, strict=True):
                view = raw
                while view.nbytes:  # pwrite may write less than asked
                    n = os.pwrite(fd, view, start)
                    view, start = view[n:], start + n
        finally:
            os.close(fd)
    except OSError:  # no room left: send it through the pipe instead
        try:
            os.unlink(path)
        except OSError:
            pass
        return Packed(pickle.dumps(obj, protocol=5))
    return Packed(data, path, tuple(spans))


def unpack(packed: Packed, keep_file: bool = False) -> Any:
    """The object of :func:`pack`, its large arrays writable views of the shared file.

    Args:
        packed: What :func:`pack` returned (in another process, or this one).
        keep_file: Leave the file's name for other readers (the sender then calls
            :func:`release`); by default the name is removed once the file is mapped.
    """
    if packed.path is None:
        return pickle.loads(packed.data)
    with open(packed.path, "r+b") as f:
        mapping = mmap.mmap(f.fileno(), 0)
    if not keep_file:
        release(packed)
    view = memoryview(mapping)
    return pickle.loads(packed.data, buffers=[view[a:a + n] for a, n in packed.spans])


def release(packed: Packed) -> None:
    """Remove a packed object's file name (mapped views stay valid)."""
    if packed.path is not None:
        try:
            os.unlink(packed.path)
        except FileNotFoundError:
            pass
