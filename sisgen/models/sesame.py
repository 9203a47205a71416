"""SESAME: semantic editing of a masked region of a photo (Ntavelis et al., ECCV 2020).

SESAME adds, manipulates or erases objects: the user gives a photo, a mask of the region to
re-synthesize (the *hole*) and the label map wanted there. The generator is an
encoder-decoder:

* the encoder reads ``concat(masked photo, semantics, hole)`` -- a reflection-padded 7x7
  conv, two strided 3x3 convs (instance norm, ReLU) and four residual blocks (the last three
  dilated);
* the decoder is a stack of SPADE residual blocks (four dilated ones at the bottleneck, one
  plain, then one per upsampling) whose modulation is predicted from the semantics plus the
  hole channel, followed by a 3x3 conv and tanh;
* the result replaces the photo inside the hole only (``composite``), so pixels outside the
  mask are returned untouched.

Without a photo and a mask the whole frame is the hole and SESAME works as a plain
label-to-image generator. The discriminator and losses are in :mod:`sisgen.training.sesame`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..vocab import Vocabulary
from .base import SISGenerator, capture_config, register_architecture
from .layers import SPADE, NormKind, maybe_sn
from .registry import DatasetSpec, register_model


def _conv_in(cin: int, cout: int, kernel_size: int, stride: int = 1, padding: int = 0,
             dilation: int = 1) -> nn.Sequential:
    """A bias-free conv followed by a parameter-free instance norm (``[conv, IN]``)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, dilation=dilation,
                  bias=False),
        nn.InstanceNorm2d(cout, affine=False),
    )


