"""Vocabulary remapping: lookup tables that move label maps from one id space to another.

A :class:`Remap` is data, not code: a source vocabulary, a target vocabulary and a
256-entry lookup table (source id -> target id). Ids the table does not mention, ids
outside the source vocabulary and the ignore id all become 255 (ignore).

Tables are YAML files::

    source: coco_stuff          # a vocabulary preset name or a .json/.yaml vocabulary file
    target: cityscapes
    map:                        # source class (name or id) -> target class (name or id)
      person: person
      pavement: sidewalk
      tree: vegetation
      airplane: ignore          # ``ignore``, 255 or null: explicitly ignored

The built-in tables live in ``sisgen/remaps/<source>-><target>.yaml`` (a name's ``->`` is
spelled ``_to_`` in the file name) and are listed by :func:`available_remaps`:

* ``cityscapes->cityscapes_trainid`` -- the 35 labelIds to the 19 trainIds (the
  dataset's own table; everything else ignored);
* ``cityscapes_trainid->cityscapes`` -- its inverse on the 19 classes;
* ``coco_stuff->cityscapes`` -- COCO things and stuff to the closest Cityscapes class
  (the table's comments give the reasoning), all else ignored;
* ``ade20k->cityscapes`` -- the ADE20K classes that have a Cityscapes counterpart.

Instances: :meth:`Remap.remap` keeps instance ids (unchanged, they stay unique) only on
pixels whose *target* class is a thing; elsewhere they become 0.

:class:`~sisgen.sources.remapped.RemappedSource` wraps any source so that it yields
remapped maps; it is what ``sisgen.sources.open(kind, root, split, remap=...)`` returns.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SisgenInputError
from .labelmap import IGNORE_ID, LabelMap
from .vocab import Vocabulary, get_vocabulary

REMAPS_DIR = Path(__file__).with_name("remaps")
_ARROW = "->"
_FILE_ARROW = "_to_"
_IGNORE_WORDS = ("ignore",)


@dataclass
class Remap:
    """A lookup table from one vocabulary's ids to another's.

    Attributes:
        name: ``"<source>-><target>"`` for built-in tables, the file stem for user files.
        source: The vocabulary of the input maps.
        target: The vocabulary of the output maps.
        table: ``uint8[256]``; ``table[source_id]`` is the target id (255 = ignore).
    """

    name: str
    source: Vocabulary
    target: Vocabulary
    table: np.ndarray

    def __post_init__(self) -> None:
        table = np.asarray(self.table)
        if table.shape != (256,):
            raise ValueError(f"remap {self.name!r}: table must have 256 entries, "
                             f"got shape {table.shape}")
        self.table = table.astype(np.uint8)
        self.table[IGNORE_ID] = IGNORE_ID

    def __repr__(self) -> str:
        mapped = int((self.table != IGNORE_ID).sum())
        return f"<Remap {self.name} {self.source.name}->{self.target.name} mapped={mapped}>"

    def lookup(self, key: int | str) -> int:
        """The target id of one source class (by name or id); 255 when it is ignored."""
        return int(self.table[self.source.resolve(key)])

    def apply(self, semantic: np.ndarray) -> np.ndarray:
        """Remap a semantic array; values outside ``0..255`` become 255.

        Returns:
            A uint8 array of the same shape in the target id space.

        """
        sem = np.asarray(semantic)
        if sem.dtype == np.uint8:
            return self.table[sem]
        out = self.table[np.clip(sem, 0, 255).astype(np.intp)]
        out[(sem < 0) | (sem > 255)] = IGNORE_ID
        return out

    def remap(self, labelmap: LabelMap) -> LabelMap:
        """A remapped copy of ``labelmap``.

        ``instance`` is kept only where the target class is a thing (0 elsewhere);
        ``meta["remap"]`` records this table's name, ``meta["vocabulary"]`` the target.
        """
        semantic = self.apply(labelmap.semantic)
        instance = None
        if labelmap.instance is not None:
            thing = self.target.thing_table()[semantic]
            instance = np.where(thing, labelmap.instance, 0).astype(np.int32)
        meta = copy.deepcopy(labelmap.meta)
        meta["remap"] = self.name
        meta["vocabulary"] = self.target.name
        return LabelMap(semantic, instance, meta)

    __call__ = remap

    def inverse_pairs(self) -> dict[int, list[int]]:
        """Target id -> the source ids that map to it (for reports and checks)."""
        out: dict[int, list[int]] = {}
        for src in self.source.ids:
            dst = int(self.table[src])
            if dst != IGNORE_ID:
                out.setdefault(dst, []).append(src)
        return out


def _resolve(vocab: Vocabulary, key: Any, role: str, path: Path) -> int:
    """A table key or value as an id of ``vocab`` (255 for the ignore words)."""
    if key is None or (isinstance(key, str) and key.strip().lower() in _IGNORE_WORDS):
        if role == "source":
            raise SisgenInputError(f"map: {key!r} cannot be a source class", path)
        return IGNORE_ID
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise SisgenInputError(f"map: {role} class {key!r} must be a name or an id", path)
    if isinstance(key, int) and key == vocab.ignore_id:
        if role == "source":
            raise SisgenInputError(f"map: the ignore id {key} cannot be remapped", path)
        return IGNORE_ID
    try:
        return vocab.resolve(key)
    except SisgenInputError as e:
        raise SisgenInputError(f"map: unknown {role} class {key!r} ({e.problem})", path) from None


def remap_from_dict(data: Any, path: str | os.PathLike, name: str | None = None) -> Remap:
    """Build a :class:`Remap` from a parsed table (see the module docstring).

    Args:
        data: ``{"source": ..., "target": ..., "map": {...}}``.
        path: The file it came from (named in errors; relative vocabulary files resolve
            against its folder).
        name: The remap's name; defaults to the file stem.

    Raises:
        SisgenInputError: Naming ``path``: missing keys, unknown vocabularies or classes,
            a source class listed twice.

    """
    path = Path(path)
    if not isinstance(data, Mapping):
        raise SisgenInputError("remap table must be a mapping with source, target and map",
                               path)
    for key in ("source", "target", "map"):
        if key not in data:
            raise SisgenInputError(f"remap table has no {key!r}", path)
    vocabs = []
    for key in ("source", "target"):
        ref = data[key]
        if not isinstance(ref, str):
            raise SisgenInputError(f"{key!r} must be a vocabulary name or file", path)
        if Path(ref).suffix.lower() in (".json", ".yaml", ".yml") and not Path(ref).is_absolute():
            ref = str(path.parent / ref)
        try:
            vocabs.append(get_vocabulary(ref))
        except SisgenInputError as e:
            raise SisgenInputError(f"{key}: {e}", path) from None
    source, target = vocabs
    mapping = data["map"]
    if not isinstance(mapping, Mapping):
        raise SisgenInputError("'map' must be a mapping of source class -> target class", path)
    table = np.full(256, IGNORE_ID, dtype=np.uint8)
    seen: dict[int, Any] = {}
    for src_key, dst_key in mapping.items():
        src = _resolve(source, src_key, "source", path)
        dst = _resolve(target, dst_key, "target", path)
        if src in seen:
            raise SisgenInputError(
                f"map: source class {src_key!r} is listed twice (also as {seen[src]!r})", path
            )
        seen[src] = src_key
        table[src] = dst
    return Remap(name or path.stem, source, target, table)


def load_remap(path: str | os.PathLike, name: str | None = None) -> Remap:
    """Load a remap table from a YAML (or JSON) file.

    Raises:
        SisgenInputError: Naming the file: missing, unparsable, or a bad table.

    """
    path = Path(path)
    if not path.is_file():
        raise SisgenInputError("remap table not found", path)
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SisgenInputError(f"cannot parse remap table ({e})", path) from e
    return remap_from_dict(data, path, name)


def _builtin_path(name: str) -> Path:
    return REMAPS_DIR / f"{name.replace(_ARROW, _FILE_ARROW)}.yaml"


def available_remaps() -> list[str]:
    """Names of the built-in remap tables, such as ``cityscapes->cityscapes_trainid``."""
    if not REMAPS_DIR.is_dir():
        return []
    return sorted(p.stem.replace(_FILE_ARROW, _ARROW) for p in REMAPS_DIR.glob("*.yaml"))


def get_remap(name_or_path: str | os.PathLike | Remap) -> Remap:
    """A built-in remap by name, a user table from a YAML/JSON file, or a ``Remap`` as is.

    Raises:
        SisgenInputError: Unknown name and no such file, or a bad table.

    """
    if isinstance(name_or_path, Remap):
        return name_or_path
    key = os.fspath(name_or_path)
    if _ARROW in key and _builtin_path(key).is_file():
        return load_remap(_builtin_path(key), name=key)
    if Path(key).suffix.lower() in (".yaml", ".yml", ".json"):
        return load_remap(key)
    raise SisgenInputError(
        f"unknown remap {key!r}; built-in: {', '.join(available_remaps())}, or give a "
        ".yaml file"
    )


def remap(labelmap: LabelMap, table: str | os.PathLike | Remap) -> LabelMap:
    """Remap one label map with a built-in table, a table file or a :class:`Remap`."""
    return get_remap(table).remap(labelmap)
