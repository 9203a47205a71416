"""The FID Inception-v3: TensorFlow's 2015-12-05 Inception graph as a torch module.

FID is only comparable across papers when it is computed with the network of the original
TensorFlow implementation (Heusel et al.), not torchvision's ImageNet Inception: the FID
graph has 1008 classes, its average pools ignore the zero padding, and the last block
max-pools. pytorch-fid and torch-fidelity both ship that graph converted to torch
(``pt_inception-2015-12-05-6726825d.pth`` and
``weights-inception-2015-12-05-6726825d.pth``); both files use torchvision's
``Inception3`` parameter names (``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch5x5_1.bn.running_mean``, ..., ``fc.weight`` ``[1008, 2048]``, no
``AuxLogits``), which is the layout of :class:`FIDInceptionV3`, so either file loads
as is. Nothing is downloaded: the weights always come from a local path.

Features are the 2048-d output of the final average pool ("pool3"). Two preprocessing
protocols reproduce the two reference implementations:

* ``"pytorch-fid"``: images scaled to [0, 1], resized to 299×299 with torch's bilinear
  interpolation (``align_corners=False``), then mapped to [-1, 1] (``2x - 1``);
* ``"torch-fidelity"``: uint8 values as floats, resized with TensorFlow 1.x's bilinear
  resize (source coordinate ``i * in / out``, no half-pixel offset, as the original TF
  FID code did), then ``(x - 128) / 128``. torchmetrics' FID uses torch-fidelity's
  extractor, so this protocol matches it too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sisgen.errors import SisgenInputError

INPUT_SIZE = 299
FEATURE_DIM = 2048
PROTOCOLS = ("pytorch-fid", "torch-fidelity")
#: File names of the public weights (either loads); named in error messages.
WEIGHT_FILES = ("pt_inception-2015-12-05-6726825d.pth",
                "weights-inception-2015-12-05-6726825d.pth")

_Size = int | tuple[int, int]


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU: Inception's unit layer."""

    def __init__(self, c_in: int, c_out: int, kernel: _Size, stride: int = 1,
                 padding: _Size = 0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Conv -> BN -> ReLU."""
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3×3 stride-1 average pool that ignores padded zeros (TensorFlow's behaviour)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _Block(nn.Module):
    """An Inception block: named branches of :class:`BasicConv2d` chains, concatenated.

    ``branches`` lists, per output branch, the names of the layers applied in order; a
    tuple of names at the end of a chain means those layers are applied in parallel to
    the chain's output and concatenated (Inception-E's split 1×3 / 3×1 convolutions).
    ``"avgpool"``/``"maxpool"`` at the start of a chain pool the block input first (3×3,
    stride 1), ``"maxpool_s2"`` alone is the stride-2 max-pool branch.
    """

    def __init__(self, layers: Mapping[str, tuple[int, int, _Size, int, _Size]],
                 branches: Sequence[Sequence[str | tuple[str, ...]]]):
        super().__init__()
        for name, (c_in, c_out, k, s, p) in layers.items():
            self.add_module(name, BasicConv2d(c_in, c_out, k, s, p))
        self.branches = [list(b) for b in branches]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run every branch on ``x`` and concatenate along channels."""
        outs = []
        for chain in self.branches:
            y = x
            for step in chain:
                if step == "avgpool":
                    y = _avg_pool(y)
                elif step == "maxpool":
                    y = F.max_pool2d(y, 3, stride=1, padding=1)
                elif step == "maxpool_s2":
                    y = F.max_pool2d(y, 3, stride=2)
                elif isinstance(step, tuple):
                    y = torch.cat([getattr(self, n)(y) for n in step], 1)
                else:
                    y = getattr(self, step)(y)
            outs.append(y)
        return torch.cat(outs, 1)


