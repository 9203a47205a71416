"""LGGAN: Local class-specific and Global image-level GAN (Tang et al., CVPR 2020).

The generator has three parts that all start from one label-map encoder:

* **encoder** -- a 7x7 reflect-padded conv and four stride-2 convs (instance norm, ReLU)
  over the one-hot label map (+ instance edges). Its 1/4-resolution feature ``x_encode``
  feeds the local branch and the weight-map branch; its 1/16 output, resized to the SPADE
  latent size, replaces SPADE's ``fc`` input.
* **global generator** -- the SPADE residual generator (spectral-normalized convs,
  batch-norm SPADE), producing ``result_global``.
* **local generator** -- nine reflect-padded residual blocks and two transposed convs give a
  full-resolution feature map shared by all classes; every class (or class group) then
  has its own sub-generator: the shared feature masked by the class' one-hot map, a 7x7
  conv and tanh. The per-class images are fused by a 3x3 conv into ``result_local``.
* **weight-map fusion** -- two transposed convs and a 1x1 conv on ``x_encode`` give a
  2-channel softmax map that mixes ``result_local`` and ``result_global`` per pixel.

The classification head that makes the per-class features discriminative is a training
module (:class:`sisgen.training.lggan.LGGANClassifier`), fed by
:meth:`LGGANGenerator.forward_all`'s pooled class features.

Layer names follow the official implementation (``conv1``..``conv5``, ``head_0``..
``up_3``, ``deconv3_local``, ``deconv9``, ``deconv5_attention``...); the official
``resnet_blocks1..9`` and ``deconv5_0..N`` live here in the lists ``resnet_blocks.0..8``
and ``deconv5.0..N``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..vocab import Vocabulary
from .base import SISGenerator, capture_config, register_architecture
from .blocks import SPADEResBlock, build_spade_trunk, run_spade_trunk
from .layers import NormKind
from .registry import DatasetSpec, register_model

UpsamplingMode = Literal["normal", "more", "most"]
_NUM_UPS = {"normal": 5, "more": 6, "most": 7}

#: Label channels of the official configurations, where they differ from our vocabularies
#: (the official Cityscapes model reads all 35 Cityscapes ids).
_OFFICIAL_LABEL_NC = {"cityscapes": 35}


class ReflectResBlock(nn.Module):
    """Residual block of the local branch: (reflect pad, conv, IN, ReLU, reflect pad, conv, IN).

    Args:
        channels: Input and output channels.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.conv1_norm = nn.InstanceNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.conv2_norm = nn.InstanceNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B,C,h,w] -> [B,C,h,w]."""
        y = F.relu(self.conv1_norm(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        y = self.conv2_norm(self.conv2(F.pad(y, (1, 1, 1, 1), mode="reflect")))
        return x + y


@dataclass
class LGGANOutputs:
    """Everything one LGGAN generator pass produces (what the training losses need).

    Attributes:
        image: The fused image ``[B,3,H,W]``.
        global_image: The SPADE (global) branch's image ``[B,3,H,W]``.
        local_image: The local branch's fused image ``[B,3,H,W]``.
        class_images: The class-specific sub-generators' images ``[B,K,3,H,W]``.
        class_masks: The masks the sub-generators were driven by ``[B,K,H,W]``.
        class_features: Global-average-pooled masked features ``[B,K,ngf]`` (the input of
            the classification head).
        attention: The fusion weight map ``[B,2,H,W]`` (channel 0: local, 1: global).
    """

    image: torch.Tensor
    global_image: torch.Tensor
    local_image: torch.Tensor
    class_images: torch.Tensor
    class_masks: torch.Tensor
    class_features: torch.Tensor
    attention: torch.Tensor


@register_architecture
class LGGANGenerator(SISGenerator):
    """The LGGAN generator: SPADE global branch, class-specific local branch, weight-map fusion.

    Args:
        num_classes: Label ids ``0..num_classes-1`` (one-hot channels, dontcare excluded).
        height: Output height (a multiple of ``2^n`` for the ``n`` upsamplings, and of 16).
        width: Output width (same constraints).
        ngf: Base width: encoder ``ngf..16*ngf``, SPADE blocks ``16*ngf..ngf``, local
            residual blocks ``4*ngf``, shared class feature ``ngf``.
        use_edges: Take the instance-edge map as an extra input channel.
        dontcare: Give ignore pixels (255) their own one-hot channel (after the classes; it
            conditions the encoder and SPADE but drives no local sub-generator).
        norm: Param-free norm inside SPADE (``batch`` as in the paper, or ``instance``).
        spectral: Spectral normalization on the SPADE residual-block convs.
        num_upsampling_layers: ``normal`` (5), ``more`` (6) or ``most`` (7) upsamplings of
            the global generator.
        spade_hidden: Hidden width of SPADE's shared conv.
        n_blocks: Residual blocks of the local branch.
        num_local_classes: Local sub-generators. 0: one per class. ``K < num_classes``:
            one for each of the first ``K-1`` classes and one for the union of the rest
            (the official ADE20K model uses 52: classes 0..50 and "all others").
    """

    @capture_config
    def __init__(
        self,
        num_classes: int,
        height: int = 256,
        width: int = 512,
        ngf: int = 64,
        use_edges: bool = True,
        dontcare: bool = False,
        norm: NormKind = "batch",
        spectral: bool = True,
        num_upsampling_layers: UpsamplingMode = "more",
        spade_hidden: int = 128,
        n_blocks: int = 9,
        num_local_classes: int = 0,
    ):
        super().__init__()
        if num_upsampling_layers not in _NUM_UPS:
            raise ValueError(f"num_upsampling_layers must be one of {sorted(_NUM_UPS)}")
        n_up = _NUM_UPS[num_upsampling_layers]
        if height % 2**n_up or width % 2**n_up or height % 16 or width % 16:
            raise ValueError(f"height and width ({height}x{width}) must be multiples of "
                             f"{max(16, 2**n_up)} for num_upsampling_layers="
                             f"{num_upsampling_layers!r}")
        if num_local_classes < 0 or num_local_classes == 1 or num_local_classes > num_classes:
            raise ValueError(f"num_local_classes must be 0 or in 2..{num_classes}, "
                             f"got {num_local_classes}")
        self._num_classes = num_classes
        self._height, self._width = height, width
        self.use_edges, self.dontcare = use_edges, dontcare
        self.num_upsampling_layers = num_upsampling_layers
        self.sh, self.sw = height // 2**n_up, width // 2**n_up
        self.ngf = ngf
        self.num_local = num_local_classes or num_classes
        nf = ngf
        seg_nc = num_classes + int(dontcare) + int(use_edges)

        # label-map encoder (shared by the three branches)
        self.conv1 = nn.Conv2d(seg_nc, nf, 7)
        self.conv1_norm = nn.InstanceNorm2d(nf)
        self.conv2 = nn.Conv2d(nf, 2 * nf, 3, stride=2, padding=1)
        self.conv2_norm = nn.InstanceNorm2d(2 * nf)
        self.conv3 = nn.Conv2d(2 * nf, 4 * nf, 3, stride=2, padding=1)
        self.conv3_norm = nn.InstanceNorm2d(4 * nf)
        self.conv4 = nn.Conv2d(4 * nf, 8 * nf, 3, stride=2, padding=1)
        self.conv4_norm = nn.InstanceNorm2d(8 * nf)
        self.conv5 = nn.Conv2d(8 * nf, 16 * nf, 3, stride=2, padding=1)
        self.conv5_norm = nn.InstanceNorm2d(16 * nf)

        # global generator (SPADE)
        def block(fin: int, fout: int) -> SPADEResBlock:
            return SPADEResBlock(fin, fout, seg_nc, seg_nc, cond="spade", norm=norm,
                                 spectral=spectral, hidden=spade_hidden)

        final_nc = build_spade_trunk(self, lambda fin, fout, _: block(fin, fout), nf,
                                     num_upsampling_layers)
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1)

        # local generator: shared trunk, then one 7x7 conv per class, fused by deconv9
        self.resnet_blocks = nn.ModuleList(ReflectResBlock(4 * nf) for _ in range(n_blocks))
        for blk in self.resnet_blocks:
            for conv in (blk.conv1, blk.conv2):
                nn.init.normal_(conv.weight, 0.0, 0.02)
                nn.init.zeros_(conv.bias)
        self.deconv3_local = nn.ConvTranspose2d(4 * nf, 2 * nf, 3, 2, 1, output_padding=1)
        self.deconv3_norm_local = nn.InstanceNorm2d(2 * nf)
        self.deconv4_local = nn.ConvTranspose2d(2 * nf, nf, 3, 2, 1, output_padding=1)
        self.deconv4_norm_local = nn.InstanceNorm2d(nf)
        self.deconv5 = nn.ModuleList(nn.Conv2d(nf, 3, 7) for _ in range(self.num_local))
        self.deconv9 = nn.Conv2d(3 * self.num_local, 3, 3, padding=1)

        # weight-map (attention) branch fusing the local and global images
        self.deconv3_attention = nn.ConvTranspose2d(4 * nf, 2 * nf, 3, 2, 1, output_padding=1)
        self.deconv3_norm_attention = nn.InstanceNorm2d(2 * nf)
        self.deconv4_attention = nn.ConvTranspose2d(2 * nf, nf, 3, 2, 1, output_padding=1)
        self.deconv4_norm_attention = nn.InstanceNorm2d(nf)
        self.deconv5_attention = nn.Conv2d(nf, 2, 1)

    # ------------------------------------------------------------------- contract

    @property
    def num_classifier_classes(self) -> int:
        """Classes the training classification head scores.

        One per individual sub-generator; a merged "all other classes" sub-generator is not
        classified (as in the official ADE20K model).
        """
        return self.num_local - 1 if self.num_local < self._num_classes else self.num_local

    # -------------------------------------------------------------------- forward
    def class_masks(self, seg: torch.Tensor) -> torch.Tensor:
        """The masks ``[B,K,H,W]`` driving the K local sub-generators."""
        onehot = seg[:, : self._num_classes]
        if self.num_local == self._num_classes:
            return onehot
        k = self.num_local - 1
        rest = onehot[:, k:].sum(dim=1, keepdim=True)
        return torch.cat([onehot[:, :k], rest], dim=1)

    def _encode(self, seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(seg, (3, 3, 3, 3), mode="reflect")
        x = F.relu(self.conv1_norm(self.conv1(x)))  # [B,ngf,H,W]
        x = F.relu(self.conv2_norm(self.conv2(x)))
        x_encode = F.relu(self.conv3_norm(self.conv3(x)))  # [B,4ngf,H/4,W/4]
        x = F.relu(self.conv4_norm(self.conv4(x_encode)))
        x = F.relu(self.conv5_norm(self.conv5(x)))  # [B,16ngf,H/16,W/16]
        return x_encode, F.interpolate(x, size=(self.sh, self.sw), mode="nearest")

    def _global(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x = run_spade_trunk(self, x, lambda blk, t: blk(t, seg, seg), self.num_upsampling_layers)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))

    def _run(self, labels: torch.Tensor, edges: torch.Tensor | None, extras: bool
             ) -> LGGANOutputs | torch.Tensor:
        seg = self.condition(labels, edges)
        x_encode, x = self._encode(seg)
        result_global = self._global(x, seg)

        # local branch: shared feature, then class-specific sub-generators
        y = x_encode
        for blk in self.resnet_blocks:
            y = blk(y)
        y = F.relu(self.deconv3_norm_local(self.deconv3_local(y)))
        feat = F.relu(self.deconv4_norm_local(self.deconv4_local(y)))  # [B,ngf,H,W]
        masks = self.class_masks(seg)  # [B,K,H,W]
        class_images, pooled = [], []
        for k, conv in enumerate(self.deconv5):
            f_k = feat * masks[:, k : k + 1]
            if extras:
                pooled.append(f_k.mean(dim=(2, 3)))  # [B,ngf]
            class_images.append(torch.tanh(conv(F.pad(f_k, (3, 3, 3, 3), mode="reflect"))))
        result_local = torch.tanh(self.deconv9(torch.cat(class_images, dim=1)))

        # weight maps
        a = F.relu(self.deconv3_norm_attention(self.deconv3_attention(x_encode)))
        a = F.relu(self.deconv4_norm_attention(self.deconv4_attention(a)))
        attention = torch.softmax(self.deconv5_attention(a), dim=1)  # [B,2,H,W]
        image = attention[:, 0:1] * result_local + attention[:, 1:2] * result_global
        if not extras:
            return image
        return LGGANOutputs(
            image=image, global_image=result_global, local_image=result_local,
            class_images=torch.stack(class_images, dim=1), class_masks=masks,
            class_features=torch.stack(pooled, dim=1), attention=attention,
        )

    def forward(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images.

        Args:
            labels: ``[B,H,W]`` integer class ids (255 = ignore).
            edges: ``[B,1,H,W]`` instance-edge map in {0, 1} (when ``use_edges``).
            noise: Unused: LGGAN is deterministic (its ``noise_shape`` is ``()``).

        Returns:
            ``[B,3,H,W]`` images in [-1, 1].
        """
        out = self._run(labels, edges, extras=False)
        assert isinstance(out, torch.Tensor)
        return out

    def forward_all(self, labels: torch.Tensor, edges: torch.Tensor | None = None
                    ) -> LGGANOutputs:
        """Generate images and the intermediate results the LGGAN losses need."""
        out = self._run(labels, edges, extras=True)
        assert isinstance(out, LGGANOutputs)
        return out


@register_model(reference={"cityscapes": (111.12e6, 445.9e9)},
                tiny={"ngf": 4, "spade_hidden": 8, "n_blocks": 2,
                      "num_upsampling_layers": "normal"})
def lggan(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SISGenerator:
    """LGGAN (Tang et al., CVPR 2020), the SPADE-based semantic image synthesis model.

    Cityscapes is the official configuration (35 label channels + instance edges, 6
    upsamplings). ADE20K follows the official ADE20K model's 52 local sub-generators
    (classes 0..50 and "all others"); COCO-Stuff, which has no official LGGAN model, uses
    the same grouping.
    """
    num_classes = _OFFICIAL_LABEL_NC.get(spec.vocabulary, vocab.num_classes)
    ups: UpsamplingMode = "more" if spec.width == 2 * spec.height else "normal"
    args: dict[str, Any] = dict(
        num_classes=num_classes, height=spec.height, width=spec.width, ngf=64,
        use_edges=spec.use_edges, dontcare=spec.dontcare, norm="batch", spectral=True,
        num_upsampling_layers=ups, spade_hidden=128, n_blocks=9,
        num_local_classes=52 if num_classes > 52 else 0,
    )
    args.update(overrides)
    return LGGANGenerator(**args)
