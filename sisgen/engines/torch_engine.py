"""The eager PyTorch backend."""

from __future__ import annotations

import torch

from ..models.base import SISGenerator


class TorchEngine:
    """Runs a :class:`SISGenerator` (its export form) under ``torch.inference_mode``.

    Args:
        model: The generator.
        device: Where to run (default: CUDA when available).
    """

    input_names = ("labels", "edges", "noise")

    def __init__(self, model: SISGenerator, device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.export_form().to(self.device)

    @torch.inference_mode()
    def __call__(self, labels: torch.Tensor, edges: torch.Tensor | None,
                 noise: torch.Tensor | None, **extra: torch.Tensor) -> torch.Tensor:
        """Generate ``[B,3,H,W]`` images in [-1, 1] (on the engine's device).

        On CUDA, host tensors are pinned so the copies overlap with other work.
        """
        d = self.device

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            t = torch.as_tensor(t)
            if d.type == "cuda" and t.device.type == "cpu":
                t = t.pin_memory()
            return t.to(d, non_blocking=True)

        if not self.model.uses_edges:
            edges = None
        return self.model(move(labels), move(edges), move(noise),
                          **{k: move(v) for k, v in extra.items()})
