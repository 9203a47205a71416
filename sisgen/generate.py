"""Generation: ``source -> edits -> batch -> engine -> writers``, with a JSONL manifest.

Each stage is a plain function or object, testable alone:

* **prepare** (:func:`prepare_map`, :func:`prepare_block`): load label maps, apply the edit
  recipe once per requested sample, resize to the engine resolution. Runs in DataLoader
  worker processes when ``workers > 0``, ahead of the engine, with a bounded prefetch.
* **engine**: one batched call of the generator per block of ``batch_size`` consecutive
  sample indices.
* **write**: every writer of a sample, then its manifest line, in a thread pool that
  overlaps the next engine batch; the number of samples waiting to be written is bounded.

Runs survive crashes: every file is written atomically, a sample's manifest line is written
only after all of its files are, and ``resume=True`` skips the samples the manifest already
records (a torn last line from a killed run is dropped). Per-sample seeds derive only from
``(run seed, sample index)``, and batches are fixed blocks of sample indices (a resumed
block recomputes its finished samples without rewriting them), so a resumed or sharded run
produces exactly -- bit for bit -- the images of one uninterrupted run with the same batch
size; another batch size gives the same images up to float rounding (at most 1/255). Shard
``k`` of ``n`` takes the blocks whose number is ``k`` modulo ``n`` and writes its own
manifest (``manifest.shard-k-of-n.jsonl``) and writer part files into the same output
folder; :func:`merge` then combines them into one manifest and one COCO JSON.

A sample whose label map cannot be read (a corrupt PNG, ids outside the vocabulary, a bad
COCO polygon) is recorded in the manifest with the error and skipped.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .edits import Recipe, ResampleNoise
from .edits.photo import attach_photo, track_source_pixels
from .engines import Generator, images_to_uint8
from .errors import SisgenInputError
from .filtering import QualityFilter
from .labelmap import LabelMap
from .manifest import MANIFEST, ManifestAppender, manifest_name, read_manifest, sample_entry
from .sources import Source
from .vocab import require_same_ids
from .writers import Writer, get_writer


def sample_seed(run_seed: int, index: int) -> int:
    """The seed of sample ``index`` of a run: a hash of ``(run_seed, index)``, 63 bits."""
    state = np.random.SeedSequence([int(run_seed), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def resolve_shard(shard: tuple[int, int] | str | None) -> tuple[int, int] | None:
    """Parse ``"k/n"``; with no shard given, use torchrun's ``RANK``/``WORLD_SIZE`` if set."""
    if shard is None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return (int(os.environ.get("RANK", "0")), world) if world > 1 else None
    if isinstance(shard, str):
        try:
            k, n = (int(v) for v in shard.split("/"))
        except ValueError:
            raise SisgenInputError(f"shard must be k/n (e.g. 0/4), got {shard!r}") from None
        shard = (k, n)
    k, n = shard
    if not (n >= 1 and 0 <= k < n):
        raise SisgenInputError(f"shard {k}/{n}: need 0 <= k < n")
    return None if n == 1 else (k, n)


@dataclass
class PreparedSample:
    """A label map ready for the engine, with its bookkeeping."""

    index: int
    name: str
    seed: int
    labelmap: LabelMap
    source_index: int
    base_seed: int = 0


@dataclass
class GenerateReport:
    """What a generation run did."""

    written: int = 0
    failed: int = 0
    skipped: int = 0
    filtered: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {
        "source": 0.0, "edit": 0.0, "engine": 0.0, "filter": 0.0, "write": 0.0})
    wall: float = 0.0
    out_dir: str = ""
    manifest: str = ""

    @property
    def images_per_second(self) -> float:
        """Written images per wall-clock second."""
        return self.written / self.wall if self.wall else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``stage_s``: busy seconds per stage, summed over workers)."""
        return {"written": self.written, "failed": self.failed, "skipped": self.skipped,
                "filtered": self.filtered,
                "wall_s": round(self.wall, 3), "images_per_s": round(self.images_per_second, 3),
                "stage_s": {k: round(v, 3) for k, v in self.seconds.items()},
                "out_dir": self.out_dir, "manifest": self.manifest}


@dataclass
class PreparedMap:
    """The prepare stage's result for one label map."""

    samples: list[PreparedSample]
    errors: list[dict[str, Any]]
    seconds: dict[str, float]


