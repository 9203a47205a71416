"""pix2pixHD (Wang et al., CVPR 2018): the global generator and its local enhancers.

The label map enters once, at the input: one-hot classes (padded to the official label
channel count), then the instance-edge channel, then -- when ``feat_num > 0`` -- the
per-instance style features of the instance-wise encoder
(:mod:`sisgen.models.pix2pixhd_encoder`). There is no noise: the generator is
deterministic; its one source of variety is the ``features`` input, which at test time is
built by sampling k-means cluster centres per object
(:func:`sisgen.models.style_features.sample_feature_map`).

* ``n_local_enhancers == 0``: the *global* generator ``G1`` (``netG=global``): a 7x7 conv,
  ``n_downsample_global`` stride-2 convs, ``n_blocks_global`` residual blocks, as many
  transposed convs, a 7x7 conv and tanh. Instance norm, ReLU, reflection padding.
* ``n_local_enhancers >= 1``: ``netG=local``: the global generator (width
  ``ngf * 2**n``, its last conv dropped) runs on the input average-pooled ``n`` times; each
  enhancer ``G2`` downsamples its own, finer input once, adds the coarser result, runs
  ``n_blocks_local`` residual blocks and upsamples.

Module names follow the official implementation (``model.<i>``, ``model<n>_1``,
``model<n>_2``, ``conv_block``), so converting an official checkpoint is an identity
mapping of the state dict.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..vocab import Vocabulary
from .base import SISGenerator, capture_config, register_architecture
from .registry import DatasetSpec, register_model

P2PNorm = Literal["instance", "batch"]
PaddingType = Literal["reflect", "replicate", "zero"]


def p2p_norm(kind: P2PNorm, channels: int) -> nn.Module:
    """pix2pixHD's norm layer: instance norm without affine, or batch norm with affine."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    raise ValueError(f"unknown norm {kind!r} (instance, batch)")


def _pad(kind: PaddingType, size: int) -> list[nn.Module]:
    """The explicit padding module in front of a conv (none for zero padding)."""
    if kind == "reflect":
        return [nn.ReflectionPad2d(size)]
    if kind == "replicate":
        return [nn.ReplicationPad2d(size)]
    if kind == "zero":
        return []
    raise ValueError(f"unknown padding {kind!r} (reflect, replicate, zero)")


def p2p_init_weights(module: nn.Module) -> None:
    """pix2pixHD's initialisation: conv weights N(0, 0.02), batch-norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ResnetBlock(nn.Module):
    """``x + (pad, conv3x3, norm, ReLU, pad, conv3x3, norm)(x)``.

    Args:
        dim: Channels in and out.
        norm: ``instance`` or ``batch``.
        padding_type: ``reflect`` (the paper), ``replicate`` or ``zero``.
    """

    def __init__(self, dim: int, norm: P2PNorm = "instance", padding_type: PaddingType = "reflect"):
        super().__init__()
        p = 1 if padding_type == "zero" else 0
        layers: list[nn.Module] = [
            *_pad(padding_type, 1), nn.Conv2d(dim, dim, 3, padding=p), p2p_norm(norm, dim),
            nn.ReLU(),
            *_pad(padding_type, 1), nn.Conv2d(dim, dim, 3, padding=p), p2p_norm(norm, dim),
        ]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B,dim,h,w]`` -> ``[B,dim,h,w]``."""
        return x + self.conv_block(x)


