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
                 noise: torch.Tensor | None) -> torch.Tensor:
        """Generate ``[B,3,H,W]`` images in [-1, 1] (on the engine's device)."""
        d = self.device
        return self.model(
            torch.as_tensor(labels).to(d, non_blocking=True),
            None if edges is None else torch.as_tensor(edges).to(d, non_blocking=True),
            None if noise is None else torch.as_tensor(noise).to(d, non_blocking=True),
        )
