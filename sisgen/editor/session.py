"""The editing session behind the scene editor: one map, its edit steps, style, rendering, saving.

A session is a source map plus a list of edit steps -- a :class:`~sisgen.edits.Recipe` -- and
a run seed. Everything else follows from those, through the library's own pieces:

* the label map shown is the map after the steps (kept per step for undo, replayed from the
  nearest kept state when older ones were dropped);
* the image is rendered through :class:`sisgen.samples.SamplePath`, the one sample path of
  ``sisgen generate`` (edits with the run's instance bank, photo editing for models that
  take a photo and a hole, resizing to the model, the engine inputs), then the engine, as
  ``generate`` runs it (:func:`sisgen.samples.run_engine`);
* a save goes through the writers (:func:`sisgen.writers.get_writer`) and appends a manifest
  line (:func:`sisgen.manifest.sample_entry`), after all of its files, with the recipe.

Seeds: the session's *run seed* plays the role of ``sisgen generate --seed``. Restyling a
region adds a ``resample_noise`` step; with ``k`` such steps the image is sample ``k`` of
the map in a run with ``samples_per_map = k + 1``: marked regions take that sample's noise,
the rest keeps the map's base style (sample 0). So every saved scene is exactly a sample of
``sisgen generate --seed S --samples-per-map k+1 --recipe <its recipe>`` (recorded in its
manifest line), up to the float rounding of another batch size. All marked regions share
the newest style.

Only edits that draw no random numbers (besides the ``p`` coin, always 1 here) enter a
session (:data:`EDITOR_OPS`), so the map after each step does not depend on the seed.
"""

from __future__ import annotations

import re
import secrets
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..edits import Canvas, Edit, PasteItem, Recipe, ResampleNoise, build_edit
from ..engines import Generator
from ..errors import SisgenInputError
from ..instance_bank import InstanceBank
from ..io import write_text
from ..labelmap import NOISE_MASK_KEY, LabelMap
from ..manifest import MANIFEST, ManifestAppender, read_manifest, sample_entry
from ..samples import PreparedSample, SamplePath, run_engine
from ..sources import Source
from ..vocab import Vocabulary, require_same_ids
from ..writers import available_writers, get_writer

#: The edit ops a session accepts: the editor's tools, all free of random choices.
EDITOR_OPS = frozenset({
    "stroke", "fill", "flood_fill", "canvas", "delete_instance", "move_instance",
    "scale_instance", "flip_instance", "relabel_instance", "paste_item", "resample_noise",
})

#: Names a saved sample may take (also the file stem of its recipe).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$")

#: The largest run seed (``sisgen generate --seed`` takes any int; the editor stays in 63 bits).
MAX_SEED = 2**63 - 1


class NotFoundError(SisgenInputError):
    """A named thing (instance, saved sample, map id, bank item) is not there."""


class ConflictError(SisgenInputError):
    """A request clashes with what exists (a sample name already saved)."""


@dataclass
class Rendered:
    """One rendered state of the session.

    Attributes:
        revision: The session revision it shows.
        seed: The run seed it was made with.
        sample: The prepared sample (edited, resized label map; seeds; run index).
        image: ``H×W×3`` uint8 RGB at the model's resolution.
        edit_ms: Milliseconds spent preparing (loading, edits, resizing).
        engine_ms: Milliseconds spent in the engine.

    """

    revision: int
    seed: int
    sample: PreparedSample
    image: np.ndarray
    edit_ms: float
    engine_ms: float


class _OpenMap(Source):
    """A source that serves the session's decoded map (and photo) without reading it again."""

    def __init__(self, source: Source, index: int, labelmap: LabelMap,
                 photo: np.ndarray | None):
        self.source, self.index, self.labelmap, self._photo = source, index, labelmap, photo
        self.kind = source.kind
        self.vocabulary = source.vocabulary

    def __len__(self) -> int:
        return len(self.source)

    def load(self, index: int) -> LabelMap:
        """The open map (a copy) at its index, any other map from the source."""
        return self.labelmap.copy() if index == self.index else self.source.load(index)

    def photo(self, index: int) -> np.ndarray | None:
        """The open map's photo at its index, any other from the source."""
        return self._photo if index == self.index else self.source.photo(index)


