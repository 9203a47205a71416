"""The JSONL manifest of a dataset run: one line per sample, written after its files.

Every tool that writes labeled samples -- ``sisgen generate`` and the scene editor --
records them here in the same shape, so a dataset reads the same whoever made it:

* ``{"status": "ok", "sample", "index", "source", "source_index", "source_id",
  "source_file", "seed", "recipe", "edits", "model", "model_hash", "backend", "outputs",
  ...}`` for a written sample (``edits``: what each edit step did, as data, from
  ``LabelMap.meta["edits"]``; ``outputs``: ``{writer kind: {role: path}}``);
* ``{"status": "error", "stage", ..., "file", "error"}`` for a sample that could not be
  made, and ``{"status": "filtered", ...}`` for one a quality filter dropped.

A line is appended (and flushed) only after all of the sample's files are on disk, so a
manifest never names a file that is not there; a killed run can leave a torn last line,
which :func:`read_manifest` can cut (``repair=True``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from .labelmap import LabelMap

MANIFEST = "manifest.jsonl"


def manifest_name(shard: tuple[int, int] | None) -> str:
    """The manifest file of a run or of one shard of it."""
    return MANIFEST if shard is None else f"manifest.shard-{shard[0]}-of-{shard[1]}.jsonl"


def read_manifest(path: str | os.PathLike, repair: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL manifest; with ``repair``, cut a torn last line left by a killed run."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    if repair and good_end != len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    entries = []
    for line in data[:good_end].splitlines():
        if line.strip():
            entries.append(json.loads(line))
    return entries


def sample_entry(*, name: str, index: int, labelmap: LabelMap, source_kind: str,
                 source_index: int, seed: int, recipe: list[dict[str, Any]],
                 model_name: str, model_hash: str, backend: str,
                 outputs: dict[str, dict[str, str]], **extra: Any) -> dict[str, Any]:
    """The manifest line of a written sample (see the module docstring for the fields).

    Args:
        name: The sample name the writers used.
        index: The sample's index in its run.
        labelmap: The (edited) label map that was written; its ``meta`` gives the source
            id and file and the record of the edits.
        source_kind: The source's kind (``cityscapes``, ``toycity``, ...).
        source_index: The map's position in the source.
        seed: The sample's seed (edits and noise).
        recipe: The edit steps as data (``Recipe.to_list()``).
        model_name: The generator's registry name.
        model_hash: Content hash of its weights.
        backend: The engine backend that ran it.
        outputs: ``{writer kind: {role: path relative to the writer's root}}``.
        **extra: More fields, appended last (``quality``, ...).
    """
    return {
        "status": "ok", "sample": name, "index": index,
        "source": source_kind, "source_index": source_index,
        "source_id": labelmap.id, "source_file": labelmap.meta.get("file"),
        "seed": seed, "recipe": recipe, "edits": labelmap.meta.get("edits", []),
        "model": model_name, "model_hash": model_hash,
        "backend": backend, "outputs": outputs, **extra,
    }


class ManifestAppender:
    """Append lines to a manifest, one whole line at a time, from any thread.

    Args:
        path: The manifest file (created when missing; existing lines are kept).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close)

    def append(self, entry: dict[str, Any]) -> None:
        """Write ``entry`` as one JSON line and flush it."""
        line = json.dumps(entry) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        """Close the file (safe to call more than once)."""
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __enter__(self) -> ManifestAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
