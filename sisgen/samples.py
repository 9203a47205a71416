"""The one sample path: ``(source, recipe, run seed, sample index) -> one prepared sample``.

``sisgen generate``, :class:`sisgen.integrations.SynthesisDataset`, ``sisgen eval`` and the
scene editor all prepare a sample here, so one (source, recipe, seed, index) means one
label map and one image everywhere:

1. **load** the sample's map (:class:`SampleLayout`: map ``index // samples_per_map``,
   or with a plan's per-map counts the map whose block of indices holds ``index``; the
   source decodes and validates it once) and, for photo-editing models, its photo, with
   every pixel's source index tracked through the edits (:mod:`sisgen.edits.photo`);
2. **edit** it with the recipe under the sample's seed ``sample_seed(run seed, index)``,
   with the run's instance bank (``paste``) -- noise-region marks keep the map's *base
   seed* (the seed of its first sample) outside the marked region;
3. **photo editing**: the aligned photo and the hole the edits opened;
4. **resize** to the engine resolution with :func:`sisgen.labelmap.resize_nearest`, the
   nearest-neighbour resize training uses too (PIL's ``NEAREST``);
5. **engine inputs**: with an :class:`~sisgen.engines.InputSpec`, the compact arrays the
   engine takes (:meth:`InputSpec.build`), so worker processes can build them.

Sample ``k`` of a map is named ``<map id>_s<k>`` (just ``<map id>`` with one sample per
map and no plan); a path that cycles over its samples (``index >= len(path)``) adds
``_c<cycle>``. Bad input never raises out of :meth:`SamplePath.prepare`: it becomes an
error record naming the file, so a long run skips the sample and goes on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .edits import Recipe
from .edits.photo import attach_photo, track_source_pixels
from .errors import SisgenInputError
from .instance_bank import InstanceBank
from .labelmap import LabelMap
from .sources import Source

#: Maps an automatic instance bank is built from (the first ones of the source).
BANK_MAPS = 500


def sample_seed(run_seed: int, index: int) -> int:
    """The seed of sample ``index`` of a run: a hash of ``(run_seed, index)``, 63 bits."""
    state = np.random.SeedSequence([int(run_seed), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def automatic_bank(source: Source, bank_maps: int = BANK_MAPS) -> tuple[InstanceBank, int]:
    """The bank a run builds for ``paste`` steps without a bank file, and its map count.

    Built from the first ``bank_maps`` maps of the source, however many the run uses.
    """
    maps = min(int(bank_maps), len(source))
    return InstanceBank.from_source(source, limit=maps), maps


def run_bank(recipe: Recipe, source: Source, bank: Any, bank_maps: int
              ) -> tuple[Any, dict[str, Any] | None]:
    """The run's instance bank for ``paste`` steps without a ``bank:`` file, and its record.

    Args:
        recipe: The run's recipe (no bank is made when no step needs one).
        source: The run's source.
        bank: An :class:`InstanceBank`, a ``.npz`` path, or ``None``: built from the first
            ``bank_maps`` maps of the source -- the same maps however many the run uses,
            so a sample never depends on ``limit``.
        bank_maps: Maps of an automatic bank.

    Returns:
        ``(bank, record)``: the bank (or ``None``) and what the run records about it
        (where it came from, its size and :meth:`InstanceBank.digest`).
    """
    if not recipe.needs_bank():
        return None, None
    if bank is None:
        bank, maps = automatic_bank(source, bank_maps)
        return bank, {"from": "source", "maps": maps, "items": len(bank),
                      "digest": bank.digest()}
    if not isinstance(bank, InstanceBank):
        path = str(bank)
        bank = InstanceBank.load(bank)
        return bank, {"from": path, "items": len(bank), "digest": bank.digest()}
    return bank, {"from": "given", "items": len(bank), "digest": bank.digest()}


def submit_engine(generator: Any, batch: PreparedBatch) -> Any:
    """Start the engine on a prepared batch; ``result()`` of the return gives the images.

    With engine inputs and a generator that can enqueue (``Generator.submit``: a GPU
    computes while the caller goes on), the batch is only enqueued; otherwise the images
    are computed in the call. Either way ``result()`` equals :func:`run_engine`.
    """
    submit = getattr(generator, "submit", None)
    if batch.inputs is not None and submit is not None:
        return submit(batch.inputs)
    from .engines.device import PendingImages

    return PendingImages(run_engine(generator, batch))


def run_engine(generator: Any, batch: PreparedBatch) -> np.ndarray:
    """The engine's uint8 ``[B,H,W,3]`` images of a prepared batch.

    With engine inputs built by the sample path (``Generator.run``), else from the
    batch's label maps and seeds through ``Generator.prepare``.
    """
    if batch.inputs is not None:
        return generator.run(batch.inputs)
    from .engines import images_to_uint8

    items = batch.samples
    return images_to_uint8(generator(*generator.prepare(
        [s.labelmap for s in items], [s.seed for s in items], [s.base_seed for s in items])))


class SampleLayout:
    """The index layout of a run: which map, and which of its samples, a sample index is.

    Without per-map counts every map has ``samples_per_map`` samples: sample ``i`` is
    sample ``i % samples_per_map`` of map ``i // samples_per_map``. With ``counts`` (a
    plan's, :mod:`sisgen.curation`), the samples of map ``m`` are the indices
    ``offsets[m] .. offsets[m + 1] - 1``, ``offsets`` the cumulative counts in source order
    (map 0 first); a map with count 0 has no index. Either way the first ``n`` maps always
    take the same indices, so a larger ``limit`` extends a run, and seeds (a function of
    the index) do not depend on how a run is split. Indices past :attr:`total` cycle:
    ``index = cycle * total + within``.

    Args:
        maps: Maps the layout covers (the first ones of the source).
        samples_per_map: Samples of every map (without ``counts``).
        counts: Samples of each map (``len(counts)`` maps; ``maps`` is then ignored).

    Raises:
        SisgenInputError: No samples at all, or a negative count.
    """

    def __init__(self, maps: int, samples_per_map: int = 1,
                 counts: Sequence[int] | None = None):
        if counts is None:
            if samples_per_map < 1:
                raise SisgenInputError(f"samples_per_map must be >= 1, got {samples_per_map}")
            counts = [int(samples_per_map)] * int(maps)
            self.samples_per_map: int | None = int(samples_per_map)
        else:
            self.samples_per_map = None
        arr = np.asarray(list(counts), np.int64)
        if arr.size and arr.min() < 0:
            raise SisgenInputError("sample counts must be >= 0")
        self.counts = arr
        self.offsets = np.concatenate([[0], np.cumsum(arr)]).astype(np.int64)
        self.maps = len(arr)
        self.total = int(self.offsets[-1])
        if self.total < 1:
            raise SisgenInputError("the run has no samples (no maps, or every count is 0)")

    def locate(self, index: int) -> tuple[int, int, int]:
        """``(map index, sample k of that map, cycle)`` of sample ``index``."""
        index = int(index)
        if index < 0:
            raise IndexError(f"sample index must be >= 0, got {index}")
        cycle, within = divmod(index, self.total)
        if self.samples_per_map is not None:
            return within // self.samples_per_map, within % self.samples_per_map, cycle
        m = int(np.searchsorted(self.offsets, within, side="right")) - 1
        return m, within - int(self.offsets[m]), cycle

    def map_range(self, map_index: int, cycle: int = 0) -> range:
        """The sample indices of map ``map_index`` (in cycle ``cycle``)."""
        base = int(cycle) * self.total
        return range(base + int(self.offsets[map_index]), base + int(self.offsets[map_index + 1]))

    def first(self, index: int) -> int:
        """The index of the first sample of ``index``'s map in the same cycle."""
        m, k, _ = self.locate(index)
        return int(index) - k


