"""OASIS (Schönfeld, Sushko et al., ICLR 2021): SPADE blocks fed with label map + 3D noise.

The generator has no image encoder and no noise vector: a per-pixel noise tensor
``[B,z_dim,H,W]`` is concatenated to the one-hot label map (noise channels first, as the
official code does) and this joint map is what the network reads everywhere -- downsampled
for the input conv ``fc`` and resized inside every conditional norm. Because the noise is
spatial, re-drawing it inside a class, an instance or any region changes the image mostly
there (local re-sampling).

Label channels follow the official datasets: the *dontcare* class is channel 0. For
Cityscapes (label ids 0..33, id 0 = unlabeled) and ADE20K (ids 0..150, id 0 = other) the
vocabulary's id 0 already is that class and ignore pixels (255) join it; COCO-Stuff shifts
its ids by one to make room for a dontcare channel in front. ``semantic_nc`` is the number
of channels the official configuration uses (35 / 151 / 183).

The conditional norm is a constructor argument: ``cond="spade"`` (OASIS) or
``cond="vasis"`` (VA-OASIS, the variation-aware norms of :mod:`sisgen.models.vasis`, set
up by the ``vasis`` options).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..vocab import Vocabulary
from .base import SISGenerator, capture_config, register_architecture
from .layers import SPADE, NormKind, maybe_sn, resize_nearest
from .registry import DatasetSpec, register_model

OASISCond = Literal["spade", "vasis"]
PaddingKind = Literal["zeros", "reflect"]

#: Official OASIS label channels (``semantic_nc``) and the id shift of our vocabularies.
_OFFICIAL_LABELS: dict[str, tuple[int, int]] = {
    "cityscapes": (35, 0),  # ids 0..33 (+ an unused 35th channel), 0 = unlabeled = dontcare
    "ade20k": (151, 0),  # ids 0..150, 0 = other = dontcare
    "coco_stuff": (183, 1),  # ids 0..181 shifted by one, 0 = dontcare
}


class OASISResBlock(nn.Module):
    """The OASIS generator block: two (cond. norm, LeakyReLU, SN conv) stages + shortcut.

    Same layout as SPADE's block (``conv_0``, ``conv_1``, learned 1x1 shortcut ``conv_s``
    without bias when the width changes, ``norm_0``, ``norm_1``, ``norm_s``), but the norms
    come from a factory so that the variants differ only in it.

    Args:
        fin: Input channels.
        fout: Output channels.
        make_norm: Builds the conditional norm for a given number of feature channels; the
            norm is called as ``norm(x, cond, idx)`` (plus ``noise=`` with ``takes_noise``).
        spectral: Spectral-normalize the three convs.
        padding: ``zeros`` (OASIS: zero-padded 3x3 convs) or ``reflect`` (VA-OASIS: an
            unpadded conv whose output is then reflection-padded back to size).
        takes_noise: Pass the noise map to the norms (VASIS semantic noise).
    """

    def __init__(self, fin: int, fout: int, make_norm: Callable[[int], nn.Module],
                 spectral: bool = True, padding: PaddingKind = "zeros",
                 takes_noise: bool = False):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.reflect, self.takes_noise = padding == "reflect", takes_noise
        pad = 0 if self.reflect else 1
        self.conv_0 = maybe_sn(nn.Conv2d(fin, fmid, 3, padding=pad), spectral)
        self.conv_1 = maybe_sn(nn.Conv2d(fmid, fout, 3, padding=pad), spectral)
        if self.learned_shortcut:
            self.conv_s = maybe_sn(nn.Conv2d(fin, fout, 1, bias=False), spectral)
        self.norm_0 = make_norm(fin)
        self.norm_1 = make_norm(fmid)
        if self.learned_shortcut:
            self.norm_s = make_norm(fin)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, idx: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` [B,fin,h,w] -> [B,fout,h,w].

        Args:
            x: Features.
            cond: Conditioning map ``[B,S,H,W]`` (noise channels, then one-hot).
            idx: One-hot channel of every pixel ``[B,1,H,W]``.
            noise: ``[B,C,H,W]`` noise map for norms that take one.
        """

        def norm(layer: nn.Module, t: torch.Tensor) -> torch.Tensor:
            if self.takes_noise:
                return layer(t, cond, idx, noise=noise)
            return layer(t, cond, idx)

        def conv(layer: nn.Module, t: torch.Tensor) -> torch.Tensor:
            t = layer(t)
            return F.pad(t, (1, 1, 1, 1), mode="reflect") if self.reflect else t

        x_s = self.conv_s(norm(self.norm_s, x)) if self.learned_shortcut else x
        dx = conv(self.conv_0, F.leaky_relu(norm(self.norm_0, x), 0.2))
        dx = conv(self.conv_1, F.leaky_relu(norm(self.norm_1, dx), 0.2))
        return x_s + dx


