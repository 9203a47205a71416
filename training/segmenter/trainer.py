"""Train a :class:`~sisgen.training.segmenter.network.SegNet` on streams of labeled items.

A *stream* is a map-style dataset with a number of items per batch, e.g. ``[(real, 16)]``
or ``[(real, 16), (synthetic, 16)]``. Items are dicts with ``"image"`` (float ``[3,H,W]``
in ``[0, 1]``) and ``"label"`` (integer ``[H,W]`` class ids, 255 = ignore) -- the items of
:class:`sisgen.integrations.LabeledDataset`, :class:`~sisgen.integrations.SynthesisDataset`
(``to_tensor=True``) or :class:`~sisgen.integrations.MixedDataset`.

Each step draws exactly ``n_i`` items from stream ``i`` (:class:`StreamSampler`: every
stream walks its own seeded permutations, epoch after epoch, so a stream's items are used
equally often), concatenates them, applies the light augmentation (horizontal flips, and
random zoom-in crops when ``max_scale > 1``) and minimises the class-balanced pixel-mean
cross-entropy over labeled pixels (:func:`pixel_loss`, :func:`class_weights`: ignore
pixels, e.g. those a curation filter set to 255, count for nothing). AdamW with a linear
warm-up and a cosine decay to zero.

Items are read once and kept in memory (images at 8 bits, labels as channel indices), so
a training run decodes each sample once however many steps it takes -- and a dataset's
own random augmentation would be frozen at its first read: leave it off (the trainer
flips and crops whole batches itself).

Speed (CPU): the network runs in ``channels_last`` memory format (about 1.5x faster
convolutions than NCHW with oneDNN) and, with ``bf16=True``, under bfloat16 autocast
(another ~1.4x where the CPU has native bfloat16, the same mIoU on ToyCity). Training uses
one thread by default (see ``threads``).

Defaults (ToyCity 64x128, 300 training pairs, 300 ``val`` pairs, batch 16, mean and
standard deviation over 3 seeds; the development machine's AMD EPYC core, 1 thread): width
16, AdamW lr 1e-2, class balance 0.5, flips only -- 80.2 +- 0.3 mIoU after 500 steps, 83.7
+- 0.2 after 1000 (~95 ms a step, ~60 ms with ``bf16``), 85.3 +- 0.3 after 2000. Without
class balancing: 69.7 +- 2.1 (at lr 3e-3, where balancing gave 80.1 +- 0.6); random zoom
(``max_scale=1.5``) costs ~4 points at 1000 steps; width 24 gains ~3 points at equal
steps (lr 6e-3: 85.3 +- 0.6) for 1.65x the time, about what 2000 steps of width 16 give.

Determinism: the initial weights come from ``seed`` (under a forked torch RNG, so the
caller's global RNG is untouched), the draws and augmentations from
``numpy.random.default_rng(seed)``; two runs with the same arguments and thread count on
one machine give the same weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sisgen.errors import SisgenInputError
from sisgen.labelmap import IGNORE_ID, nearest_indices
from sisgen.vocab import Vocabulary, get_vocabulary

from ..data import Geometry
from .network import SegNet
from .norm import per_stream_forward

__all__ = ["SegmenterLog", "StreamSampler", "channel_table", "pixel_loss", "train_segmenter"]


def pixel_loss(logits: torch.Tensor, target: torch.Tensor,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose target is not 255 (0 when there are none).

    Args:
        logits: ``[B,C,H,W]``.
        target: ``[B,H,W]`` channel indices, 255 = ignore.
        weight: Optional per-channel weights ``[C]`` (the loss of a pixel of class ``c`` is
            multiplied by ``weight[c]``; the mean stays over pixels).
    """
    total = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_ID,
                            reduction="sum")
    return total / (target != IGNORE_ID).sum().clamp_min(1)


def class_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """Per-class loss weights ``frequency ** -power``, scaled to a pixel-weighted mean of 1.

    ``power`` 0 gives equal weights, 0.5 the inverse square root of the frequency. Classes
    without pixels get the largest weight of the others (it never multiplies anything).
    """
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    if power == 0 or not present.any():
        return np.ones(len(counts))
    freq = counts / counts.sum()
    weights = np.ones(len(counts))
    weights[present] = freq[present] ** -float(power)
    weights[~present] = weights[present].max()
    return weights / float((weights * freq).sum())


