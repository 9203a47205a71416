"""Class-balanced plans: more samples of the label maps that contain rare classes.

**Rule** (repeat-factor sampling, Gupta et al., LVIS 2019, on pixel shares instead of image
frequencies): with ``f_c`` the share of class ``c`` among all labelled pixels of the
covered maps and ``t`` a target share (default ``1 / number of classes present``, the share
of every class under perfect balance), class ``c`` gets the factor
``r_c = max(1, (t / f_c) ** power)`` (``power`` 0.5: the square root, as in LVIS), and a
map gets ``w = max r_c`` over the classes it holds at least ``min_pixels`` of -- a map is
worth repeating when it shows *some* rare class. With a base plan (``hardness+balance``)
the weight is the product ``w * base count``: both scores multiply.

**Budget.** ``total`` samples (default: the base plan's total, else ``round(sum w)``, each
map repeated by its factor as in LVIS) are shared out in proportion to the weights, every
map kept between ``min_samples`` and ``max_samples`` (a water-filling: one scale ``s`` with
``sum clip(s * w, min, max) = total``), then rounded by largest remainder so the counts
add up to ``total`` exactly. Maps that cannot be read, and maps a base plan skips, get 0.

**Report.** The class pixel shares of the source (each map once), of the base plan (if
any) and of this plan -- the shares expected in the generated set, each map's pixels
counted once per sample -- by class name, with the class factors.
"""

from __future__ import annotations

import math
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


def repeat_factors(pixels: np.ndarray, *, threshold: float | None = None, power: float = 0.5,
                   min_pixels: int = 16) -> tuple[np.ndarray, np.ndarray, float]:
    """Class factors and map weights of the rule (module docstring).

    Returns:
        ``(map weights [maps], class factors [classes], target share t)``.
    """
    totals = pixels.sum(axis=0).astype(np.float64)
    share = totals / max(totals.sum(), 1.0)
    present = share > 0
    t = float(threshold) if threshold is not None else 1.0 / max(int(present.sum()), 1)
    factor = np.ones(len(share))
    factor[present] = np.maximum(1.0, (t / share[present]) ** float(power))
    shows = pixels >= max(int(min_pixels), 1)
    weights = np.where(shows, factor[None, :], 1.0).max(axis=1, initial=1.0)
    return weights, factor, t


def allocate(weights: np.ndarray, total: int, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Integer counts in ``[low, high]`` proportional to ``weights``, summing to ``total``.

    ``total`` is clipped to ``[sum low, sum high]``. See the module docstring (budget).
    """
    w = np.asarray(weights, np.float64)
    lo, hi = np.asarray(low, np.float64), np.asarray(high, np.float64)
    total = int(min(max(total, lo.sum()), hi.sum()))

    def filled(scale: float) -> np.ndarray:
        return np.clip(scale * w, lo, hi)

    a, b = 0.0, 1.0
    while filled(b).sum() < total and b < 1e18:
        b *= 2.0
    for _ in range(200):  # the lower end keeps sum <= total
        mid = (a + b) / 2
        if filled(mid).sum() <= total:
            a = mid
        else:
            b = mid
    x = filled(a)
    counts = np.floor(x + 1e-9).astype(np.int64)
    rest = total - int(counts.sum())
    if rest > 0:
        frac = x - counts
        order = np.lexsort((np.arange(len(x)), -frac))  # largest remainder, then map order
        room = [i for i in order if counts[i] < hi[i]]
        counts[room[:rest]] += 1
    return counts


def _shares(pixels: np.ndarray, counts: np.ndarray, names: list[str]) -> dict[str, float]:
    """Class pixel shares when map ``m`` appears ``counts[m]`` times."""
    totals = (pixels * counts[:, None]).sum(axis=0).astype(np.float64)
    whole = totals.sum()
    return {n: (round(float(v / whole), 6) if whole else 0.0)
            for n, v in zip(names, totals, strict=True)}


def balance_plan(source: Source, *, total: int | None = None, max_samples: int = 4,
                 min_samples: int = 1, base: Plan | None = None, limit: int | None = None,
                 threshold: float | None = None, power: float = 0.5, min_pixels: int = 16,
                 progress: bool = False) -> Plan:
    """A plan that raises the pixel share of rare classes (module docstring).

    Args:
        source: The label maps.
        total: Samples in all (default: ``base.total``, else ``round(sum of weights)``).
        max_samples: Most samples of one map.
        min_samples: Fewest samples of a readable map (0 lets the plan skip maps).
        base: A plan to combine with (e.g. :func:`hardness_plan`'s): weights multiply by
            its counts; maps it skips stay skipped; mode ``"<base mode>+balance"``.
        limit: Plan only the first ``limit`` maps (with ``base``: at most its maps).
        threshold: Target share ``t`` (default ``1 / classes present``).
        power: Exponent of the class factor.
        min_pixels: Pixels of a class a map must hold to count as showing it.
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
    weights, factor, t = repeat_factors(pixels[readable], threshold=threshold, power=power,
                                        min_pixels=min_pixels)
    w = np.zeros(maps)
    w[readable] = weights
    names = source.vocabulary.names
    shares = {"source": _shares(pixels, readable.astype(np.int64), names)}
    base_counts = None
    if base is not None:
        base_counts = np.asarray(base.counts()[:maps], np.int64)
        w = w * base_counts
        readable &= base_counts > 0
    if total is None:
        total = (int(base_counts[readable].sum()) if base_counts is not None
                 else int(math.floor(float(w[readable].sum()) + 0.5)))
    low = np.where(readable, min_samples, 0)
    high = np.where(readable, max_samples, 0)
    counts = allocate(np.where(readable, w, 0.0), int(total), low, high)
    if base_counts is not None:
        shares["base"] = _shares(pixels, base_counts, names)
    shares["plan"] = _shares(pixels, counts, names)
    report: dict[str, Any] = {
        "rule": "repeat factor on pixel shares: r_c = max(1, (t / f_c) ** power); map weight "
                "= max r_c over its classes" + (" x base count" if base is not None else ""),
        "threshold": t, "power": float(power), "min_pixels": int(min_pixels),
        "max_samples": int(max_samples), "min_samples": int(min_samples), "maps": maps,
        "total": int(counts.sum()),
        "class_factor": {n: round(float(f), 4) for n, f in zip(names, factor, strict=True)},
        "pixel_share": shares, "skipped": skipped,
    }
    mode = "balance"
    if base is not None:
        mode = f"{base.mode}+balance"
        report["base"] = {"mode": base.mode, "sha256": base.digest(), "path": base.path,
                          "report": base.report}
    return Plan.from_counts(source, [int(c) for c in counts], mode, report)
