"""Class-balanced plans: more samples of the label maps that show rare classes.

**Target.** With ``f_c`` the share of class ``c`` among all labelled pixels of the covered
maps (each map once), the plan aims at target shares ``t_c``: ``"sqrt"`` (default)
``t_c ∝ sqrt(f_c)`` -- rare classes gain most, common ones keep a large share, as in
square-root repeat-factor sampling (LVIS) --, ``"uniform"`` (every present class alike), or
a mapping ``{class name: share}``.

**Counts.** Every readable map starts at ``min_samples``; the rest of the budget ``total``
is handed out greedily, a few samples a round, to the maps with the largest *balance
score* under the shares reached so far, ``score_i = sum_c (p_ic / P_i) * t_c / s_c``
(``p_ic`` the map's pixels of class ``c``, ``P_i`` its labelled pixels, ``s_c`` the
current expected share): the first-order gain of one more sample of map ``i`` towards the
target (cross-entropy ``-sum_c t_c log s_c``). A map showing mostly rare pixels scores
high; as a class approaches its target its maps stop winning. No map gets more than
``max_samples``. With a base plan (``hardness+balance``) the score is multiplied by the
map's base count (both scores multiply) and maps the base skips stay skipped.

**Budget.** ``total`` defaults to the base plan's total, else ``round(maps * (1 + K) / 2)``
with ``K = max_samples`` -- what a hardness plan of the same ``K`` costs.

**Report.** The class pixel shares of the source (each map once), of the base plan (if
any), the target and this plan's -- the shares expected in the generated set, each map's
pixels counted once per sample -- by class name. (A recipe's edits move pixels too; the
report counts the maps as the source holds them.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import SisgenInputError
from ..sources import Source
from .plan import Plan


def class_pixels(source: Source, maps: int, progress: bool = False
                 ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Pixels of each vocabulary class in each of the first ``maps`` maps.

    Returns:
        ``(pixels, skipped)``: int64 ``[maps, classes]`` (columns in vocabulary id order;
        a row of zeros for a map that could not be read) and the skipped maps' records.
    """
    ids = np.asarray(source.vocabulary.ids, np.int64)
    out = np.zeros((maps, len(ids)), np.int64)
    skipped: list[dict[str, Any]] = []
    it = range(maps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="class pixels", unit="map")
    for m in it:
        try:
            sem = source.load(m).semantic
        except SisgenInputError as e:
            skipped.append({"index": m, "file": e.path, "error": str(e)})
            continue
        out[m] = np.bincount(sem.ravel().astype(np.int64), minlength=256)[ids]
    return out, skipped


def target_shares(shares: np.ndarray, target: str | Mapping[str, float],
                  names: list[str]) -> np.ndarray:
    """The target share of each class (module docstring), summing to 1 over present classes.

    Raises:
        SisgenInputError: Unknown target kind or class name, or no positive share.
    """
    present = shares > 0
    if isinstance(target, str):
        if target not in ("sqrt", "uniform"):
            raise SisgenInputError(f"target must be 'sqrt', 'uniform' or {{class: share}}, "
                                   f"got {target!r}")
        t = np.where(present, np.sqrt(shares) if target == "sqrt" else 1.0, 0.0)
    else:
        unknown = sorted(set(target) - set(names))
        if unknown:
            raise SisgenInputError(f"target names unknown classes {unknown[:5]}")
        t = np.array([float(target.get(n, 0.0)) for n in names]) * present
    if not t.sum() > 0:
        raise SisgenInputError("the target gives no class of these maps a positive share")
    return t / t.sum()