class ResnetBlock(nn.Module):
    """The pix2pixHD residual block SESAME's encoder uses: reflection pad, conv, IN, ReLU, x2.

    Args:
        dim: Channels in and out.
        kernel_size: Kernel of both convs.
        dilation: Dilation of both convs (the reflection padding keeps the size).
    """

    def __init__(self, dim: int, kernel_size: int = 3, dilation: int = 1):
        super().__init__()
        pad = (kernel_size - 1) // 2 + (dilation - 1)
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(pad),
            _conv_in(dim, dim, kernel_size, dilation=dilation),
            nn.ReLU(),
            nn.ReflectionPad2d(pad),
            _conv_in(dim, dim, kernel_size, dilation=dilation),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B,dim,h,w] -> [B,dim,h,w] (identity shortcut, no output activation)."""
        return x + self.conv_block(x)


class SESAMEResBlock(nn.Module):
    """SPADE residual block with optionally dilated 3x3 convs.

    ``(SPADE, LeakyReLU 0.2, conv)`` twice plus a shortcut that is learned (SPADE + bias-free
    1x1 conv) when the width changes; spectral norm on every conv.

    Args:
        fin: Input channels.
        fout: Output channels.
        seg_channels: Channels of the conditioning map (semantics + hole).
        dilation: Dilation (and padding) of the two 3x3 convs.
        norm: Param-free norm inside SPADE.
        spectral: Spectral-normalize the convs.
        hidden: SPADE hidden width.
    """

    def __init__(self, fin: int, fout: int, seg_channels: int, dilation: int = 1,
                 norm: NormKind = "batch", spectral: bool = True, hidden: int = 128):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = maybe_sn(nn.Conv2d(fin, fmid, 3, padding=dilation, dilation=dilation),
                               spectral)
        self.conv_1 = maybe_sn(nn.Conv2d(fmid, fout, 3, padding=dilation, dilation=dilation),
                               spectral)
        self.norm_0 = SPADE(fin, seg_channels, hidden=hidden, norm=norm)
        self.norm_1 = SPADE(fmid, seg_channels, hidden=hidden, norm=norm)
        if self.learned_shortcut:
            self.conv_s = maybe_sn(nn.Conv2d(fin, fout, 1, bias=False), spectral)
            self.norm_s = SPADE(fin, seg_channels, hidden=hidden, norm=norm)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """``x`` [B,fin,h,w], ``seg`` [B,S,H,W] -> [B,fout,h,w]."""
        x_s = self.conv_s(self.norm_s(x, seg, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg, seg), 0.2))
        return x_s + dx


@register_architecture
class SESAMEGenerator(SISGenerator):
    """The SESAME editing generator (encoder, SPADE decoder, paste into the hole).

    Args:
        num_classes: Label ids ``0..num_classes-1`` of the vocabulary.
        height: Output height (a multiple of ``2**resnet_n_downsample``).
        width: Output width (a multiple of ``2**resnet_n_downsample``).
        label_nc: One-hot label channels (``>= num_classes``; the official configuration can
            have more channels than the vocabulary has ids, e.g. 35 for Cityscapes).
            ``None``: ``num_classes``.
        ngf: Width of the first encoder conv; the bottleneck has
            ``ngf * 2**resnet_n_downsample`` channels.
        use_edges: Take the instance-edge map as an extra semantic channel.
        dontcare: Give ignore pixels (255) their own one-hot channel (after the label
            channels).
        resnet_n_downsample: Strided encoder convs (and SPADE upsampling blocks).
        resnet_n_blocks: Encoder residual blocks (all but the first dilated by 2).
        spade_n_blocks: Bottleneck SPADE blocks (all but the last dilated by 2).
        resnet_kernel_size: Kernel of the encoder residual blocks.
        resnet_initial_kernel_size: Kernel of the first encoder conv.
        skip_connections: U-Net skips from the encoder into the decoder and from the input
            to the last conv (the official default; both released configurations turn them
            off).
        segmentation_mask: Zero the semantics outside the hole (the official Cityscapes
            setting), so only the edited region's layout is given.
        composite: Return the photo outside the hole and the generated pixels inside it
            (what SESAME's training and editing use); ``False`` returns the raw output.
        spade_hidden: Hidden width of SPADE's shared conv.
        norm: Param-free norm inside SPADE (``batch``: synchronized BN in the paper).
        spectral: Spectral normalization on the SPADE-block convs.
    """

    input_names = ("labels", "edges", "noise", "image", "mask")

    @capture_config
    def __init__(
        self,
        num_classes: int,
        height: int = 256,
        width: int = 256,
        label_nc: int | None = None,
        ngf: int = 64,
        use_edges: bool = False,
        dontcare: bool = False,
        resnet_n_downsample: int = 2,
        resnet_n_blocks: int = 4,
        spade_n_blocks: int = 5,
        resnet_kernel_size: int = 3,
        resnet_initial_kernel_size: int = 7,
        skip_connections: bool = False,
        segmentation_mask: bool = False,
        composite: bool = True,
        spade_hidden: int = 128,
        norm: NormKind = "batch",
        spectral: bool = True,
    ):
        super().__init__()
        label_nc = num_classes if label_nc is None else label_nc
        if label_nc < num_classes:
            raise ValueError(f"label_nc ({label_nc}) must be >= num_classes ({num_classes})")
        if resnet_n_blocks < 1 or spade_n_blocks < 1:
            raise ValueError("resnet_n_blocks and spade_n_blocks must be >= 1")
        factor = 2**resnet_n_downsample
        if height % factor or width % factor:
            raise ValueError(f"height and width ({height}x{width}) must be multiples of "
                             f"2^{resnet_n_downsample} = {factor}")
        self._num_classes, self.label_nc = num_classes, label_nc
        self._height, self._width = height, width
        self.use_edges, self.dontcare = use_edges, dontcare
        self.skip_connections, self.segmentation_mask = skip_connections, segmentation_mask
        self.composite = composite
        # semantics (one-hot, dontcare, edges) + the hole channel: what SPADE and D read
        self.semantic_nc = label_nc + int(dontcare) + int(use_edges) + 1
        input_nc = 3 + self.semantic_nc  # masked photo first

        k0 = resnet_initial_kernel_size
        self.init_block = nn.Sequential(
            nn.ReflectionPad2d(k0 // 2), _conv_in(input_nc, ngf, k0), nn.ReLU()
        )
        self.downlayers = nn.ModuleList()
        mult = 1
        for _ in range(resnet_n_downsample):
            self.downlayers.append(nn.Sequential(
                _conv_in(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1), nn.ReLU()
            ))
            mult *= 2
        bott = ngf * mult
        self.resnet_core = nn.ModuleList(
            ResnetBlock(bott, resnet_kernel_size, dilation=1 if i == 0 else 2)
            for i in range(resnet_n_blocks)
        )

        def spade_block(fin: int, fout: int, dilation: int = 1) -> SESAMEResBlock:
            return SESAMEResBlock(fin, fout, self.semantic_nc, dilation=dilation, norm=norm,
                                  spectral=spectral, hidden=spade_hidden)

        skip = 2 if skip_connections else 1
        self.spade_core = nn.ModuleList(
            spade_block(bott, bott, dilation=2) for _ in range(spade_n_blocks - 1)
        )
        self.spade_core.append(spade_block(bott * skip, bott))
        self.uplayers = nn.ModuleList()
        for _ in range(resnet_n_downsample):
            cin = mult * ngf * (3 if skip_connections else 2) // 2
            self.uplayers.append(spade_block(cin, ngf * mult // 2))
            mult //= 2
        self.conv_img = nn.Conv2d(ngf + (input_nc if skip_connections else 0), 3, 3, padding=1)

    # ------------------------------------------------------------------- contract

    def example_inputs(self, batch_size: int = 1, seed: int = 0
                       ) -> tuple[torch.Tensor | None, ...]:
        """Blocky labels, edges (or ``None``), no noise, a random photo and a box mask.

        The mask is one axis-aligned box per sample covering a quarter to a half of each
        side, as SESAME's box editing uses.
        """
        labels, edges, _ = super().example_inputs(batch_size, seed)
        g = torch.Generator().manual_seed(seed + 1)
        h, w = self.resolution
        image = torch.rand((batch_size, 3, h, w), generator=g) * 2 - 1
        bh = torch.randint(h // 4, h // 2 + 1, (batch_size,), generator=g)
        bw = torch.randint(w // 4, w // 2 + 1, (batch_size,), generator=g)
        y0 = (torch.rand(batch_size, generator=g) * (h - bh + 1)).long()
        x0 = (torch.rand(batch_size, generator=g) * (w - bw + 1)).long()
        ys = torch.arange(h).view(1, h, 1)
        xs = torch.arange(w).view(1, 1, w)
        inside = ((ys >= y0.view(-1, 1, 1)) & (ys < (y0 + bh).view(-1, 1, 1))
                  & (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + bw).view(-1, 1, 1)))
        mask = inside.unsqueeze(1).float()  # [B,1,H,W], 1 = re-synthesize
        return labels, edges, None, image, mask

    @property
    def label_channels(self) -> int:
        """``label_nc``: the official one-hot label channels."""
        return self.label_nc

    # -------------------------------------------------------------------- forward
    def condition(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
        """The semantic map SPADE and the discriminator read: ``[B,semantic_nc,H,W]``.

        The base map (one-hot labels (+ dontcare) (+ edges)), zeroed outside the hole when
        ``segmentation_mask``, then the hole channel (1 = re-synthesize) last; without a
        ``mask`` the whole frame is the hole.
        """
        sem = super().condition(labels, edges)
        hole = torch.ones_like(sem[:, :1]) if mask is None else mask.to(sem.dtype)
        if self.segmentation_mask:
            sem = sem * hole
        return torch.cat([sem, hole], dim=1)

    def forward(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, image: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Re-synthesize the masked region of a photo from its label map.

        Args:
            labels: ``[B,H,W]`` integer class ids (255 = ignore) of the edited scene.
            edges: ``[B,1,H,W]`` instance-edge map (when ``use_edges``).
            noise: Unused (SESAME is deterministic); accepted for the common interface.
            image: ``[B,3,H,W]`` photo in [-1, 1]; pixels inside the hole are never read.
                ``None``: a blank photo.
            mask: ``[B,1,H,W]`` hole, 1 where the image is re-synthesized, 0 where the
                photo is kept. ``None``: the whole frame (plain label-to-image).

        Returns:
            ``[B,3,H,W]`` images in [-1, 1].
        """
        if labels.dim() != 3:
            raise ValueError(f"labels must be [B,H,W], got {tuple(labels.shape)}")
        seg = self.condition(labels, edges, mask)  # [B,S+1,H,W]
        hole = seg[:, -1:]
        if image is None:
            image = torch.zeros_like(hole).expand(-1, 3, -1, -1)
        image = image.to(seg.dtype)
        x_in = torch.cat([image * (1 - hole), seg], dim=1)  # [B,3+S+1,H,W]

        skips = []
        x = self.init_block(x_in)
        skips.append(x)
        for down in self.downlayers:
            x = down(x)
            skips.append(x)
        for block in self.resnet_core:
            x = block(x)
        for block in self.spade_core[:-1]:
            x = block(x, seg)
        level = len(self.downlayers)
        if self.skip_connections:
            x = torch.cat([x, skips[level]], dim=1)
            level -= 1
        x = self.spade_core[-1](x, seg)
        for block in self.uplayers:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            if self.skip_connections:
                x = torch.cat([x, skips[level]], dim=1)
                level -= 1
            x = block(x, seg)
        if self.skip_connections:
            x = torch.cat([x, x_in], dim=1)
        out = torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))
        if self.composite:
            out = hole * out + (1 - hole) * image
        return out


