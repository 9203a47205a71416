"""The plan file: how many samples each label map of a source gets.

A plan is JSON::

    {"format": "sisgen-plan", "version": 1,
     "source": {"kind", "split", "len", "maps", "keys_sha256"},
     "vocabulary": {"name", "ids", "names"},
     "mode": "hardness" | "balance" | "hardness+balance" | ...,
     "samples": {map key: count, ...},          # the first `maps` maps, in source order
     "report": {...}}                           # what made the counts (mode-specific)

``sisgen generate --plan plan.json`` (``generate(plan=...)``) and
:class:`~sisgen.integrations.SynthesisDataset` follow it through
:class:`~sisgen.samples.SampleLayout`: map ``m`` gets ``counts[m]`` samples (0 skips it),
numbered by cumulative counts in source order, each seeded from (run seed, sample index),
so resumes and shards stay bit-exact. A plan covers the first ``maps`` maps of its source;
maps after them get no samples.

A plan only fits the source it was made for: same kind and split, the same keys for the
covered maps (``keys_sha256`` is the SHA-256 of the keys joined by newlines) and the same
vocabulary; anything else is a :class:`~sisgen.errors.SisgenInputError` naming the plan file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SisgenInputError
from ..io import read_json, write_text
from ..runs import vocabulary_record
from ..sources import Source
from .stats import check_vocabulary_record, source_description

PLAN_FORMAT = "sisgen-plan"


def keys_digest(keys: Sequence[str]) -> str:
    """SHA-256 of the map keys joined by newlines."""
    return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()


@dataclass
class Plan:
    """Samples per label map (module docstring).

    Attributes:
        samples: ``{map key: count}`` for the covered maps, in source order.
        source: The source it was made for (kind, split, len, maps, keys_sha256).
        vocabulary: The source's vocabulary record.
        mode: How the counts were made.
        report: Mode-specific details (scores, class frequencies before and after...).
        path: The file the plan was loaded from or saved to.
    """

    samples: dict[str, int]
    source: dict[str, Any]
    vocabulary: dict[str, Any]
    mode: str
    report: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @classmethod
    def from_counts(cls, source: Source, counts: Sequence[int], mode: str,
                    report: dict[str, Any] | None = None) -> Plan:
        """A plan giving map ``m`` of ``source`` ``counts[m]`` samples (first maps)."""
        if len(counts) > len(source):
            raise SisgenInputError(f"{len(counts)} counts for a source of {len(source)} maps")
        if any(int(c) < 0 for c in counts):
            raise SisgenInputError("sample counts must be >= 0")
        keys = source.keys()[:len(counts)]
        desc = source_description(source, len(counts))
        desc["keys_sha256"] = keys_digest(keys)
        return cls(dict(zip(keys, (int(c) for c in counts), strict=True)), desc,
                   vocabulary_record(source.vocabulary), str(mode), dict(report or {}))

    @property
    def maps(self) -> int:
        """Maps the plan covers."""
        return len(self.samples)

    @property
    def total(self) -> int:
        """Samples the plan makes."""
        return sum(self.samples.values())

    def counts(self, source: Source | None = None) -> list[int]:
        """Samples of each covered map, in source order (checked against ``source``)."""
        if source is not None:
            self.check_source(source)
        return list(self.samples.values())

    def _where(self) -> str:
        return self.path or "the plan"

    def check_source(self, source: Source) -> None:
        """Check that this plan was made for ``source``.

        Raises:
            SisgenInputError: Another kind, split or vocabulary, fewer maps than the plan
                covers, or other keys; names the plan file.
        """
        mine = self.source
        where = self._where()
        if mine.get("kind") != source.kind:
            raise SisgenInputError(f"this plan is for a {mine.get('kind')!r} source, not "
                                   f"{source.kind!r}", where)
        split = getattr(source, "split", None)
        if mine.get("split") is not None and split is not None and mine["split"] != split:
            raise SisgenInputError(f"this plan is for split {mine['split']!r}, not {split!r}",
                                   where)
        check_vocabulary_record(self.vocabulary, source.vocabulary,
                                f"the {source.kind} source", where, "plan")
        if self.maps > len(source):
            raise SisgenInputError(f"this plan covers {self.maps} maps (of a source of "
                                   f"{mine.get('len')}), the {source.kind} source has only "
                                   f"{len(source)}", where)
        keys = source.keys()[:self.maps]
        if keys_digest(keys) != mine.get("keys_sha256") or keys != list(self.samples):
            bad = next((i for i, (a, b) in enumerate(zip(keys, self.samples, strict=True))
                        if a != b), None)
            shown = "" if bad is None else (f": map {bad} is {list(self.samples)[bad]!r} in the "
                                            f"plan, {keys[bad]!r} in the source")
            raise SisgenInputError(f"this plan is for other label maps (keys differ{shown}; "
                                   f"plan source length {mine.get('len')}, this source "
                                   f"{len(source)})", where)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (module docstring)."""
        return {"format": PLAN_FORMAT, "version": 1, "source": self.source,
                "vocabulary": self.vocabulary, "mode": self.mode, "samples": self.samples,
                "report": self.report}

    def to_json(self) -> str:
        """The text :meth:`save` writes (deterministic: the digest is its SHA-256)."""
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def digest(self) -> str:
        """SHA-256 of :meth:`to_json` -- the file's own SHA-256 when sisgen wrote it."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    def record(self) -> dict[str, Any]:
        """What a generation run records about the plan (decides its samples)."""
        return {"sha256": self.digest(), "mode": self.mode, "maps": self.maps,
                "total": self.total}

    def save(self, path: str | os.PathLike) -> None:
        """Write the plan (atomically)."""
        write_text(path, self.to_json())
        self.path = os.fspath(path)

    @classmethod
    def load(cls, path: str | os.PathLike, source: Source | None = None) -> Plan:
        """Read a plan file; with ``source``, check that it was made for it.

        Raises:
            SisgenInputError: Not a plan, malformed, or for another source; names the file.
        """
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
            raise SisgenInputError(f"not a plan file (format must be {PLAN_FORMAT!r}; make one "
                                   "with `sisgen curate plan`)", path)
        if data.get("version") != 1:
            raise SisgenInputError(f"unsupported plan version {data.get('version')!r}", path)
        try:
            samples = {str(k): int(v) for k, v in dict(data["samples"]).items()}
            if any(v < 0 or v != data["samples"][k] for k, v in samples.items()):
                raise ValueError("counts must be integers >= 0")
            plan = cls(samples, dict(data["source"]), dict(data["vocabulary"]),
                       str(data["mode"]), dict(data.get("report") or {}), os.fspath(path))
        except (KeyError, TypeError, ValueError) as e:
            raise SisgenInputError(f"malformed plan ({e})", path) from None
        if plan.total < 1:
            raise SisgenInputError("the plan gives no samples (every count is 0)", path)
        if source is not None:
            plan.check_source(source)
        return plan

    def __repr__(self) -> str:
        return (f"<Plan {self.mode} {self.source.get('kind')} maps={self.maps} "
                f"samples={self.total}>")