@dataclass
class PreparedSample:
    """A label map ready for the engine, with its bookkeeping.

    Attributes:
        index: The sample's index in its run.
        name: The sample name (file stem of every output).
        seed: The sample's seed (edits and noise).
        labelmap: The edited map at the engine resolution.
        source_index: The map's position in the source.
        base_seed: The seed of the map's first sample (the style outside noise marks).
    """

    index: int
    name: str
    seed: int
    labelmap: LabelMap
    source_index: int
    base_seed: int = 0


@dataclass
class PreparedBatch:
    """What :meth:`SamplePath.prepare` made of a list of sample indices.

    Attributes:
        samples: The samples that could be prepared, in index order.
        errors: Error records (manifest lines) of the maps or samples that could not.
        seconds: Busy seconds per stage (``source``, ``edit``, ``inputs``).
        inputs: The samples' engine inputs (an ``EngineBatch``) when the path has an input
            spec and there are samples, else ``None``.
    """

    samples: list[PreparedSample]
    errors: list[dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)
    inputs: Any = None


class SamplePath:
    """Prepares samples of one run (see the module docstring).

    Args:
        source: The label maps.
        recipe: The edit recipe (anything :meth:`Recipe.load` accepts).
        resolution: ``(H, W)`` of the engine; ``None`` keeps the maps' own size.
        seed: The run seed.
        samples_per_map: Samples per map (each with its own seed and edits).
        counts: Samples of each map instead (a plan's :meth:`~sisgen.curation.Plan.counts`;
            0 skips a map); covers the first ``len(counts)`` maps (see
            :class:`SampleLayout`). Sample names then always end in ``_s<k>``.
        bank: The run's instance bank for ``paste`` steps without a ``bank:`` file.
        with_photo: Photo editing (SESAME-style engines): load the photo, give every
            sample the aligned photo and the hole.
        input_spec: Build engine inputs (an ``InputSpec`` of the generator) in
            :meth:`prepare`.
        maps: Use only the first ``maps`` maps of the source (default: all).
        resize_first: Resize each loaded map (and photo) to ``resolution`` *before* the
            edits, once for all its samples. Much faster for large sources (Cityscapes'
            2048x1024 maps: edits then touch 1/16 of the pixels), but geometric and
            morphological edits then act at the engine resolution, so samples differ from
            the default (edit at the source resolution, then resize).

    Raises:
        SisgenInputError: No samples, or ``counts`` for more maps than the source has.
    """

    def __init__(self, source: Source, recipe: Any = None,
                 resolution: tuple[int, int] | None = None, *, seed: int = 0,
                 samples_per_map: int = 1, counts: Sequence[int] | None = None,
                 bank: Any = None, with_photo: bool = False,
                 input_spec: Any = None, maps: int | None = None,
                 resize_first: bool = False):
        if samples_per_map < 1:
            raise SisgenInputError(f"samples_per_map must be >= 1, got {samples_per_map}")
        self.source = source
        self.recipe = Recipe.load(recipe)
        self.resolution = None if resolution is None else tuple(int(v) for v in resolution)
        self.seed = int(seed)
        self.samples_per_map = int(samples_per_map)
        self.context = {} if bank is None else {"bank": bank}
        self.with_photo = bool(with_photo)
        self.input_spec = input_spec
        self.maps = len(source) if maps is None else min(int(maps), len(source))
        self.resize_first = bool(resize_first) and self.resolution is not None
        if self.maps < 1:
            raise SisgenInputError("the source has no label maps")
        if counts is not None:
            counts = list(counts)[:self.maps] if maps is not None else list(counts)
            if len(counts) > len(source):
                raise SisgenInputError(f"sample counts for {len(counts)} maps, but the "
                                       f"{source.kind} source has {len(source)}")
            self.maps = len(counts)
        self.layout = SampleLayout(self.maps, self.samples_per_map, counts)
        self.planned = counts is not None

    # ------------------------------------------------------------------ addressing
    def __len__(self) -> int:
        """Samples in one pass over the maps."""
        return self.layout.total

    def locate(self, index: int) -> tuple[int, int, int]:
        """``(map index, sample k of that map, cycle)`` of sample ``index``."""
        return self.layout.locate(index)

    def sample_seed(self, index: int) -> int:
        """The seed of sample ``index`` (edits and noise)."""
        return sample_seed(self.seed, index)

    def base_seed(self, index: int) -> int:
        """The seed of the first sample of ``index``'s map in the same cycle."""
        return sample_seed(self.seed, self.layout.first(index))

    def name(self, map_id: str, index: int) -> str:
        """The sample name of ``index`` for a map whose id is ``map_id``."""
        _, k, cycle = self.locate(index)
        name = map_id if self.samples_per_map == 1 and not self.planned else f"{map_id}_s{k}"
        return name if cycle == 0 else f"{name}_c{cycle}"

    # ------------------------------------------------------------------ preparing
    def load(self, map_index: int) -> tuple[LabelMap, np.ndarray | None]:
        """The map (tracking source pixels for photo editing) and its photo.

        Raises:
            SisgenInputError: Unreadable map, or photo editing without a photo.
        """
        lm = self.source.load(map_index)
        if self.resize_first:
            lm = lm.resized(self.resolution)
        if not self.with_photo:
            return lm, None
        photo = self.source.photo(map_index)
        if photo is None:
            raise SisgenInputError(f"photo editing needs the {self.source.kind} source's "
                                   "photos; this map has none", lm.meta.get("file"))
        if self.resize_first and photo.shape[:2] != lm.shape:
            import cv2

            photo = cv2.resize(photo, (lm.shape[1], lm.shape[0]), interpolation=cv2.INTER_AREA)
        return track_source_pixels(lm), photo

    def edit(self, labelmap: LabelMap, photo: np.ndarray | None, index: int) -> LabelMap:
        """Edit, attach the photo and resize one loaded map into sample ``index``.

        Raises:
            SisgenInputError: An edit step cannot be applied to this map.
        """
        edited = self.recipe(labelmap, seed=self.sample_seed(index),
                             vocab=self.source.vocabulary, context=self.context)
        if photo is not None:
            edited = attach_photo(edited, labelmap, photo)
        if self.resolution is not None and edited.shape != self.resolution:
            edited = edited.resized(self.resolution)
        return edited

    def sample(self, index: int) -> PreparedSample:
        """Prepare sample ``index`` alone (raises ``SisgenInputError`` for bad input)."""
        batch = self.prepare([index], build_inputs=False)
        if not batch.samples:
            raise SisgenInputError(batch.errors[0]["error"], batch.errors[0].get("file"))
        return batch.samples[0]

    def prepare(self, indices: Sequence[int], *, build_inputs: bool = True,
                skip_maps: frozenset[int] = frozenset()) -> PreparedBatch:
        """Prepare the samples ``indices`` (one engine batch), loading each map once.

        Args:
            indices: Sample indices, in the order the samples are wanted.
            build_inputs: Also build the engine inputs (needs ``input_spec``).
            skip_maps: Maps already known to be unreadable: not loaded again, no record.

        Returns:
            A :class:`PreparedBatch`. A map that cannot be loaded gives one ``source``
            error record (with its ``source_index``); a sample whose edits fail an ``edit``
            record (with its ``index``).
        """
        secs = {"source": 0.0, "edit": 0.0, "inputs": 0.0}
        loaded: dict[int, tuple[LabelMap, np.ndarray | None] | None] = {}
        samples: list[PreparedSample] = []
        errors: list[dict[str, Any]] = []
        for index in indices:
            m = self.locate(index)[0]
            if m in skip_maps:
                continue
            if m not in loaded:
                t0 = time.perf_counter()
                try:
                    loaded[m] = self.load(m)
                except SisgenInputError as e:
                    loaded[m] = None
                    errors.append({"status": "error", "stage": "source", "source_index": m,
                                   "file": e.path, "error": str(e)})
                secs["source"] += time.perf_counter() - t0
            if loaded[m] is None:
                continue
            lm, photo = loaded[m]  # type: ignore[misc]
            t1 = time.perf_counter()
            try:
                edited = self.edit(lm, photo, index)
            except SisgenInputError as e:
                errors.append({"status": "error", "stage": "edit", "source_index": m,
                               "index": int(index), "file": e.path, "error": str(e)})
                continue
            finally:
                secs["edit"] += time.perf_counter() - t1
            samples.append(PreparedSample(int(index), self.name(lm.id, index),
                                          self.sample_seed(index), edited, m,
                                          self.base_seed(index)))
        batch = PreparedBatch(samples, errors, secs)
        if build_inputs and self.input_spec is not None and samples:
            t2 = time.perf_counter()
            batch.inputs = self.input_spec.build([s.labelmap for s in samples],
                                                 [s.seed for s in samples],
                                                 [s.base_seed for s in samples])
            secs["inputs"] = time.perf_counter() - t2
        return batch