def prepare_map(source: Source, recipe: Recipe, resolution: tuple[int, int], map_index: int, *,
                seed: int = 0, samples_per_map: int = 1, skip: frozenset[int] = frozenset(),
                context: dict[str, Any] | None = None, with_photo: bool = False
                ) -> PreparedMap:
    """Load, edit and resize one label map into ``samples_per_map`` samples.

    Sample ``k`` of map ``i`` has run index ``i * samples_per_map + k``; its seed (used for
    both the edits and the generator noise) is :func:`sample_seed` of that index. The map's
    *base seed* (that of its sample 0) is the style kept outside noise-region marks. Indices in
    ``skip`` (already done) are left out. Bad input becomes an error record, not an
    exception. ``context`` holds run-wide objects of the edits (the instance bank).
    ``with_photo`` (photo-editing models such as SESAME) also loads the map's photo and
    gives every sample the aligned photo and the hole the edits opened
    (:mod:`sisgen.edits.photo`).
    """
    secs = {"source": 0.0, "edit": 0.0}
    t0 = time.perf_counter()
    photo = None
    try:
        lm = source.load(map_index)
        source.vocabulary.validate(lm.semantic, lm.meta.get("file"))
        if with_photo:
            photo = source.photo(map_index)
            if photo is None:
                raise SisgenInputError(f"photo editing needs the {source.kind} source's "
                                       "photos; this map has none", lm.meta.get("file"))
            lm = track_source_pixels(lm)
    except SisgenInputError as e:
        secs["source"] = time.perf_counter() - t0
        return PreparedMap([], [{"status": "error", "stage": "source", "source_index": map_index,
                                 "file": e.path, "error": str(e)}], secs)
    secs["source"] = time.perf_counter() - t0
    samples, errors = [], []
    for k in range(samples_per_map):
        index = map_index * samples_per_map + k
        if index in skip:
            continue
        s = sample_seed(seed, index)
        t1 = time.perf_counter()
        try:
            edited = recipe(lm, seed=s, vocab=source.vocabulary, context=context)
            if photo is not None:
                edited = attach_photo(edited, lm, photo)
            if edited.shape != tuple(resolution):
                edited = edited.resized(tuple(resolution))
        except SisgenInputError as e:
            errors.append({"status": "error", "stage": "edit", "source_index": map_index,
                           "index": index, "file": e.path, "error": str(e)})
            continue
        finally:
            secs["edit"] += time.perf_counter() - t1
        name = lm.id if samples_per_map == 1 else f"{lm.id}_s{k}"
        base = sample_seed(seed, map_index * samples_per_map)
        samples.append(PreparedSample(index, name, s, edited, map_index, base))
    return PreparedMap(samples, errors, secs)


