"""The SPADE generator family (SPADE / GauGAN, and CLADE through the norm switch).

A latent tensor at ``1/2^n`` of the output resolution is refined by SPADE residual blocks
and nearest upsampling. Two ways in:

* ``z_dim > 0`` -- the GauGAN "VAE" mode: a noise vector ``z`` (drawn outside the network
  from a per-sample seed) is mapped by a linear layer to the latent tensor; label
  information enters through every conditional norm. Same labels, new ``z``: a new style.
* ``z_dim == 0`` -- the deterministic mode: the latent tensor is a conv of the label map
  downsampled to the latent size.
* ``spatial_noise_dim > 0`` -- OASIS-style 3D noise: a per-pixel noise map ``[C,H,W]`` is
  concatenated to the label map wherever the generator reads it (the input conv and every
  SPADE norm), so noise can be re-drawn for one class, instance or region only.

``cond="spade"`` predicts the modulation with convs (SPADE), ``cond="clade"`` looks it up
per class (CLADE): the same generator, one constructor argument apart.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import SISGenerator, capture_config, register_architecture
from .layers import CondKind, NormKind, SPADEResBlock, labels_to_onehot, resize_nearest

UpsamplingMode = Literal["normal", "more", "most"]
_NUM_UPS = {"normal": 5, "more": 6, "most": 7}


@register_architecture
class SPADEGenerator(SISGenerator):
    """SPADE residual generator with SPADE or CLADE conditional normalization.

    Args:
        num_classes: Label ids ``0..num_classes-1`` (one-hot channels).
        height: Output height.
        width: Output width; ``width / 2^n`` must be an integer (n = 5, 6 or 7 upsamplings).
        ngf: Base width; the widest layers have ``16 * ngf`` channels.
        z_dim: Noise vector size; 0 for the deterministic label-input mode.
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
    """

    @capture_config
    def __init__(
        self,
        num_classes: int,
        height: int = 256,
        width: int = 512,
        ngf: int = 64,
        z_dim: int = 256,
        use_edges: bool = True,
        dontcare: bool = False,
        cond: CondKind = "spade",
        norm: NormKind = "batch",
        spectral: bool = True,
        num_upsampling_layers: UpsamplingMode = "normal",
        spade_hidden: int = 128,
        spatial_noise_dim: int = 0,
    ):
        super().__init__()
        if spatial_noise_dim and (z_dim or cond != "spade"):
            raise ValueError("spatial_noise_dim needs z_dim=0 and cond='spade' (CLADE's tables "
                             "cannot read a noise map)")
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
        seg_nc = num_classes + int(dontcare) + int(use_edges) + spatial_noise_dim
        num_labels = num_classes + int(dontcare)

        if z_dim > 0:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(seg_nc, 16 * nf, 3, padding=1)

        def block(fin: int, fout: int) -> SPADEResBlock:
            return SPADEResBlock(fin, fout, seg_nc, num_labels, cond=cond, norm=norm,
                                 spectral=spectral, use_edges=use_edges, hidden=spade_hidden)

        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, nf)
        final_nc = nf
        if num_upsampling_layers == "most":
            self.up_4 = block(nf, nf // 2)
            final_nc = nf // 2
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1)

    # ------------------------------------------------------------------- contract
    @property
    def resolution(self) -> tuple[int, int]:
        """``(H, W)`` of the generated images."""
        return self._height, self._width

    @property
    def num_classes(self) -> int:
        """Number of label ids (one-hot channels without dontcare)."""
        return self._num_classes

    @property
    def uses_edges(self) -> bool:
        """Whether the instance-edge map is an input."""
        return self.use_edges

    def noise_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        """``(z_dim,)``, ``(C, H, W)`` for spatial noise, or ``()`` in the deterministic mode."""
        if self.spatial_noise_dim:
            return (self.spatial_noise_dim, height or self._height, width or self._width)
        return (self.z_dim,) if self.z_dim > 0 else ()

    # -------------------------------------------------------------------- forward
    def condition(self, labels: torch.Tensor, edges: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditioning map ``[B,S,H,W]`` and the CLADE label indices ``[B,1,H,W]``."""
        seg = labels_to_onehot(labels, self._num_classes, self.dontcare)
        if self.use_edges:
            if edges is None:
                raise ValueError("this generator was built with use_edges=True: pass edges")
            seg = torch.cat([seg, edges.to(seg.dtype)], dim=1)
        idx = labels.long().unsqueeze(1)
        # ignore (and any id beyond the table) -> the dontcare row, or row 0 without one
        oob = (idx < 0) | (idx >= self._num_classes)
        idx = torch.where(oob, torch.full_like(idx, self._num_classes if self.dontcare else 0), idx)
        return seg, idx

    def forward(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images.

        Args:
            labels: ``[B,H,W]`` integer class ids (255 = ignore).
            edges: ``[B,1,H,W]`` instance-edge map in {0, 1} (when ``use_edges``).
            noise: ``[B,z_dim]`` standard normal noise (when ``z_dim > 0``), or
                ``[B,C,H,W]`` (when ``spatial_noise_dim > 0``).

        Returns:
            ``[B,3,H,W]`` images in [-1, 1].
        """
        if labels.dim() != 3:
            raise ValueError(f"labels must be [B,H,W], got {tuple(labels.shape)}")
        seg, idx = self.condition(labels, edges)
        if self.spatial_noise_dim:
            want = (self.spatial_noise_dim, *labels.shape[-2:])
            if noise is None or tuple(noise.shape[1:]) != want:
                raise ValueError(f"noise [B,{want[0]},{want[1]},{want[2]}] required, got "
                                 f"{None if noise is None else tuple(noise.shape)}")
            seg = torch.cat([seg, noise.to(seg.dtype)], dim=1)
        if self.z_dim > 0:
            if noise is None or noise.shape[-1] != self.z_dim:
                raise ValueError(f"noise [B,{self.z_dim}] required, got "
                                 f"{None if noise is None else tuple(noise.shape)}")
            x = self.fc(noise).view(-1, 16 * self.ngf, self.sh, self.sw)
        else:
            x = self.fc(resize_nearest(seg, (self.sh, self.sw)))

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2.0, mode="nearest")

        x = self.head_0(x, seg, idx)
        x = up(x)
        x = self.G_middle_0(x, seg, idx)
        if self.num_upsampling_layers in ("more", "most"):
            x = up(x)
        x = self.G_middle_1(x, seg, idx)
        for blk in (self.up_0, self.up_1, self.up_2, self.up_3):
            x = blk(up(x), seg, idx)
        if self.num_upsampling_layers == "most":
            x = self.up_4(up(x), seg, idx)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))