def _block_a(c_in: int, pool_features: int) -> _Block:
    return _Block({
        "branch1x1": (c_in, 64, 1, 1, 0),
        "branch5x5_1": (c_in, 48, 1, 1, 0), "branch5x5_2": (48, 64, 5, 1, 2),
        "branch3x3dbl_1": (c_in, 64, 1, 1, 0), "branch3x3dbl_2": (64, 96, 3, 1, 1),
        "branch3x3dbl_3": (96, 96, 3, 1, 1),
        "branch_pool": (c_in, pool_features, 1, 1, 0),
    }, [["branch1x1"], ["branch5x5_1", "branch5x5_2"],
        ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], ["avgpool", "branch_pool"]])


def _block_b(c_in: int) -> _Block:
    return _Block({
        "branch3x3": (c_in, 384, 3, 2, 0),
        "branch3x3dbl_1": (c_in, 64, 1, 1, 0), "branch3x3dbl_2": (64, 96, 3, 1, 1),
        "branch3x3dbl_3": (96, 96, 3, 2, 0),
    }, [["branch3x3"], ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], ["maxpool_s2"]])


def _block_c(c_in: int, c7: int) -> _Block:
    row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
    return _Block({
        "branch1x1": (c_in, 192, 1, 1, 0),
        "branch7x7_1": (c_in, c7, 1, 1, 0),
        "branch7x7_2": (c7, c7, row[0], 1, row[1]),
        "branch7x7_3": (c7, 192, col[0], 1, col[1]),
        "branch7x7dbl_1": (c_in, c7, 1, 1, 0),
        "branch7x7dbl_2": (c7, c7, col[0], 1, col[1]),
        "branch7x7dbl_3": (c7, c7, row[0], 1, row[1]),
        "branch7x7dbl_4": (c7, c7, col[0], 1, col[1]),
        "branch7x7dbl_5": (c7, 192, row[0], 1, row[1]),
        "branch_pool": (c_in, 192, 1, 1, 0),
    }, [["branch1x1"], ["branch7x7_1", "branch7x7_2", "branch7x7_3"],
        [f"branch7x7dbl_{i}" for i in range(1, 6)], ["avgpool", "branch_pool"]])


def _block_d(c_in: int) -> _Block:
    return _Block({
        "branch3x3_1": (c_in, 192, 1, 1, 0), "branch3x3_2": (192, 320, 3, 2, 0),
        "branch7x7x3_1": (c_in, 192, 1, 1, 0),
        "branch7x7x3_2": (192, 192, (1, 7), 1, (0, 3)),
        "branch7x7x3_3": (192, 192, (7, 1), 1, (3, 0)),
        "branch7x7x3_4": (192, 192, 3, 2, 0),
    }, [["branch3x3_1", "branch3x3_2"], [f"branch7x7x3_{i}" for i in range(1, 5)],
        ["maxpool_s2"]])