#: Label channels of the official configurations where they differ from our vocabularies
#: (Cityscapes: the 35 label ids of the SPADE-style loader vs our 34).
_OFFICIAL_LABEL_NC = {"cityscapes": 35}


@register_model(
    # measured by instantiating the official SesameGenerator (entavelis/OpenSESAME@ad7599e,
    # --mix_input_gen --no_instance --no_skip_connections) at our resolutions
    reference={
        "cityscapes": (20_489_091, 356.256e9),
        "ade20k": (22_990_979, 240.283e9),
        "coco_stuff": (23_681_155, 257.430e9),
    },
    tiny={"ngf": 4, "spade_hidden": 8},
)
def sesame(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SISGenerator:
    """SESAME (Ntavelis et al., ECCV 2020), as in its released training scripts.

    No instance edges and no skip connections (both scripts pass ``--no_instance
    --no_skip_connections``); the semantics are restricted to the hole on Cityscapes
    (``--segmentation_mask``).
    """
    args: dict[str, Any] = dict(
        num_classes=vocab.num_classes,
        height=spec.height,
        width=spec.width,
        label_nc=max(vocab.num_classes, _OFFICIAL_LABEL_NC.get(spec.vocabulary, 0)),
        ngf=64,
        use_edges=False,
        dontcare=spec.dontcare,
        skip_connections=False,
        segmentation_mask=spec.vocabulary == "cityscapes",
    )
    args.update(overrides)
    return SESAMEGenerator(**args)
