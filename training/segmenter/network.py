"""A compact U-Net-style segmentation network for CPU training (:class:`SegNet`).

Layout for ``depth=4`` and ``width=w`` (sizes relative to the input)::

    input [B,3,H,W] in 0..1 -> (x - 0.5) / 0.25              normalisation inside the net
    encoder  stem conv/2  3 -> w                       1/2
             conv/2 + conv   w -> 2w                   1/4    conv-BN-ReLU blocks,
             conv/2 + conv  2w -> 4w                   1/8    "conv/2" strided
             conv/2 + conv  4w -> 4w                   1/16
    decoder  up x2, concat skip, conv  8w -> 2w        1/8    up: nearest-neighbour
             up x2, concat skip, conv  4w -> 2w        1/4
             up x2, concat skip, conv1x1 3w -> w, conv 1/2
    head     conv1x1 w -> 8, bilinear x2 to the input size, plus conv3x3 of the image
             (3 -> 8), BN-ReLU, conv1x1 8 -> num_classes   -> logits [B,C,H,W]

Every 3x3 convolution runs at half resolution or less, except the image branch of the
head: three input channels, so it is cheap, and it gives the full-size prediction the
photo's edges, which keeps one-pixel-wide classes (poles, signs) from being blurred away
by the upsampling. Nearest-neighbour upsampling in the decoder costs a fraction of
bilinear on the CPU (its backward pass above all); the convolution after it smooths.

The input is a float image in ``[0, 1]``; the fixed normalisation is part of the graph, so
an exported file takes ``[0, 1]`` images directly (its sidecar records ``mean`` 0 and
``std`` 1). Any ``H`` and ``W`` work (each upsampling matches its skip's size); multiples
of ``2 ** depth`` keep the stages aligned.

Export: scriptable and traceable, and exportable to ONNX with a dynamic batch axis (see
:mod:`sisgen.training.segmenter.export`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SegNet", "conv_bn_relu"]

#: The fixed input normalisation: ``(x - MEAN) / STD`` on ``[0, 1]`` images.
MEAN, STD = 0.5, 0.25
#: Channels of the full-size head.
HEAD = 8


def conv_bn_relu(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    """A convolution (no bias), batch norm and ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Up(nn.Module):
    """Nearest x2 upsampling to the skip's size, concatenation, convolution(s)."""

    def __init__(self, cin: int, cskip: int, cout: int, fuse_1x1: bool = False):
        super().__init__()
        if fuse_1x1:
            self.conv = nn.Sequential(conv_bn_relu(cin + cskip, cout, kernel=1),
                                      conv_bn_relu(cout, cout))
        else:
            self.conv = conv_bn_relu(cin + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.conv(torch.cat([x, skip], 1))


class SegNet(nn.Module):
    """Compact U-Net: float images ``[B,3,H,W]`` in 0..1 -> logits ``[B,C,H,W]``.

    Args:
        num_classes: Output channels.
        width: Channels at half resolution; encoder stage ``i`` has ``width * 2 **
            min(i, 2)`` channels, the decoder at most ``2 * width``.
        depth: Resolution stages (the coarsest is ``1 / 2 ** depth`` of the input).
        class_ids: The class id of each output channel (default ``0..num_classes-1``);
            recorded for evaluation and export, not used by the forward pass.

    Raises:
        ValueError: A non-positive size argument, or ``class_ids`` of another length.
    """

    def __init__(self, num_classes: int, *, width: int = 16, depth: int = 4,
                 class_ids: Sequence[int] | None = None):
        super().__init__()
        if num_classes < 1 or width < 1 or depth < 1:
            raise ValueError(f"SegNet needs num_classes, width and depth >= 1; got "
                             f"{num_classes}, {width}, {depth}")
        ids = list(range(num_classes)) if class_ids is None else [int(c) for c in class_ids]
        if len(ids) != num_classes:
            raise ValueError(f"class_ids has {len(ids)} entries for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.width = int(width)
        self.depth = int(depth)
        self.class_ids = ids
        self.mean, self.std = MEAN, STD
        enc = [width * 2 ** min(i, 2) for i in range(depth)]
        dec = [width * min(2, 2 ** i) for i in range(depth)]
        self.encoder = nn.ModuleList([conv_bn_relu(3, enc[0], 2)] + [
            nn.Sequential(conv_bn_relu(enc[i - 1], enc[i], 2), conv_bn_relu(enc[i], enc[i]))
            for i in range(1, depth)])
        # decoder[j] brings level depth-1-j up to level depth-2-j
        self.decoder = nn.ModuleList([
            _Up(enc[i] if i == depth - 1 else dec[i], enc[i - 1], dec[i - 1], fuse_1x1=i == 1)
            for i in range(depth - 1, 0, -1)])
        self.project = nn.Conv2d(dec[0], HEAD, 1, bias=False)
        self.image = nn.Conv2d(3, HEAD, 3, 1, 1, bias=False)
        self.head_norm = nn.BatchNorm2d(HEAD)
        self.classifier = nn.Conv2d(HEAD, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B,C,H,W]`` of images ``[B,3,H,W]`` in ``[0, 1]``."""
        x = (x - self.mean) / self.std
        skips: list[torch.Tensor] = []
        y = x
        for stage in self.encoder:
            y = stage(y)
            skips.append(y)
        for j, up in enumerate(self.decoder):
            y = up(y, skips[len(skips) - 2 - j])
        y = F.interpolate(self.project(y), size=x.shape[-2:], mode="bilinear",
                          align_corners=False)
        return self.classifier(F.relu(self.head_norm(y + self.image(x))))

    def extra_repr(self) -> str:
        """The constructor arguments, for ``repr``."""
        return f"num_classes={self.num_classes}, width={self.width}, depth={self.depth}"
