"""A PyTorch dataset that synthesizes labeled images on the fly.

:class:`SynthesisDataset` reads label maps from a :class:`~sisgen.sources.Source`, edits them
with a :class:`~sisgen.edits.Recipe`, and runs a generator on them inside each DataLoader
worker. Sample ``k`` of an epoch has the seed ``sample_seed(seed + epoch * EPOCH_SEED_STRIDE,
k)``, used for both the edits and the generator noise, so the same index gives the same
image however many workers or ranks share the work; epoch 0 gives the images
``sisgen generate`` writes with the same seed. With a plan (``plan=``, see
:mod:`sisgen.curation`) map ``m`` gets the plan's count of samples per epoch, addressed as
``sisgen generate --plan`` addresses them (one :class:`~sisgen.samples.SampleLayout`).

Engines are never pickled: the dataset holds a model path or a zero-argument factory and
opens the generator lazily, once per process.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from sisgen.curation import Plan
from sisgen.edits import Recipe
from sisgen.engines import Generator
from sisgen.errors import SisgenInputError
from sisgen.instance_bank import InstanceBank
from sisgen.labelmap import SOURCE_INDEX_KEY, LabelMap
from sisgen.samples import (
    BANK_MAPS,
    PreparedSample,
    SampleLayout,
    SamplePath,
    run_bank,
    run_engine,
    sample_seed,
)
from sisgen.sources import Source
from sisgen.vocab import require_same_ids

EPOCH_SEED_STRIDE = 1_000_003
"""Run-seed offset between epochs: epoch ``e`` uses run seed ``seed + e * stride``."""

GeneratorSpec = str | os.PathLike | Callable[[], Generator] | Generator
"""A model folder / ``.onnx`` path, a zero-argument factory, or (in-process only) a Generator."""


class LazyGenerator:
    """Opens a generator on first use, once per process.

    A path or factory is pickled instead of the engine, so a copy sent to a DataLoader
    worker (or forked into one) opens its own engine there.

    Args:
        spec: A model path (``sisgen.load``), a zero-argument callable returning a
            :class:`~sisgen.engines.Generator`, or a Generator (used as is; only safe
            in-process, e.g. ``num_workers=0``).
        load_kwargs: Extra arguments for ``sisgen.load`` (``device``, ``providers``...).
    """

    def __init__(self, spec: GeneratorSpec, load_kwargs: dict[str, Any] | None = None):
        if not (isinstance(spec, (str, os.PathLike, Generator)) or callable(spec)):
            raise TypeError("generator must be a model path, a zero-argument factory or a "
                            f"Generator, got {type(spec).__name__}")
        self.spec = spec
        self.load_kwargs = dict(load_kwargs or {})
        self._generator: Generator | None = spec if isinstance(spec, Generator) else None
        self._pid = os.getpid() if self._generator is not None else None

    def get(self) -> Generator:
        """The generator of this process (opened on the first call)."""
        if self._generator is None or (self._pid != os.getpid()
                                       and not isinstance(self.spec, Generator)):
            if isinstance(self.spec, (str, os.PathLike)):
                from sisgen.engines import load_generator

                gen = load_generator(self.spec, **self.load_kwargs)
            else:
                gen = self.spec()  # type: ignore[operator]
                if not isinstance(gen, Generator):
                    raise TypeError("the generator factory must return a sisgen Generator, "
                                    f"got {type(gen).__name__}")
            self._generator = gen
            self._pid = os.getpid()
        return self._generator

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if not isinstance(self.spec, Generator):
            state["_generator"] = None
            state["_pid"] = None
        return state


def rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: the given values, else ``torch.distributed``'s, else ``(0, 1)``.

    Raises:
        ValueError: ``rank`` is outside ``0..world_size-1``.
    """
    if rank is None or world_size is None:
        dist = torch.distributed
        initialised = dist.is_available() and dist.is_initialized()
        if rank is None:
            rank = dist.get_rank() if initialised else 0
        if world_size is None:
            world_size = dist.get_world_size() if initialised else 1
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..world_size-1, got rank={rank} "
                         f"world_size={world_size}")
    return int(rank), int(world_size)