def channel_table(class_ids: Sequence[int]) -> np.ndarray:
    """A 256-entry table: class id -> output channel; 255 stays 255, other ids are -1."""
    lut = np.full(256, -1, np.int64)
    lut[IGNORE_ID] = IGNORE_ID
    lut[np.asarray(class_ids, np.int64)] = np.arange(len(class_ids))
    return lut


class StreamSampler:
    """The items of each training step: ``per_batch[i]`` indices of stream ``i``.

    Stream ``i`` walks ``numpy.random.default_rng([seed, i, epoch]).permutation(length)``
    for epoch 0, 1, ...; a step that reaches the end of an epoch continues in the next
    one. Every item of a stream is drawn once per epoch of that stream.

    Args:
        lengths: Items per stream.
        per_batch: Items per step from each stream.
        seed: Seed of the permutations.
    """

    def __init__(self, lengths: Sequence[int], per_batch: Sequence[int], seed: int = 0):
        if len(lengths) != len(per_batch):
            raise ValueError("one per-batch count per stream")
        self.lengths = [int(n) for n in lengths]
        self.per_batch = [int(n) for n in per_batch]
        self.seed = int(seed)
        self._epoch = [0] * len(self.lengths)
        self._pos = [0] * len(self.lengths)
        self._order = [self._permutation(i, 0) for i in range(len(self.lengths))]

    def _permutation(self, stream: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed % 2**63, stream, epoch])
        return rng.permutation(self.lengths[stream])

    def _take(self, stream: int, n: int) -> np.ndarray:
        out = []
        while n > 0:
            order, pos = self._order[stream], self._pos[stream]
            k = min(n, len(order) - pos)
            out.append(order[pos:pos + k])
            n -= k
            self._pos[stream] = pos + k
            if self._pos[stream] == len(order):
                self._epoch[stream] += 1
                self._order[stream] = self._permutation(stream, self._epoch[stream])
                self._pos[stream] = 0
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def draw(self) -> list[np.ndarray]:
        """The next step's indices, one array per stream."""
        return [self._take(i, n) for i, n in enumerate(self.per_batch)]


