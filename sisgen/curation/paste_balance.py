"""Class balancing by pasting: a recipe of ``paste`` steps for the classes a dataset lacks.

A balance plan (:mod:`.balance`) moves samples towards the maps that show rare classes; on
a dataset where nearly every map shows some rare class (ToyCity) that barely changes the
class shares. Pasting instances of rare classes from an instance bank adds their pixels to
every map instead.

**Which classes.** With ``f_c`` the pixel share of class ``c`` over the maps (each map
once) and ``t_c`` its target share (:func:`.balance.target_shares`: ``"sqrt"``,
``"uniform"`` or ``{name: share}``), every class with ``t_c > f_c`` that the bank holds
gets one ``paste`` step of its own (classes below target that the bank lacks are listed in
the report).

**How many.** A trial pastes one instance of ``c`` into each of the first ``trial_maps``
maps and measures ``a_c``, the pixels of ``c`` one paste adds on average (a failed
placement adds 0). The step pastes ``lam_c = min(K, (t_c - f_c) * P / (M * a_c))``
instances per map on average (``P`` labelled pixels over the ``M`` maps, ``K`` =
``max_per_map``): ``count = ceil(lam_c)`` with ``p = lam_c / count``.

**Report.** The class pixel shares of the maps, the target, and the shares *measured* after
running the recipe over the maps (each once, seed = the map's index): pasting overwrites
other classes and steps can fail to place, so the measured shares, not the estimate, are
what a generated set holds (up to its samples' own seeds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..edits import Recipe
from ..edits.paste import Paste
from ..errors import SisgenInputError
from ..instance_bank import InstanceBank
from ..labelmap import LabelMap
from ..sources import Source
from ..vocab import Vocabulary
from .balance import class_pixels, target_shares


def paste_balance_recipe(
    source: Source,
    bank: InstanceBank,
    *,
    target: str | Mapping[str, float] = "sqrt",
    max_per_map: int = 3,
    on: Sequence[str | int] | None = None,
    perspective: bool = False,
    bank_file: str | None = None,
    limit: int | None = None,
    trial_maps: int = 50,
    progress: bool = False,
) -> tuple[Recipe, dict[str, Any]]:
    """A recipe of ``paste`` steps that raises the pixel share of rare classes.

    Args:
        source: The label maps the recipe will edit.
        bank: The instances to paste (of the source's vocabulary).
        target: ``"sqrt"``, ``"uniform"`` or ``{class name: share}``.
        max_per_map: Most instances of one class pasted into a map (``K``).
        on: Classes a pasted instance must stand on (e.g. ``["road", "sidewalk"]``).
        perspective: Scale pasted instances by their landing row (see ``paste``).
        bank_file: The bank's path, written into each step (else the run's bank is used).
        limit: Use only the first ``limit`` maps.
        trial_maps: Maps of the per-class trial paste.
        progress: Show progress bars.

    Returns:
        ``(recipe, report)``; the report gives the classes, the trial's pixels per paste,
        the instances per map and the pixel shares before, aimed at and measured after.

    Raises:
        SisgenInputError: Bad settings, a bank of another vocabulary, or no readable map.
    """
    vocab = source.vocabulary
    if max_per_map < 1 or trial_maps < 1:
        raise SisgenInputError(f"need max_per_map >= 1 and trial_maps >= 1, got "
                               f"{max_per_map} and {trial_maps}")
    if bank.vocabulary is not None and bank.vocabulary != vocab.name:
        raise SisgenInputError(f"the instance bank holds {bank.vocabulary!r} class ids, the "
                               f"{source.kind} source uses {vocab.name!r}", bank_file)
    maps = len(source) if limit is None else min(int(limit), len(source))
    pixels, skipped = class_pixels(source, maps, progress)
    unreadable = {int(s["index"]) for s in skipped}
    readable = [m for m in range(maps) if m not in unreadable]
    if not readable:
        raise SisgenInputError(f"no map of the {source.kind} source could be read",
                               skipped[0]["file"] if skipped else None)
    names, ids = vocab.names, list(vocab.ids)
    totals = pixels.sum(axis=0).astype(np.float64)
    whole = float(totals.sum())
    shares = totals / whole
    goal = target_shares(shares, target, names)
    held = set(bank.classes())
    rare = [k for k in range(len(ids)) if goal[k] > shares[k]]
    trial_set = [(m, source.load(m)) for m in readable[:trial_maps]] if rare else []
    steps: list[dict[str, Any]] = []
    classes: dict[str, Any] = {}
    for k in rare:
        if ids[k] not in held:
            classes[names[k]] = {"share": _r(shares[k]), "target": _r(goal[k]),
                                 "skipped": "not in the bank"}
            continue
        trial = {"op": "paste", "classes": [names[k]], "count": 1,
                 **({"on": list(on)} if on else {}), **({"perspective": True}
                                                         if perspective else {})}
        added = _trial_pixels(Paste(**{n: v for n, v in trial.items() if n != "op"}),
                              trial_set, vocab, bank, ids[k])
        entry: dict[str, Any] = {"share": _r(shares[k]), "target": _r(goal[k]),
                                 "pixels_per_paste": round(added, 1)}
        if added <= 0:
            entry["skipped"] = "no placement succeeded in the trial"
            classes[names[k]] = entry
            continue
        per_map = min(float(max_per_map),
                      (goal[k] - shares[k]) * whole / (len(readable) * added))
        count = max(1, math.ceil(per_map))
        step = {**trial, "count": count, "p": round(per_map / count, 4)}
        if bank_file is not None:
            step["bank"] = bank_file
        steps.append(step)
        entry["per_map"] = round(per_map, 3)
        classes[names[k]] = entry
    recipe = Recipe.load(steps)
    after = _pixels_after(recipe, source, readable, bank, ids)
    report = {
        "rule": "one paste step per class below its target share that the bank holds: "
                "lam_c = min(K, (t_c - f_c) * P / (M * a_c)) instances per map",
        "target": target if isinstance(target, str) else dict(target),
        "max_per_map": int(max_per_map), "maps": maps, "trial_maps": min(trial_maps,
                                                                          len(readable)),
        "classes": classes,
        "pixel_share": {
            "source": {n: _r(v) for n, v in zip(names, shares, strict=True)},
            "target": {n: _r(v) for n, v in zip(names, goal, strict=True)},
            "after": {n: _r(v) for n, v in zip(names, after / max(after.sum(), 1.0),
                                               strict=True)},
        },
        "skipped": skipped,
    }
    return recipe, report


def _r(x: float) -> float:
    return round(float(x), 6)


def _trial_pixels(step: Paste, maps: list[tuple[int, LabelMap]], vocab: Vocabulary,
                  bank: InstanceBank, class_id: int) -> float:
    """Mean pixels of ``class_id`` one run of ``step`` adds to a map (seed = its index)."""
    added = 0
    for m, lm in maps:
        out, _ = step.apply(lm, np.random.default_rng(m), vocab, {"bank": bank})
        added += int((out.semantic == class_id).sum()) - int((lm.semantic == class_id).sum())
    return added / len(maps)


def _pixels_after(recipe: Recipe, source: Source, maps: list[int], bank: InstanceBank,
                  ids: list[int]) -> np.ndarray:
    """Class pixels (in ``ids`` order) over ``maps`` after the recipe (seed = map index)."""
    out = np.zeros(len(ids), np.float64)
    for m in maps:
        edited = recipe(source.load(m), m, source.vocabulary, {"bank": bank})
        out += np.bincount(edited.semantic.ravel().astype(np.int64), minlength=256)[ids]
    return out
