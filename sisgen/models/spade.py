"""The SPADE generator family: SPADE / GauGAN, CLADE, CLADE-ICPE, VA-SPADE and VA-CLADE.

A latent tensor at ``1/2^n`` of the output resolution is refined by SPADE residual blocks
and nearest upsampling. Ways in:

* ``z_dim == 0`` -- the paper's deterministic model: the latent tensor is a conv of the
  label map downsampled to the latent size.
* ``z_dim > 0`` -- the GauGAN "VAE" mode: a noise vector ``z`` (drawn outside the network
  from a per-sample seed, or the output of :class:`sisgen.models.encoder.ConvEncoder` for
  style from a reference image) is mapped by a linear layer to the latent tensor; label
  information enters through every conditional norm.
* ``spatial_noise_dim > 0`` -- OASIS-style 3D noise: a per-pixel noise map ``[C,H,W]`` is
  concatenated to the label map wherever the generator reads it (the input conv and every
  SPADE norm), so noise can be re-drawn for one class, instance or region only.
* ``variation_noise`` -- VASIS semantic noise: a per-pixel standard-normal map
  ``[vasis_noise_channels,H,W]`` from which every norm derives its noise channels
  (see :mod:`sisgen.models.vasis`).

The conditional norm is chosen by constructor arguments, never by a copy of the network:
``cond="spade"`` predicts the modulation with convs (SPADE), ``cond="clade"`` looks it up
per class (CLADE; ``icpe=True`` adds the intra-class positional encoding, CLADE-ICPE);
``variation_noise`` / ``position_code`` switch to the variation-aware norms (VA-SPADE,
VA-CLADE). Official label channels: Cityscapes 35 (+1 instance edge), ADE20K 151, COCO-Stuff
182 + dontcare (+1 instance edge).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..vocab import Vocabulary
from .base import SISGenerator, capture_config, register_architecture
from .blocks import SPADEResBlock, build_spade_trunk, run_spade_trunk
from .layers import (
    CondKind,
    NormKind,
    PaddingMode,
    example_instances,
    intra_class_position_map,
    resize_nearest,
)
from .registry import DatasetSpec, register_model
from .vasis import NoiseMode, PositionChannels, parse_position, uses_relative_position

UpsamplingMode = Literal["normal", "more", "most"]
_NUM_UPS = {"normal": 5, "more": 6, "most": 7}


#: Label channels of the official configurations where they differ from our vocabulary
#: (Cityscapes: label ids 0..33 + one more, label_nc=35 in SPADE / CLADE / VASIS).
_OFFICIAL_NUM_CLASSES: dict[str, int] = {"cityscapes": 35}
#: Upsampling depth of the official configurations where it is not ``normal``: the
#: official Cityscapes dataset options (SPADE, CLADE, VASIS) set ``num_upsampling_layers=
#: "more"`` (a 4x8 latent for 256x512; head_0 and G_middle_0 at half the resolution).
_OFFICIAL_UPSAMPLING: dict[str, str] = {"cityscapes": "more"}


@register_architecture
class SPADEGenerator(SISGenerator):
    """SPADE residual generator with SPADE, CLADE(-ICPE) or VASIS conditional norms.

    Args:
        num_classes: Label ids ``0..num_classes-1`` (one-hot channels).
        height: Output height.
        width: Output width; ``width / 2^n`` must be an integer (n = 5, 6 or 7 upsamplings).
        ngf: Base width; the widest layers have ``16 * ngf`` channels.
        z_dim: Noise vector size; 0 for the deterministic label-input mode (the paper's).
        use_edges: Take the instance-edge map as an extra conditioning channel.
        dontcare: Give ignore pixels (255) their own one-hot channel (last).
        cond: ``spade`` or ``clade``.
        norm: Param-free norm inside the conditional norms (``batch`` as in the paper, or
            ``instance``).
        spectral: Spectral normalization on the residual-block convs.
        num_upsampling_layers: ``normal`` (5), ``more`` (6) or ``most`` (7) upsamplings.
        spade_hidden: Hidden width of SPADE's shared conv.
        spatial_noise_dim: Channels of OASIS-style per-pixel noise (0: none); needs
            ``z_dim=0`` and ``cond="spade"``.
        padding_mode: Padding of every conv, ``zeros`` (SPADE, CLADE) or ``reflect`` (VASIS).
        icpe: CLADE-ICPE: modulate CLADE's tables by the intra-class position map
            (computed inside ``forward`` from the labels and the ``instances`` input, see
            :func:`sisgen.models.layers.intra_class_position_map`); ``cond="clade"`` only.
        variation_noise: VASIS semantic noise: ``semantic``, ``one_channel``, ``plus``,
            ``rand`` or ``None``.
        position_code: VASIS position code: ``absolute``, ``learnable``, ``relative``,
            several joined by ``+`` (``"absolute+learnable+relative"``, the official
            mixed codes) or ``None``. Either VASIS option switches to the variation-aware
            norms. A code with ``relative`` (like ``icpe``) adds the ``instances`` input.
        vasis_noise_channels: Channels of the full-resolution noise map the VASIS norms
            derive their noise from.
        position_channels: VASIS position-code factors: ``all`` (one per modulation
            channel, the paper's models) or ``one`` (one shared factor, official
            ``pos_nc=one``).

    Inputs (:attr:`input_names`): ``labels``, ``edges``, ``noise``, and ``instances``
    (``[B,H,W]`` int64 instance ids, 0 = none) for models with the intra-class position
    map (``icpe`` or a relative position code).
    """

    @capture_config
    def __init__(
        self,
        num_classes: int,
        height: int = 256,
        width: int = 512,
        ngf: int = 64,
        z_dim: int = 0,
        use_edges: bool = True,
        dontcare: bool = False,
        cond: CondKind = "spade",
        norm: NormKind = "batch",
        spectral: bool = True,
        num_upsampling_layers: UpsamplingMode = "normal",
        spade_hidden: int = 128,
        spatial_noise_dim: int = 0,
        padding_mode: PaddingMode = "zeros",
        icpe: bool = False,
        variation_noise: NoiseMode | None = None,
        position_code: str | None = None,
        vasis_noise_channels: int = 8,
        position_channels: PositionChannels = "all",
    ):
        super().__init__()
        if cond not in ("spade", "clade"):
            raise ValueError(f"unknown conditional norm {cond!r} (spade, clade)")
        if spatial_noise_dim and (z_dim or cond != "spade"):
            raise ValueError("spatial_noise_dim needs z_dim=0 and cond='spade' (CLADE's tables "
                             "cannot read a noise map)")
        if variation_noise is not None and (z_dim or spatial_noise_dim):
            raise ValueError("variation_noise takes the noise input: it needs z_dim=0 and "
                             "spatial_noise_dim=0")
        if icpe and (cond != "clade" or variation_noise or position_code):
            raise ValueError("icpe is CLADE-ICPE: cond='clade' without VASIS options "
                             "(VASIS has position_code='relative')")
        if num_upsampling_layers not in _NUM_UPS:
            raise ValueError(f"num_upsampling_layers must be one of {sorted(_NUM_UPS)}")
        n_up = _NUM_UPS[num_upsampling_layers]
        if width % 2**n_up or height % 2**n_up:
            raise ValueError(
                f"height and width ({height}x{width}) must be multiples of 2^{n_up} = {2**n_up} "
                f"for num_upsampling_layers={num_upsampling_layers!r}"
            )
        self._num_classes = num_classes
        self._height, self._width = height, width
        self.z_dim, self.use_edges, self.dontcare = z_dim, use_edges, dontcare
        self.num_upsampling_layers = num_upsampling_layers
        self.sh, self.sw = height // 2**n_up, width // 2**n_up
        nf = ngf
        self.ngf = ngf
        self.spatial_noise_dim = spatial_noise_dim
        self.variation_noise = variation_noise
        self.vasis_noise_channels = vasis_noise_channels
        parse_position(position_code)  # raises on an unknown code
        self.needs_dist = icpe or uses_relative_position(position_code)
        if self.needs_dist:
            self.input_names = (*type(self).input_names, "instances")
        seg_nc = num_classes + int(dontcare) + int(use_edges) + spatial_noise_dim
        num_labels = num_classes + int(dontcare)
        variation = None
        if variation_noise is not None or position_code is not None:
            variation = {"noise": variation_noise, "position": position_code,
                         "position_channels": position_channels}
            if cond == "spade":  # VASIS sizes VA-SPADE's noise tables by the map's channels
                num_labels = seg_nc

        if z_dim > 0:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(seg_nc, 16 * nf, 3, padding=1, padding_mode=padding_mode)

        def block(fin: int, fout: int, scale: int) -> SPADEResBlock:
            return SPADEResBlock(fin, fout, seg_nc, num_labels, cond=cond, norm=norm,
                                 spectral=spectral, use_edges=use_edges, hidden=spade_hidden,
                                 padding_mode=padding_mode, icpe=icpe, variation=variation,
                                 size=(self.sh * scale, self.sw * scale))

        final_nc = build_spade_trunk(self, block, nf, num_upsampling_layers)
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1, padding_mode=padding_mode)

    # ------------------------------------------------------------------- contract

    def dynamic_hw_multiple(self) -> int | None:
        """``2^n_up`` (the latent is the label map downsampled), or ``None``.

        ``None`` with a ``z`` latent (a linear layer sized for the trained resolution), with
        VASIS options (position codes and noise tables at fixed layer sizes) and with ICPE
        (its segment statistics do not export with symbolic sizes).
        """
        fixed = self.z_dim or self.needs_dist or self.variation_noise is not None or \
            self.config.get("position_code") is not None
        return None if fixed else self._height // self.sh

    def noise_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        """``(z_dim,)``, ``(C, H, W)`` for spatial / VASIS noise, or ``()`` without noise."""
        h, w = height or self._height, width or self._width
        if self.spatial_noise_dim:
            return (self.spatial_noise_dim, h, w)
        if self.variation_noise is not None:
            return (self.vasis_noise_channels, h, w)
        return (self.z_dim,) if self.z_dim > 0 else ()

    # -------------------------------------------------------------------- forward
    def table_index(self, labels: torch.Tensor) -> torch.Tensor:
        """The rows of the per-class tables (CLADE, VASIS) ``[B,1,H,W]`` int64.

        The conditioning map itself is :meth:`~sisgen.models.base.SISGenerator.condition`.
        """
        idx = labels.long().unsqueeze(1)
        # ignore (and any id beyond the table) -> the dontcare row, or row 0 without one
        oob = (idx < 0) | (idx >= self._num_classes)
        return torch.where(oob, torch.full_like(idx, self._num_classes if self.dontcare else 0),
                           idx)

    def _check_noise(self, noise: torch.Tensor | None, want: tuple[int, ...]) -> torch.Tensor:
        if noise is None or tuple(noise.shape[1:]) != want:
            shape = ",".join(str(d) for d in want)
            raise ValueError(f"noise [B,{shape}] required, got "
                             f"{None if noise is None else tuple(noise.shape)}")
        return noise

    def example_inputs(self, batch_size: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random ``forward`` inputs; with the position map also example ``instances``."""
        inputs = super().example_inputs(batch_size, seed)
        if self.needs_dist:
            inputs = (*inputs, example_instances(inputs[0]))
        return inputs

    def forward(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, instances: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Generate images.

        Args:
            labels: ``[B,H,W]`` integer class ids (255 = ignore).
            edges: ``[B,1,H,W]`` instance-edge map in {0, 1} (when ``use_edges``).
            noise: ``[B,z_dim]`` standard normal noise (when ``z_dim > 0``; or an encoder's
                ``z``), or ``[B,C,H,W]`` (spatial / VASIS noise).
            instances: ``[B,H,W]`` integer instance ids (0 = none; compact ids, see
                :func:`sisgen.models.layers.intra_class_position_map`) for the intra-class
                position map; ``None`` or all zeros: one region per class. Unused by models
                without the map.

        Returns:
            ``[B,3,H,W]`` images in [-1, 1].
        """
        if labels.dim() != 3:
            raise ValueError(f"labels must be [B,H,W], got {tuple(labels.shape)}")
        seg, idx = self.condition(labels, edges), self.table_index(labels)
        dist = None
        if self.needs_dist:  # per instance / per class region, [B,2,H,W]
            dist = intra_class_position_map(labels, instances, self._num_classes).to(seg.dtype)
        vnoise = None
        if self.spatial_noise_dim:
            want = (self.spatial_noise_dim, *labels.shape[-2:])
            seg = torch.cat([seg, self._check_noise(noise, want).to(seg.dtype)], dim=1)
        elif self.variation_noise is not None:
            want = (self.vasis_noise_channels, *labels.shape[-2:])
            vnoise = self._check_noise(noise, want).to(seg.dtype)
        if self.z_dim > 0:
            if noise is None or noise.shape[-1] != self.z_dim:
                raise ValueError(f"noise [B,{self.z_dim}] required, got "
                                 f"{None if noise is None else tuple(noise.shape)}")
            x = self.fc(noise).view(-1, 16 * self.ngf, self.sh, self.sw)
        else:
            m = self._height // self.sh  # the latent follows the label map's size
            x = self.fc(resize_nearest(seg, (labels.shape[-2] // m, labels.shape[-1] // m)))

        def run(blk: nn.Module, t: torch.Tensor) -> torch.Tensor:
            return blk(t, seg, idx, noise=vnoise, dist=dist)

        x = run_spade_trunk(self, x, run, self.num_upsampling_layers)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


# ------------------------------------------------------------------ configurations
def _spade_family(spec: DatasetSpec, vocab: Vocabulary, overrides: dict[str, Any],
                  **paper: Any) -> SPADEGenerator:
    """The paper configuration for a dataset (``paper``), then the caller's overrides."""
    args: dict[str, Any] = dict(
        num_classes=max(vocab.num_classes, _OFFICIAL_NUM_CLASSES.get(spec.vocabulary, 0)),
        height=spec.height, width=spec.width, ngf=64, z_dim=0, use_edges=spec.use_edges,
        dontcare=spec.dontcare, norm="batch", spectral=True,
        num_upsampling_layers=_OFFICIAL_UPSAMPLING.get(spec.vocabulary, "normal"),
    )
    args.update(paper)
    args.update(overrides)
    return SPADEGenerator(**args)


_TINY = {"ngf": 4, "spade_hidden": 8}
_TINY_VA = {"ngf": 4, "spade_hidden": 8, "vasis_noise_channels": 2}


@register_model(reference={"cityscapes": (93.05e6, 281.3e9), "ade20k": (96.49e6, 181.2e9),
                           "coco_stuff": (97.48e6, 191.1e9)}, tiny=_TINY)
def spade(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SPADEGenerator:
    """SPADE / GauGAN (Park et al., CVPR 2019): the paper's model, label-map input, no z."""
    return _spade_family(spec, vocab, overrides, cond="spade")


@register_model(reference={"cityscapes": (67.90e6, 75.5e9), "ade20k": (71.43e6, 42.2e9),
                           "coco_stuff": (72.51e6, 42.4e9)}, tiny=_TINY)
def clade(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SPADEGenerator:
    """CLADE (Tan et al., TPAMI 2021): SPADE with class-adaptive normalization."""
    return _spade_family(spec, vocab, overrides, cond="clade")


# CLADE-ICPE adds two 1x1 convs (2 -> 1) per norm: +6 parameters and a few MACs per pixel,
# below the precision of the published CLADE numbers, which are therefore its reference.
@register_model(reference={"cityscapes": (67.90e6, 75.5e9), "ade20k": (71.43e6, 42.2e9),
                           "coco_stuff": (72.51e6, 42.4e9)}, tiny=_TINY)
def clade_icpe(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SPADEGenerator:
    """CLADE-ICPE: CLADE with the intra-class positional encoding (computed on the device)."""
    return _spade_family(spec, vocab, overrides, cond="clade", icpe=True)


@register_model(reference={"cityscapes": (83.34e6, 189.6e9), "ade20k": (88.26e6, 134.8e9),
                           "coco_stuff": (89.97e6, 144.7e9)}, tiny=_TINY_VA)
def va_spade(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SPADEGenerator:
    """VA-SPADE (VASIS, Xu et al. 2023): semantic noise + learnable position code, reflect pad."""
    return _spade_family(spec, vocab, overrides, cond="spade", padding_mode="reflect",
                         variation_noise="semantic", position_code="learnable")


@register_model(reference={"cityscapes": (70.41e6, 75.8e9), "ade20k": (74.16e6, 42.4e9),
                           "coco_stuff": (75.59e6, 42.6e9)},
                # no edges at tiny size: the 2x2 head sees a constant edge map, whose 1x1-conv
                # bias only shifts channels that batch norm removes again (no gradient)
                tiny={**_TINY_VA, "use_edges": False})
def va_clade(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SPADEGenerator:
    """VA-CLADE (VASIS): CLADE with semantic noise + learnable position code, reflect pad."""
    return _spade_family(spec, vocab, overrides, cond="clade", padding_mode="reflect",
                         variation_noise="semantic", position_code="learnable")
