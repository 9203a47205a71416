"""The ``paste`` edit: instances from an :class:`~sisgen.instance_bank.InstanceBank`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import SisgenInputError
from ..instance_bank import BankItem, InstanceBank, load_bank_cached
from ..labelmap import LabelMap, resize_nearest
from ..vocab import Vocabulary
from .base import Edit, lookup, register_edit
from .checks import (
    check_bool,
    check_choice,
    check_classes,
    check_int,
    check_number,
    check_number_range,
    resolve_classes,
)
from .geometric import place


def load_bank_file(path: str | os.PathLike) -> InstanceBank:
    """Load a bank (cached); errors name the bank file inside the problem text."""
    try:
        return load_bank_cached(path)
    except SisgenInputError as e:
        raise SisgenInputError(f"{os.fspath(path)}: {e.problem}") from e


class IdAllocator:
    """Fresh instance ids: ``class * 1000 + k`` when the map uses that style, else max + 1.

    A map uses the class style when all its nonzero ids are ``>= 1000`` with
    ``id // 1000`` equal to the class under them; a map without instances uses it only
    when ``meta["source"]`` is ``cityscapes``.
    """

    def __init__(self, labelmap: LabelMap):
        inst, sem = labelmap.instance, labelmap.semantic
        nz = inst != 0
        if nz.any():
            ids = inst[nz].astype(np.int64)
            self.class_style = bool(((ids >= 1000) & (ids // 1000 == sem[nz])).all())
        else:
            self.class_style = labelmap.meta.get("source") == "cityscapes"
        self.used = {int(i) for i in np.unique(inst)}

    def new(self, class_id: int) -> int:
        """Return an unused id for an instance of ``class_id``."""
        if self.class_style and class_id >= 1:
            ks = [i - class_id * 1000 for i in self.used if i // 1000 == class_id]
            k = max(ks) + 1 if ks else 0
            if k < 1000:
                self.used.add(class_id * 1000 + k)
                return class_id * 1000 + k
        new = max(self.used | {0}) + 1
        self.used.add(new)
        return new


@register_edit("paste")
class Paste(Edit):
    """Paste instances from an :class:`~sisgen.instance_bank.InstanceBank`.

    For each instance to paste, a class is drawn uniformly among the requested classes
    present in the bank, then an item of that class uniformly. Up to ``tries`` times, a
    landing pixel is drawn uniformly among the pixels of the ``on`` classes (anywhere
    without ``on``); the item's mask is scaled (nearest neighbour) and placed with the
    centre of its bottom row on that pixel (parts outside the map are clipped). A try
    fails when perspective puts the pixel at or above the horizon or nothing of the
    instance would be visible; after ``tries`` failures the instance is skipped.

    Scale: a factor drawn from ``scale`` (default 1) multiplies the crop's size. With
    ``perspective``, it further multiplies ``(H / H_src) * (y_b - horizon) /
    max(y_b_src - horizon, 0.05)``, ``y_b`` being the bottom row's position as a fraction
    of the height (here and in the source map): on a flat ground plane seen by a level
    camera, an object's image height is proportional to its foot's distance below the
    horizon, so lower in the image means larger.

    Occlusion: ``front`` overwrites every pixel under the mask; ``behind`` only stuff
    pixels (not things, not ignore), so existing things stay in front. Pasted pixels get a
    fresh instance id (``class * 1000 + k`` when the map uses that style, else max + 1);
    a map without an instance map gets semantic pixels only.

    The bank: the step's ``bank`` file (loaded on first use, once per process and file
    version; relative paths are looked up next to the recipe file, then in the working
    directory; :meth:`Recipe.load_banks` reads it ahead of a run), else ``context["bank"]``
    given to :meth:`Recipe.__call__` (an :class:`InstanceBank` or a path). A bank that
    records a vocabulary must match the map's.

    Args:
        classes: Bank classes to paste (names or ids); ``None``: all in the bank.
        count: Number of instances (default 1).
        range: ``[lo, hi]``: the number is drawn uniformly (inclusive). Give ``count`` or
            ``range``.
        scale: ``[lo, hi]`` factor range, relative to the crop (or on top of perspective).
        perspective: Scale by the vertical landing position (see above).
        horizon: Horizon row as a fraction of the height, for ``perspective`` (recorded
            whenever ``perspective`` is on).
        on: Classes the bottom-centre pixel must land on (e.g. ``[road, sidewalk]``).
        occlusion: ``front`` or ``behind``.
        bank: Path of a bank ``.npz`` written by :meth:`InstanceBank.save`.
        tries: Placement attempts per instance.
        p: Probability of applying.

    """

    uses_context = True
    class_params = ("classes", "on")

    def __init__(
        self,
        classes: Sequence[int | str] | int | str | None = None,
        count: int | None = None,
        range: Sequence[int] | None = None,
        scale: Sequence[float] | None = None,
        perspective: bool = False,
        horizon: float = 0.4,
        on: Sequence[int | str] | int | str | None = None,
        occlusion: str = "front",
        bank: str | os.PathLike | None = None,
        tries: int = 10,
        p: float = 1.0,
    ):
        super().__init__(p)
        self.classes = check_classes(classes, "classes")
        self.on = check_classes(on, "on")
        if count is not None and range is not None:
            raise SisgenInputError("give either count or range, not both")
        self.count = None if count is None else check_int(count, "count")
        self.range = None if range is None else check_number_range(range, "range",
                                                                   integer=True)
        self.scale = None if scale is None else check_number_range(scale, "scale",
                                                                   positive=True)
        self.perspective = check_bool(perspective, "perspective")
        self.horizon = check_number(horizon, "horizon", lambda h: 0.0 <= h < 1.0,
                                    "a fraction in [0, 1)")
        self.occlusion = check_choice(occlusion, "occlusion", ("front", "behind"))
        if bank is not None and not isinstance(bank, (str, os.PathLike)):
            raise SisgenInputError(f"bank must be a path to an .npz file, got {bank!r}")
        self.bank = None if bank is None else os.fspath(bank)
        self.tries = check_int(tries, "tries", minimum=1)
        self._base_dir: str | None = None

    def bind_base_dir(self, base_dir: str | None) -> None:
        """Remember the recipe file's folder for a relative ``bank`` path."""
        self._base_dir = base_dir

    def _records(self, name: str, value: Any, default: Any) -> bool:
        """Record ``horizon`` whenever ``perspective`` is on, else the default rule."""
        if name == "horizon" and self.perspective:
            return True
        return super()._records(name, value, default)

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return the parameters with class ids, and ``occlusion`` always."""
        d = super().resolved_params(vocab)
        d["occlusion"] = self.occlusion
        return d

    def bank_path(self) -> str | None:
        """Return the ``bank`` file to read (resolved as described above), if any."""
        if self.bank is None:
            return None
        if not os.path.isabs(self.bank) and self._base_dir is not None:
            beside = os.path.join(self._base_dir, self.bank)
            if os.path.exists(beside):
                return beside
        return self.bank

    def get_bank(self, context: Mapping[str, Any], vocab: Vocabulary | None = None
                 ) -> InstanceBank:
        """Return the bank of this step (its file, else ``context["bank"]``).

        Args:
            context: The recipe's run-wide objects.
            vocab: The maps' vocabulary: a bank that records another one is refused.

        Raises:
            SisgenInputError: No bank anywhere, an unreadable file (named), or a bank of
                another vocabulary.

        """
        path = self.bank_path()
        bank = context.get("bank") if path is None else path
        if isinstance(bank, (str, os.PathLike)):
            bank = load_bank_file(bank)
        if not isinstance(bank, InstanceBank):
            raise SisgenInputError(
                "paste needs an instance bank: give 'bank: path/to/bank.npz' in the step or "
                "pass context={'bank': InstanceBank} to the recipe"
            )
        if vocab is not None and bank.vocabulary is not None and bank.vocabulary != vocab.name:
            raise SisgenInputError(f"the instance bank holds {bank.vocabulary!r} class ids, "
                                   f"the map uses {vocab.name!r}")
        return bank

    def apply(
        self,
        labelmap: LabelMap,
        rng: np.random.Generator,
        vocab: Vocabulary,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Paste; records ``requested``, ``pasted`` (one entry per instance) and ``skipped``."""
        bank = self.get_bank(context or {}, vocab)
        wanted = None if self.classes is None else set(resolve_classes(vocab, self.classes))
        pool: dict[int, list[int]] = {}
        for i, item in enumerate(bank):
            if wanted is None or item.class_id in wanted:
                pool.setdefault(item.class_id, []).append(i)
        present = sorted(pool)
        on_ids = None if self.on is None else resolve_classes(vocab, self.on)
        if self.range is not None:
            n = int(rng.integers(self.range[0], self.range[1] + 1))
        else:
            n = 1 if self.count is None else self.count

        out = labelmap.copy()
        ids = None if out.instance is None else IdAllocator(out)
        pasted: list[dict[str, Any]] = []
        skipped = 0
        for _ in range(n):
            placed = None
            if present:
                c = present[int(rng.integers(len(present)))]
                index = pool[c][int(rng.integers(len(pool[c])))]
                placed = self._place(bank[index], out, rng, on_ids, vocab.stuff_table())
            if placed is None:
                skipped += 1
                continue
            full, y, x, f, size = placed
            item = bank[index]
            out.semantic[full] = item.class_id
            entry: dict[str, Any] = {
                "bank_index": index, "class": item.class_id, "source": item.source_id,
                "position": [y, x], "scale": f, "size": list(size),
                "pixels": int(full.sum()),
            }
            if ids is not None:
                new_id = ids.new(item.class_id)
                out.instance[full] = new_id
                entry["instance"] = new_id
            pasted.append(entry)
        return out, {"requested": n, "pasted": pasted, "skipped": skipped}

    def _place(
        self, item: BankItem, out: LabelMap, rng: np.random.Generator,
        on_ids: list[int] | None, stuff: np.ndarray,
    ) -> tuple[np.ndarray, int, int, float, tuple[int, int]] | None:
        """Find a place for ``item``: ``(mask, y, x, factor, size)`` or ``None``."""
        H, W = out.shape
        allowed = np.ones(H * W, dtype=bool) if on_ids is None else np.isin(
            out.semantic, on_ids).ravel()
        candidates = np.flatnonzero(allowed)
        if not len(candidates):
            return None
        h, w = item.size
        for _ in range(self.tries):
            y, x = divmod(int(candidates[int(rng.integers(len(candidates)))]), W)
            f = 1.0 if self.scale is None else float(rng.uniform(*self.scale))
            if self.perspective:
                below = (y + 1) / H - self.horizon
                if below <= 0:
                    continue
                src_h = item.source_shape[0]
                src_below = max(item.bbox[2] / src_h - self.horizon, 0.05)
                f *= (H / src_h) * below / src_below
            size = (max(1, int(round(h * f))), max(1, int(round(w * f))))
            if size[0] > 4 * H or size[1] > 4 * W:
                continue
            m = resize_nearest(item.mask, size)
            full = place(m, False, (H, W), y - (size[0] - 1), x - size[1] // 2)
            if self.occlusion == "behind":
                full &= lookup(stuff, out.semantic)
            if full.any():
                return full, y, x, f, size
        return None
