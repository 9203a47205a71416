"""Generation: ``source -> sample path -> engine -> writers``, with a JSONL manifest.

The stages run concurrently, each bounded:

* **prepare** (:class:`~sisgen.samples.SamplePath`): load, edit, resize and build the
  engine inputs of one engine batch -- in ``workers`` worker processes (spawned, each a
  few batches ahead, so the next batch is staged while the engine runs), or inline; a
  batch's arrays come back through shared memory (:mod:`sisgen.transport`);
* **engine**: one call per batch on the main thread (``Generator.submit``: compact inputs
  in, uint8 images out), one batch ahead: a GPU computes batch n + 1 while the main
  thread hands batch n to the writers;
* **write** (``Writer.write_files``): encoding and atomic file writes of every writer, in
  ``write_workers`` worker processes with no lock (or inline; a batch's images and maps
  reach the processes through shared memory); each image is encoded once per format for
  all writers;
* **commit**: back on the main thread, strictly in sample order, the writers' ordered
  indexes (COCO image ids and part lines) and then the sample's manifest line.

Runs you can trust: every file is written atomically and follows the umask; a manifest
line is appended only after all of the sample's files are written; outputs and manifest
lines come in sample order whatever the number of workers, so two runs of one command are
byte-identical. ``resume=True`` continues a killed run (a torn last line is cut; index
records of samples without a manifest line are dropped) and ends with the tree of an
uninterrupted run. Per-sample seeds derive only from ``(run seed, sample index)`` and
batches are fixed blocks of sample indices, so a resumed or sharded run computes every
image exactly as one uninterrupted run with the same batch size; another batch size gives
the same images up to float rounding (at most 1/255). Shard ``k`` of ``n`` takes the
blocks whose number is ``k`` modulo ``n`` and writes its own manifest and part files into
the same folder; :func:`merge` checks the shards (:func:`sisgen.runs.check_shards`) and
combines them. The manifest's first line records the run (:mod:`sisgen.runs`).

A sample that cannot be made (a corrupt PNG, ids outside the vocabulary, a bad COCO
polygon, an edit that does not apply) is recorded in the manifest with the error and
skipped; ``retry_errors=True`` tries such samples again on resume.

A plan (:class:`~sisgen.curation.Plan`, ``plan=``) replaces ``samples_per_map``: map ``m``
gets the plan's count (0 skips it) and sample indices run through the maps' counts in
source order (:class:`~sisgen.samples.SampleLayout`), so seeds, batches, resumes, shards
and merges work exactly as without one; the run record holds the plan's digest.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._version import __version__
from .curation import Plan
from .edits import Recipe, ResampleNoise
from .engines import Generator
from .errors import SisgenInputError
from .filtering import QualityFilter
from .instance_bank import InstanceBank
from .io import remove_temp_files, write_text
from .manifest import (
    MANIFEST,
    ManifestAppender,
    manifest_name,
    read_manifest,
    sample_entry,
)
from .runs import (
    check_resume,
    check_shards,
    done_indices,
    merged_manifest_text,
    resolve_shard,
    run_records,
    shard_blocks,
    vocabulary_record,
)
from .samples import (
    BANK_MAPS,
    PreparedBatch,
    PreparedSample,
    SampleLayout,
    SamplePath,
    run_bank,
    sample_seed,
    submit_engine,
)
from .sources import Source
from .transport import Packed, end_loan, pack, remove_folder, shared_folder, unpack
from .vocab import get_vocabulary, require_same_ids
from .writers import Writer, get_writer
from .writers.base import WRITERS
from .writers.stage import WriteStage

__all__ = ["MANIFEST", "GenerateReport", "PreparedSample", "generate", "manifest_name",
           "merge", "read_manifest", "resolve_shard", "sample_seed"]

@dataclass
class GenerateReport:
    """What a generation run did."""

    written: int = 0
    failed: int = 0
    skipped: int = 0
    filtered: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {
        "source": 0.0, "edit": 0.0, "inputs": 0.0, "engine": 0.0, "filter": 0.0,
        "write": 0.0, "commit": 0.0})
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


# ----------------------------------------------------------------------------- prepare
class _Blocks:
    """Map-style view of the run's blocks for a DataLoader (one prepared batch per item).

    With a shared ``folder`` (worker processes), a batch's arrays travel through shared
    memory (:func:`sisgen.transport.pack`): only a small pickle crosses the pipe.
    """

    def __init__(self, path: SamplePath, blocks: list[range], failed_maps: frozenset[int],
                 folder: Path | None = None):
        self.path, self.blocks, self.failed_maps = path, blocks, failed_maps
        self.folder = folder

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> PreparedBatch | Packed:
        batch = self.path.prepare(self.blocks[i], skip_maps=self.failed_maps)
        return batch if self.folder is None else pack(batch, self.folder)


def _prepared(blocks: _Blocks, workers: int, lend: bool = False
              ) -> Iterator[tuple[PreparedBatch, Packed | None]]:
    """The prepared batches in order, each with its shared file's :class:`Packed` or ``None``.

    With ``lend``, the write stage may refer to the file's arrays (the caller calls
    :func:`~sisgen.transport.end_loan` once the batch went to the writers).
    """
    if workers <= 0:
        for i in range(len(blocks)):
            yield blocks[i], None
        return
    from torch.utils.data import DataLoader

    # spawn, not fork: the parent runs thread pools (torch, onnxruntime, OpenCV) and a
    # forked child can deadlock on a lock one of them held at fork time
    loader = DataLoader(blocks, batch_size=None, shuffle=False, num_workers=workers,
                        prefetch_factor=2, collate_fn=_identity, persistent_workers=False,
                        worker_init_fn=_single_threaded, multiprocessing_context="spawn")
    for item in loader:
        if isinstance(item, Packed):
            yield unpack(item, lend=lend), item
        else:
            yield item, None


def _identity(x: PreparedBatch) -> PreparedBatch:
    return x


def _single_threaded(*_: Any) -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


# ----------------------------------------------------------------------------- commit
@dataclass
class _Slot:
    """One manifest line to come: a ready record, or a sample whose files are being written."""

    entry: dict[str, Any] | None = None
    item: PreparedSample | None = None
    future: Future | None = None
    quality: dict[str, Any] | None = None
    count: int = 1  # samples the line accounts for (a source error: the map's samples)


class _Committer:
    """Commits slots strictly in the order they were added (sample order)."""

    def __init__(self, writers: list[tuple[str, Writer]], manifest: ManifestAppender,
                 report: GenerateReport, describe: dict[str, Any], bar: Any):
        self.writers, self.manifest, self.report = writers, manifest, report
        self.describe, self.bar = describe, bar
        self.slots: deque[_Slot] = deque()

    def add(self, slot: _Slot) -> None:
        self.slots.append(slot)

    def drain(self, wait_until: int | None = None) -> None:
        """Commit ready slots from the head; block until at most ``wait_until`` remain."""
        while self.slots:
            head = self.slots[0]
            if head.future is not None and not head.future.done() and (
                    wait_until is None or len(self.slots) <= wait_until):
                return
            self.slots.popleft()
            self._commit(head)

    def _commit(self, slot: _Slot) -> None:
        result = None if slot.future is None else slot.future.result()  # waits, not busy
        t0 = time.perf_counter()
        entry = slot.entry
        if result is not None:
            item = slot.item
            assert item is not None
            written, seconds = result
            self.report.seconds["write"] += seconds
            if isinstance(written, SisgenInputError):
                entry = {"status": "error", "stage": "write", "sample": item.name,
                         "index": item.index, "source_index": item.source_index,
                         "file": written.path, "error": str(written)}
            else:
                outputs = {kind: w.commit(files)
                           for (kind, w), files in zip(self.writers, written, strict=True)}
                extra = {} if slot.quality is None else {"quality": slot.quality}
                entry = sample_entry(name=item.name, index=item.index, labelmap=item.labelmap,
                                     source_index=item.source_index, seed=item.seed,
                                     outputs=outputs, **self.describe, **extra)
                self.report.written += 1
        assert entry is not None
        if entry["status"] == "error":
            self.report.failed += slot.count
        elif entry["status"] == "filtered":
            self.report.filtered += 1
        self.manifest.append(entry)
        self.report.seconds["commit"] += time.perf_counter() - t0
        if self.bar is not None:
            self.bar.update(slot.count)


# ----------------------------------------------------------------------------- run
def _check_output_folder(out: Path) -> bool:
    """Refuse an output path that is a file or cannot be written; create it.

    Returns:
        Whether the folder was created by this call (so a failed set-up removes it).
    """
    if out.exists() and not out.is_dir():
        raise SisgenInputError("the output path exists and is not a folder", out)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SisgenInputError(f"cannot create the output folder ({e.strerror})", out) from None
    try:  # a probe file of this process's own: torchrun ranks share the folder
        handle, probe = tempfile.mkstemp(prefix=".sisgen-write-test-", dir=out)
        os.close(handle)
        os.unlink(probe)
    except OSError as e:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise SisgenInputError(f"the output folder is not writable ({e.strerror})", out
                               ) from None
    return created


def generate(
    generator: Generator,
    source: Source,
    out_dir: str | Path,
    *,
    writers: Sequence[str] = ("cityscapes", "coco"),
    writer_options: dict[str, dict[str, Any]] | None = None,
    recipe: Recipe | str | Path | list | dict | None = None,
    seed: int = 0,
    samples_per_map: int = 1,
    batch_size: int = 8,
    limit: int | None = None,
    shard: tuple[int, int] | str | None = None,
    resume: bool = False,
    retry_errors: bool = False,
    workers: int = 0,
    write_workers: int = 0,
    write_threads: int = 1,
    quality_filter: QualityFilter | None = None,
    plan: Plan | str | Path | None = None,
    bank: InstanceBank | str | Path | None = None,
    bank_maps: int = BANK_MAPS,
    resize_first: bool = False,
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
        resume: Continue a run in ``out_dir`` with the same settings (a larger ``limit``
            extends it): samples its manifest records are skipped. Without it, an existing
            manifest is an error (nothing is overwritten silently).
        retry_errors: With ``resume``, try the samples recorded as errors again.
        workers: Worker processes preparing batches (0: in this process).
        write_workers: Worker processes encoding and writing files (0: in this process).
        write_threads: With ``write_workers=0``: threads encoding and writing files in this
            process (1: inline). On few cores threads are cheaper than processes (no copy
            of the arrays); processes scale further.
        quality_filter: Optional :class:`~sisgen.filtering.QualityFilter`: images its
            segmenter does not recognise are dropped (``"status": "filtered"`` in the
            manifest) or have the rejected pixels written as ignore (255); each sample's
            ``quality`` records its scores (ignored fraction, overall and per class). Its
            segmenter and loss statistics must be for the source's vocabulary.
        plan: A :class:`~sisgen.curation.Plan` or plan file: samples per map (replaces
            ``samples_per_map``, which must stay 1); must be the source's plan. ``limit``
            then keeps the first ``limit`` of the plan's maps.
        bank: The instance bank of ``paste`` steps without a ``bank:`` file (an
            :class:`InstanceBank` or a ``.npz`` path). Default: built from the first
            ``bank_maps`` maps of the source -- however many maps the run uses, so a sample
            never depends on ``limit``; the manifest's run record says which.
        bank_maps: Maps of an automatic bank.
        resize_first: Resize maps to the engine resolution before the edits (much faster
            on large maps; other samples than the default, see
            :class:`~sisgen.samples.SamplePath`); recorded in the run record.
        progress: Show a progress bar.

    Returns:
        A :class:`GenerateReport`.

    Raises:
        SisgenInputError: Bad settings, files or folders (before anything is written).
    """
    start = time.perf_counter()
    recipe = Recipe.load(recipe)
    vocab = source.vocabulary
    require_same_ids(vocab, generator.vocabulary)
    recipe.validate(vocab)
    recipe.load_banks()
    restyles = generator.spatial_noise or generator.takes_features
    if any(isinstance(e, ResampleNoise) for e in recipe.walk()) and not restyles:
        raise SisgenInputError(
            "the recipe marks noise regions (resample_noise) but the model takes a noise vector "
            f"{generator.noise_spec.get('shape')}; local restyling needs a model with spatial "
            "noise (OASIS-style) or per-object style features (pix2pixHD feat_num)")
    if samples_per_map < 1 or batch_size < 1:
        raise SisgenInputError("samples_per_map and batch_size must be >= 1")
    for kind in writers:
        WRITERS.get(kind)
    shard = resolve_shard(shard)
    if quality_filter is not None and hasattr(quality_filter, "check_vocabulary"):
        quality_filter.check_vocabulary(vocab, f"the {source.kind} source")
    counts = None
    if plan is not None:
        if samples_per_map != 1:
            raise SisgenInputError("give samples_per_map or a plan, not both (the plan says "
                                   "how many samples each map gets)")
        plan = plan if isinstance(plan, Plan) else Plan.load(plan)
        counts = plan.counts(source)
    n_maps = len(source) if counts is None else len(counts)
    n_maps = n_maps if limit is None else min(int(limit), n_maps)
    layout = SampleLayout(n_maps, samples_per_map, None if counts is None else counts[:n_maps])
    total = layout.total
    blocks = shard_blocks(total, batch_size, shard)
    out = Path(out_dir)
    manifest_path = out / manifest_name(shard)
    created = _check_output_folder(out)
    try:
        previous = read_manifest(manifest_path, repair=resume)
        if resume:
            remove_temp_files(out)  # a killed run's half-written files
        if previous and not resume:
            raise SisgenInputError(
                "output folder already has a manifest; pass resume=True (--resume) to continue "
                "that run, or choose a new folder", manifest_path)
        bank, bank_record = run_bank(recipe, source, bank, bank_maps)
        options = {kind: dict((writer_options or {}).get(kind, {})) for kind in writers}
        record = {
            "status": "run", "sisgen": __version__, "source": source.kind,
            "vocabulary": vocabulary_record(vocab), "recipe": recipe.to_list(),
            "seed": int(seed), "samples_per_map": None if plan else int(samples_per_map),
            "maps": n_maps,
            "total": total, "batch_size": int(batch_size),
            "model": {"name": generator.model_name, "hash": generator.model_hash,
                      "resolution": list(generator.resolution)},
            "writers": options, "bank": bank_record, "resize_first": bool(resize_first),
            "shard": None if shard is None else list(shard), "blocks": len(blocks),
            "expected": sum(len(b) for b in blocks),
        }
        if plan is not None:
            record.update(plan=plan.record(), plan_file=plan.path)
        records = run_records(previous)
        if retry_errors and any(e.get("status") == "error" for e in previous):
            previous = [e for e in previous if e.get("status") != "error"]
            write_text(manifest_path, "".join(_line(e) for e in previous))
        new_record = check_resume(records[-1] if records else None, record, manifest_path)
        done = done_indices(previous, record["samples_per_map"])
        failed_maps = frozenset(int(e["source_index"]) for e in previous
                                if e.get("stage") == "source")
        part_tag = "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"
        opened: list[tuple[str, Writer]] = []
        for kind in writers:
            opts = dict(options[kind])
            if part_tag:
                opts.setdefault("part_tag", part_tag)
            opened.append((kind, get_writer(kind, out / kind, vocab, **opts)))
        written_names = {e["sample"] for e in previous if e.get("status") == "ok"}
        for _, w in opened:
            w.recover(written_names)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise

    path = SamplePath(source, recipe, generator.resolution, seed=seed,
                      samples_per_map=samples_per_map, counts=counts, bank=bank,
                      with_photo=generator.takes_photo,
                      input_spec=getattr(generator, "input_spec", None), maps=n_maps,
                      resize_first=resize_first)
    todo = [b for b in blocks if any(i not in done for i in b)]
    remaining = {i for b in todo for i in b if i not in done}
    report = GenerateReport(out_dir=str(out), manifest=str(manifest_path))
    report.skipped = sum(1 for b in blocks for i in b if i in done)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(remaining), desc="generate", unit="img")
    describe = {"source_kind": source.kind, "recipe": record["recipe"],
                "model_name": generator.model_name, "model_hash": generator.model_hash,
                "backend": generator.backend}
    # the sample path validated each map at load (edits only write vocabulary ids)
    folder = shared_folder() if max(workers, write_workers) > 0 else None
    try:
        stage = WriteStage([w for _, w in opened], write_workers, write_threads,
                           labels_checked=bool(getattr(source, "validate", False)),
                           folder=folder)
    except BaseException:
        remove_folder(folder)
        raise
    reported_maps: set[int] = set(failed_maps)
    ok = False
    with ManifestAppender(manifest_path) as manifest:
        if new_record:
            manifest.append(record)
        committer = _Committer(opened, manifest, report, describe, bar)
        loans: list[Packed] = []  # the lent shared files of batches not yet handed on
        try:
            blocks_view = _Blocks(path, todo, failed_maps, folder if workers > 0 else None)

            def finish(slots: list[tuple[int, _Slot]], batch: PreparedBatch,
                       images: Any) -> None:
                if images is not None:
                    slots += _engine_slots(images, batch, quality_filter, done, stage, report)
                for _, slot in sorted(slots, key=lambda s: s[0]):
                    committer.add(slot)
                committer.drain(wait_until=4 * batch_size)

            # the engine runs one batch ahead: a GPU computes batch n + 1 while this thread
            # writes batch n (a CPU engine computes it in the call)
            in_flight: tuple[list[tuple[int, _Slot]], PreparedBatch, Any] | None = None
            prepared = _prepared(blocks_view, workers, lend=write_workers > 0)
            for block, (batch, packed) in zip(todo, prepared, strict=True):
                if packed is not None:
                    loans.append(packed)
                for key, v in batch.seconds.items():
                    report.seconds[key] += v
                slots = _error_slots(batch, block, path, remaining, reported_maps)
                t0 = time.perf_counter()
                images = submit_engine(generator, batch) if batch.samples else None
                report.seconds["engine"] += time.perf_counter() - t0
                if in_flight is not None:
                    finish(*in_flight)
                    while len(loans) > (packed is not None):  # the maps went to the writers
                        end_loan(loans.pop(0))
                in_flight = (slots, batch, images)
            if in_flight is not None:
                finish(*in_flight)
            committer.drain(wait_until=0)
            ok = True
        finally:
            stage.close(cancel=not ok)
            for packed in loans:
                end_loan(packed)
            remove_folder(folder)
            for _, writer in opened:
                writer.close()
            if bar is not None:
                bar.close()
    report.wall = time.perf_counter() - start
    return report


