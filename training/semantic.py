"""Semantic consistency: a frozen segmenter's cross-entropy on the generated images.

The generator is asked to make images that a segmenter trained on real photos reads as
their label maps: the term ``seg * CE(segmenter(fake), labels)`` joins the generator loss.
This is the semantic consistency loss of CyCADA (Hoffman et al., ICML 2018) applied to
semantic image synthesis, where the label map is known; OASIS pushes the same way with a
segmenting discriminator. A segmenter that separates the classes by their textures (lane
markings, window grids, foliage) pulls the generator towards drawing those textures rather
than a blurred mean, which is what a downstream segmenter needs to learn from the images.

The segmenter is a TorchScript file with sisgen's metadata sidecar (see
:mod:`sisgen.segmenter`; ``sisgen segmenter train`` writes both): the
sidecar gives the class id of every output channel and the input normalisation. It is
frozen and stays in eval mode whatever mode the objective is put in, so its batch-norm
statistics never move. Label ids the segmenter has no channel for (and 255) are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sisgen.errors import SisgenInputError
from sisgen.labelmap import IGNORE_ID
from sisgen.segmenter import Segmenter
from sisgen.vocab import Vocabulary


class SemanticConsistency(nn.Module):
    """Cross-entropy of a frozen segmenter on generated images against their label maps.

    Args:
        net: The segmenter: ``[B,3,H,W]`` float images -> ``[B,C,h,w]`` logits (resized
            to the label size when ``h,w`` differ).
        class_ids: The class id of every output channel (``len == C``; 255 for a channel
            that is no class). The first channel of a class is its target.
        input_range: ``(low, high)`` the segmenter expects for black..white.
        mean: Per-channel mean subtracted after scaling to ``input_range``.
        std: Per-channel std divided by after subtracting ``mean``.
    """

    def __init__(self, net: nn.Module, class_ids: Sequence[int], *,
                 input_range: Sequence[float] = (0.0, 1.0),
                 mean: Sequence[float] = (0.0, 0.0, 0.0),
                 std: Sequence[float] = (1.0, 1.0, 1.0)):
        super().__init__()
        self.net = net.eval()
        for p in self.net.parameters():  # ScriptModules have no requires_grad_
            p.requires_grad_(False)
        self.channels = len(class_ids)
        lut = torch.full((IGNORE_ID + 1,), IGNORE_ID, dtype=torch.long)
        for channel in range(self.channels - 1, -1, -1):
            c = int(class_ids[channel])
            if 0 <= c < IGNORE_ID:
                lut[c] = channel
        low, high = float(input_range[0]), float(input_range[1])
        scale = torch.full((1, 3, 1, 1), (high - low) / 2.0)
        std_t = torch.tensor([float(s) for s in std]).view(1, 3, 1, 1)
        if torch.any(std_t == 0):
            raise ValueError("std must be nonzero")
        # [-1, 1] -> [low, high] -> (x - mean) / std, as one affine map per channel
        self.register_buffer("lut", lut, persistent=False)
        self.register_buffer("gain", scale / std_t, persistent=False)
        self.register_buffer("offset", (scale + low - torch.tensor(
            [float(m) for m in mean]).view(1, 3, 1, 1)) / std_t, persistent=False)

    def train(self, mode: bool = True) -> SemanticConsistency:
        """Set the mode of this module; the segmenter itself always stays in eval mode."""
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, fake: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the labelled pixels.

        Args:
            fake: Generated images ``[B,3,H,W]`` in [-1, 1].
            labels: Class ids ``[B,H,W]`` (255: ignore).

        Returns:
            A scalar; 0 when no pixel has a class the segmenter knows.
        """
        logits = self.net(fake * self.gain + self.offset)
        if logits.shape[1] != self.channels:
            raise SisgenInputError(f"the semantic segmenter returns {logits.shape[1]} channels "
                                   f"but its metadata lists {self.channels} class ids")
        if logits.shape[-2:] != labels.shape[-2:]:
            logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear",
                                   align_corners=False)
        target = self.lut[labels.long().clamp(0, IGNORE_ID)]
        if not torch.any(target != IGNORE_ID):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), target, ignore_index=IGNORE_ID)


def load_semantic(path: str | os.PathLike,
                  vocabulary: Vocabulary | None = None) -> SemanticConsistency:
    """The semantic consistency loss of a TorchScript segmenter file and its sidecar.

    Args:
        path: The TorchScript file; its sidecar ``<path>.json`` must list the class ids.
        vocabulary: The training data's vocabulary; when given, the segmenter's classes
            must mean the same (:meth:`sisgen.segmenter.Segmenter.check_vocabulary`).

    Raises:
        SisgenInputError: No such file, no metadata sidecar (the class of every channel
            must be known), a malformed sidecar, an ONNX or unloadable file, or classes
            that do not match ``vocabulary`` (each names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise SisgenInputError("segmenter_weights file not found", p)
    if p.suffix.lower() == ".onnx":
        raise SisgenInputError("the semantic consistency loss needs a TorchScript segmenter "
                               "(gradients flow through it), not ONNX", p)
    seg = Segmenter(p)
    if seg.metadata is None:
        raise SisgenInputError("the semantic consistency loss needs the segmenter's metadata "
                               f"sidecar {p.name}.json with its class_ids (sisgen segmenter "
                               "train writes it)", p)
    if vocabulary is not None:
        seg.check_vocabulary(vocabulary, "the generator's training data")
    return SemanticConsistency(seg.module, list(seg.class_map), input_range=seg.input_range,
                               mean=seg.mean.ravel().tolist(), std=seg.std.ravel().tolist())
