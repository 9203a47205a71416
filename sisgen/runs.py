"""What a generation run is, so that resumes, shards and merges can be checked.

A run (or one shard of it) writes a *run record* as the first line of its manifest:
``{"status": "run", ...}`` with everything that decides its samples -- source, vocabulary,
recipe, seed, samples per map, number of maps, batch size, model, writers and their
options, the instance bank it built, and the shard. A resumed run must match it (a larger
``limit`` extends the run and appends a new record); :func:`merge` checks that the shards of
a folder are all there, are complete and describe the same run before it combines them.

A run that follows a plan (:mod:`sisgen.curation`) records ``"samples_per_map": null`` and
``"plan": {"sha256", "mode", "maps", "total"}`` (what decides its samples) plus
``"plan_file"``, where the plan was read from (informational: a resume or another shard may
read the same plan from another path). A map that cannot be loaded is recorded once with
the sample indices it stood for (``"indices": [start, stop]``), so a manifest reads back
without knowing the plan.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import SisgenInputError
from .manifest import read_manifest
from .vocab import Vocabulary, get_vocabulary

#: Record keys that say nothing about the samples (never compared).
INFORMATIONAL = ("plan_file",)
#: Record keys that may differ between the shards of one run.
PER_SHARD = ("shard", "blocks", "expected", *INFORMATIONAL)
#: Record keys a resumed run may change (a larger limit extends the run).
EXTENDABLE = ("maps", "total", "blocks", "expected", *INFORMATIONAL)


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


def shard_blocks(total: int, batch_size: int, shard: tuple[int, int] | None) -> list[range]:
    """The engine batches of a shard: fixed blocks of sample indices.

    Block ``b`` goes to shard ``b mod n``, so every sample is computed in the same batch
    however the run is split.
    """
    blocks = [range(b, min(b + batch_size, total)) for b in range(0, total, batch_size)]
    k, n = shard if shard is not None else (0, 1)
    return blocks[k::n]


def vocabulary_record(vocabulary: Vocabulary) -> dict[str, Any]:
    """The vocabulary as a run records it: name, ids and names (colours do not matter)."""
    return {"name": vocabulary.name, "ids": vocabulary.ids, "names": vocabulary.names}


def run_records(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run records among manifest entries, in order (the last one is in force)."""
    return [e for e in entries if e.get("status") == "run"]


def differences(a: dict[str, Any], b: dict[str, Any], ignore: tuple[str, ...] = ()
                ) -> list[str]:
    """Keys whose values differ between two run records (``ignore`` left out)."""
    keys = (set(a) | set(b)) - {"status", *ignore}
    return sorted(k for k in keys if a.get(k) != b.get(k))


def check_resume(previous: dict[str, Any] | None, current: dict[str, Any],
                 path: str | os.PathLike) -> bool:
    """Check that a resumed run continues the recorded one.

    Returns:
        Whether the record changed in a way the run may extend (a new record is due).

    Raises:
        SisgenInputError: The run would make other samples than the recorded one (names
            the manifest and the differing settings), or a smaller run than recorded.
    """
    if previous is None:
        return True
    changed = differences(previous, current, ignore=EXTENDABLE)
    if changed:
        shown = "; ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise SisgenInputError(
            f"--resume with other settings than the recorded run ({shown}); resume with the "
            "same settings or write to a new folder", path)
    if current["maps"] < previous["maps"]:
        raise SisgenInputError(
            f"--resume with fewer label maps ({current['maps']}) than the recorded run "
            f"({previous['maps']}); resume with --limit {previous['maps']} or more", path)
    return differences(previous, current, ignore=INFORMATIONAL) != []


def source_error_indices(entry: dict[str, Any], samples_per_map: int | None) -> range:
    """The sample indices a map's load error stands for.

    Its recorded ``indices`` (``[start, stop]``); entries of older manifests (without
    them) stand for the ``samples_per_map`` samples of their map.
    """
    if "indices" in entry:
        start, stop = entry["indices"]
        return range(int(start), int(stop))
    spm = int(samples_per_map or 1)
    base = int(entry["source_index"]) * spm
    return range(base, base + spm)


def done_indices(entries: list[dict[str, Any]], samples_per_map: int | None = None,
                 retry_errors: bool = False) -> set[int]:
    """Sample indices a manifest records as finished (errors too, unless retried)."""
    done: set[int] = set()
    for e in entries:
        if e.get("status") == "run" or (retry_errors and e.get("status") == "error"):
            continue
        if "index" in e:
            done.add(int(e["index"]))
        elif e.get("stage") == "source":
            done.update(source_error_indices(e, samples_per_map))
    return done


