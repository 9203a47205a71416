"""Composite edits: ``one_of`` (exactly one of several steps) and ``some_of`` (n of them)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import SisgenInputError
from ..labelmap import LabelMap
from ..vocab import Vocabulary
from .base import Edit, build_edit, register_edit, step_label
from .checks import check_int, is_number


def build_steps(steps: Any) -> list[Edit]:
    """Build the nested steps of a composite; errors name the step index and op."""
    if not isinstance(steps, Sequence) or isinstance(steps, (str, bytes)) or not steps:
        raise SisgenInputError(f"steps must be a non-empty list of steps, got {steps!r}")
    built = []
    for i, step in enumerate(steps):
        try:
            built.append(build_edit(step))
        except SisgenInputError as e:
            raise SisgenInputError(f"{step_label(i, step)}: {e.problem}") from e
    return built


class _Composite(Edit):
    """Shared machinery of :class:`OneOf` and :class:`SomeOf`."""

    uses_context = True
    steps: list[Edit]

    def children(self) -> list[Edit]:
        """Return the nested steps."""
        return list(self.steps)

    def _resolved_steps(self, vocab: Vocabulary) -> list[dict[str, Any]]:
        out = []
        for i, step in enumerate(self.steps):
            try:
                out.append({"op": step.op, **step.resolved_params(vocab), "p": step.p})
            except SisgenInputError as e:
                raise SisgenInputError(f"{step_label(i, step)}: {e.problem}") from e
        return out

    def resolved_params(self, vocab: Vocabulary) -> dict[str, Any]:
        """Return the parameters with the steps' resolved parameters."""
        return {**self.params(), "steps": self._resolved_steps(vocab)}

    def _run_step(self, i: int, labelmap: LabelMap, rng: np.random.Generator,
                  vocab: Vocabulary, context: Mapping[str, Any] | None
                  ) -> tuple[LabelMap, dict[str, Any]]:
        step = self.steps[i]
        try:
            return step.run(labelmap, rng, vocab, context)
        except SisgenInputError as e:
            raise SisgenInputError(f"{step_label(i, step)}: {e.problem}") from e


@register_edit("one_of")
class OneOf(_Composite):
    """Apply exactly one of several steps (which then still honours its own ``p``).

    Written ``{op: one_of, steps: [...], weights: [...]}`` or ``{one_of: [...]}``.

    Args:
        steps: The candidate steps (dict form or :class:`Edit`).
        weights: Relative choice weights (non-negative, not all 0); default uniform.
        p: Probability that any step is applied at all.

    """

    def __init__(self, steps: Sequence[Any], weights: Sequence[float] | None = None,
                 p: float = 1.0):
        super().__init__(p)
        self.steps = build_steps(steps)
        if weights is not None:
            ok = (isinstance(weights, Sequence) and not isinstance(weights, str)
                  and len(weights) == len(self.steps)
                  and all(is_number(w) and 0 <= w < math.inf for w in weights)
                  and sum(weights) > 0)
            if not ok:
                raise SisgenInputError(
                    f"weights must be {len(self.steps)} non-negative numbers, not all 0, "
                    f"got {weights!r}"
                )
            weights = [float(w) for w in weights]
        self.weights = weights

    def apply(
        self,
        labelmap: LabelMap,
        rng: np.random.Generator,
        vocab: Vocabulary,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Choose a step and run it; records ``chosen`` (index) and ``steps`` (its record)."""
        if self.weights is None:
            i = int(rng.integers(len(self.steps)))
        else:
            w = np.asarray(self.weights, dtype=np.float64)
            i = int(rng.choice(len(self.steps), p=w / w.sum()))
        out, record = self._run_step(i, labelmap, rng, vocab, context)
        return out, {"chosen": i, "steps": [record]}


@register_edit("some_of")
class SomeOf(_Composite):
    """Apply ``n`` distinct steps, drawn without replacement, in random order.

    Written ``{op: some_of, n: 2, steps: [...]}`` or ``{some_of: {n: 2, steps: [...]}}``.
    Each chosen step still honours its own ``p``.

    Args:
        steps: The candidate steps.
        n: How many to apply (0 to ``len(steps)``).
        p: Probability that any step is applied at all.

    """

    always_recorded = frozenset({"n"})

    def __init__(self, steps: Sequence[Any], n: int = 1, p: float = 1.0):
        super().__init__(p)
        self.steps = build_steps(steps)
        self.n = check_int(n, "n", maximum=len(self.steps),
                           what=f"an integer from 0 to {len(self.steps)} (the number of steps)")

    def params(self) -> dict[str, Any]:
        """Return ``n`` and ``steps`` (as data), ``n`` first as recipes record it."""
        return {"n": self.n, **super().params()}

    def apply(
        self,
        labelmap: LabelMap,
        rng: np.random.Generator,
        vocab: Vocabulary,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[LabelMap, dict[str, Any]]:
        """Run the chosen steps; records ``chosen`` (indices, in order) and their records."""
        order = [int(i) for i in rng.permutation(len(self.steps))[: self.n]]
        out, records = labelmap, []
        for i in order:
            out, record = self._run_step(i, out, rng, vocab, context)
            records.append(record)
        if not order:
            out = labelmap.copy()
        return out, {"chosen": order, "steps": records}