def global_generator_layers(input_nc: int, output_nc: int, ngf: int, n_downsampling: int,
                            n_blocks: int, norm: P2PNorm, padding_type: PaddingType
                            ) -> list[nn.Module]:
    """The layer list of pix2pixHD's ``GlobalGenerator`` (its ``model`` Sequential).

    The last three entries are the output head (pad, 7x7 conv, tanh), which the local
    enhancer drops.
    """
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7),
                               p2p_norm(norm, ngf), nn.ReLU()]
    for i in range(n_downsampling):
        c = ngf * 2**i
        layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), p2p_norm(norm, 2 * c), nn.ReLU()]
    c = ngf * 2**n_downsampling
    layers += [ResnetBlock(c, norm, padding_type) for _ in range(n_blocks)]
    for i in range(n_downsampling):
        c = ngf * 2 ** (n_downsampling - i)
        layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                   p2p_norm(norm, c // 2), nn.ReLU()]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
    return layers


@register_architecture
class Pix2PixHDGenerator(SISGenerator):
    """pix2pixHD's coarse-to-fine generator: global generator plus optional local enhancers.

    Inputs (see :attr:`input_names`): ``labels`` ``[B,H,W]``, ``edges`` ``[B,1,H,W]`` when
    ``use_edges``, no noise, and ``features`` ``[B,feat_num,H,W]`` when ``feat_num > 0``
    (per-instance constant style vectors from the instance-wise encoder, or sampled from its
    clusters).

    Args:
        num_classes: Label ids ``0..num_classes-1``.
        height: Output height (a multiple of ``2**(n_downsample_global+n_local_enhancers)``).
        width: Output width (same constraint).
        ngf: Width of the outermost level (the global generator has
            ``ngf * 2**n_local_enhancers``).
        n_downsample_global: Stride-2 convs of the global generator (4 in the paper).
        n_blocks_global: Residual blocks of the global generator (9).
        n_local_enhancers: Local enhancers on top of the global generator (0: global only).
        n_blocks_local: Residual blocks per local enhancer (3).
        norm: ``instance`` (the paper) or ``batch``.
        use_edges: Take the instance-edge map as an extra input channel.
        dontcare: Give ignore pixels (255) their own one-hot channel (after the classes).
        label_nc: One-hot channels of the official configuration when it has more than
            ``num_classes + dontcare`` (Cityscapes: 35 label ids); the extra channels are
            always zero. ``None``: ``num_classes + dontcare``.
        feat_num: Channels of the instance-wise feature input (0: none; 3 in the paper).
        padding_type: Padding of the residual blocks.
    """

    #: With ``feat_num > 0`` an instance's :attr:`input_names` gain ``"features"``.
    input_names: tuple[str, ...] = ("labels", "edges", "noise")

    @capture_config
    def __init__(
        self,
        num_classes: int,
        height: int = 256,
        width: int = 512,
        ngf: int = 64,
        n_downsample_global: int = 4,
        n_blocks_global: int = 9,
        n_local_enhancers: int = 0,
        n_blocks_local: int = 3,
        norm: P2PNorm = "instance",
        use_edges: bool = True,
        dontcare: bool = False,
        label_nc: int | None = None,
        feat_num: int = 0,
        padding_type: PaddingType = "reflect",
    ):
        super().__init__()
        onehot_nc = num_classes + int(dontcare)
        if label_nc is not None and label_nc < onehot_nc:
            raise ValueError(f"label_nc={label_nc} < num_classes + dontcare = {onehot_nc}")
        factor = 2 ** (n_downsample_global + n_local_enhancers)
        if height % factor or width % factor:
            raise ValueError(f"height and width ({height}x{width}) must be multiples of "
                             f"2^(n_downsample_global + n_local_enhancers) = {factor}")
        if n_local_enhancers < 0 or feat_num < 0:
            raise ValueError("n_local_enhancers and feat_num must be >= 0")
        self._num_classes = num_classes
        self._height, self._width = height, width
        self.use_edges, self.dontcare = use_edges, dontcare
        self.label_nc = onehot_nc if label_nc is None else label_nc
        self.feat_num = feat_num
        self.n_local_enhancers = n_local_enhancers
        if feat_num:
            self.input_names = (*type(self).input_names, "features")
        input_nc = self.label_nc + int(use_edges) + feat_num

        ngf_global = ngf * 2**n_local_enhancers
        layers = global_generator_layers(input_nc, 3, ngf_global, n_downsample_global,
                                         n_blocks_global, norm, padding_type)
        if n_local_enhancers:
            layers = layers[:-3]  # the enhancers replace the global output head
        self.model = nn.Sequential(*layers)
        for n in range(1, n_local_enhancers + 1):
            c = ngf * 2 ** (n_local_enhancers - n)
            down = nn.Sequential(
                nn.ReflectionPad2d(3), nn.Conv2d(input_nc, c, 7), p2p_norm(norm, c), nn.ReLU(),
                nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), p2p_norm(norm, 2 * c), nn.ReLU(),
            )
            up: list[nn.Module] = [ResnetBlock(2 * c, norm, padding_type)
                                   for _ in range(n_blocks_local)]
            up += [nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1),
                   p2p_norm(norm, c), nn.ReLU()]
            if n == n_local_enhancers:
                up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
            setattr(self, f"model{n}_1", down)
            setattr(self, f"model{n}_2", nn.Sequential(*up))
        if n_local_enhancers:
            self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        p2p_init_weights(self)

    # ------------------------------------------------------------------- contract

    def dynamic_hw_multiple(self) -> int | None:
        """``2^(n_downsample_global + n_local_enhancers)``: pix2pixHD is fully convolutional."""
        return 2 ** (self.config["n_downsample_global"] + self.n_local_enhancers)

    def noise_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        """``()``: pix2pixHD takes no noise (style comes through ``features``)."""
        return ()

    def example_inputs(self, batch_size: int = 1, seed: int = 0
                       ) -> tuple[torch.Tensor | None, ...]:
        """The base inputs plus, when ``feat_num > 0``, per-class constant ``features``."""
        labels, edges, noise = super().example_inputs(batch_size, seed)
        if not self.feat_num:
            return labels, edges, noise
        g = torch.Generator().manual_seed(seed + 7919)
        table = torch.rand(batch_size, self.feat_num, self._num_classes, generator=g) * 2 - 1
        idx = labels.clamp(0, self._num_classes - 1).view(batch_size, 1, -1)  # [B,1,HW]
        idx = idx.expand(-1, self.feat_num, -1)
        features = table.gather(2, idx).view(batch_size, self.feat_num, *labels.shape[-2:])
        return labels, edges, noise, features

    # -------------------------------------------------------------------- forward
    def onehot(self, labels: torch.Tensor) -> torch.Tensor:
        """One-hot classes (+ dontcare), padded with always-zero channels to ``label_nc``.

        With the edge channel (:meth:`condition`) this is the official ``input_label``,
        which the discriminator reads too (:mod:`sisgen.training.pix2pixhd`):
        ``[B,label_nc(+1),H,W]``.
        """
        seg = super().onehot(labels)
        extra = self.label_nc - seg.shape[1]
        if extra:
            seg = F.pad(seg, (0, 0, 0, 0, 0, extra))  # always-zero official channels
        return seg

    def forward(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, features: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Generate images.

        Args:
            labels: ``[B,H,W]`` integer class ids (255 = ignore).
            edges: ``[B,1,H,W]`` instance-edge map in {0, 1} (when ``use_edges``).
            noise: Unused (pix2pixHD has no noise input); must be ``None``.
            features: ``[B,feat_num,H,W]`` instance-wise features (when ``feat_num > 0``).

        Returns:
            ``[B,3,H,W]`` images in [-1, 1].
        """
        if noise is not None:
            raise ValueError("pix2pixHD takes no noise; pass style through `features`")
        x = self.condition(labels, edges)
        if self.feat_num:
            want = (self.feat_num, *labels.shape[-2:])
            if features is None or tuple(features.shape[1:]) != want:
                raise ValueError(f"features [B,{want[0]},{want[1]},{want[2]}] required, got "
                                 f"{None if features is None else tuple(features.shape)}")
            x = torch.cat([x, features.to(x.dtype)], dim=1)
        if not self.n_local_enhancers:
            return self.model(x)
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(self.downsample(pyramid[-1]))
        out = self.model(pyramid[-1])
        for n in range(1, self.n_local_enhancers + 1):
            down = getattr(self, f"model{n}_1")
            up = getattr(self, f"model{n}_2")
            out = up(down(pyramid[self.n_local_enhancers - n]) + out)
        return out


# ---------------------------------------------------------------------- registry
#: Official ``label_nc`` where it exceeds our one-hot channels: Cityscapes has label ids
#: 0..34 (our vocabulary 0..33). ADE20K (151) and COCO-Stuff (182 + dontcare = 183) match.
_OFFICIAL_LABEL_NC = {"cityscapes": 35}


def _pix2pixhd(spec: DatasetSpec, vocab: Vocabulary, local: bool, **overrides: Any
               ) -> SISGenerator:
    args: dict[str, Any] = dict(
        num_classes=vocab.num_classes, height=spec.height, width=spec.width,
        ngf=32 if local else 64, n_downsample_global=4, n_blocks_global=9,
        n_local_enhancers=1 if local else 0, n_blocks_local=3, norm="instance",
        use_edges=spec.use_edges, dontcare=spec.dontcare,
        label_nc=_OFFICIAL_LABEL_NC.get(spec.vocabulary), feat_num=0,
    )
    args.update(overrides)
    return Pix2PixHDGenerator(**args)


@register_model(
    reference={"cityscapes": (182.5e6, 122.3e9), "ade20k": (182.9e6, 84.8e9),
               "coco_stuff": (183.0e6, 91.6e9)},
    tiny={"ngf": 4, "n_downsample_global": 2, "n_blocks_global": 2},
)
def pix2pixhd(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SISGenerator:
    """pix2pixHD global generator (``--netG global``, the 512px / SPADE-comparison setup)."""
    return _pix2pixhd(spec, vocab, local=False, **overrides)


@register_model(
    tiny={"ngf": 4, "n_downsample_global": 2, "n_blocks_global": 2, "n_blocks_local": 1},
)
def pix2pixhd_local(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SISGenerator:
    """pix2pixHD with one local enhancer (``--netG local --ngf 32``, the 1024px setup)."""
    return _pix2pixhd(spec, vocab, local=True, **overrides)