@register_architecture
class OASISGenerator(SISGenerator):
    """The OASIS generator (and VA-OASIS through ``cond="vasis"``).

    Args:
        num_classes: Label ids ``0..num_classes-1`` of the vocabulary.
        height: Output height.
        width: Output width; both must be multiples of ``2^(num_res_blocks-1)``.
        ngf: Base width (``channels_G``); the block widths are 16,16,16,8,4,2,1 x ngf.
        z_dim: Channels of the 3D noise concatenated to the label map (0: none, as VA-OASIS
            trains it: ``--no_3dnoise``).
        noise_nc: Channels of the ``noise`` input (default ``z_dim``); the first ``z_dim``
            are concatenated to the labels, VASIS norms derive their noise from all of it.
        semantic_nc: One-hot channels (official ``semantic_nc``); default
            ``num_classes + class_offset``.
        class_offset: Channel of label id ``c`` is ``c + class_offset`` (1 for COCO-Stuff,
            whose dontcare channel comes first).
        dontcare_channel: Channel of ignore pixels (255); ``None`` leaves them all-zero.
        norm: Param-free norm inside the conditional norms (``batch``: the official
            synchronized BN on one device).
        spectral: Spectral normalization on the residual-block convs.
        num_res_blocks: Residual blocks (one upsampling between consecutive blocks).
        spade_hidden: Hidden width of SPADE's shared conv.
        spade_ks: Kernel size of the convs inside SPADE.
        cond: ``spade`` (OASIS) or ``vasis`` (VA-OASIS).
        vasis: Keyword options of :func:`sisgen.models.vasis.norm_factory` (``cond="vasis"``
            only; the layer ``size`` is filled in per block).
        padding: ``zeros`` (OASIS) or ``reflect`` (VA-OASIS: reflection padding for ``fc``,
            ``conv_img`` and the block convs).
        noise_layout: How the ``[B,C,H,W]`` noise input is drawn (``noise_spec``):
            ``replicated`` -- one vector per image repeated over every pixel, as OASIS
            trains and samples (local edits swap that vector inside a region) -- or
            ``pixel`` -- i.i.d. per pixel, as VASIS's semantic noise. Default: replicated
            for OASIS, pixel for ``cond="vasis"``.
    """

    @capture_config
    def __init__(
        self,
        num_classes: int,
        height: int = 256,
        width: int = 512,
        ngf: int = 64,
        z_dim: int = 64,
        semantic_nc: int | None = None,
        class_offset: int = 0,
        dontcare_channel: int | None = 0,
        norm: NormKind = "batch",
        spectral: bool = True,
        num_res_blocks: int = 6,
        spade_hidden: int = 128,
        spade_ks: int = 3,
        cond: OASISCond = "spade",
        vasis: dict[str, Any] | None = None,
        noise_nc: int | None = None,
        padding: PaddingKind = "zeros",
        noise_layout: str | None = None,
    ):
        super().__init__()
        semantic_nc = num_classes + class_offset if semantic_nc is None else semantic_nc
        if num_classes + class_offset > semantic_nc:
            raise ValueError(f"{num_classes} classes shifted by {class_offset} do not fit "
                             f"into semantic_nc={semantic_nc} channels")
        if dontcare_channel is not None and not 0 <= dontcare_channel < semantic_nc:
            raise ValueError(f"dontcare_channel {dontcare_channel} outside 0..{semantic_nc - 1}")
        if num_res_blocks < 2 or num_res_blocks > 7:
            raise ValueError("num_res_blocks must be in 2..7")
        n_up = num_res_blocks - 1
        if height % 2**n_up or width % 2**n_up:
            raise ValueError(f"height and width ({height}x{width}) must be multiples of "
                             f"2^{n_up} = {2**n_up} for num_res_blocks={num_res_blocks}")
        if cond not in ("spade", "vasis"):
            raise ValueError(f"unknown conditional norm {cond!r} (spade, vasis)")
        if vasis is not None and cond != "vasis":
            raise ValueError("vasis options need cond='vasis'")
        if padding not in ("zeros", "reflect"):
            raise ValueError(f"unknown padding {padding!r} (zeros, reflect)")
        if padding == "reflect" and min(height, width) // 2**n_up < 4:
            raise ValueError(f"padding='reflect' needs the first block at >= 4x4 pixels; "
                             f"{height}x{width} / 2^{n_up} is smaller (fewer num_res_blocks)")
        if noise_layout is None:
            noise_layout = "pixel" if cond == "vasis" else "replicated"
        if noise_layout not in ("replicated", "pixel"):
            raise ValueError(f"unknown noise_layout {noise_layout!r} (replicated, pixel)")
        self.noise_layout = noise_layout
        noise_nc = z_dim if noise_nc is None else noise_nc
        if noise_nc < z_dim:
            raise ValueError(f"noise_nc={noise_nc} < z_dim={z_dim}")
        self._num_classes = num_classes
        self._height, self._width = height, width
        self.semantic_nc, self.class_offset = semantic_nc, class_offset
        self.dontcare_channel = dontcare_channel
        self.z_dim, self.noise_nc, self.ngf = z_dim, noise_nc, ngf
        self.cond = cond
        self.num_res_blocks = num_res_blocks
        self.sh, self.sw = height // 2**n_up, width // 2**n_up
        cond_nc = semantic_nc + z_dim  # [noise | one-hot] channels

        # official (6 blocks): 16,16,16,8,4,2,1 x ngf; fewer blocks drop the widest ones
        mult = [16] * max(0, num_res_blocks - 6) + [16, 16, 16, 8, 4, 2, 1][-(min(
            num_res_blocks, 6) + 1):]
        widths = [m * ngf for m in mult]
        pad_mode = "reflect" if padding == "reflect" else "zeros"
        self.fc = nn.Conv2d(cond_nc, widths[0], 3, padding=1, padding_mode=pad_mode)
        blocks = []
        for i in range(num_res_blocks):
            size = (self.sh * 2**i, self.sw * 2**i)  # the block's resolution
            make_norm = self._norm_factory(cond, cond_nc, norm, spade_hidden, spade_ks, vasis,
                                           size)
            blocks.append(OASISResBlock(widths[i], widths[i + 1], make_norm, spectral,
                                        padding=padding, takes_noise=cond == "vasis"))
        self.body = nn.ModuleList(blocks)
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1, padding_mode=pad_mode)
        self.init_weights()

    def init_weights(self, gain: float = 0.02) -> None:
        """The official OASIS initialization (also what VA-OASIS trains from).

        Every conv: Xavier-normal weights with ``gain`` (for spectral-normalized convs the
        un-normalized weight, whose power-iteration vectors are then refreshed), zero
        biases. This also overrides the zero init of VASIS's position-code convs, as the
        official code does.
        """
        from torch.nn.utils import parametrize

        with torch.no_grad():
            for m in self.modules():
                if not isinstance(m, nn.Conv2d | nn.Linear):
                    continue
                if parametrize.is_parametrized(m, "weight"):
                    nn.init.xavier_normal_(m.parametrizations.weight.original, gain=gain)
                    sn = m.parametrizations.weight[0]
                    was_training = sn.training
                    sn.train()
                    for _ in range(15):  # each access in train mode runs one power iteration
                        _ = m.weight
                    sn.train(was_training)
                else:
                    nn.init.xavier_normal_(m.weight, gain=gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _norm_factory(self, cond: OASISCond, cond_nc: int, norm: NormKind, hidden: int,
                      ks: int, vasis: dict[str, Any] | None, size: tuple[int, int]
                      ) -> Callable[[int], nn.Module]:
        """``channels -> conditional norm`` for one block."""
        if cond == "spade":
            return lambda c: SPADE(c, cond_nc, hidden=hidden, kernel_size=ks, norm=norm)
        from .vasis import norm_factory

        # the official VA-SPADE tables have one row per conditioning channel (noise first)
        opts: dict[str, Any] = dict(kind="spade", norm=norm, hidden=hidden, kernel_size=ks)
        opts.update(vasis or {})
        return norm_factory(cond_nc, cond_nc, size=size, **opts)

    # ------------------------------------------------------------------- contract


    @property
    def uses_edges(self) -> bool:
        """OASIS does not read instance edges."""
        return False

    def dynamic_hw_multiple(self) -> int | None:
        """``2^(num_res_blocks - 1)`` (the latent is the label map downsampled), or ``None``.

        ``None`` for VA-OASIS: its position codes are tables of the trained layer sizes.
        """
        return None if self.cond == "vasis" else self._height // self.sh

    def noise_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        """``(noise_nc, H, W)``: a noise map (``()`` when ``noise_nc == 0``)."""
        if not self.noise_nc:
            return ()
        return (self.noise_nc, height or self._height, width or self._width)

    def noise_spec(self) -> dict[str, Any]:
        """The base spec plus ``layout`` (``replicated`` or ``pixel``)."""
        spec = super().noise_spec()
        if spec:
            spec["layout"] = self.noise_layout
        return spec

    # -------------------------------------------------------------------- forward
    @property
    def label_channels(self) -> int:
        """``semantic_nc``: OASIS's dontcare is one of them (``dontcare_channel``)."""
        return self.semantic_nc

    def onehot(self, labels: torch.Tensor) -> torch.Tensor:
        """The official layout, :meth:`semantic_map` (so :meth:`condition` is that map too)."""
        return self.semantic_map(labels)

    def channel_index(self, labels: torch.Tensor) -> torch.Tensor:
        """The one-hot channel of every pixel ``[B,1,H,W]`` (-1: none, i.e. all zeros)."""
        lab = labels.long().unsqueeze(1)  # [B,1,H,W]
        idx = lab + self.class_offset
        bad = (lab < 0) | (lab >= self._num_classes)
        fill = -1 if self.dontcare_channel is None else self.dontcare_channel
        return torch.where(bad, torch.full_like(idx, fill), idx)

    def semantic_map(self, labels: torch.Tensor, dtype: torch.dtype = torch.float32
                     ) -> torch.Tensor:
        """The official one-hot label map ``[B,semantic_nc,H,W]`` (dontcare first).

        Also what the OASIS discriminator loss expects as its label input.
        """
        idx = self.channel_index(labels)
        classes = torch.arange(self.semantic_nc, device=labels.device).view(1, -1, 1, 1)
        return (idx == classes).to(dtype)

    def forward(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images.

        Args:
            labels: ``[B,H,W]`` integer class ids (255 = ignore).
            edges: Unused (OASIS takes no instance edges).
            noise: ``[B,noise_nc,H,W]`` standard-normal 3D noise (when ``noise_nc > 0``).

        Returns:
            ``[B,3,H,W]`` images in [-1, 1].
        """
        if labels.dim() != 3:
            raise ValueError(f"labels must be [B,H,W], got {tuple(labels.shape)}")
        idx = self.channel_index(labels)
        seg = self.semantic_map(labels)
        if self.noise_nc:
            want = (self.noise_nc, *labels.shape[-2:])
            if noise is None or tuple(noise.shape[1:]) != want:
                raise ValueError(f"noise [B,{want[0]},{want[1]},{want[2]}] required, got "
                                 f"{None if noise is None else tuple(noise.shape)}")
            noise = noise.to(seg.dtype)
        if self.z_dim:
            seg = torch.cat([noise[:, :self.z_dim], seg], dim=1)  # [B,z+N,H,W], noise first
            idx = idx + self.z_dim  # row of the VASIS tables = channel of the joint map
        m = self._height // self.sh  # the latent follows the label map's size
        x = self.fc(resize_nearest(seg, (labels.shape[-2] // m, labels.shape[-1] // m)))
        last = len(self.body) - 1
        for i, block in enumerate(self.body):
            x = block(x, seg, idx, noise)
            if i < last:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


# ------------------------------------------------------------------ configurations
def _label_args(spec: DatasetSpec, vocab: Vocabulary) -> dict[str, Any]:
    """The official label channels for a dataset; a dontcare channel in front otherwise."""
    if spec.vocabulary in _OFFICIAL_LABELS:
        semantic_nc, offset = _OFFICIAL_LABELS[spec.vocabulary]
    else:
        semantic_nc, offset = vocab.num_classes + 1, 1
    return dict(num_classes=vocab.num_classes, semantic_nc=semantic_nc, class_offset=offset,
                dontcare_channel=0)


def _oasis_family(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> OASISGenerator:
    args: dict[str, Any] = dict(height=spec.height, width=spec.width, ngf=64, z_dim=64,
                                norm="batch", spectral=True, num_res_blocks=6)
    args.update(_label_args(spec, vocab))
    args.update(overrides)
    return OASISGenerator(**args)


@register_model(
    reference={"cityscapes": (71.11e6, 318.6e9), "ade20k": (74.31e6, 194.4e9),
               "coco_stuff": (75.20e6, 204.0e9)},
    tiny={"ngf": 4, "z_dim": 8, "spade_hidden": 8},
)
def oasis(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SISGenerator:
    """OASIS (Sushko, Schönfeld et al., ICLR 2021): SPADE generator with 3D noise."""
    return _oasis_family(spec, vocab, **overrides)


@register_model(
    reference={"cityscapes": (61.82e6, 183.3e9), "ade20k": (66.05e6, 125.9e9),
               "coco_stuff": (67.50e6, 135.6e9)},
    tiny={"ngf": 4, "noise_nc": 8, "spade_hidden": 8, "num_res_blocks": 5},
)
def va_oasis(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SISGenerator:
    """VA-OASIS (Xu et al., VASIS 2023): OASIS with variation-aware SPADE norms.

    As officially trained: no 3D noise concatenated to the labels (``--no_3dnoise``); every
    norm gets semantic noise (half of its modulation channels) and a learnable position
    code at its resolution; reflection padding. The per-layer noise comes from one
    ``[B,2*ngf,H,W]`` noise input (enough channels that no layer has to repeat any).
    """
    ngf = overrides.get("ngf", 64)
    args: dict[str, Any] = dict(
        z_dim=0, noise_nc=2 * ngf, cond="vasis", padding="reflect",
        vasis={"noise": "semantic", "position": "learnable", "padding_mode": "reflect"},
    )
    args.update(overrides)
    return _oasis_family(spec, vocab, **args)
