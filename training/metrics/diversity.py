"""LPIPS and the multimodal diversity of a generator.

LPIPS (Zhang et al., 2018, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", v0.1): both images go through an ImageNet trunk (VGG16 up to
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3, or AlexNet's five ReLUs) after a fixed
per-channel shift and scale; each tapped feature map is normalized to unit length along
channels, the squared difference is weighted per channel by a learned 1×1 convolution
("lin" layer, non-negative weights, no bias), averaged over space, and the five layers
are summed.

Weights come from two local files, never from the network:

* the trunk: torchvision's ImageNet state dict of ``vgg16`` or ``alexnet`` (only its
  ``features.<i>.weight/bias`` entries are read);
* the lin layers: the lpips package's ``weights/v0.1/vgg.pth`` or ``alex.pth``
  (``lin<k>.model.1.weight`` ``[1, C_k, 1, 1]``).

Diversity (the multimodal-synthesis protocol of OASIS, INADE and others): each label map
is rendered with ``diversity_samples`` different seeds and the mean LPIPS over all
pairs of those renders is reported; higher means more varied outputs for one layout.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sisgen.errors import SisgenInputError
from sisgen.generate import sample_seed

from .base import EvalBatch, Metric, MetricOptions, images_to_tensor, register_metric

_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]


def _vgg16_layers() -> list[tuple[Any, ...]]:
    """Layer specs of torchvision's ``vgg16().features`` (indices preserved)."""
    layers: list[tuple[Any, ...]] = []
    c_in = 3
    for v in _VGG16:
        if v == "M":
            layers.append(("pool", 2, 2))
        else:
            layers += [("conv", c_in, v, 3, 1, 1), ("relu",)]
            c_in = int(v)
    return layers