def _line(entry: dict[str, Any]) -> str:
    return json.dumps(entry) + "\n"


def _error_slots(batch: PreparedBatch, block: range, path: SamplePath, todo: set[int],
                 reported_maps: set[int]) -> list[tuple[int, _Slot]]:
    """The batch's error records, placed at their sample positions (a map's error once).

    A map that cannot be loaded is one record, counted for every sample of it this run
    still had to make (``todo``), with the indices of its samples (``indices``); a block
    that meets the map again reports nothing.
    """
    slots = []
    for entry in batch.errors:
        if entry["stage"] == "source":
            m = int(entry["source_index"])
            if m in reported_maps:
                continue
            reported_maps.add(m)
            first = min(i for i in block if path.locate(i)[0] == m)
            indices = path.layout.map_range(m)
            count = sum(1 for i in indices if i in todo)
            entry = {**entry, "indices": [indices.start, indices.stop]}
            slots.append((first, _Slot(entry=entry, count=count)))
        elif entry.get("index") in todo:
            slots.append((int(entry["index"]), _Slot(entry=entry)))
    return slots


def _engine_slots(pending: Any, batch: PreparedBatch, quality_filter: QualityFilter | None,
                  done: set[int], stage: WriteStage, report: GenerateReport
                  ) -> list[tuple[int, _Slot]]:
    """The engine's images of a batch (``pending.result()``); start writing them."""
    t0 = time.perf_counter()
    items = batch.samples
    images = pending.result()
    t1 = time.perf_counter()
    report.seconds["engine"] += t1 - t0
    verdicts: list[Any] = [None] * len(items)
    if quality_filter is not None:
        verdicts = quality_filter.apply(list(images), [s.labelmap for s in items])
        report.seconds["filter"] += time.perf_counter() - t1
    slots, jobs, waiting = [], [], []
    for item, image, verdict in zip(items, images, verdicts, strict=True):
        if item.index in done:  # recomputed for the batch's sake, written before
            continue
        if verdict is not None and not verdict.keep:
            slots.append((item.index, _Slot(entry={
                "status": "filtered", "sample": item.name, "index": item.index,
                "source_index": item.source_index, "seed": item.seed,
                "quality": verdict.to_dict()})))
            continue
        quality = None
        if verdict is not None:
            item.labelmap = verdict.labelmap
            quality = verdict.to_dict()
        jobs.append((item.name, image, item.labelmap))
        waiting.append(_Slot(item=item, quality=quality))
    for slot, future in zip(waiting, stage.submit_many(jobs), strict=True):
        slot.future = future
        slots.append((slot.item.index, slot))
    return slots


