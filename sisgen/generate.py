"""Generation: ``source -> edits -> batch -> engine -> writers``, with a JSONL manifest.

Each stage is a plain function or object, testable alone. Per-sample seeds derive from
``(run seed, sample index)`` only, so a sample's image does not depend on batch size,
order or which other samples failed. A sample whose label map cannot be read (a corrupt
PNG, ids outside the vocabulary, a bad COCO polygon) is recorded in the manifest with the
error and skipped; everything already written stays written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .edits import Recipe
from .engines import Generator, images_to_uint8
from .errors import SisgenInputError
from .labelmap import LabelMap
from .sources import Source
from .writers import Writer, get_writer

MANIFEST = "manifest.jsonl"


def sample_seed(run_seed: int, index: int) -> int:
    """The seed of sample ``index`` of a run: a hash of ``(run_seed, index)``, 63 bits."""
    state = np.random.SeedSequence([int(run_seed), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


@dataclass
class PreparedSample:
    """A label map ready for the engine, with its bookkeeping."""

    index: int
    name: str
    seed: int
    labelmap: LabelMap
    source_index: int


@dataclass
class GenerateReport:
    """What a generation run did."""

    written: int = 0
    failed: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {
        "source": 0.0, "edit": 0.0, "engine": 0.0, "write": 0.0})
    wall: float = 0.0
    out_dir: str = ""
    manifest: str = ""

    @property
    def images_per_second(self) -> float:
        """Written images per wall-clock second."""
        return self.written / self.wall if self.wall else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"written": self.written, "failed": self.failed, "wall_s": round(self.wall, 3),
                "images_per_s": round(self.images_per_second, 3),
                "stage_s": {k: round(v, 3) for k, v in self.seconds.items()},
                "out_dir": self.out_dir, "manifest": self.manifest}


def prepare_samples(source: Source, recipe: Recipe, resolution: tuple[int, int], *,
                    seed: int = 0, samples_per_map: int = 1, limit: int | None = None,
                    report: GenerateReport | None = None, errors: list[dict[str, Any]] | None = None
                    ) -> Iterator[PreparedSample]:
    """Load, edit and resize label maps; bad samples go to ``errors`` instead of raising.

    Sample ``k`` of map ``i`` has run index ``i * samples_per_map + k``; its seed (used for
    both the edits and the generator noise) is :func:`sample_seed` of that index.
    """
    report = report or GenerateReport()
    n = len(source) if limit is None else min(limit, len(source))
    for i in range(n):
        t0 = time.perf_counter()
        try:
            lm = source.load(i)
            source.vocabulary.validate(lm.semantic, lm.meta.get("file"))
        except SisgenInputError as e:
            report.seconds["source"] += time.perf_counter() - t0
            if errors is not None:
                errors.append({"status": "error", "source_index": i, "stage": "source",
                               "file": e.path, "error": str(e)})
            continue
        t1 = time.perf_counter()
        report.seconds["source"] += t1 - t0
        for k in range(samples_per_map):
            index = i * samples_per_map + k
            s = sample_seed(seed, index)
            t2 = time.perf_counter()
            try:
                edited = recipe(lm, seed=s, vocab=source.vocabulary)
            except SisgenInputError as e:
                report.seconds["edit"] += time.perf_counter() - t2
                if errors is not None:
                    errors.append({"status": "error", "source_index": i, "index": index,
                                   "stage": "edit", "file": e.path, "error": str(e)})
                continue
            if edited.shape != tuple(resolution):
                edited = edited.resized(tuple(resolution))
            report.seconds["edit"] += time.perf_counter() - t2
            name = lm.id if samples_per_map == 1 else f"{lm.id}_s{k}"
            yield PreparedSample(index, name, s, edited, i)


def _batches(items: Iterator[PreparedSample], size: int) -> Iterator[list[PreparedSample]]:
    batch: list[PreparedSample] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


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
    progress: bool = True,
) -> GenerateReport:
    """Synthesize a labeled dataset from a source.

    Args:
        generator: A loaded generator (``sisgen.load``).
        source: Label maps (their vocabulary must match the generator's).
        out_dir: Output root; each writer gets ``out_dir/<kind>``; the manifest is
            ``out_dir/manifest.jsonl``.
        writers: Writer kinds.
        writer_options: Per-kind writer options, e.g. ``{"coco": {"segmentation": "polygon"}}``.
        recipe: Edit recipe (YAML path/text, list, dict or :class:`Recipe`).
        seed: Run seed; per-sample seeds derive from it and the sample index.
        samples_per_map: Images per label map (different seeds, edits drawn anew).
        batch_size: Engine batch size.
        limit: Use only the first ``limit`` label maps.
        progress: Show a progress bar.

    Returns:
        A :class:`GenerateReport`.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recipe = Recipe.load(recipe)
    vocab = source.vocabulary
    if generator.vocabulary is not None and generator.vocabulary.ids != vocab.ids:
        raise SisgenInputError(
            f"the source's vocabulary {vocab.name!r} ({len(vocab)} classes) does not match the "
            f"model's {generator.vocabulary.name!r} ({len(generator.vocabulary)} classes)"
        )
    recipe.validate(vocab)
    report = GenerateReport(out_dir=str(out), manifest=str(out / MANIFEST))
    options = writer_options or {}
    opened: list[tuple[str, Writer]] = [
        (kind, get_writer(kind, out / kind, vocab, **options.get(kind, {}))) for kind in writers
    ]
    errors: list[dict[str, Any]] = []
    n_maps = len(source) if limit is None else min(limit, len(source))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_maps * samples_per_map, desc="generate", unit="img")
    recipe_data = recipe.to_list()
    with open(out / MANIFEST, "a", encoding="utf-8") as manifest:

        def record(entry: dict[str, Any]) -> None:
            manifest.write(json.dumps(entry) + "\n")
            manifest.flush()

        def flush_errors() -> None:
            while errors:
                entry = errors.pop(0)
                report.failed += 1
                record(entry)
                if bar is not None:
                    bar.update(samples_per_map if entry["stage"] == "source" else 1)

        items = prepare_samples(source, recipe, generator.resolution, seed=seed,
                                samples_per_map=samples_per_map, limit=limit, report=report,
                                errors=errors)
        try:
            for batch in _batches(items, batch_size):
                flush_errors()
                t0 = time.perf_counter()
                inputs = generator.prepare([b.labelmap for b in batch], [b.seed for b in batch])
                images = images_to_uint8(generator(*inputs))
                t1 = time.perf_counter()
                report.seconds["engine"] += t1 - t0
                for item, image in zip(batch, images, strict=True):
                    outputs: dict[str, dict[str, str]] = {}
                    for kind, writer in opened:
                        outputs[kind] = writer.write(item.name, image, item.labelmap)
                    lm = item.labelmap
                    record({
                        "status": "ok", "sample": item.name, "index": item.index,
                        "source": source.kind, "source_index": item.source_index,
                        "source_id": lm.id, "source_file": lm.meta.get("file"),
                        "seed": item.seed, "recipe": recipe_data,
                        "edits": lm.meta.get("edits", []),
                        "model": generator.model_name, "model_hash": generator.model_hash,
                        "backend": generator.backend, "outputs": outputs,
                    })
                    report.written += 1
                    if bar is not None:
                        bar.update(1)
                report.seconds["write"] += time.perf_counter() - t1
            flush_errors()
        finally:
            for _, writer in opened:
                writer.close()
            if bar is not None:
                bar.close()
    report.wall = time.perf_counter() - start
    return report
