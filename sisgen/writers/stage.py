"""The write stage of a run: every writer's files of a sample, inline or in processes.

:meth:`~sisgen.writers.base.Writer.write_files` touches only the sample's own files, so
samples are encoded and written in parallel with no lock: each worker process holds a
pickled copy of the run's writers. The image is encoded once per format for all writers
(:class:`~sisgen.writers.base.SampleImage`). This module imports no torch, so a worker
starts in a fraction of a second.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from ..errors import SisgenInputError
from ..labelmap import LabelMap
from .base import SampleImage, Writer, Written

_WORKER_WRITERS: list[Writer] = []

Result = tuple[list[Written] | SisgenInputError, float]


def write_sample(writers: Sequence[Writer], name: str, image: np.ndarray, labelmap: LabelMap
                 ) -> Result:
    """Every writer's files of one sample.

    Returns:
        ``(written, seconds)``: one :class:`Written` per writer, in order -- or the
        :class:`SisgenInputError` that made the sample unwritable (recorded by the run,
        which goes on) -- and the busy time.
    """
    t0 = time.perf_counter()
    shared = SampleImage(image)
    try:
        out: list[Written] | SisgenInputError = [
            w.write_files(name, shared, labelmap) for w in writers]
    except SisgenInputError as e:
        out = e
    return out, time.perf_counter() - t0


def _init_worker(writers: list[Writer]) -> None:
    import cv2

    cv2.setNumThreads(1)
    _WORKER_WRITERS[:] = writers


def _write_in_worker(name: str, image: np.ndarray, labelmap: LabelMap) -> Result:
    return write_sample(_WORKER_WRITERS, name, image, labelmap)


class WriteStage:
    """Runs :func:`write_sample` in this process or in ``workers`` spawned processes.

    Args:
        writers: The run's writers (pickled once into each worker).
        workers: Worker processes; 0 writes in this process, when :meth:`submit` is called.
    """

    def __init__(self, writers: list[Writer], workers: int = 0):
        self.writers = writers
        self.pool = None
        if workers > 0:
            import multiprocessing

            self.pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(writers,))

    def submit(self, name: str, image: np.ndarray, labelmap: LabelMap) -> Future:
        """Start writing a sample; the future's result is :func:`write_sample`'s."""
        if self.pool is not None:
            return self.pool.submit(_write_in_worker, name, image, labelmap)
        fut: Future = Future()
        fut.set_result(write_sample(self.writers, name, image, labelmap))
        return fut

    def close(self, cancel: bool = False) -> None:
        """Wait for the workers (dropping queued samples with ``cancel``) and stop them."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=cancel)