def prepare_block(source: Source, recipe: Recipe, resolution: tuple[int, int], block: range, *,
                  seed: int = 0, samples_per_map: int = 1,
                  failed_maps: frozenset[int] = frozenset(),
                  context: dict[str, Any] | None = None, with_photo: bool = False
                  ) -> PreparedMap:
    """Prepare every sample whose run index lies in ``block`` (one engine batch).

    Maps already known to be unreadable (``failed_maps``) are not loaded again. A map's load
    error is reported by the block that holds the map's first sample only.
    """
    spm = samples_per_map
    samples: list[PreparedSample] = []
    errors: list[dict[str, Any]] = []
    secs = {"source": 0.0, "edit": 0.0}
    for m in range(block.start // spm, (block.stop - 1) // spm + 1):
        if m in failed_maps:
            continue
        outside = frozenset(i for i in range(m * spm, (m + 1) * spm) if i not in block)
        part = prepare_map(source, recipe, resolution, m, seed=seed, samples_per_map=spm,
                           skip=outside, context=context, with_photo=with_photo)
        samples += part.samples
        errors += [e for e in part.errors if e["stage"] != "source" or m * spm in block]
        for key, v in part.seconds.items():
            secs[key] += v
    return PreparedMap(samples, errors, secs)


class _PrepareDataset:
    """Map-style view of :func:`prepare_block` for a DataLoader (one item per batch)."""

    def __init__(self, source: Source, recipe: Recipe, resolution: tuple[int, int],
                 blocks: list[range], seed: int, samples_per_map: int,
                 failed_maps: frozenset[int], context: dict[str, Any] | None,
                 with_photo: bool = False):
        self.args = (source, recipe, resolution)
        self.blocks, self.seed, self.spm = blocks, seed, samples_per_map
        self.failed_maps, self.context, self.with_photo = failed_maps, context, with_photo

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> PreparedMap:
        return prepare_block(*self.args, self.blocks[i], seed=self.seed,
                             samples_per_map=self.spm, failed_maps=self.failed_maps,
                             context=self.context, with_photo=self.with_photo)


def _prepared_stream(dataset: _PrepareDataset, workers: int) -> Iterator[PreparedMap]:
    if workers <= 0:
        for i in range(len(dataset)):
            yield dataset[i]
        return
    from torch.utils.data import DataLoader

    # spawn, not fork: the parent runs thread pools (torch, onnxruntime, OpenCV, the writer
    # threads) and a forked child can deadlock on a lock one of them held at fork time
    loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                        prefetch_factor=4, collate_fn=_identity, persistent_workers=False,
                        worker_init_fn=_worker_init, multiprocessing_context="spawn")
    yield from loader


def _identity(x: PreparedMap) -> PreparedMap:
    return x


def _worker_init(_: int) -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _done_indices(entries: list[dict[str, Any]], samples_per_map: int) -> set[int]:
    done: set[int] = set()
    for e in entries:
        if "index" in e:
            done.add(int(e["index"]))
        elif e.get("stage") == "source":
            base = int(e["source_index"]) * samples_per_map
            done.update(range(base, base + samples_per_map))
    return done