def _apply(edit: Edit, labelmap: LabelMap, vocab: Vocabulary, context: dict[str, Any]
           ) -> LabelMap:
    """One step on a map (editor steps draw nothing but the coin: any generator will do)."""
    return edit.run(labelmap, np.random.default_rng(0), vocab, context)[0]


class EditorSession:
    """The state of one editor: the open map, its steps, the seed, the saved samples.

    Thread-safe: every public method takes the session lock; rendering runs the engine
    outside it (one render at a time) so edits are not held up by a slow engine.

    Args:
        generator: The loaded generator (``sisgen.load``).
        source: The label maps to browse (vocabulary ids must match the generator's).
        out_dir: Output folder: one folder per writer, ``manifest.jsonl``, ``recipes/``.
        writers: Writer kinds of every save.
        writer_options: Per-kind writer options.
        seed: The initial run seed.
        bank_maps: Maps of the source the instance bank is built from (as ``generate``
            builds it for ``paste`` steps; 500 there).
        history: Map states kept for undo (older ones are replayed when needed).
        reproduce: ``{"model": path, "source": kind, "root", "split", ...}`` for the
            ``sisgen generate`` command recorded with each save (optional).

    """

    def __init__(self, generator: Generator, source: Source, out_dir: str | Path, *,
                 writers: tuple[str, ...] | list[str] = ("cityscapes", "coco"),
                 writer_options: dict[str, dict[str, Any]] | None = None, seed: int = 0,
                 bank_maps: int = 500, history: int = 64,
                 reproduce: dict[str, Any] | None = None):
        require_same_ids(source.vocabulary, generator.vocabulary)
        if len(source) == 0:
            raise SisgenInputError(f"the {source.kind} source has no label maps")
        unknown = [w for w in writers if w not in available_writers()]
        if unknown or not writers:
            raise SisgenInputError(f"unknown writer kind(s) {', '.join(unknown) or '(none)'}; "
                                   f"known: {', '.join(available_writers())}")
        self.generator, self.source, self.vocab = generator, source, source.vocabulary
        self.out_dir = Path(out_dir).resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writers = tuple(writers)
        self.writer_options = dict(writer_options or {})
        for kind in self.writers:  # bad options fail now, not at the first save
            get_writer(kind, self.out_dir / kind, source.vocabulary,
                       **self.writer_options.get(kind, {})).close()
        self.bank_maps, self.history = int(bank_maps), max(1, int(history))
        self.reproduce = dict(reproduce or {})
        self.seed = self._check_seed(seed)
        self._lock = threading.RLock()
        self._render_lock = threading.Lock()
        self._bank: InstanceBank | None = None
        self._bank_file: str | None = None
        self._keys: list[str] | None = None
        self._rendered: Rendered | None = None
        self.revision = 0
        self.open(0)

    # ------------------------------------------------------------------ capabilities
    @property
    def can_restyle(self) -> bool:
        """Whether the model re-draws style locally (spatial noise or per-object features)."""
        return bool(self.generator.spatial_noise or self.generator.takes_features)

    @property
    def photo_editing(self) -> bool:
        """Whether the model edits photos (only the hole is synthesized)."""
        return bool(self.generator.takes_photo)

    # ------------------------------------------------------------------ maps
    def keys(self) -> list[str]:
        """The source's sample ids, in order (read once)."""
        with self._lock:
            if self._keys is None:
                self._keys = list(self.source.keys())
            return self._keys

    def find(self, map_id: str) -> int:
        """The index of the map with id ``map_id``.

        Raises:
            NotFoundError: No such id.

        """
        try:
            return self.keys().index(map_id)
        except ValueError:
            raise NotFoundError(f"the {self.source.kind} source has no map {map_id!r}") from None

    def open(self, index: int, steps: list[Edit] | None = None) -> None:
        """Open map ``index`` of the source with no steps (or the given ones).

        Raises:
            NotFoundError: The index is outside the source.
            SisgenInputError: The map cannot be read, or a step does not apply to it;
                the session stays as it was.

        """
        with self._lock:
            n = len(self.source)
            if not 0 <= index < n:
                raise NotFoundError(f"map index {index} is outside the source (0..{n - 1})")
            base = self.source.load(index)
            self.vocab.validate(base.semantic, base.meta.get("file"))
            photo = self.source.photo(index) if self.photo_editing else None
            states: list[LabelMap | None] = [base]
            context = self._context(steps or [])
            for step in steps or []:
                states.append(_apply(step, states[-1], self.vocab, context))
            self.index, self.base, self.photo = index, base, photo
            self._edits, self._redo = list(steps or []), []
            self._states = states
            self._trim()
            self._changed()

    def blank(self, class_: int | str) -> None:
        """Start over on the open map from a blank canvas of the model's size (a step).

        Raises:
            SisgenInputError: An unknown class or the ignore id; nothing changes.

        """
        edit = Canvas(class_, size=list(self.generator.resolution))
        with self._lock:
            edit.resolved_params(self.vocab)
            self.open(self.index, [edit])

    # ------------------------------------------------------------------ steps
    def current(self) -> LabelMap:
        """The map after every step (at the source's resolution)."""
        with self._lock:
            return self._state(len(self._edits))

    def _state(self, k: int) -> LabelMap:
        """The map after the first ``k`` steps, replayed from the nearest kept state."""
        j = k
        while self._states[j] is None:
            j -= 1
        state = self._states[j]
        context = self._context(self._edits[j:k])
        for i in range(j, k):
            state = _apply(self._edits[i], state, self.vocab, context)
            self._states[i + 1] = state
        return state

    def _trim(self) -> None:
        """Keep the base map and the last :attr:`history` states."""
        for i in range(1, max(1, len(self._states) - self.history)):
            self._states[i] = None

    def apply(self, spec: dict[str, Any] | Edit) -> dict[str, Any]:
        """Append one step after checking it on the current map.

        Args:
            spec: The step as data (``{"op": ..., ...}``) or an :class:`Edit`.

        Returns:
            What the step did (its record: resolved parameters and counts).

        Raises:
            SisgenInputError: An op the editor does not take, bad parameters, an unknown
                class, coordinates outside the map; nothing changes.

        """
        edit = build_edit(spec)
        if edit.op not in EDITOR_OPS or edit.p != 1.0:
            raise SisgenInputError(f"the editor takes the ops {', '.join(sorted(EDITOR_OPS))} "
                                   f"with p = 1, got {edit.op!r} (p = {edit.p})")
        with self._lock:
            if isinstance(edit, PasteItem) and edit.bank is None:
                edit = self._with_bank_file(edit)
            current = self.current()
            context = self._context([edit])
            new, record = edit.run(current, np.random.default_rng(0), self.vocab, context)
            self._edits.append(edit)
            self._states = self._states[:len(self._edits)] + [new]
            self._redo = []
            self._trim()
            self._changed()
            return record

    def instance_at(self, y: int, x: int) -> dict[str, Any]:
        """What is at pixel ``(y, x)`` of the current map: class and instance (0: none).

        Raises:
            SisgenInputError: The pixel is outside the map.

        """
        with self._lock:
            lm = self.current()
            h, w = lm.shape
            if not (0 <= y < h and 0 <= x < w):
                raise SisgenInputError(f"pixel [{y}, {x}] lies outside the {h}x{w} map")
            class_id = int(lm.semantic[y, x])
            inst = 0 if lm.instance is None else int(lm.instance[y, x])
            out: dict[str, Any] = {"class": class_id, "instance": inst or None,
                                   "name": self._class_name(class_id)}
            if inst:
                ys, xs = np.nonzero(lm.instance == inst)
                out["box"] = [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1]
                out["pixels"] = int(len(ys))
            return out

    def require_instance(self, instance: int) -> None:
        """Raise :class:`NotFoundError` unless ``instance`` is in the current map."""
        with self._lock:
            lm = self.current()
            if lm.instance is None or not (lm.instance == instance).any():
                raise NotFoundError(f"no instance {instance} in the map")

    def undo(self) -> bool:
        """Take back the last step; ``False`` when there is none."""
        with self._lock:
            if not self._edits:
                return False
            self._redo.append(self._edits.pop())
            self._states = self._states[:len(self._edits) + 1]
            self._changed()
            return True

    def redo(self) -> bool:
        """Apply the last undone step again; ``False`` when there is none."""
        with self._lock:
            if not self._redo:
                return False
            edit = self._redo.pop()
            redo, self._redo = self._redo, []
            self.apply(edit)
            self._redo = redo
            return True

    def recipe(self) -> Recipe:
        """The session's steps as a recipe (new step objects: changing it changes nothing)."""
        with self._lock:
            return self._recipe(self._edits)

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The steps as data (the recipe's ``to_list()``)."""
        with self._lock:
            return [e.to_dict() for e in self._edits]

    @property
    def can_undo(self) -> bool:
        """Whether there is a step to take back."""
        return bool(self._edits)

    @property
    def can_redo(self) -> bool:
        """Whether there is an undone step to apply again."""
        return bool(self._redo)

    @property
    def variant(self) -> int:
        """The sample of the map whose style the marked regions take (restyle count)."""
        return sum(isinstance(e, ResampleNoise) for e in self._edits)

    # ------------------------------------------------------------------ style
    def set_seed(self, seed: int | None = None) -> int:
        """Set the run seed (``None``: draw a new one); returns it."""
        with self._lock:
            self.seed = secrets.randbelow(2**31) if seed is None else self._check_seed(seed)
            self._changed()
            return self.seed

    def restyle(self, instance: int | None = None,
                box: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
        """Give an instance or a pixel box a new style (a ``resample_noise`` step).

        Raises:
            SisgenInputError: The model has no local style, neither or both targets are
                given, the instance is absent or the box is outside the map.

        """
        if not self.can_restyle:
            raise SisgenInputError(
                f"the {self.generator.model_name or 'loaded'} model takes a noise vector "
                f"{self.generator.noise_spec.get('shape')}; restyling a region needs spatial "
                "noise (OASIS-style) or per-object style features (pix2pixHD)")
        if (instance is None) == (box is None):
            raise SisgenInputError("restyle needs an instance or a box, not both")
        with self._lock:
            if instance is not None:
                self.require_instance(instance)
                return self.apply({"op": "resample_noise", "instance": int(instance)})
            h, w = self.current().shape
            y0, x0, y1, x1 = box
            if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
                raise SisgenInputError(f"box {list(box)} is not inside the {h}x{w} map")
            # fractions whose floor / ceil give exactly these rows and columns
            region = [(y0 + 0.25) / h, (x0 + 0.25) / w, (y1 - 0.25) / h, (x1 - 0.25) / w]
            return self.apply({"op": "resample_noise", "region": region})

    # ------------------------------------------------------------------ rendering
    def render(self) -> Rendered:
        """The image of the current state (cached per revision and seed).

        Raises:
            SisgenInputError: The map cannot be prepared (for photo editing: a source
                without photos).

        """
        with self._render_lock:
            with self._lock:
                hit = self._rendered
                if hit is not None and hit.revision == self.revision and hit.seed == self.seed:
                    return hit
                revision, seed, index = self.revision, self.seed, self.index
                steps, k = list(self._edits), self.variant
                source = _OpenMap(self.source, index, self.base, self.photo)
                recipe = self._recipe(steps)
                bank = self._context(steps).get("bank")
            t0 = time.perf_counter()
            path = SamplePath(source, recipe, self.generator.resolution, seed=seed,
                              samples_per_map=k + 1, bank=bank, with_photo=self.photo_editing,
                              input_spec=self.generator.input_spec)
            batch = path.prepare([index * (k + 1) + k])  # sample k of the map: see above
            if not batch.samples:
                raise SisgenInputError(batch.errors[0]["error"])
            sample = batch.samples[0]
            t1 = time.perf_counter()
            image = run_engine(self.generator, batch)[0]
            t2 = time.perf_counter()
            rendered = Rendered(revision, seed, sample, image, 1e3 * (t1 - t0), 1e3 * (t2 - t1))
            with self._lock:
                if revision == self.revision and seed == self.seed:
                    self._rendered = rendered
            return rendered

    # ------------------------------------------------------------------ saving
    def saved(self) -> list[dict[str, Any]]:
        """The manifest lines of the output folder, oldest first."""
        return [e for e in read_manifest(self.out_dir / MANIFEST) if e.get("status") == "ok"]

    def save(self, name: str | None = None) -> dict[str, Any]:
        """Write the current scene through the writers and append its manifest line.

        Args:
            name: The sample name (default: ``<map id>_edit<n>``, the first free ``n``).

        Returns:
            The manifest line.

        Raises:
            SisgenInputError: A bad name; :class:`ConflictError`: a name already saved.

        """
        if name is not None and (not NAME_PATTERN.match(name) or ".." in name):
            raise SisgenInputError(f"sample name {name!r}: use 1-120 letters, digits, '_', "
                                   "'-' or '.', starting with a letter or digit")
        for _ in range(5):  # render outside the lock; retry if the scene changed meanwhile
            rendered = self.render()
            with self._lock:
                if rendered.revision == self.revision and rendered.seed == self.seed:
                    return self._write(rendered, name)
        raise ConflictError("the scene kept changing while it was being saved; save again")

    def _write(self, rendered: Rendered, name: str | None) -> dict[str, Any]:
        """Write a rendered state (the session lock is held)."""
        taken = {e.get("sample") for e in self.saved()}
        sample = rendered.sample
        if name is None:
            n = 1
            while f"{sample.name}_edit{n}" in taken:
                n += 1
            name = f"{sample.name}_edit{n}"
        elif name in taken:
            raise ConflictError(f"a sample named {name!r} is already saved")
        recipe = self._recipe(self._edits)
        outputs: dict[str, dict[str, str]] = {}
        for kind in self.writers:
            with get_writer(kind, self.out_dir / kind, self.vocab,
                            **self.writer_options.get(kind, {})) as writer:
                outputs[kind] = writer.write(name, rendered.image, sample.labelmap)
        recipe_file = f"recipes/{name}.yaml"
        write_text(self.out_dir / recipe_file, recipe.to_yaml())
        spm = self.variant + 1
        entry = sample_entry(
            name=name, index=sample.index, labelmap=sample.labelmap,
            source_kind=self.source.kind, source_index=self.index, seed=sample.seed,
            recipe=recipe.to_list(), model_name=self.generator.model_name,
            model_hash=self.generator.model_hash, backend=self.generator.backend,
            outputs=outputs, base_seed=sample.base_seed,
            editor={"run_seed": rendered.seed, "samples_per_map": spm,
                    "run_sample": sample.name, "recipe_file": recipe_file,
                    "command": self._command(recipe_file, rendered.seed, spm)})
        with ManifestAppender(self.out_dir / MANIFEST) as manifest:
            manifest.append(entry)
        return entry

    def open_saved(self, name: str) -> None:
        """Reopen a saved scene: its map, steps and run seed.

        Raises:
            NotFoundError: No saved sample ``name``; SisgenInputError: its recipe has steps
                the editor does not take.

        """
        entry = next((e for e in self.saved() if e.get("sample") == name), None)
        if entry is None:
            raise NotFoundError(f"no saved sample {name!r}")
        recipe_file = (entry.get("editor") or {}).get("recipe_file") or f"recipes/{name}.yaml"
        steps = list(Recipe.from_list(entry.get("recipe"), source=self.out_dir / recipe_file))
        bad = sorted({e.op for e in steps if e.op not in EDITOR_OPS or e.p != 1.0})
        if bad:
            raise SisgenInputError(f"sample {name!r} has steps the editor cannot replay "
                                   f"exactly: {', '.join(bad)}")
        seed = (entry.get("editor") or {}).get("run_seed", self.seed)
        with self._lock:
            self.open(int(entry["source_index"]), steps)
            self.seed = self._check_seed(seed)
            self._changed()

    # ------------------------------------------------------------------ bank
    def bank(self) -> InstanceBank:
        """The run's instance bank: the source's first :attr:`bank_maps` maps (built once)."""
        with self._lock:
            if self._bank is None:
                self._bank = InstanceBank.from_source(self.source, limit=self.bank_maps)
            return self._bank

    def _with_bank_file(self, edit: PasteItem) -> PasteItem:
        """``edit`` reading the session's bank from its file in the output folder.

        The bank goes to ``banks/bank-<digest>.npz`` (once; :meth:`InstanceBank.digest`
        names its content) and the step names it relative to ``recipes/``, where saved
        recipes go, so ``sisgen generate --recipe`` pastes the very same items whatever
        source length or ``bank_maps`` it runs with.
        """
        if self._bank_file is None:
            self._bank_file = f"bank-{self.bank().digest()}.npz"
        name = self._bank_file
        path = self.out_dir / "banks" / name
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            self.bank().save(path)
        (self.out_dir / "recipes").mkdir(exist_ok=True)  # "recipes/../banks" must resolve
        step = build_edit({**edit.to_dict(), "bank": f"../banks/{name}"})
        step.bind_base_dir(str(self.out_dir / "recipes"))
        return step

    # ------------------------------------------------------------------ helpers
    def _context(self, steps: list[Edit]) -> dict[str, Any]:
        """The run context of the steps: the bank when a step pastes from it."""
        return {"bank": self.bank()} if self._recipe(steps).needs_bank() else {}

    def _recipe(self, steps: list[Edit]) -> Recipe:
        """New step objects for ``steps``, relative ``bank`` paths resolved from ``recipes/``.

        (A :class:`Recipe` binds its steps to the folder of its source file, or to none;
        the session's steps live in ``recipes/`` once saved, so the copies are bound there,
        and the session's own step objects are never re-bound.)
        """
        recipe = Recipe([build_edit(e.to_dict()) for e in steps])
        for edit in recipe:
            edit.bind_base_dir(str(self.out_dir / "recipes"))
        return recipe

    def _changed(self) -> None:
        """Note a change of the map, the steps or the seed (a new revision to render)."""
        self.revision += 1

    def _class_name(self, class_id: int) -> str:
        return "ignore" if class_id == self.vocab.ignore_id else self.vocab[class_id].name

    @staticmethod
    def _check_seed(seed: Any) -> int:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or \
                not 0 <= int(seed) <= MAX_SEED:
            raise SisgenInputError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
        return int(seed)

    def _command(self, recipe_file: str, seed: int, spm: int) -> str:
        """The ``sisgen generate`` command whose run holds this sample."""
        r = self.reproduce
        args = ["sisgen", "generate", "--model", str(r.get("model", "MODEL")),
                "--source", self.source.kind]
        for key in ("root", "split", "vocabulary", "remap"):
            if r.get(key):
                args += [f"--{key}", str(r[key])]
        for option in r.get("source_options") or []:
            args += ["--source-option", str(option)]
        args += ["--recipe", str(self.out_dir / recipe_file), "--seed", str(seed),
                 "--samples-per-map", str(spm), "--limit", str(self.index + 1),
                 "--out", "OUT"]
        return shlex.join(args)

    def noise_mask(self) -> np.ndarray | None:
        """The current map's restyled pixels (``None`` when nothing is marked)."""
        with self._lock:
            mask = self.current().meta.get(NOISE_MASK_KEY)
            return None if mask is None else np.asarray(mask, dtype=bool)