def shard(items: np.ndarray, rank: int | None = None, world_size: int | None = None
          ) -> np.ndarray:
    """The part of ``items`` the calling process handles.

    First split by rank (``items[rank::world_size]``, see :func:`rank_and_world`), then the
    rank's part by DataLoader worker (``[worker_id::num_workers]``), so that all processes
    together cover ``items`` exactly once and a rank's share does not depend on its number
    of workers.
    """
    rank, world_size = rank_and_world(rank, world_size)
    mine = items[rank::world_size]
    info = get_worker_info()
    return mine if info is None else mine[info.id::info.num_workers]


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """``H×W×3`` uint8 -> float32 ``3×H×W`` tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


def _named(sample: PreparedSample) -> LabelMap:
    """The sample's map, its ``meta`` naming the sample and the source map it came from."""
    lm = sample.labelmap
    lm.meta["id"] = sample.name
    lm.meta[SOURCE_INDEX_KEY] = sample.source_index
    return lm


class SynthesisDataset(IterableDataset):
    """Labeled images synthesized on the fly from a source of label maps.

    Each epoch covers the sample indices ``0..epoch_length-1`` once across all DataLoader
    workers and distributed ranks together (see :func:`shard`). Index ``k`` reads label map
    ``(k // samples_per_map) % len(source)`` (with a plan: the map whose block of indices
    holds ``k``, :class:`~sisgen.samples.SampleLayout`), is edited with the recipe under its seed,
    resized (nearest) to the generator resolution, and generated in engine batches of
    ``batch_size``.

    Items are dicts::

        {"image": H×W×3 uint8 (or float 3×H×W tensor in [0,1] with to_tensor=True),
         "label": int64 H×W class ids (255 = ignore; train ids with train_ids=True),
         "instance": int32 H×W instance ids (0 = none, all 0 when the source has none),
         "id": str, "seed": int, "index": int, "epoch": int}

    Args:
        source: The label maps.
        generator: A model path (folder or ``.onnx``), a zero-argument factory returning a
            Generator (opened once in each worker), or a Generator (only for
            ``num_workers=0`` or fork-started workers).
        recipe: Edit recipe (anything :meth:`Recipe.load` accepts).
        seed: Run seed.
        samples_per_map: Images per label map and epoch (each with its own seed).
        plan: A :class:`~sisgen.curation.Plan` or plan file for ``source``: images per map
            and epoch instead of ``samples_per_map`` (0 skips a map); the same samples as
            ``sisgen generate --plan`` with the same seed.
        batch_size: Engine batch size (independent of the DataLoader batch size).
        length: Samples per epoch; default ``len(source) * samples_per_map`` (with a plan:
            its total). A larger
            value cycles over the maps (later passes have other seeds).
        epochs: Epochs per iteration; ``None`` iterates forever.
        shuffle: Visit the indices of each epoch in a seeded permutation (same in every
            worker, so coverage stays exactly once).
        to_tensor: Return torch tensors (image float CHW in [0,1], label int64, instance
            int32) instead of numpy arrays.
        train_ids: Map labels through the vocabulary's train-id table.
        rank: Distributed rank; default from ``torch.distributed`` when initialised.
        world_size: Number of ranks; default from ``torch.distributed`` or 1.
        transform: Called on each item dict; returns the item to yield.
        skip_errors: Skip (with a warning) label maps that cannot be read or edited instead
            of raising.
        load_kwargs: Extra arguments for ``sisgen.load`` when ``generator`` is a path.
        bank: Instance bank of ``paste`` steps without a ``bank:`` file (an
            :class:`~sisgen.instance_bank.InstanceBank` or ``.npz`` path); default: built from
            the first ``bank_maps`` maps of the source, exactly as ``sisgen generate`` does.
        bank_maps: Maps of the automatic bank.

    Raises:
        SisgenInputError: The recipe names classes the source's vocabulary lacks, or the
            plan is for another source (names the plan file).
    """

    def __init__(self, source: Source, generator: GeneratorSpec, *, recipe: Any = None,
                 seed: int = 0, samples_per_map: int = 1,
                 plan: Plan | str | os.PathLike | None = None, batch_size: int = 4,
                 length: int | None = None, epochs: int | None = 1, shuffle: bool = False,
                 to_tensor: bool = False, train_ids: bool = False, rank: int | None = None,
                 world_size: int | None = None,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 skip_errors: bool = True, load_kwargs: dict[str, Any] | None = None,
                 bank: InstanceBank | str | os.PathLike | None = None,
                 bank_maps: int = BANK_MAPS):
        super().__init__()
        if samples_per_map < 1 or batch_size < 1:
            raise ValueError("samples_per_map and batch_size must be >= 1")
        if epochs is not None and epochs < 0:
            raise ValueError(f"epochs must be >= 0 or None, got {epochs}")
        if len(source) == 0:
            raise ValueError("the source has no label maps")
        if plan is not None and samples_per_map != 1:
            raise ValueError("give samples_per_map or a plan, not both")
        self.plan = None if plan is None else (plan if isinstance(plan, Plan)
                                               else Plan.load(plan))
        self.counts = None if self.plan is None else self.plan.counts(source)
        self.source = source
        self.generator = LazyGenerator(generator, load_kwargs)
        self.recipe = Recipe.load(recipe)
        self.recipe.validate(source.vocabulary)
        self.recipe.load_banks()
        # the run's bank as `sisgen generate` makes it: the same samples for the same seeds
        self.bank = run_bank(self.recipe, source, bank, bank_maps)[0]
        self.seed = int(seed)
        self.samples_per_map = int(samples_per_map)
        self.batch_size = int(batch_size)
        layout = SampleLayout(len(source), self.samples_per_map, self.counts)
        self.epoch_length = layout.total if length is None else int(length)
        self.epochs = epochs
        self.shuffle = shuffle
        self.to_tensor = to_tensor
        self.train_id_lut = source.vocabulary.train_id_table() if train_ids else None
        self.rank = rank
        self.world_size = world_size
        self.transform = transform
        self.skip_errors = skip_errors
        self.start_epoch = 0

    # ---------------------------------------------------------------- indexing
    def set_epoch(self, epoch: int) -> None:
        """Start the next iteration at ``epoch`` (call before creating the DataLoader iterator).

        With ``persistent_workers=True`` the workers keep the value they were started with.
        """
        self.start_epoch = int(epoch)

    def run_seed(self, epoch: int) -> int:
        """The run seed of an epoch (``seed + epoch * EPOCH_SEED_STRIDE``)."""
        return self.seed + int(epoch) * EPOCH_SEED_STRIDE

    def sample_seed(self, index: int, epoch: int = 0) -> int:
        """The seed of sample ``index`` in ``epoch`` (edits and noise)."""
        return sample_seed(self.run_seed(epoch), index)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The sample indices of an epoch in visiting order (identical in every shard)."""
        if not self.shuffle:
            return np.arange(self.epoch_length)
        rng = np.random.default_rng([self.seed, int(epoch), 0x5157])
        return rng.permutation(self.epoch_length)


    def __len__(self) -> int:
        """Samples this rank yields per iteration (all its workers together).

        Raises:
            TypeError: The dataset is infinite (``epochs=None``).
        """
        if self.epochs is None:
            raise TypeError("an infinite SynthesisDataset (epochs=None) has no length")
        rank, world = rank_and_world(self.rank, self.world_size)
        return len(range(rank, self.epoch_length, world)) * self.epochs

    # ---------------------------------------------------------------- producing
    def sample_path(self, epoch: int = 0, generator: Generator | None = None) -> SamplePath:
        """The sample path of an epoch: ``sisgen generate``'s, with the epoch's run seed.

        With a generator, samples are resized to its resolution (and photo-edited for
        photo-editing models); without one they keep the source's size.
        """
        return SamplePath(
            self.source, self.recipe, None if generator is None else generator.resolution,
            seed=self.run_seed(epoch), samples_per_map=self.samples_per_map,
            counts=self.counts, bank=self.bank,
            with_photo=generator is not None and generator.takes_photo,
            input_spec=None if generator is None else getattr(generator, "input_spec", None))

    def labelmap(self, index: int, epoch: int = 0) -> LabelMap:
        """The edited label map of sample ``index`` (at the source resolution).

        Raises:
            SisgenInputError: The map cannot be read or edited.
        """
        return _named(self.sample_path(epoch).sample(index))

    def _check_vocabulary(self, gen: Generator) -> None:
        require_same_ids(self.source.vocabulary, gen.vocabulary)

    def _item(self, lm: LabelMap, image: np.ndarray, index: int, epoch: int) -> dict[str, Any]:
        label = lm.semantic.astype(np.int64)
        if self.train_id_lut is not None:
            label = self.train_id_lut[np.clip(label, 0, 255)].astype(np.int64)
        instance = (np.zeros(lm.shape, np.int32) if lm.instance is None
                    else lm.instance.astype(np.int32))
        item: dict[str, Any] = {
            "image": image_to_tensor(image) if self.to_tensor else image,
            "label": torch.from_numpy(label) if self.to_tensor else label,
            "instance": torch.from_numpy(instance) if self.to_tensor else instance,
            "id": lm.id, "seed": self.sample_seed(index, epoch), "index": int(index),
            "epoch": int(epoch),
        }
        return self.transform(item) if self.transform is not None else item

    def generate_indices(self, indices: Sequence[int], epoch: int = 0) -> list[dict[str, Any]]:
        """Items for explicit sample indices (one engine batch; bad maps are skipped).

        The samples come from :meth:`sample_path` -- load, edit with the run's bank and
        the map's base seed, photo editing, resize, engine inputs -- and the engine as
        ``sisgen generate`` runs them, so index ``k`` of epoch 0 is ``generate``'s sample
        ``k`` with the same seed, bit for bit.
        """
        gen = self.generator.get()
        self._check_vocabulary(gen)
        batch = self.sample_path(epoch, gen).prepare([int(i) for i in indices])
        for error in batch.errors:
            if not self.skip_errors:
                raise SisgenInputError(error["error"], error.get("file"))
            warnings.warn(f"skipping sample(s) of map {error['source_index']}: "
                          f"{error['error']}", stacklevel=2)
        if not batch.samples:
            return []
        images = run_engine(gen, batch)
        items = []
        for sample, image in zip(batch.samples, images, strict=True):
            items.append(self._item(_named(sample), image, sample.index, epoch))
        return items

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = self.start_epoch
        stop = None if self.epochs is None else self.start_epoch + self.epochs
        while stop is None or epoch < stop:
            mine = shard(self.epoch_order(epoch), self.rank, self.world_size)
            for start in range(0, len(mine), self.batch_size):
                yield from self.generate_indices(mine[start:start + self.batch_size], epoch)
            epoch += 1

    def as_map_style(self, epoch: int = 0) -> SynthesisMapDataset:
        """A map-style view of one epoch (``ds[k]`` generates sample ``k`` alone)."""
        return SynthesisMapDataset(self, epoch)

    def __repr__(self) -> str:
        epochs = "inf" if self.epochs is None else self.epochs
        return (f"<SynthesisDataset {self.source.kind} n={self.epoch_length}/epoch "
                f"epochs={epochs} seed={self.seed}>")


class SynthesisMapDataset(Dataset):
    """Map-style view of one epoch of a :class:`SynthesisDataset` (one engine call per item).

    Args:
        dataset: The synthesis dataset.
        epoch: Which epoch's seeds to use.
    """

    def __init__(self, dataset: SynthesisDataset, epoch: int = 0):
        self.dataset = dataset
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.dataset.epoch_length

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"synthetic dataset has {n} samples, index {index}")
        items = self.dataset.generate_indices([int(index) % n], self.epoch)
        if not items:
            raise SisgenInputError(f"sample {index} could not be read or edited")
        return items[0]