def generate(
    generator: Generator,
    source: Source,
    out_dir: str | os.PathLike,
    *,
    writers: Sequence[str] = ("cityscapes", "coco"),
    writer_options: dict[str, dict[str, Any]] | None = None,
    recipe: Recipe | str | os.PathLike | list | dict | None = None,
    seed: int = 0,
    samples_per_map: int = 1,
    batch_size: int = 8,
    limit: int | None = None,
    shard: tuple[int, int] | str | None = None,
    resume: bool = False,
    workers: int = 0,
    write_threads: int = 2,
    quality_filter: QualityFilter | None = None,
    context: dict[str, Any] | None = None,
    bank_maps: int = 500,
    progress: bool = True,
) -> GenerateReport:
    """Synthesize a labeled dataset from a source.

    Args:
        generator: A loaded generator (``sisgen.load``).
        source: Label maps (their vocabulary must match the generator's).
        out_dir: Output root; each writer gets ``out_dir/<kind>``; the manifest is
            ``out_dir/manifest.jsonl`` (per shard: ``manifest.shard-k-of-n.jsonl``).
        writers: Writer kinds.
        writer_options: Per-kind writer options, e.g. ``{"coco": {"segmentation": "polygon"}}``.
        recipe: Edit recipe (YAML path/text, list, dict or :class:`Recipe`).
        seed: Run seed; per-sample seeds derive from it and the sample index.
        samples_per_map: Images per label map (different seeds, edits drawn anew).
        batch_size: Engine batch size.
        limit: Use only the first ``limit`` label maps.
        shard: ``(k, n)`` or ``"k/n"``: this process's share; default from torchrun's
            ``RANK``/``WORLD_SIZE``.
        resume: Continue a run in ``out_dir``: samples its manifest records are skipped.
            Without it, an existing manifest is an error (nothing is overwritten silently).
        workers: Worker processes for loading and editing (0: in this process).
        write_threads: Threads encoding and writing files.
        quality_filter: Optional :class:`~sisgen.filtering.QualityFilter`: images its
            segmenter does not recognise are dropped (``"status": "filtered"`` in the
            manifest) or have the disagreeing pixels written as ignore (255).
        context: Run-wide objects for the edits (``{"bank": InstanceBank}``).
        bank_maps: When a ``paste`` step needs a bank and ``context`` has none, one is built
            from the first ``bank_maps`` label maps of the source (the same for every shard).
        progress: Show a progress bar.

    Returns:
        A :class:`GenerateReport`.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recipe = Recipe.load(recipe)
    vocab = source.vocabulary
    require_same_ids(vocab, generator.vocabulary)
    recipe.validate(vocab)
    recipe.load_banks()
    context = dict(context or {})
    if recipe.needs_bank() and "bank" not in context:
        from .instance_bank import InstanceBank

        context["bank"] = InstanceBank.from_source(source, limit=bank_maps)
    restyles = generator.spatial_noise or generator.takes_features
    if any(isinstance(e, ResampleNoise) for e in recipe.walk()) and not restyles:
        raise SisgenInputError(
            "the recipe marks noise regions (resample_noise) but the model takes a noise vector "
            f"{generator.noise_spec.get('shape')}; local restyling needs a model with spatial "
            "noise (OASIS-style) or per-object style features (pix2pixHD feat_num)")
    shard = resolve_shard(shard)
    manifest_path = out / manifest_name(shard)
    previous = read_manifest(manifest_path, repair=resume)
    if previous and not resume:
        raise SisgenInputError(
            "output folder already has a manifest; pass resume=True (--resume) to continue "
            "that run, or choose a new folder", manifest_path)
    done = _done_indices(previous, samples_per_map)
    failed_maps = frozenset(int(e["source_index"]) for e in previous
                            if e.get("stage") == "source")
    n_maps = len(source) if limit is None else min(limit, len(source))
    total = n_maps * samples_per_map
    k, n = shard if shard is not None else (0, 1)
    # Batches are fixed blocks of sample indices and shards take whole blocks, so every
    # sample is always computed in the same batch -- engines are not bit-exact across batch
    # compositions. A resumed block recomputes its done samples but does not rewrite them.
    mine = [range(b, min(b + batch_size, total)) for b in range(0, total, batch_size)]
    mine = mine[k::n]
    blocks = [b for b in mine if any(i not in done for i in b)]
    report = GenerateReport(out_dir=str(out), manifest=str(manifest_path))
    report.skipped = sum(1 for b in mine for i in b if i in done)

    options = writer_options or {}
    part_tag = "" if shard is None else f".shard-{k}-of-{n}"
    opened: list[tuple[str, Writer, threading.Lock]] = []
    for kind in writers:
        opts = dict(options.get(kind, {}))
        if part_tag:
            opts.setdefault("part_tag", part_tag)
        opened.append((kind, get_writer(kind, out / kind, vocab, **opts), threading.Lock()))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(1 for b in blocks for i in b if i not in done), desc="generate",
                   unit="img")
    recipe_data = recipe.to_list()
    stats_lock = threading.Lock()
    dataset = _PrepareDataset(source, recipe, generator.resolution, blocks, seed,
                              samples_per_map, failed_maps, context,
                              with_photo=generator.takes_photo)

    with ManifestAppender(manifest_path) as manifest, \
            ThreadPoolExecutor(max(1, write_threads)) as pool:
        record = manifest.append

        def write_sample(item: PreparedSample, image: np.ndarray,
                         quality: dict[str, Any] | None) -> None:
            t0 = time.perf_counter()
            outputs: dict[str, dict[str, str]] = {}
            try:
                for kind, writer, lock in opened:
                    with lock:
                        outputs[kind] = writer.write(item.name, image, item.labelmap)
            except SisgenInputError as e:  # this sample cannot be written: record and go on
                record({"status": "error", "stage": "write", "sample": item.name,
                        "index": item.index, "source_index": item.source_index,
                        "file": e.path, "error": str(e)})
                with stats_lock:
                    report.failed += 1
                    if bar is not None:
                        bar.update(1)
                return
            lm = item.labelmap
            extra = {} if quality is None else {"quality": quality}
            record(sample_entry(
                name=item.name, index=item.index, labelmap=lm, source_kind=source.kind,
                source_index=item.source_index, seed=item.seed, recipe=recipe_data,
                model_name=generator.model_name, model_hash=generator.model_hash,
                backend=generator.backend, outputs=outputs, **extra))
            with stats_lock:
                report.written += 1
                report.seconds["write"] += time.perf_counter() - t0
                if bar is not None:
                    bar.update(1)

        pending: deque[Future] = deque()

        def run_batch(batch: list[PreparedSample]) -> None:
            t0 = time.perf_counter()
            inputs = generator.prepare([b.labelmap for b in batch], [b.seed for b in batch],
                                       [b.base_seed for b in batch])
            images = images_to_uint8(generator(*inputs))
            t1 = time.perf_counter()
            report.seconds["engine"] += t1 - t0
            verdicts: list[Any] = [None] * len(batch)
            if quality_filter is not None:
                verdicts = quality_filter.apply(list(images), [b.labelmap for b in batch])
                report.seconds["filter"] += time.perf_counter() - t1
            for item, image, verdict in zip(batch, images, verdicts, strict=True):
                if item.index in done:  # recomputed for the batch's sake, written before
                    continue
                if verdict is None:
                    pending.append(pool.submit(write_sample, item, image, None))
                elif not verdict.keep:
                    record({"status": "filtered", "sample": item.name, "index": item.index,
                            "source_index": item.source_index, "seed": item.seed,
                            "quality": verdict.to_dict()})
                    report.filtered += 1
                    if bar is not None:
                        bar.update(1)
                else:
                    item.labelmap = verdict.labelmap
                    pending.append(pool.submit(write_sample, item, image, verdict.to_dict()))
            while len(pending) > 2 * batch_size:  # bounded memory: wait for the writers
                pending.popleft().result()

        try:
            for prepared in _prepared_stream(dataset, workers):
                for key, v in prepared.seconds.items():
                    report.seconds[key] += v
                for entry in prepared.errors:
                    if entry.get("index") in done:
                        continue
                    record(entry)
                    report.failed += 1
                    if bar is not None:
                        bar.update(samples_per_map if entry["stage"] == "source" else 1)
                if prepared.samples:
                    run_batch(prepared.samples)
            while pending:
                pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True)
            for _, writer, _ in opened:
                writer.close()
            if bar is not None:
                bar.close()
    report.wall = time.perf_counter() - start
    return report


def merge(out_dir: str | os.PathLike, writers: Sequence[str] = ("cityscapes", "coco"),
          vocabulary: Any = None, writer_options: dict[str, dict[str, Any]] | None = None
          ) -> Path:
    """Combine the shards of a run: one ``manifest.jsonl`` and each writer's metadata.

    Manifest entries of every ``manifest.shard-*.jsonl`` are concatenated in sample-index
    order (source errors first by map index). Each writer is re-opened on its folder and
    closed, which rebuilds its metadata (COCO JSON, ...) from the part files of all shards.

    Returns:
        The merged manifest path.
    """
    from .vocab import get_vocabulary

    out = Path(out_dir)
    shards = sorted(out.glob("manifest.shard-*.jsonl"))
    if not shards:
        raise SisgenInputError("no shard manifests (manifest.shard-*.jsonl) to merge", out)
    entries = [e for p in shards for e in read_manifest(p)]
    if vocabulary is None:
        raise SisgenInputError("merge needs the run's vocabulary (name or file)")

    def key(e: dict[str, Any]) -> tuple[int, int]:
        return (int(e.get("index", -1)), int(e.get("source_index", -1)))

    from .io import write_text

    merged = out / MANIFEST
    write_text(merged, "".join(json.dumps(e) + "\n" for e in sorted(entries, key=key)))
    vocab = get_vocabulary(vocabulary)
    for kind in writers:
        if (out / kind).is_dir():
            get_writer(kind, out / kind, vocab, **(writer_options or {}).get(kind, {})).close()
    return merged