def _shard_manifests(out: Path) -> dict[tuple[int, int], Path]:
    found: dict[tuple[int, int], Path] = {}
    for p in sorted(out.glob("manifest.shard-*-of-*.jsonl")):
        try:
            k, n = (int(v) for v in p.name[len("manifest.shard-"):-len(".jsonl")].split("-of-"))
        except ValueError:
            continue
        found[(k, n)] = p
    return found


def check_shards(out: str | os.PathLike, vocabulary: Any = None
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Check the shards of a run folder before they are merged.

    Args:
        out: The run folder (``manifest.shard-k-of-n.jsonl`` files).
        vocabulary: The vocabulary the caller believes the run used (name, file or
            :class:`Vocabulary`); ``None``: the recorded one.

    Returns:
        ``(record, entries)``: the run record (without the shard) and every shard's
        sample entries.

    Raises:
        SisgenInputError: No shards; shards of different ``n``; a shard missing; a shard
            without a run record; shards of different runs (seed, limit, recipe, model,
            ...); an incomplete shard; or another vocabulary than the run's.
    """
    out = Path(out)
    found = _shard_manifests(out)
    if not found:
        raise SisgenInputError("no shard manifests (manifest.shard-k-of-n.jsonl) to merge", out)
    counts = sorted({n for _, n in found})
    if len(counts) > 1:
        raise SisgenInputError(f"shard manifests of different shard counts {counts}; "
                               "a folder must hold the shards of one run", out)
    n = counts[0]
    missing = [k for k in range(n) if (k, n) not in found]
    if missing:
        raise SisgenInputError(
            f"shard(s) {', '.join(f'{k}/{n}' for k in missing)} missing: run them (--shard "
            "k/n, same settings) before merging", out)
    reference: dict[str, Any] | None = None
    shard_records: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for (k, _), path in sorted(found.items()):
        lines = read_manifest(path)
        records = run_records(lines)
        if not records:
            raise SisgenInputError("shard manifest has no run record (written by an older "
                                   "sisgen?); regenerate it", path)
        record = records[-1]
        shard_records.append(record)
        if reference is None:
            reference = record
        else:
            changed = differences(reference, record, ignore=PER_SHARD)
            if changed:
                shown = "; ".join(f"{c}: {reference.get(c)!r} vs {record.get(c)!r}"
                                  for c in changed)
                raise SisgenInputError(f"shard {k}/{n} is from another run than shard 0 "
                                       f"({shown})", path)
        samples = [e for e in lines if e.get("status") != "run"]
        covered = done_indices(samples, record.get("samples_per_map"))
        expected = int(record["expected"])
        if len(covered) < expected:
            raise SisgenInputError(f"shard {k}/{n} is incomplete: {len(covered)} of "
                                   f"{expected} samples; finish it with --resume", path)
        entries += samples
    assert reference is not None
    if vocabulary is not None:
        given = vocabulary_record(get_vocabulary(vocabulary))
        if given["ids"] != reference["vocabulary"]["ids"] or (
                given["names"] != reference["vocabulary"]["names"]):
            raise SisgenInputError(
                f"vocabulary {given['name']!r} is not the run's {reference['vocabulary']['name']!r}"
                " (other ids or names)", out)
    record = dict(reference)  # what one unsharded run of the same settings records
    record.update(shard=None, blocks=sum(int(r["blocks"]) for r in shard_records),
                  expected=sum(int(r["expected"]) for r in shard_records))
    return record, entries


def merged_manifest_text(record: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """The merged manifest: the run's record, then the entries in sample order.

    A map's load error stands where its first sample would, as in an unsharded run, so
    the merged manifest reads exactly like the manifest of one run of the same settings.
    """
    spm = record.get("samples_per_map")

    def key(e: dict[str, Any]) -> tuple[int, int]:
        if "index" in e:
            return (int(e["index"]), 1)
        return (source_error_indices(e, spm).start, 0)

    lines = [record] + sorted(entries, key=key)
    return "".join(json.dumps(e) + "\n" for e in lines)


__all__ = ["check_resume", "check_shards", "done_indices", "merged_manifest_text",
           "resolve_shard", "run_records", "shard_blocks", "source_error_indices",
           "vocabulary_record"]