#: (layer specs, tap ends (exclusive torchvision ``features`` indices), channels per tap)
_TRUNKS: dict[str, tuple[list[tuple[Any, ...]], tuple[int, ...], tuple[int, ...]]] = {
    "vgg": (_vgg16_layers(), (4, 9, 16, 23, 30), (64, 128, 256, 512, 512)),
    "alex": ([("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2),
              ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
              ("conv", 192, 384, 3, 1, 1), ("relu",), ("conv", 384, 256, 3, 1, 1), ("relu",),
              ("conv", 256, 256, 3, 1, 1), ("relu",)],
             (2, 5, 8, 10, 12), (64, 192, 384, 256, 256)),
}
NETS = tuple(_TRUNKS)
#: File names of the lpips package's lin weights, per trunk.
LIN_FILES = {"vgg": "vgg.pth", "alex": "alex.pth"}
TRUNK_FILES = {"vgg": "torchvision vgg16 state dict (e.g. vgg16-397923af.pth)",
               "alex": "torchvision alexnet state dict (e.g. alexnet-owt-7be5be79.pth)"}


def _layer(spec: tuple[Any, ...]) -> nn.Module:
    kind = spec[0]
    if kind == "conv":
        _, c_in, c_out, k, s, p = spec
        return nn.Conv2d(c_in, c_out, k, stride=s, padding=p)
    if kind == "pool":
        return nn.MaxPool2d(spec[1], stride=spec[2])
    return nn.ReLU()


def normalize_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Scale each spatial position's feature vector to unit L2 norm (LPIPS's eps)."""
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1 with a VGG16 or AlexNet trunk (random weights until loaded).

    Args:
        net: ``"vgg"`` or ``"alex"``.
    """

    def __init__(self, net: str = "vgg"):
        super().__init__()
        if net not in _TRUNKS:
            raise ValueError(f"LPIPS net must be one of {', '.join(NETS)}, got {net!r}")
        layers, self.taps, channels = _TRUNKS[net]
        self.net = net
        self.features = nn.Sequential(*[_layer(s) for s in layers[:self.taps[-1]]])
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def embed(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Images in [-1, 1] ``[B,3,H,W]`` (or uint8) -> the unit-normalized tapped features."""
        x = images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images.float()
        x = (x - self.shift) / self.scale
        out, start = [], 0
        for end in self.taps:
            for layer in self.features[start:end]:
                x = layer(x)
            out.append(normalize_channels(x))
            start = end
        return out

    def distance(self, a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
        """LPIPS ``[B]`` between two :meth:`embed` outputs."""
        total = None
        for lin, fa, fb in zip(self.lins, a, b, strict=True):
            d = lin((fa - fb).pow(2)).mean(dim=(1, 2, 3))
            total = d if total is None else total + d
        return total

    @torch.inference_mode()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS ``[B]`` between image batches in [-1, 1] (or uint8) of one size."""
        return self.distance(self.embed(x), self.embed(y))


def _read_state(path: Path, what: str) -> Mapping[str, torch.Tensor]:
    if not path.is_file():
        raise SisgenInputError(f"no such {what} file", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several unrelated types for bad files
        raise SisgenInputError(f"cannot read {what} ({e})", path) from e
    if not isinstance(state, Mapping):
        raise SisgenInputError(f"{what} file holds no state dict", path)
    return state


def load_lpips(net: str, lin_weights: str | os.PathLike | None,
               trunk_weights: str | os.PathLike | None,
               device: str | torch.device = "cpu") -> LPIPS:
    """Build :class:`LPIPS` and load both weight files (module docstring).

    Raises:
        SisgenInputError: A file is not given, missing, or has the wrong layout; the
            message names the file that is needed.
    """
    model = LPIPS(net)
    if lin_weights is None or trunk_weights is None:
        need = [f"lpips lin weights ({LIN_FILES[net]} from the lpips package, "
                "lpips_weights= / --lpips-weights)"] if lin_weights is None else []
        if trunk_weights is None:
            need.append(f"the trunk's ImageNet weights ({TRUNK_FILES[net]}, "
                        "lpips_trunk= / --lpips-trunk)")
        raise SisgenInputError(f"LPIPS ({net}) needs {' and '.join(need)}; nothing is "
                               "downloaded")
    own: dict[str, torch.Tensor] = {}
    lin_path = Path(lin_weights)
    lin = _read_state(lin_path, f"LPIPS lin weights ({LIN_FILES[net]})")
    for k in range(len(model.lins)):
        key = next((f"lin{k}.model.{i}.weight" for i in (1, 0)
                    if f"lin{k}.model.{i}.weight" in lin), None)
        if key is None:
            raise SisgenInputError(f"no lin{k}.model.1.weight: not an lpips {LIN_FILES[net]}",
                                   lin_path)
        own[f"lins.{k}.weight"] = lin[key]
    trunk_path = Path(trunk_weights)
    trunk = _read_state(trunk_path, f"LPIPS trunk ({TRUNK_FILES[net]})")
    for name in model.features.state_dict():
        key = f"features.{name}"
        if key not in trunk:
            raise SisgenInputError(f"no {key}: not a {TRUNK_FILES[net]}", trunk_path)
        own[key] = trunk[key]
    own["shift"], own["scale"] = model.shift, model.scale
    try:
        model.load_state_dict(own, strict=True)
    except RuntimeError as e:
        raise SisgenInputError(f"LPIPS ({net}) weights do not fit ({e})", trunk_path) from e
    return model.to(device)


@register_metric("diversity")
class DiversityMetric(Metric):
    """Mean pairwise LPIPS between renders of one label map with different seeds.

    Render 0 of each map is the batch's image; renders ``1..K-1`` use
    ``sample_seed(seed_of_render_0, j)``. Results: ``diversity_lpips`` and
    ``diversity_pairs``.
    """

    needs_generator = True

    def __init__(self, options: MetricOptions):
        if options.diversity_samples < 2:
            raise ValueError(f"diversity needs diversity_samples >= 2, got "
                             f"{options.diversity_samples}")
        self.samples = int(options.diversity_samples)
        self.batch_size = max(1, int(options.batch_size))
        self.device = options.device
        self.lpips = options.lpips if options.lpips is not None else load_lpips(
            options.lpips_net, options.lpips_weights, options.lpips_trunk, options.device)
        self.total = 0.0
        self.pairs = 0

    def _renders(self, batch: EvalBatch) -> list[list[np.ndarray]]:
        extra_maps, extra_seeds = [], []
        for lm, seed in zip(batch.labelmaps, batch.seeds, strict=True):
            for j in range(1, self.samples):
                extra_maps.append(lm)
                extra_seeds.append(sample_seed(seed, j))
        extra: list[np.ndarray] = []
        for s in range(0, len(extra_maps), self.batch_size):
            extra += batch.generator.generate(extra_maps[s:s + self.batch_size],
                                              extra_seeds[s:s + self.batch_size])
        k = self.samples - 1
        return [[im, *extra[i * k:(i + 1) * k]] for i, im in enumerate(batch.images)]

    def update(self, batch: EvalBatch) -> None:
        """Render every map ``K - 1`` more times and add the LPIPS of all pairs."""
        if batch.generator is None:
            raise ValueError("the diversity metric needs a generator (it renders each label "
                             "map with several seeds)")
        pairs = list(itertools.combinations(range(self.samples), 2))
        with torch.inference_mode():
            for renders in self._renders(batch):
                feats = self.lpips.embed(images_to_tensor(renders, self.device))
                a = [f[[p for p, _ in pairs]] for f in feats]
                b = [f[[q for _, q in pairs]] for f in feats]
                self.total += float(self.lpips.distance(a, b).double().sum())
                self.pairs += len(pairs)

    def result(self) -> dict[str, Any]:
        """``{"diversity_lpips", "diversity_pairs"}``."""
        return {"diversity_lpips": self.total / self.pairs if self.pairs else float("nan"),
                "diversity_pairs": self.pairs}