class _Items:
    """One stream's items, read on first use and kept (uint8 image, uint8 channel map)."""

    def __init__(self, dataset: Any, stream: int, lut: np.ndarray):
        self.dataset = dataset
        self.stream = stream
        self.lut = lut
        self.size: tuple[int, int] | None = None  # items of another size are resized to it
        self.images: dict[int, torch.Tensor] = {}
        self.labels: dict[int, torch.Tensor] = {}

    def read(self, index: int) -> None:
        """Read, check, resize and keep item ``index``."""
        item = self.dataset[index]
        name = item.get("name", item.get("id", index)) if isinstance(item, dict) else index
        where = f"item {index} ({name}) of stream {self.stream}"
        try:
            image, label = item["image"], item["label"]
        except (KeyError, TypeError, IndexError):
            raise SisgenInputError(f"{where} is not a dict with 'image' and 'label'") from None
        image = torch.as_tensor(image).float()
        label = np.asarray(label).astype(np.int64)
        if image.ndim != 3 or image.shape[0] != 3 or tuple(image.shape[1:]) != label.shape:
            raise SisgenInputError(f"{where}: image {tuple(image.shape)} and label "
                                   f"{label.shape} are not [3,H,W] and [H,W] of one size")
        photo = image.mul(255).round_().clamp_(0, 255).to(torch.uint8).numpy()
        if label.min() < 0 or label.max() > 255 or (self.lut[label] < 0).any():
            bad = sorted({int(v) for v in np.unique(label) if not 0 <= v <= 255
                          or self.lut[int(v)] < 0})[:10]
            raise SisgenInputError(f"{where}: label ids {bad} are no class of the segmenter")
        if self.size is not None and label.shape != self.size:
            geometry = Geometry(self.size, (0, 0), self.size, False)
            photo = geometry.apply_to_photo(photo.transpose(1, 2, 0)).transpose(2, 0, 1)
            label = geometry.apply_to_labels([label])[0]
        self.images[index] = torch.from_numpy(np.ascontiguousarray(photo))
        self.labels[index] = torch.from_numpy(self.lut[label].astype(np.uint8))

    def pixel_counts(self, channels: int) -> np.ndarray:
        """Labeled pixels per channel over all items (reads every item)."""
        counts = np.zeros(channels, np.int64)
        for i in range(len(self.dataset)):
            if i not in self.labels:
                self.read(i)
            counts += np.bincount(self.labels[i].numpy().ravel(), minlength=256)[:channels]
        return counts

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(uint8 [n,3,H,W], uint8 [n,H,W])`` of the indexed items."""
        for i in indices:
            if int(i) not in self.images:
                self.read(int(i))
        return (torch.stack([self.images[int(i)] for i in indices]),
                torch.stack([self.labels[int(i)] for i in indices]))


def augment(images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator,
            max_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal flips and zoom-in crops of a batch (same pixels for both maps).

    Each item is flipped with probability 1/2; with ``max_scale > 1`` it is also scaled by
    a factor drawn uniformly from ``[1, max_scale]`` (image bilinear, labels nearest with
    :func:`~sisgen.labelmap.nearest_indices`) and cropped back to its size at a random
    offset. The draws per item are fixed (flip, scale, y, x), so the stream of random
    numbers does not depend on the outcomes.

    Args:
        images: Float ``[B,3,H,W]``.
        labels: Integer ``[B,H,W]``.
        rng: Source of the draws.
        max_scale: Largest zoom factor (1: flips only).

    Returns:
        The augmented ``(images, labels)`` (new tensors).
    """
    b, _, h, w = images.shape
    draws = torch.from_numpy(rng.random((b, 4)))
    images, labels = images.clone(), labels.clone()
    if max_scale > 1.0:
        for k in range(b):
            _, scale, fy, fx = draws[k].tolist()
            s = 1.0 + (max_scale - 1.0) * scale
            rh, rw = round(h * s), round(w * s)
            if (rh, rw) == (h, w):
                continue
            y, x = int(fy * (rh - h + 1)), int(fx * (rw - w + 1))
            images[k] = F.interpolate(images[k:k + 1], size=(rh, rw), mode="bilinear",
                                      align_corners=False)[0, :, y:y + h, x:x + w]
            rows = torch.from_numpy(nearest_indices(h, rh)[y:y + h].copy())
            cols = torch.from_numpy(nearest_indices(w, rw)[x:x + w].copy())
            labels[k] = labels[k][rows[:, None], cols[None, :]]
    flip = draws[:, 0] < 0.5
    images[flip] = images[flip].flip(-1)
    labels[flip] = labels[flip].flip(-1)
    return images, labels


