"""Objects full of arrays between processes, with the arrays in shared memory.

A prepared batch of 64 Cityscapes samples at 256x512 holds ~70 MB of arrays. Sent through
a pipe (what ``multiprocessing`` and ``DataLoader`` do with numpy arrays), the receiving
process reads and unpickles it at ~4 ms per sample on one core -- a ceiling of a few
hundred images/s on the run's main process, however many workers prepare and write.

:func:`pack` pickles an object with protocol 5 and copies every large contiguous buffer
(numpy arrays) out of band into one file of a RAM-backed folder (``/dev/shm``);
:func:`unpack` maps that file and rebuilds the object with its arrays as views of the
mapping: no copy, and only the small pickle crosses the pipe. The receiver removes a
one-reader file's name at once; the memory goes with the last view. A file read by several
processes is removed by its sender (:func:`release`).

A process that passes arrays on (``generate``'s main process: label maps from the prepare
workers go on to the write workers with the images) unpacks with ``lend=True``: a later
:func:`pack` of arrays that are still views of that file refers to them by file and offset
instead of copying them again, and the file keeps its name until its unpacker and every
pack that borrowed it are done (:func:`end_loan`, :func:`release`).

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

import contextlib
import itertools
import mmap
import os
import pickle
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
        path: The file holding the buffers this pack copied (``None``: none copied).
        spans: ``(file, offset, length)`` of each out-of-band buffer, in pickle order;
            file 0 is ``path``, file ``k`` is ``borrowed[k - 1]``.
        borrowed: Files of earlier packs that some buffers are views of (see ``lend`` in
            :func:`unpack`): referred to, not copied.
        key: A name unique to this pack (``""`` when everything is in ``data``).
    """

    data: bytes
    path: str | None = None
    spans: tuple[tuple[int, int, int], ...] = ()
    borrowed: tuple[str, ...] = ()
    key: str = ""

    @property
    def shared(self) -> bool:
        """Whether some buffers are in shared files (not everything is in ``data``)."""
        return bool(self.spans)


# files whose mapping in this process later packs may refer to: path -> (address of the
# mapping, its size, holders: "" for the unpacker and the key of every unreleased pack
# that borrowed it, the mapping: held so that its addresses cannot be reused meanwhile)
_LENT: dict[str, tuple[int, int, set[str], mmap.mmap]] = {}
_LENT_LOCK = threading.Lock()


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
    key = f"{os.getpid()}-{next(_counter)}"
    spans, copied, borrowed, offset = [], [], {}, 0
    with _LENT_LOCK:
        for raw in buffers:
            lender = _lender(raw)
            if lender is not None:
                path, start = lender
                spans.append((borrowed.setdefault(path, len(borrowed) + 1), start, raw.nbytes))
                continue
            spans.append((0, offset, raw.nbytes))
            copied.append((raw, offset))
            offset += -(-raw.nbytes // _ALIGN) * _ALIGN
        for path in borrowed:
            _LENT[path][2].add(key)
    own = None
    if copied:
        own = os.path.join(os.fspath(folder), f"{key}.buf")
        try:
            _write_buffers(own, offset, copied)
        except OSError:  # no room left: send it through the pipe instead
            _drop(tuple(borrowed), key)
            return Packed(pickle.dumps(obj, protocol=5))
    return Packed(data, own, tuple(spans), tuple(borrowed), key)


def _lender(raw: memoryview) -> tuple[str, int] | None:
    """The lent file ``raw`` lies in and its offset there (call with the lock held)."""
    if not _LENT:
        return None
    address = np.frombuffer(raw, np.uint8).ctypes.data
    for path, (base, size, _, _) in _LENT.items():
        if base <= address and address + raw.nbytes <= base + size:
            return path, address - base
    return None


def _write_buffers(path: str, size: int, copied: list[tuple[memoryview, int]]) -> None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
            for view, start in copied:
                while view.nbytes:  # pwrite may write less than asked
                    n = os.pwrite(fd, view, start)
                    view, start = view[n:], start + n
        finally:
            os.close(fd)
    except OSError:
        _unlink(path)
        raise


def unpack(packed: Packed, keep_file: bool = False, lend: bool = False) -> Any:
    """The object of :func:`pack`, its large arrays writable views of the shared files.

    Args:
        packed: What :func:`pack` returned (in another process, or this one).
        keep_file: Leave the file's name for other readers (the sender then calls
            :func:`release`); by default the name is removed once the file is mapped.
        lend: Keep the file's name, and let later :func:`pack` calls in this process refer
            to buffers that are views of this file instead of copying them (they borrow
            it). The name goes when :func:`end_loan` was called for ``packed`` and every
            pack that borrowed the file was released (:func:`release`).

    Buffers a pack borrowed are mapped copy-on-write: writing into them never reaches the
    lender's arrays.
    """
    if not packed.shared:
        return pickle.loads(packed.data)
    files: list[memoryview | None] = [None]
    if packed.path is not None:
        with open(packed.path, "r+b") as f:
            mapping = mmap.mmap(f.fileno(), 0)
        files[0] = memoryview(mapping)
        if lend:
            with _LENT_LOCK:
                _LENT[packed.path] = (np.frombuffer(mapping, np.uint8).ctypes.data,
                                      len(mapping), {""}, mapping)
        elif not keep_file:
            _unlink(packed.path)
    for path in packed.borrowed:
        with open(path, "rb") as f:
            files.append(memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)))
    return pickle.loads(packed.data, buffers=[files[k][a:a + n] for k, a, n in packed.spans])


def end_loan(packed: Packed) -> None:
    """The unpacker of a lent file (``unpack(lend=True)``) no longer lends it."""
    if packed.path is not None:
        _drop((packed.path,), "")


def _drop(paths: tuple[str, ...], holder: str) -> None:
    """``holder`` lets go of each lent file; a file without holders loses its name."""
    gone = []
    with _LENT_LOCK:
        for path in paths:
            entry = _LENT.get(path)
            if entry is None:
                continue
            entry[2].discard(holder)
            if not entry[2]:
                del _LENT[path]
                gone.append(path)
    for path in gone:
        _unlink(path)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):  # gone already, or a folder we cannot write
        os.unlink(path)


def release(packed: Packed) -> None:
    """Remove a packed object's file name (mapped views stay valid) and end its borrowing.

    The sender calls it once the readers have unpacked ``packed``; twice is harmless.
    """
    if packed.path is not None:
        _unlink(packed.path)
    _drop(packed.borrowed, packed.key)
