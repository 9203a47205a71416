"""Training checkpoints: atomic files, every RNG of every rank, and the data position.

A checkpoint is one ``checkpoint.pt`` in the run folder, written by rank 0 through a
temporary file and an atomic rename (a run killed while saving keeps its previous
checkpoint) and read with ``weights_only=True`` (no pickled code runs). Besides the
weights and optimizer states the :class:`~sisgen.training.trainer.Trainer` puts in, it holds
the run's *position* -- the step, the data position (epoch and batch within it) and the
guard counters -- and the RNG states of every rank (torch, CUDA, the noise generator,
Python, numpy), so a resumed run continues exactly where the saved one was.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sisgen.errors import SisgenInputError

#: The checkpoint's file name in the run folder.
CHECKPOINT = "checkpoint.pt"

#: The run's position: optimizer steps, the data position (epoch, batch within the epoch;
#: the sampler resumes from it) and the non-finite step guard's counters.
POSITION = ("step", "epoch", "batch_in_epoch", "bad_steps", "skipped")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file and an atomic rename."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | os.PathLike, device: torch.device, world_size: int
                    ) -> dict[str, Any]:
    """Load a checkpoint (weights only) onto ``device``.

    Raises:
        SisgenInputError: An unreadable file, or one written by another number of ranks
            (exact resume needs each rank's own RNG state).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torn or foreign file
        raise SisgenInputError(f"cannot read the training checkpoint ({e})", path) from e
    ranks = len(state["rng"])
    if ranks != world_size:
        raise SisgenInputError(f"checkpoint was written by {ranks} ranks, this run has "
                               f"{world_size}: exact resume needs the same count", path)
    return state


def rng_state(noise_gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    """This process's RNG states: torch, the noise generator, Python, numpy (and CUDA)."""
    # numpy's key array travels as a tensor: checkpoints load with weights_only=True
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    st = {"torch": torch.get_rng_state(), "noise": noise_gen.get_state(),
          "python": random.getstate(),
          "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


def set_rng_state(st: dict[str, Any], noise_gen: torch.Generator, device: torch.device
                  ) -> None:
    """Restore the RNG states :func:`rng_state` captured."""
    torch.set_rng_state(st["torch"])
    noise_gen.set_state(st["noise"])
    random.setstate(st["python"])
    kind, keys, pos, has_gauss, gauss = st["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state(st["cuda"], device)