def _block_e(c_in: int, pool: str) -> _Block:
    return _Block({
        "branch1x1": (c_in, 320, 1, 1, 0),
        "branch3x3_1": (c_in, 384, 1, 1, 0),
        "branch3x3_2a": (384, 384, (1, 3), 1, (0, 1)),
        "branch3x3_2b": (384, 384, (3, 1), 1, (1, 0)),
        "branch3x3dbl_1": (c_in, 448, 1, 1, 0), "branch3x3dbl_2": (448, 384, 3, 1, 1),
        "branch3x3dbl_3a": (384, 384, (1, 3), 1, (0, 1)),
        "branch3x3dbl_3b": (384, 384, (3, 1), 1, (1, 0)),
        "branch_pool": (c_in, 192, 1, 1, 0),
    }, [["branch1x1"], ["branch3x3_1", ("branch3x3_2a", "branch3x3_2b")],
        ["branch3x3dbl_1", "branch3x3dbl_2", ("branch3x3dbl_3a", "branch3x3dbl_3b")],
        [pool, "branch_pool"]])


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1.x ``resize_bilinear`` (``align_corners=False``, no half-pixel centres).

    Output pixel ``i`` samples the input at ``i * in / out``; the neighbour below is
    clamped to the last row/column.
    """
    out = x
    for dim, n_out in ((2, size[0]), (3, size[1])):
        n_in = out.shape[dim]
        if n_in == n_out:
            continue
        src = torch.arange(n_out, dtype=torch.float64, device=x.device) * (n_in / n_out)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        frac = (src - lo.to(torch.float64)).to(x.dtype)
        shape = [1, 1, 1, 1]
        shape[dim] = n_out
        frac = frac.view(shape)
        a, b = out.index_select(dim, lo), out.index_select(dim, hi)
        out = a + (b - a) * frac
    return out


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3 feature extractor (random weights until loaded).

    Args:
        protocol: ``"pytorch-fid"`` or ``"torch-fidelity"`` preprocessing (module docstring).
        resize: Resize inputs to 299×299 (turn off only for tests or pre-resized input).

    Call it on uint8 images ``[B,3,H,W]`` (0..255) or float images in [0, 1]; it returns
    float32 pool3 features ``[B, 2048]``.
    """

    def __init__(self, protocol: str = "pytorch-fid", resize: bool = True):
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self.protocol = protocol
        self.resize = resize
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = _block_a(192, 32)
        self.Mixed_5c = _block_a(256, 64)
        self.Mixed_5d = _block_a(288, 64)
        self.Mixed_6a = _block_b(288)
        self.Mixed_6b = _block_c(768, 128)
        self.Mixed_6c = _block_c(768, 160)
        self.Mixed_6d = _block_c(768, 160)
        self.Mixed_6e = _block_c(768, 192)
        self.Mixed_7a = _block_d(768)
        self.Mixed_7b = _block_e(1280, "avgpool")
        self.Mixed_7c = _block_e(2048, "maxpool")
        self.fc = nn.Linear(FEATURE_DIM, 1008)  # unused for features; part of the weight file
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> the network input in [-1, 1] at 299×299, per :attr:`protocol`."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be B×3×H×W, got {tuple(images.shape)}")
        x = images.float()
        size = (INPUT_SIZE, INPUT_SIZE)
        if self.protocol == "pytorch-fid":
            if images.dtype == torch.uint8:
                x = x / 255.0
            if self.resize and tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            return 2.0 * x - 1.0
        if images.dtype != torch.uint8:
            x = x * 255.0
        if self.resize:
            x = resize_bilinear_tf1(x, size)
        return (x - 128.0) / 128.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed input ``[B,3,299,299]`` -> pool3 features ``[B, 2048]``."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B,3,H,W]`` (or float in [0, 1]) -> float32 features ``[B, 2048]``."""
        return self.features(self.preprocess(images)).float()


def load_inception(path: str | os.PathLike, protocol: str = "pytorch-fid",
                   device: str | torch.device = "cpu") -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` and load the FID weights from a local file.

    Args:
        path: ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid) or
            ``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity). Read with
            ``torch.load(weights_only=True)``: no pickled code runs.
        protocol: Preprocessing protocol (see the module docstring).
        device: Where the network runs.

    Raises:
        SisgenInputError: The file is missing, unreadable, or not the FID Inception.
    """
    path = Path(path)
    if not path.is_file():
        raise SisgenInputError(
            f"no such Inception weights file (FID needs {WEIGHT_FILES[0]} from pytorch-fid's "
            f"releases or torch-fidelity's {WEIGHT_FILES[1]}; nothing is downloaded)", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several unrelated types for bad files
        raise SisgenInputError(f"cannot read Inception weights ({e})", path) from e
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise SisgenInputError("Inception weights file holds no state dict", path)
    net = FIDInceptionV3(protocol)
    own = net.state_dict()
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    bad_shape = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad_shape:
        detail = "; ".join(f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                           for what, keys in (("missing", missing), ("unexpected", unexpected),
                                              ("wrong shape", bad_shape)) if keys)
        raise SisgenInputError(f"not the FID Inception-v3 weights ({detail})", path)
    net.load_state_dict(state, strict=False)
    return net.to(device)
