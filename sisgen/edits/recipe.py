"""Recipes: ordered lists of edits, loaded from data or YAML, applied with one seed."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SisgenInputError
from ..labelmap import LabelMap
from ..vocab import Vocabulary
from .base import Edit, build_edit, step_label
from .paste import Paste


class Recipe:
    """An ordered list of edits, applied with one seeded generator.

    Args:
        edits: The steps (:class:`Edit` objects or their dict form).
        source: The file the recipe came from, named in error messages.

    """

    def __init__(
        self,
        edits: Iterable[Edit | Mapping[str, Any]] = (),
        source: str | os.PathLike | None = None,
    ):
        self.source = None if source is None else os.fspath(source)
        self.edits: list[Edit] = []
        for i, step in enumerate(edits):
            try:
                self.edits.append(build_edit(step))
            except SisgenInputError as e:
                raise self._error(i, step, e.problem) from e
        if self.source is not None:  # relative bank paths resolve next to the recipe file;
            base_dir = os.path.dirname(os.path.abspath(self.source))  # steps built elsewhere
            for edit in self.edits:                                    # keep their binding
                edit.bind_base_dir(base_dir)

    def _error(self, index: int, step: Any, problem: str) -> SisgenInputError:
        return SisgenInputError(f"{step_label(index, step, 'edit step')}: {problem}",
                                self.source)

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_list(
        cls, steps: Sequence[Mapping[str, Any]] | None, source: str | os.PathLike | None = None
    ) -> Recipe:
        """Build a recipe from a list of ``{"op": ..., ...}`` dicts (``None``: empty)."""
        if steps is None:
            return cls([], source)
        if isinstance(steps, (str, bytes, Mapping)) or not isinstance(steps, Iterable):
            raise SisgenInputError(
                f"an edit recipe must be a list of steps, got {type(steps).__name__}", source
            )
        return cls(list(steps), source)

    @classmethod
    def from_data(cls, data: Any, source: str | os.PathLike | None = None) -> Recipe:
        """Build a recipe from parsed data: a step list, ``{"edits": [...]}`` or ``None``."""
        if isinstance(data, Mapping):
            if "edits" not in data:
                raise SisgenInputError("recipe mapping has no 'edits' list", source)
            data = data["edits"]
        return cls.from_list(data, source)

    @classmethod
    def from_yaml(cls, path_or_text: str | os.PathLike) -> Recipe:
        """Build a recipe from a YAML file or YAML text.

        A :class:`~pathlib.Path`, or a string naming an existing file (or ending in
        ``.yaml``/``.yml``), is read as a file; any other string is parsed as YAML text.

        Raises:
            SisgenInputError: Missing file, YAML syntax error or bad steps (naming the
                file and the step index).

        """
        import yaml

        source: str | None = None
        is_path = isinstance(path_or_text, os.PathLike) or (
            "\n" not in path_or_text
            and (
                os.path.isfile(path_or_text)
                or path_or_text.strip().lower().endswith((".yaml", ".yml"))
            )
        )
        if is_path:
            source = os.fspath(path_or_text)
            if not os.path.isfile(source):
                raise SisgenInputError("edit recipe file not found", source)
            text = Path(source).read_text(encoding="utf-8")
        else:
            text = str(path_or_text)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SisgenInputError(f"cannot parse edit recipe YAML ({e})", source) from e
        return cls.from_data(data, source)

    @classmethod
    def load(cls, x: Any) -> Recipe:
        """Build a recipe from whatever a user may hand over.

        Args:
            x: A :class:`Recipe` (returned as is), a path, YAML text, a list of steps, a
                mapping with ``edits:``, or ``None`` (the empty recipe).

        """
        if x is None:
            return cls([])
        if isinstance(x, Recipe):
            return x
        if isinstance(x, (str, os.PathLike)):
            return cls.from_yaml(x)
        return cls.from_data(x)

    # ----------------------------------------------------------------- using
    def to_list(self) -> list[dict[str, Any]]:
        """Return the recipe as data; ``Recipe.from_list(r.to_list())`` rebuilds it."""
        return [e.to_dict() for e in self.edits]

    def to_yaml(self) -> str:
        """Return the recipe as YAML text (``edits: [...]``)."""
        import yaml

        return yaml.safe_dump({"edits": self.to_list()}, sort_keys=False)

    def validate(self, vocab: Vocabulary) -> None:
        """Resolve every class name against ``vocab``, editing nothing and reading no file.

        Bank files are checked by :meth:`load_banks`.

        Raises:
            SisgenInputError: The first bad step, naming the recipe file and step index.

        """
        for i, edit in enumerate(self.edits):
            try:
                edit.resolved_params(vocab)
            except SisgenInputError as e:
                raise self._error(i, edit, e.problem) from e

    def load_banks(self) -> None:
        """Read every ``bank:`` file the ``paste`` steps name, nested ones included.

        The banks stay cached for the process (see
        :func:`~sisgen.instance_bank.load_bank_cached`), so a run that calls this first
        fails on a missing or unreadable bank file before it starts.

        Raises:
            SisgenInputError: The first step with a bad bank file, naming the recipe file,
                the step index and the bank file.

        """
        for i, edit in enumerate(self.edits):
            try:
                for step in edit.walk():
                    if isinstance(step, Paste) and step.bank is not None:
                        step.get_bank({})
            except SisgenInputError as e:
                raise self._error(i, edit, e.problem) from e

    def walk(self) -> Iterator[Edit]:
        """Yield every step, nested ones (inside ``one_of`` / ``some_of``) included."""
        for edit in self.edits:
            yield from edit.walk()

    def needs_bank(self) -> bool:
        """Whether a ``paste`` step has no ``bank:`` file and so needs ``context["bank"]``."""
        return any(isinstance(e, Paste) and e.bank is None for e in self.walk())

    def __call__(
        self,
        labelmap: LabelMap,
        seed: int,
        vocab: Vocabulary,
        context: Mapping[str, Any] | None = None,
    ) -> LabelMap:
        """Apply the steps in order with ``np.random.default_rng(seed)``.

        Args:
            labelmap: The input map (not modified; the result shares its arrays where no
                step changed them, see :mod:`sisgen.edits.base`).
            seed: The sample's seed.
            vocab: The vocabulary of the map's ids.
            context: Run-wide objects the steps may use: ``{"bank": InstanceBank}`` is the
                bank of every ``paste`` step that names no ``bank:`` file.

        Returns:
            A new map whose ``meta["edits"]`` lists, after any records already there, one
            record per step: ``{"op", "params" (resolved ids and p), "fired", ...}``.

        Raises:
            SisgenInputError: A step cannot run with this vocabulary (unknown class name),
                naming the recipe file and step index.

        """
        rng = np.random.default_rng(seed)
        out = labelmap.shallow_copy()
        records: list[dict[str, Any]] = list(out.meta.get("edits", []))
        for i, edit in enumerate(self.edits):
            try:
                out, record = edit.run(out, rng, vocab, context)
            except SisgenInputError as e:
                raise self._error(i, edit, e.problem) from e
            records.append(record)
        out.meta["edits"] = records
        return out

    def __len__(self) -> int:
        return len(self.edits)

    def __iter__(self) -> Iterator[Edit]:
        return iter(self.edits)

    def __repr__(self) -> str:
        return f"Recipe({self.edits!r})"