def merge(out_dir: str | Path, writers: Sequence[str] | None = None, vocabulary: Any = None,
          writer_options: dict[str, dict[str, Any]] | None = None) -> Path:
    """Check and combine the shards of a run: one ``manifest.jsonl`` and each writer's index.

    The shards must all be there, be complete and describe the same run
    (:func:`sisgen.runs.check_shards`). Manifest entries are concatenated in sample-index
    order (source errors first by map index) after one run record. Each writer is
    re-opened on its folder (with the run's options) and closed, which rebuilds its index
    (COCO JSON, ...) from the part files of all shards.

    Args:
        out_dir: The run folder.
        writers: Writer kinds to rebuild (default: the run's).
        vocabulary: The vocabulary the caller expects (checked against the run's).
        writer_options: Writer options (default: the run's).

    Returns:
        The merged manifest path.
    """
    out = Path(out_dir)
    record, entries = check_shards(out, vocabulary)
    merged = out / MANIFEST
    write_text(merged, merged_manifest_text(record, entries))
    vocab = get_vocabulary(vocabulary) if vocabulary is not None else None
    options = record.get("writers") or {}
    for kind in (writers if writers is not None else list(options)):
        if (out / kind).is_dir():
            opts = (writer_options or {}).get(kind, options.get(kind, {}))
            voc = vocab if vocab is not None else _recorded_vocabulary(record)
            get_writer(kind, out / kind, voc, **opts).close()
    return merged


def _recorded_vocabulary(record: dict[str, Any]) -> Any:
    """The run's vocabulary: the preset of its name when ids and names agree."""
    name = record["vocabulary"]["name"]
    try:
        vocab = get_vocabulary(name)
    except SisgenInputError:
        raise SisgenInputError(f"the run's vocabulary {name!r} is not a preset: pass it to "
                               "merge (--vocabulary FILE)") from None
    if vocab.ids != record["vocabulary"]["ids"]:
        raise SisgenInputError(f"the preset {name!r} differs from the run's vocabulary: pass "
                               "the run's vocabulary file to merge (--vocabulary FILE)")
    return vocab
