"""CC-FPSE: the conditional-convolution generator (Liu et al., NeurIPS 2019).

"Learning to Predict Layout-to-image Conditional Convolutions for Semantic Image
Synthesis". The generator is a SPADE-like residual decoder whose 3x3 convolutions are not
learned weights but *predicted per pixel* from the semantic layout:

* a **global-context-aware weight prediction network** encodes the one-hot label map with
  a feature pyramid (a strided-conv encoder ``labelenc*``, 1x1 laterals ``labellat*`` and
  3x3 decoder convs ``labeldec*``), giving a layout feature map at every decoder scale;
* each **condition-aware block** (:class:`DepthsepCCBlock`) concatenates the label map
  resized to its scale with that layout feature and predicts from it
  - depthwise 3x3 kernels for every channel and pixel (``gen_weights1/2``),
  - sigmoid channel gates for every pixel (``gen_se_weights1/2``),
  and applies BN -> predicted depthwise conv -> 1x1 conv -> gate -> LeakyReLU twice,
  plus a SPADE-normalized learned shortcut where the width changes;
* a noise vector ``z`` (the paper's VAE mode; drawn outside the network) is mapped by a
  linear layer to the latent tensor.

The predicted-kernel convolution is written as a sum of nine shifted, per-pixel weighted
copies of the zero-padded input: plain Slice/Mul/Add in ONNX, and like the official
unfold-multiply-sum it performs no convolution, so the MAC count matches the paper's.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..vocab import Vocabulary
from .base import SISGenerator, capture_config, register_architecture
from .blocks import build_spade_trunk, run_spade_trunk
from .layers import SPADE, maybe_sn, resize_nearest
from .registry import DatasetSpec, register_model

UpsamplingMode = Literal["normal", "more"]
_NUM_UPS = {"normal": 5, "more": 6}


def predicted_depthwise_conv(x: torch.Tensor, weights: torch.Tensor, kernel_size: int = 3
                             ) -> torch.Tensor:
    """Depthwise convolution with a different kernel at every pixel.

    ``out[b,c,y,x] = sum_{i,j} w[b, c*k*k + i*k + j, y, x] * xpad[b, c, y+i, x+j]`` (zero
    padding ``k // 2``, stride 1): the channel layout of ``F.unfold``.

    Args:
        x: ``[B,C,H,W]`` input.
        weights: ``[B,C*k*k,H,W]`` predicted kernels.
        kernel_size: ``k`` (odd).

    Returns:
        ``[B,C,H,W]``.
    """
    b, c, h, w = x.shape
    k = kernel_size
    pad = k // 2
    xp = F.pad(x, (pad, pad, pad, pad))  # [B,C,H+2p,W+2p]
    wk = weights.reshape(b, c, k * k, h, w)  # [B,C,k*k,H,W]
    out = xp[:, :, :h, :w] * wk[:, :, 0]
    for idx in range(1, k * k):
        i, j = divmod(idx, k)
        out = out + xp[:, :, i:i + h, j:j + w] * wk[:, :, idx]
    return out


def _weight_predictor(in_channels: int, hidden: int, out_channels: int, gate: bool
                      ) -> nn.Sequential:
    """conv3x3 -> ReLU -> conv3x3 (-> sigmoid for the channel gates)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(),
        nn.Conv2d(hidden, out_channels, 3, padding=1),
    ]
    if gate:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class DepthsepCCBlock(nn.Module):
    """Condition-aware residual block with predicted depthwise-separable convolutions.

    Each of the two stages is BN -> predicted depthwise 3x3 conv -> learned 1x1 conv ->
    predicted per-pixel channel gate -> LeakyReLU(0.2). The shortcut is SPADE + a
    spectral-normalized 1x1 conv where the width changes.

    Args:
        fin: Input channels.
        fout: Output channels (``fout <= fin``).
        cond_channels: Channels of the conditioning map (labels + layout feature); the
            weight predictors and the shortcut's SPADE all read it.
        hidden: Width of the weight-prediction convs.
        spectral: Spectral-normalize the shortcut conv.
    """

    def __init__(self, fin: int, fout: int, cond_channels: int, hidden: int = 128,
                 spectral: bool = True):
        super().__init__()
        if fout > fin:
            raise ValueError(f"DepthsepCCBlock needs fout <= fin, got {fin} -> {fout}")
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.gen_weights1 = _weight_predictor(cond_channels, hidden, fin * 9, gate=False)
        self.gen_weights2 = _weight_predictor(cond_channels, hidden, fmid * 9, gate=False)
        self.gen_se_weights1 = _weight_predictor(cond_channels, hidden, fmid, gate=True)
        self.gen_se_weights2 = _weight_predictor(cond_channels, hidden, fout, gate=True)
        self.norm_1 = nn.BatchNorm2d(fin, affine=True)
        self.conv_1 = nn.Conv2d(fin, fmid, 1)
        self.norm_2 = nn.BatchNorm2d(fmid, affine=True)
        self.conv_3 = nn.Conv2d(fmid, fout, 1)
        if self.learned_shortcut:
            self.conv_s = maybe_sn(nn.Conv2d(fin, fout, 1, bias=False), spectral)
            self.norm_s = SPADE(fin, cond_channels, hidden=hidden, norm="batch")

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``x`` [B,fin,h,w], ``cond`` [B,S,h',w'] (resized to ``h,w``) -> [B,fout,h,w]."""
        cond = resize_nearest(cond, x.shape[-2:])
        w1 = self.gen_weights1(cond)  # [B,fin*9,h,w]
        w2 = self.gen_weights2(cond)  # [B,fmid*9,h,w]
        g1 = self.gen_se_weights1(cond)  # [B,fmid,h,w]
        g2 = self.gen_se_weights2(cond)  # [B,fout,h,w]
        x_s = self.conv_s(self.norm_s(x, cond, cond)) if self.learned_shortcut else x
        dx = predicted_depthwise_conv(self.norm_1(x), w1)
        dx = F.leaky_relu(self.conv_1(dx) * g1, 0.2)
        dx = predicted_depthwise_conv(self.norm_2(dx), w2)
        dx = F.leaky_relu(self.conv_3(dx) * g2, 0.2)
        return x_s + dx


def _norm_conv(cin: int, cout: int, kernel_size: int, stride: int, spectral: bool
               ) -> nn.Sequential:
    """The label encoder's unit: (spectral) conv without bias -> BN(affine) -> LeakyReLU."""
    conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2,
                     bias=False)
    return nn.Sequential(nn.Sequential(maybe_sn(conv, spectral), nn.BatchNorm2d(cout)),
                         nn.LeakyReLU(0.2))