def learning_rate(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to 0 at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return 0.5 * lr * (1.0 + math.cos(math.pi * min(t, 1.0)))


@dataclass
class SegmenterLog:
    """What a training run did.

    Attributes:
        loss: The loss of every step.
        lr: The learning rate of every step.
        drawn: Items drawn from each stream over the run.
        seconds: Wall-clock time of the steps (reading items included).
        threads: Torch threads used.
    """

    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    drawn: list[int] = field(default_factory=list)
    seconds: float = 0.0
    threads: int = 1

    @property
    def steps(self) -> int:
        """Steps taken."""
        return len(self.loss)

    @property
    def ms_per_step(self) -> float:
        """Mean wall-clock milliseconds per step."""
        return 1000.0 * self.seconds / max(1, self.steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the loss curve averaged over 20 windows)."""
        loss = np.asarray(self.loss, np.float64)
        curve = [float(c.mean()) for c in np.array_split(loss, min(20, len(loss))) if len(c)]
        return {"steps": self.steps, "seconds": round(self.seconds, 3),
                "ms_per_step": round(self.ms_per_step, 2), "threads": self.threads,
                "drawn": list(self.drawn), "final_loss": curve[-1] if curve else None,
                "loss_curve": [round(c, 5) for c in curve]}


def _class_ids(streams: Sequence[tuple[Any, int]], vocabulary: Vocabulary | str | None,
               num_classes: int | None) -> list[int]:
    """The class id of each output channel; checks the streams' vocabularies."""
    vocab = None if vocabulary is None else get_vocabulary(vocabulary)
    if vocab is None and num_classes is None:
        vocab = next((getattr(d, "vocabulary", None) for d, _ in streams
                      if getattr(d, "vocabulary", None) is not None), None)
        if vocab is None:
            raise ValueError("give num_classes or vocabulary (the streams name none)")
    if vocab is not None:
        for i, (dataset, _) in enumerate(streams):
            other = getattr(dataset, "vocabulary", None)
            if other is not None and other.ids != vocab.ids:
                raise SisgenInputError(
                    f"stream {i} has the vocabulary {other.name!r} ({len(other)} classes, ids "
                    f"{other.ids[0]}..{other.ids[-1]}); the segmenter's is {vocab.name!r} "
                    f"({len(vocab)} classes, ids {vocab.ids[0]}..{vocab.ids[-1]})")
        if num_classes is not None and num_classes != len(vocab):
            raise ValueError(f"num_classes {num_classes} differs from the {len(vocab)} "
                             f"classes of the vocabulary {vocab.name!r}")
        return vocab.ids
    if not 1 <= int(num_classes) <= 255:
        raise ValueError(f"num_classes must be in 1..255, got {num_classes}")
    return list(range(int(num_classes)))


def _counts(streams: Sequence[Any], batch_size: int | None) -> list[tuple[Any, int]]:
    """``(dataset, items per step)`` pairs; bare datasets share what ``batch_size`` leaves."""
    pairs = [s if isinstance(s, tuple) else (s, None) for s in streams]
    fixed = sum(int(n) for _, n in pairs if n is not None)
    bare = [i for i, (_, n) in enumerate(pairs) if n is None]
    if bare and batch_size is None:
        raise ValueError("give each stream as (dataset, items per step), or a batch_size")
    if batch_size is not None and (int(batch_size) < fixed + len(bare) or (
            not bare and int(batch_size) != fixed)):
        raise ValueError(f"batch_size {batch_size} does not fit the streams' counts ({fixed} "
                         f"fixed, {len(bare)} to share)")
    share, extra = divmod(int(batch_size or 0) - fixed, max(1, len(bare)))
    return [(d, int(n) if n is not None else share + (bare.index(i) < extra))
            for i, (d, n) in enumerate(pairs)]


def train_segmenter(streams: Sequence[tuple[Any, int] | Any], *,
                    vocabulary: Vocabulary | str | None = None, num_classes: int | None = None,
                    steps: int = 1000, batch_size: int | None = None, lr: float = 1e-2,
                    weight_decay: float = 1e-4, warmup: int = 50, seed: int = 0,
                    size: tuple[int, int] | None = None, width: int = 16, depth: int = 4,
                    max_scale: float = 1.0, balance: float = 0.5,
                    separate_norm: bool = False, bf16: bool = False, threads: int | None = 1,
                    callback: Callable[[int, dict[str, float]], None] | None = None,
                    ) -> tuple[SegNet, SegmenterLog]:
    """Train a :class:`SegNet` (module docstring).

    Args:
        streams: ``(dataset, items per step)`` pairs (the batch size is their sum), or
            datasets that share ``batch_size`` equally (``[real]``, ``batch_size=16``).
        vocabulary: The classes (a preset name, file or Vocabulary): output channel ``c`` is
            class ``vocabulary.ids[c]``. Default: the first stream's ``vocabulary``.
        num_classes: Instead of a vocabulary: channel ``c`` is class id ``c``.
        steps: Optimiser steps.
        batch_size: Items per step, for streams given without a count.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay of the convolution weights (not of norms and
            biases).
        warmup: Linear warm-up steps (at most a fifth of ``steps``).
        seed: Seed of the weights, the draws and the augmentation.
        size: ``(H, W)`` items are resized to when they differ (labels nearest, photos
            area/bicubic); ``None``: the size of the first stream's first item.
        width: :class:`SegNet` width.
        depth: :class:`SegNet` depth.
        max_scale: Largest random zoom of the augmentation (1: flips only).
        balance: Class-balancing power of the loss weights (:func:`class_weights`, from
            the pixel frequencies of all streams, each weighted by its share of a batch;
            reads every item before the first step). 0: plain cross-entropy. The default
            0.5 (inverse square root of the frequency) lifts ToyCity mIoU by ~10 points
            and divides the spread between seeds by three: rare classes (signs, terrain) no
            longer come and go with the seed.
        separate_norm: Normalise each stream's items with their own batch statistics
            (one forward pass per stream, :func:`~.norm.per_stream_forward`), and keep the
            running statistics -- those used at evaluation -- of the first stream only
            (the first that draws items). A real stream mixed with a synthetic one then
            normalises the network as for real photos.
        bf16: Run the forward pass under CPU bfloat16 autocast (weights, normalisations and
            the loss stay float32). About 1.4x faster where the CPU has native bfloat16
            (AVX512-BF16, AMX); much slower where it has not.
        threads: ``torch.set_num_threads`` during training (restored afterwards);
            ``None`` leaves the setting alone. Default 1: this network's small operations
            gain little from more threads, and on a busy machine OpenMP threads waiting for
            each other at every operation make two threads 10x slower than one (measured on
            the 2-core development machine); run trainings side by side instead.
        callback: Called after every step as ``callback(step, {"loss", "lr"})``.

    Returns:
        ``(net, log)``: the trained network in eval mode and a :class:`SegmenterLog`.

    Raises:
        SisgenInputError: A stream's vocabulary or label ids do not fit the classes, an
            empty stream, or an item that is not an image/label pair.
        ValueError: Bad counts, or neither classes nor vocabulary.
    """
    streams = _counts(streams, batch_size)
    if not streams or any(n < 0 for _, n in streams) or sum(n for _, n in streams) < 1:
        raise ValueError("give at least one stream and a positive number of items per step")
    if steps < 0 or max_scale < 1.0:
        raise ValueError(f"steps must be >= 0 and max_scale >= 1; got {steps}, {max_scale}")
    for i, (dataset, n) in enumerate(streams):
        if n and len(dataset) == 0:
            raise SisgenInputError(f"stream {i} ({dataset!r}) has no items")
    class_ids = _class_ids(streams, vocabulary, num_classes)
    lut = channel_table(class_ids)
    items = [_Items(d, i, lut) for i, (d, _) in enumerate(streams)]
    if size is None:  # the first item's size
        first = next(it for it, (_, n) in zip(items, streams, strict=True) if n)
        first.read(0)
        size = tuple(first.labels[0].shape)
    for it in items:
        it.size = (int(size[0]), int(size[1]))
    sampler = StreamSampler([len(d) for d, _ in streams], [n for _, n in streams], seed)
    rng = np.random.default_rng([seed % 2**63, 0xA116])
    weight = None
    if balance:
        freq = np.zeros(len(class_ids))
        for it, (_, n) in zip(items, streams, strict=True):
            if n:
                counts = it.pixel_counts(len(class_ids))
                freq += n * counts / max(1, counts.sum())
        weight = torch.tensor(class_weights(freq, balance), dtype=torch.float32)

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = SegNet(len(class_ids), width=width, depth=depth, class_ids=class_ids)
        net = net.to(memory_format=torch.channels_last)  # ~1.5x faster convolutions on CPUs
        decay = [p for p in net.parameters() if p.ndim > 1]  # convolution weights
        other = [p for p in net.parameters() if p.ndim <= 1]  # norms and biases
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                 {"params": other, "weight_decay": 0.0}], lr=lr)
        log = SegmenterLog(drawn=[0] * len(streams), threads=torch.get_num_threads())
        net.train()
        start = time.perf_counter()
        for step in range(int(steps)):
            parts = [it.batch(idx) for it, idx in zip(items, sampler.draw(), strict=True)
                     if len(idx)]
            images = torch.cat([p[0] for p in parts]).float().div_(255.0)
            labels = torch.cat([p[1] for p in parts]).long()
            images, labels = augment(images, labels, rng, max_scale)
            images = images.contiguous(memory_format=torch.channels_last)
            rate = learning_rate(step, int(steps), lr, min(warmup, int(steps) // 5))
            for group in opt.param_groups:
                group["lr"] = rate
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                if separate_norm and len(parts) > 1:
                    logits = per_stream_forward(net, images, [len(p[0]) for p in parts])
                else:
                    logits = net(images)
            loss = pixel_loss(logits.float(), labels, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            log.loss.append(value)
            log.lr.append(rate)
            for i, (_, n) in enumerate(streams):
                log.drawn[i] += n
            if callback is not None:
                callback(step, {"loss": value, "lr": rate})
        log.seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(old_threads)
    return net.to(memory_format=torch.contiguous_format).eval(), log