def balance_counts(pixels: np.ndarray, target: np.ndarray, total: int, low: np.ndarray,
                   high: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Greedy counts in ``[low, high]`` summing to ``total`` (module docstring, counts).

    Args:
        pixels: ``[maps, classes]`` pixel counts.
        target: Target share per class.
        total: Samples in all (clipped to ``[sum low, sum high]``).
        low: Fewest samples per map.
        high: Most samples per map.
        scale: Per-map factor of the score (a base plan's counts).
    """
    n = np.asarray(low, np.int64).copy()
    high = np.asarray(high, np.int64)
    px = pixels.astype(np.float64)
    per_map = px.sum(axis=1)
    frac = px / np.maximum(per_map, 1.0)[:, None]
    amount = px.T @ n
    remaining = int(min(max(total, n.sum()), high.sum())) - int(n.sum())
    index = np.arange(len(n))
    while remaining > 0:
        share = amount / max(amount.sum(), 1.0)
        score = frac @ (target / np.maximum(share, 1e-9))
        if scale is not None:
            score = score * scale
        room = np.flatnonzero(n < high)
        if not len(room):
            break
        take = min(max(1, remaining // 4), len(room))
        best = room[np.lexsort((index[room], -score[room]))[:take]]
        n[best] += 1
        amount += px[best].sum(axis=0)
        remaining -= take
    return n


def _shares(pixels: np.ndarray, counts: np.ndarray, names: list[str]) -> dict[str, float]:
    """Class pixel shares when map ``m`` appears ``counts[m]`` times."""
    totals = (pixels * counts[:, None]).sum(axis=0).astype(np.float64)
    whole = totals.sum()
    return {n: (round(float(v / whole), 6) if whole else 0.0)
            for n, v in zip(names, totals, strict=True)}


def balance_plan(source: Source, *, total: int | None = None, max_samples: int = 4,
                 min_samples: int = 1, base: Plan | None = None, limit: int | None = None,
                 target: str | Mapping[str, float] = "sqrt", progress: bool = False) -> Plan:
    """A plan that raises the pixel share of rare classes (module docstring).

    Args:
        source: The label maps.
        total: Samples in all (default: ``base.total``, else ``round(maps * (1 + K) / 2)``).
        max_samples: Most samples of one map (``K``).
        min_samples: Fewest samples of a readable map (0 lets the plan skip maps).
        base: A plan to combine with (e.g. :func:`hardness_plan`'s): scores multiply by
            its counts; maps it skips stay skipped; mode ``"<base mode>+balance"``.
        limit: Plan only the first ``limit`` maps (with ``base``: at most its maps).
        target: ``"sqrt"``, ``"uniform"`` or ``{class name: share}``.
        progress: Show a progress bar.

    Returns:
        A :class:`Plan` whose report gives the class pixel shares before and after.

    Raises:
        SisgenInputError: Bad settings, a base plan for another source, or no readable map.
    """
    if max_samples < 1 or not 0 <= min_samples <= max_samples:
        raise SisgenInputError(f"need max_samples >= 1 and 0 <= min_samples <= max_samples, "
                               f"got {min_samples}..{max_samples}")
    if base is not None:
        base.check_source(source)
    maps = len(source) if base is None else base.maps
    maps = maps if limit is None else min(int(limit), maps)
    pixels, skipped = class_pixels(source, maps, progress)
    readable = np.ones(maps, bool)
    readable[[int(s["index"]) for s in skipped]] = False
    if not readable.any():
        raise SisgenInputError(f"no map of the {source.kind} source could be read "
                               f"({skipped[0]['error'] if skipped else 'no maps'})",
                               skipped[0]["file"] if skipped else None)
    names = source.vocabulary.names
    once = readable.astype(np.int64)
    totals = (pixels * once[:, None]).sum(axis=0).astype(np.float64)
    goal = target_shares(totals / max(totals.sum(), 1.0), target, names)
    shares = {"source": _shares(pixels, once, names)}
    base_counts = None
    if base is not None:
        base_counts = np.asarray(base.counts()[:maps], np.int64)
        readable &= base_counts > 0
        shares["base"] = _shares(pixels, base_counts, names)
    if total is None:
        total = (int(base_counts[readable].sum()) if base_counts is not None
                 else int(math.floor(maps * (1 + max_samples) / 2 + 0.5)))
    counts = balance_counts(pixels, goal, int(total), np.where(readable, min_samples, 0),
                            np.where(readable, max_samples, 0), scale=base_counts)
    shares["target"] = {n: round(float(v), 6) for n, v in zip(names, goal, strict=True)}
    shares["plan"] = _shares(pixels, counts, names)
    report: dict[str, Any] = {
        "rule": "greedy towards target pixel shares: score = sum_c (p_ic / P_i) t_c / s_c"
                + (" x base count" if base is not None else ""),
        "target": target if isinstance(target, str) else dict(target),
        "max_samples": int(max_samples), "min_samples": int(min_samples), "maps": maps,
        "total": int(counts.sum()), "pixel_share": shares, "skipped": skipped,
    }
    mode = "balance"
    if base is not None:
        mode = f"{base.mode}+balance"
        report["base"] = {"mode": base.mode, "sha256": base.digest(), "path": base.path,
                          "report": base.report}
    return Plan.from_counts(source, [int(c) for c in counts], mode, report)
