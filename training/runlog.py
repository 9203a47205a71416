"""What a training run reports, in its run folder (rank 0 only).

* ``log.jsonl`` -- one JSON line every ``log_every`` steps (step, epoch, time, images/s,
  learning rate, skipped steps, the loss terms); a resumed run first drops the lines a
  killed run wrote after its last checkpoint (:meth:`RunLog.truncate`);
* ``metrics.jsonl`` -- one line per periodic evaluation;
* ``samples/step_NNNNNNN.png`` -- grids ``label | generated | real`` (:func:`sample_grid`);
* ``tensorboard/`` -- the same scalars and grids, when asked for and the optional
  ``tensorboard`` package is installed;
* a progress bar on the terminal: steps, or seconds of a time-budgeted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sisgen.vocab import Vocabulary

log = logging.getLogger(__name__)

LOG = "log.jsonl"
METRICS = "metrics.jsonl"


class RunLog:
    """The reports of one run, written by the main rank (elsewhere every call does nothing).

    Args:
        out: The run folder.
        main: Whether this process writes (rank 0).
        tensorboard: Also write TensorBoard events (if the package is installed).
        progress: Show a progress bar.
    """

    def __init__(self, out: Path, main: bool, tensorboard: bool = False, progress: bool = True
                 ) -> None:
        self.out = out
        self.main = main
        self.tensorboard = tensorboard and main
        self.progress = progress and main
        self._tb: Any = None
        self._handle: Any = None
        self._bar: Any = None

    # -------------------------------------------------------------- a fit's span
    def start(self, total_steps: float, step: int, budget: float | None) -> None:
        """Open TensorBoard, the progress bar and ``log.jsonl`` (appending) for a fit."""
        self._open_tensorboard()
        self._bar = self._progress_bar(total_steps, step, budget)
        if self.main:
            self._handle = open(self.out / LOG, "a", encoding="utf-8")  # noqa: SIM115

    def stop(self) -> None:
        """Close ``log.jsonl`` and the progress bar (TensorBoard stays open for the end)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        """Close TensorBoard."""
        if self._tb is not None:
            self._tb.close()

    def _open_tensorboard(self) -> None:
        if not self.tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the tensorboard package is optional
            log.warning("tensorboard is not installed; logging to log.jsonl only")
            return
        self._tb = SummaryWriter(str(self.out / "tensorboard"))

    def _progress_bar(self, total_steps: float, step: int, budget: float | None) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        if math.isfinite(total_steps):
            return tqdm(total=int(total_steps), initial=step, desc="train", unit="step")
        # time-budgeted run: the bar tracks seconds of the budget, not steps
        return tqdm(total=round(budget), desc="train", unit="s",
                    bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt}s [{elapsed}<{remaining}"
                               "{postfix}]")

    # --------------------------------------------------------------------- records
    def advance(self, step: int, elapsed: float, scalars: dict[str, float]) -> None:
        """Move the progress bar past ``step`` (or to ``elapsed`` seconds of the budget)."""
        bar = self._bar
        if bar is None:
            return
        post = {k: f"{v:.3f}" for k, v in scalars.items()}
        if bar.unit == "s":
            bar.n = min(elapsed, bar.total)
            bar.set_postfix({"step": step, **post}, refresh=False)
            bar.refresh()
        else:
            bar.update(1)
            bar.set_postfix(post, refresh=False)

    def log(self, record: dict[str, Any]) -> None:
        """Append ``record`` (with ``step``) to ``log.jsonl``; its numbers to TensorBoard."""
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        if self._tb is not None:
            for k, v in record.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, record["step"])

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append an evaluation ``record`` to ``metrics.jsonl``; to TensorBoard as ``eval/``."""
        with open(self.out / METRICS, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"eval/{k}", v, record["step"])

    def write_samples(self, grid: np.ndarray, step: int) -> Path:
        """Write a sample grid as ``samples/step_NNNNNNN.png`` (and to TensorBoard)."""
        from sisgen.io import write_image

        path = self.out / "samples" / f"step_{step:07d}.png"
        write_image(path, grid)
        if self._tb is not None:
            self._tb.add_image("samples", grid, step, dataformats="HWC")
        return path

    def truncate(self, step: int) -> None:
        """Drop ``log.jsonl`` lines of steps after ``step`` (a killed run logged them)."""
        path = self.out / LOG
        if not self.main or not path.is_file():
            return
        keep = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (ValueError, KeyError, TypeError):  # a torn last line
                continue
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(x + "\n" for x in keep), encoding="utf-8")
        os.replace(tmp, path)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[3,H,W]`` images in [-1, 1] -> ``H×W×3`` uint8."""
    return ((images.float().permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255).astype(
        np.uint8)


def sample_grid(vocabulary: Vocabulary, labels: torch.Tensor, fake: torch.Tensor,
                real: torch.Tensor) -> np.ndarray:
    """One row ``label | generated | real`` per item, stacked: an ``(N*H)×3W×3`` uint8 image.

    Args:
        vocabulary: Colours of the label maps.
        labels: ``[N,H,W]`` class ids.
        fake: ``[N,3,H,W]`` generated images in [-1, 1].
        real: ``[N,3,H,W]`` photos in [-1, 1].
    """
    rows = []
    for i in range(labels.shape[0]):
        lab = vocabulary.colorize(labels[i].cpu().numpy())
        rows.append(np.concatenate([lab, _to_uint8(fake[i]), _to_uint8(real[i])], 1))
    return np.concatenate(rows, 0)