@register_architecture
class CCFPSEGenerator(SISGenerator):
    """The CC-FPSE conditional-convolution generator.

    Args:
        num_classes: Label ids ``0..num_classes-1``.
        height: Output height.
        width: Output width; ``height`` and ``width`` must be multiples of ``2^n`` (n = 5,
            or 6 with ``num_upsampling_layers="more"``).
        ngf: Base width; the widest blocks have ``16 * ngf`` channels, the label
            pyramid ``ngf``.
        z_dim: Noise vector size; 0 for the deterministic mode (the latent tensor is a
            conv of the downsampled label map).
        use_edges: Take the instance-edge map as an extra label channel (last).
        dontcare: Give ignore pixels (255) their own one-hot channel, after the
            ``label_nc`` class channels.
        label_nc: One-hot class channels (``None``: ``num_classes``); more than
            ``num_classes`` leaves the extra channels zero, as the official Cityscapes
            configuration (35 channels for 34 label ids) does.
        zero_is_dontcare: Label id 0 is the dataset's "unlabelled" class and takes the
            dontcare channel, ids ``1..`` shift down one channel: the official ADE20K
            layout (``other`` last, 150 class channels). Needs ``dontcare``.
        num_upsampling_layers: ``normal`` (5 upsamplings) or ``more`` (6; Cityscapes).
        hidden: Width of the weight-prediction and SPADE convs.
        spectral: Spectral normalization of the label-pyramid convs and the shortcuts.
    """

    @capture_config
    def __init__(
        self,
        num_classes: int,
        height: int = 256,
        width: int = 256,
        ngf: int = 64,
        z_dim: int = 256,
        use_edges: bool = True,
        dontcare: bool = False,
        label_nc: int | None = None,
        zero_is_dontcare: bool = False,
        num_upsampling_layers: UpsamplingMode = "normal",
        hidden: int = 128,
        spectral: bool = True,
    ):
        super().__init__()
        if num_upsampling_layers not in _NUM_UPS:
            raise ValueError(f"num_upsampling_layers must be one of {sorted(_NUM_UPS)}")
        n_up = _NUM_UPS[num_upsampling_layers]
        if width % 2**n_up or height % 2**n_up:
            raise ValueError(f"height and width ({height}x{width}) must be multiples of "
                             f"2^{n_up} for num_upsampling_layers={num_upsampling_layers!r}")
        if zero_is_dontcare and not dontcare:
            raise ValueError("zero_is_dontcare needs dontcare=True (id 0 takes that channel)")
        n_class_ids = num_classes - int(zero_is_dontcare)
        if label_nc is not None and label_nc < n_class_ids:
            raise ValueError(f"label_nc ({label_nc}) < the {n_class_ids} class ids it encodes")
        self._num_classes = num_classes
        self._height, self._width = height, width
        self.z_dim, self.use_edges, self.dontcare = z_dim, use_edges, dontcare
        self.label_nc = n_class_ids if label_nc is None else label_nc
        self.zero_is_dontcare = zero_is_dontcare
        self.more = num_upsampling_layers == "more"
        self.ngf = nf = ngf
        self.sh, self.sw = height // 2**n_up, width // 2**n_up
        semantic_nc = self.label_nc + int(dontcare) + int(use_edges)
        cond_nc = semantic_nc + nf

        if z_dim > 0:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(semantic_nc, 16 * nf, 3, padding=1)

        # global-context-aware weight prediction network: a feature pyramid over the labels
        n_levels = n_up + 1  # encoder levels from full resolution down to the latent size
        self.labelenc1 = _norm_conv(semantic_nc, nf, 3, 1, spectral)
        for i in range(2, n_levels + 1):
            setattr(self, f"labelenc{i}", _norm_conv(nf, nf, 3, 2, spectral))
        for i in range(1, n_levels):
            setattr(self, f"labellat{i}", _norm_conv(nf, nf, 1, 1, spectral))
        for i in range(1, n_levels):
            setattr(self, f"labeldec{i}", _norm_conv(nf, nf, 3, 1, spectral))
        self.n_levels = n_levels

        def block(fin: int, fout: int) -> DepthsepCCBlock:
            return DepthsepCCBlock(fin, fout, cond_nc, hidden=hidden, spectral=spectral)

        build_spade_trunk(self, lambda fin, fout, _: block(fin, fout), nf, num_upsampling_layers)
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)
        self.reset_parameters()

    def reset_parameters(self, gain: float = 0.02) -> None:
        """The official initialization: Xavier-normal(gain) convs/linears, BN ~ N(1, gain)."""
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d) and m.affine:
                nn.init.normal_(m.weight, 1.0, gain)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d | nn.Linear):
                parametrized = hasattr(m, "parametrizations")
                weight = m.parametrizations.weight.original if parametrized else m.weight
                with torch.no_grad():
                    nn.init.xavier_normal_(weight, gain=gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------- contract

    def noise_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        """``(z_dim,)``, or ``()`` in the deterministic mode."""
        return (self.z_dim,) if self.z_dim > 0 else ()

    # -------------------------------------------------------------------- forward
    @property
    def label_channels(self) -> int:
        """``label_nc``: the official one-hot class channels."""
        return self.label_nc

    def onehot(self, labels: torch.Tensor) -> torch.Tensor:
        """The official one-hot ``[B,label_nc(+dontcare),H,W]``.

        With ``zero_is_dontcare`` id 0 joins the ignore pixels (the dontcare channel) and
        the other ids move down one channel first.
        """
        if self.zero_is_dontcare:
            ignore = (labels == 0) | (labels == 255)
            labels = torch.where(ignore, torch.full_like(labels, 255), labels - 1)
        return super().onehot(labels)

    def layout_pyramid(self, seg: torch.Tensor) -> list[torch.Tensor]:
        """The weight-prediction network's layout features, coarsest first.

        Returns:
            ``n_levels`` maps ``[B,ngf,H/2^k,W/2^k]`` for ``k = n_levels-1 .. 0``.
        """
        enc = [self.labelenc1(seg)]
        for i in range(2, self.n_levels + 1):
            enc.append(getattr(self, f"labelenc{i}")(enc[-1]))
        out = [enc[-1]]
        for i in range(1, self.n_levels):
            lateral = getattr(self, f"labellat{i}")(enc[-1 - i])
            up = F.interpolate(out[-1], scale_factor=2.0, mode="nearest")
            out.append(getattr(self, f"labeldec{i}")(up + lateral))
        return out

    def forward(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images.

        Args:
            labels: ``[B,H,W]`` integer class ids (255 = ignore).
            edges: ``[B,1,H,W]`` instance-edge map in {0, 1} (when ``use_edges``).
            noise: ``[B,z_dim]`` standard normal noise (when ``z_dim > 0``).

        Returns:
            ``[B,3,H,W]`` images in [-1, 1].
        """
        if labels.dim() != 3:
            raise ValueError(f"labels must be [B,H,W], got {tuple(labels.shape)}")
        seg = self.condition(labels, edges)
        if self.z_dim > 0:
            if noise is None or noise.shape[-1] != self.z_dim:
                raise ValueError(f"noise [B,{self.z_dim}] required, got "
                                 f"{None if noise is None else tuple(noise.shape)}")
            x = self.fc(noise).view(-1, 16 * self.ngf, self.sh, self.sw)
        else:
            x = self.fc(resize_nearest(seg, (self.sh, self.sw)))
        layout = self.layout_pyramid(seg)

        def cond(level: int, size: torch.Size) -> torch.Tensor:
            return torch.cat([resize_nearest(seg, size), layout[level]], dim=1)

        def step(blk: nn.Module, t: torch.Tensor) -> torch.Tensor:
            level = (t.shape[-1] // self.sw).bit_length() - 1  # pyramid level of this size
            return blk(t, cond(level, t.shape[-2:]))

        x = run_spade_trunk(self, x, step, "more" if self.more else "normal")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


#: Official one-hot class channels per dataset (label_nc in the official options).
_OFFICIAL_LABEL_NC = {"cityscapes": 35, "ade20k": 150, "coco_stuff": 182}


@register_model(
    reference={
        "cityscapes": (128.06e6, 738.7e9),
        "ade20k": (140.70e6, 437.9e9),
        "coco_stuff": (141.94e6, 455.8e9),
    },
    tiny={"ngf": 4, "hidden": 8, "z_dim": 8},
)
def ccfpse(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SISGenerator:
    """CC-FPSE (Liu et al., NeurIPS 2019), VAE-mode generator (noise vector ``z``)."""
    # ADE20K: the official loader sends id 0 ("other") to the dontcare channel (last)
    ade = spec.vocabulary == "ade20k"
    label_nc = max(vocab.num_classes - int(ade), _OFFICIAL_LABEL_NC.get(spec.vocabulary, 0))
    args: dict[str, Any] = dict(
        num_classes=vocab.num_classes, height=spec.height, width=spec.width, ngf=64,
        z_dim=256, use_edges=spec.use_edges, dontcare=spec.dontcare or ade,
        label_nc=label_nc, zero_is_dontcare=ade,
        num_upsampling_layers="more" if spec.vocabulary == "cityscapes" else "normal",
        hidden=128, spectral=True,
    )
    args.update(overrides)
    return CCFPSEGenerator(**args)
