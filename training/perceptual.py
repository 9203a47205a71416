"""The VGG19 perceptual loss shared by every objective (pix2pixHD, SPADE, SESAME, CC-FPSE ...).

* :class:`VGG19Features` -- VGG19's conv trunk up to ``relu5_1`` in five slices ending at
  relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 (the layout of the pix2pixHD / SPADE
  loss). It is built with random, frozen weights; ImageNet weights come from a local
  torchvision ``vgg19`` state-dict file (:meth:`VGG19Features.load_torchvision_state_dict`;
  nothing is downloaded).
* :class:`VGGLoss` -- the weighted L1 between the five feature maps (weights 1/32 .. 1,
  the real side detached), on images in [-1, 1] as the official implementations feed them.
* :func:`with_paper_vgg` -- an objective's loss weights with the perceptual term switched off
  when no feature extractor was given and the config did not ask for it.
* :func:`load_perceptual` -- the feature extractor with weights from the config's
  ``perceptual_weights`` file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sisgen.errors import SisgenInputError

#: VGG19 ``features`` layout (torchvision indices): conv widths and ``M`` max-pools.
VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                    512, 512, 512, 512, "M", 512)
#: Slice ends (exclusive ``features`` indices) after relu1_1, relu2_1, ..., relu5_1.
VGG19_CUTS = (2, 7, 12, 21, 30)
#: Weights of the five feature maps in the perceptual loss.
VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


class VGG19Features(nn.Module):
    """VGG19 up to relu5_1, as five slices ``slice1`` .. ``slice5``.

    Submodules keep torchvision's ``features`` indices (``slice2.5`` is ``features.5``).
    Parameters are frozen.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU()]
                c_in = int(v)
        start = 0
        for k, end in enumerate(VGG19_CUTS, start=1):
            s = nn.Sequential()
            for idx in range(start, end):
                s.add_module(str(idx), layers[idx])
            setattr(self, f"slice{k}", s)
            start = end
        self.requires_grad_(False)

    def load_torchvision_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a torchvision ``vgg19`` state dict (its ``features.<i>.*`` entries).

        Raises:
            RuntimeError: A conv's weight or bias is missing or has the wrong shape.
        """
        own = {}
        start = 0
        for k, end in enumerate(VGG19_CUTS, start=1):
            for idx in range(start, end):
                for name in ("weight", "bias"):
                    key = f"features.{idx}.{name}"
                    if key in state:
                        own[f"slice{k}.{idx}.{name}"] = state[key]
            start = end
        self.load_state_dict(own, strict=True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` ``[B,3,H,W]`` -> the relu1_1 .. relu5_1 feature maps."""
        out = []
        for k in range(1, len(VGG19_CUTS) + 1):
            x = getattr(self, f"slice{k}")(x)
            out.append(x)
        return out


def perceptual_distance(vgg: nn.Module, fake: torch.Tensor, real: torch.Tensor
                        ) -> torch.Tensor:
    """``sum_k w_k * L1(vgg(fake)_k, vgg(real)_k)`` with :data:`VGG_LAYER_WEIGHTS`.

    The real side is detached; images are ``[B,3,H,W]`` in [-1, 1].
    """
    loss = fake.new_zeros(())
    for w, f, r in zip(VGG_LAYER_WEIGHTS, vgg(fake), vgg(real), strict=True):
        loss = loss + w * F.l1_loss(f, r.detach())
    return loss


class VGGLoss(nn.Module):
    """The perceptual loss as a module: :func:`perceptual_distance` with its own VGG.

    Args:
        vgg: The feature extractor (a random-weight :class:`VGG19Features` when ``None``;
            load ImageNet weights into it for real training).
    """

    weights = VGG_LAYER_WEIGHTS

    def __init__(self, vgg: nn.Module | None = None):
        super().__init__()
        self.vgg = vgg if vgg is not None else VGG19Features()

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Loss between generated ``fake`` and real ``real`` (``[B,3,H,W]``)."""
        return perceptual_distance(self.vgg, fake, real)


def with_paper_vgg(losses: Mapping[str, float], perceptual: nn.Module | None
                   ) -> dict[str, float]:
    """``losses`` with ``vgg = 0`` when no feature extractor is given and none was asked for.

    Objectives whose paper trains with the perceptual loss keep its weight as their default;
    without VGG weights (``perceptual_weights`` unset) they train without the term instead
    of failing. Asking for it explicitly (``losses.vgg > 0``) still needs the weights.
    """
    out = dict(losses)
    if perceptual is None and "vgg" not in out:
        out["vgg"] = 0.0
    return out


def load_perceptual(path: str | os.PathLike) -> VGG19Features:
    """VGG19 features for the perceptual loss, from a local torchvision state-dict file.

    Raises:
        SisgenInputError: No such file, an unreadable one, or not a vgg19 state dict.
    """
    p = Path(path)
    if not p.is_file():
        raise SisgenInputError("perceptual_weights file not found", p)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file
        raise SisgenInputError(f"cannot read VGG19 weights ({e})", p) from e
    vgg = VGG19Features()
    try:
        vgg.load_torchvision_state_dict(state)
    except (RuntimeError, KeyError) as e:
        raise SisgenInputError(f"not a torchvision vgg19 state dict ({e})", p) from e
    return vgg.eval()
