"""SAFM: Semantic-shape Adaptive Feature Modulation (Lv et al., CVPR 2022).

SAFM conditions a SPADE-style residual generator on two maps: the one-hot label map (plus
the instance-edge channel) and a *shape-aware position descriptor* (SPD) -- for every pixel
of an instance, a log-polar histogram (6 radius x 12 angle bins = 72 channels) of where the
contour points of that instance lie relative to it, with radii scaled by the instance's
size. The descriptor is turned into per-pixel 3x3 kernels' input: a small conv net on the
label map predicts a depthwise 3x3 kernel per pixel and channel, which filters an embedding
of the descriptor twice (``depconv1``, ``depconv2``); the result is concatenated to the
conditioning map before the usual gamma/beta convs.

Two layouts, as in the official code (github.com/cszy98/SAFM):

* ``modulation="safm"`` (ADE20K, COCO-Stuff): every normalization layer is a :class:`SAFM`
  with its own descriptor branch, run at the feature resolution.
* ``modulation="spade"`` (Cityscapes): the descriptor branch runs once at full resolution
  in the generator and plain SPADE blocks read the enlarged conditioning map.

The descriptor is computed inside ``forward`` on the labels' device from the ``instances``
input (``[B,H,W]`` instance ids, 0 = no instance: a zero descriptor there), as the reference
computes it from the dataset's instance-id maps (Cityscapes: ids >= 1000, i.e. things only;
ADE20K / COCO-Stuff: their instance maps). ``instances`` is one of the exported graph's
inputs. An image whose instance map is all zeros (or ``instances=None``) had no instance
map: each class region of its label map is one shape instead.
It is built from pairwise tensor ops only (contour pixels are picked with ``topk``, counts
are accumulated with ``scatter_add``), so it exports to ONNX.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import SISGenerator, capture_config, register_architecture
from .blocks import build_spade_trunk, run_spade_trunk
from .layers import SPADE, NormKind, example_instances, maybe_sn, param_free_norm
from .registry import DatasetSpec, register_model

ModulationKind = Literal["safm", "spade"]
UpsamplingMode = Literal["normal", "more", "most"]
_NUM_UPS = {"normal": 5, "more": 6, "most": 7}

#: Pairs (pixel, contour point) handled per chunk when building the descriptor.
_PAIRS_PER_CHUNK = 1 << 24


# ----------------------------------------------------------------------------- descriptor
def contour_mask(instances: torch.Tensor) -> torch.Tensor:
    """Contour pixels of every instance: ``[B,H,W]`` ids -> ``[B,H,W]`` bool.

    A pixel with a non-zero id is on its instance's contour when one of its 4-neighbours
    has another id or lies outside the image (the border points of a border-following
    trace of an 8-connected region).
    """
    padded = F.pad(instances.unsqueeze(1), (1, 1, 1, 1), value=-1).squeeze(1)  # [B,H+2,W+2]
    h, w = instances.shape[-2:]
    up = padded[:, :h, 1:w + 1]
    down = padded[:, 2:, 1:w + 1]
    left = padded[:, 1:h + 1, :w]
    right = padded[:, 1:h + 1, 2:]
    differs = (up != instances) | (down != instances) | (left != instances) | (right != instances)
    return differs & (instances > 0)


def _angle_bins(u: torch.Tensor, v: torch.Tensor, nbins_theta: int) -> torch.Tensor:
    """Angle bin of the offsets ``(u, v)``: ``floor(atan2(u, v) mod 2pi / (2pi/n))``.

    Computed with exact half-plane and slope tests instead of ``atan2``, so that offsets on
    the axes (very common on a pixel grid) fall in the same bin in every backend. The
    zero offset falls in the bin of angle pi, as ``atan2(+0, -0)`` does in the reference.
    Only ``nbins_theta`` divisible by 4 is supported (the paper uses 12).
    """
    per_quadrant = nbins_theta // 4
    # quadrant q rotates (u, v) by -q*90 degrees into u >= 0, v > 0
    q1 = (u > 0) & (v <= 0)
    q2 = (u <= 0) & (v < 0)
    q3 = (u < 0) & (v >= 0)
    quadrant = q1.long() + 2 * q2.long() + 3 * q3.long()
    ur = torch.where(q1, -v, torch.where(q2, -u, torch.where(q3, v, u)))
    vr = torch.where(q1, u, torch.where(q2, -v, torch.where(q3, -u, v)))
    sub = torch.zeros_like(quadrant)
    for k in range(1, per_quadrant):
        phi = k * (math.pi / 2) / per_quadrant
        # angle(ur, vr) >= phi  <=>  ur * cos(phi) >= vr * sin(phi)
        sub = sub + (ur * math.cos(phi) >= vr * math.sin(phi)).long()
    bins = quadrant * per_quadrant + sub
    origin = (u == 0) & (v == 0)
    return torch.where(origin, torch.full_like(bins, nbins_theta // 2), bins)


def shape_descriptor(instances: torch.Tensor, max_contour_points: int, nbins_r: int = 6,
                     nbins_theta: int = 12, r_inner: float = 0.125, r_outer: float = 2.0,
                     ) -> torch.Tensor:
    """The shape-aware position descriptor of an instance map.

    For every pixel p of instance k and every contour pixel c of k, the offset
    ``(p_row - c_row, c_col - p_col)`` is binned by angle (``nbins_theta`` sectors) and by
    radius ``|p - c| / (R_k / 2)`` against ``nbins_r`` log-spaced edges from ``r_inner`` to
    ``r_outer`` (R_k: the largest pixel-to-contour distance within k); the histogram is
    normalized to sum 1. Channel ``(n_r - 1) * nbins_theta + sector`` holds the bin, ``n_r``
    being the number of edges >= the scaled radius (so the innermost ring comes last).

    Args:
        instances: ``[B,H,W]`` integer instance ids, 0 = no instance (zero descriptor).
        max_contour_points: At most this many contour pixels per image are used (the first
            ones in raster order), which bounds memory and time.
        nbins_r: Radius bins.
        nbins_theta: Angle bins (a multiple of 4).
        r_inner: Innermost radius edge (in units of R_k / 2).
        r_outer: Outermost radius edge.

    Returns:
        ``[B, nbins_r * nbins_theta, H, W]`` float descriptor.
    """
    if nbins_theta % 4:
        raise ValueError("nbins_theta must be a multiple of 4")
    b, h, w = instances.shape
    n = h * w
    nbins = nbins_r * nbins_theta
    device = instances.device
    inst = instances.long().reshape(b, n)  # [B,N]
    contour = contour_mask(instances.long()).reshape(b, n)
    k = min(max_contour_points, n)
    pos = torch.arange(n, device=device)
    # contour pixels score in (1, 2], others in (-1, 0]; ties broken by raster order
    score = contour.float() * 2.0 - pos.float() / n
    top, slot = score.topk(k, dim=1)  # [B,K]
    slot_id = torch.where(top > 0, inst.gather(1, slot), torch.full_like(slot, -1))  # [B,K]
    c_row = (slot // w).float().unsqueeze(1)  # [B,1,K]
    c_col = (slot % w).float().unsqueeze(1)
    p_row_all = (pos // w).float()
    p_col_all = (pos % w).float()
    edges = torch.logspace(math.log10(r_inner), math.log10(r_outer), nbins_r,
                           dtype=torch.float64).tolist()
    chunk = max(1, min(n, _PAIRS_PER_CHUNK // max(k, 1)))
    starts = list(range(0, n, chunk))

    def pairs(s: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        pid = inst[:, s:s + chunk].unsqueeze(2)  # [B,P,1]
        same = (pid == slot_id.unsqueeze(1)) & (pid > 0)  # [B,P,K]
        u = p_row_all[s:s + chunk].view(1, -1, 1) - c_row  # [B,P,K]
        v = c_col - p_col_all[s:s + chunk].view(1, -1, 1)
        return same, u, v, u * u + v * v

    # pass 1: per contour point, the farthest pixel of its instance
    far = torch.zeros(b, k, device=device)  # squared distances, [B,K]
    for s in starts:
        same, _, _, d2 = pairs(s)
        far = torch.maximum(far, torch.where(same, d2, torch.zeros_like(d2)).amax(1))
    # pass 2: per pixel, the histogram over its instance's contour points
    hists = []
    for s in starts:
        same, u, v, d2 = pairs(s)
        rmax2 = torch.where(same, far.unsqueeze(1), torch.zeros_like(d2)).amax(2, keepdim=True)
        half = torch.sqrt(rmax2) / 2.0  # [B,P,1]
        scaled = torch.sqrt(d2) / torch.where(half > 0, half, torch.ones_like(half))
        n_r = torch.zeros_like(slot_id.unsqueeze(1).expand_as(same))
        for e in edges:
            n_r = n_r + (scaled <= e).long()
        valid = same & (n_r > 0) & (half > 0)
        idx = (n_r - 1) * nbins_theta + _angle_bins(u, v, nbins_theta)
        idx = torch.where(valid, idx, torch.full_like(idx, nbins))  # invalid -> spare bin
        counts = torch.zeros(b, idx.shape[1], nbins + 1, device=device)
        counts = counts.scatter_add(2, idx, valid.float())
        hists.append(counts[:, :, :nbins])
    hist = torch.cat(hists, dim=1)  # [B,N,72]
    total = hist.sum(2, keepdim=True)
    hist = hist / torch.where(total > 0, total, torch.ones_like(total))
    return hist.permute(0, 2, 1).reshape(b, nbins, h, w)


# ------------------------------------------------------------------------------ modules
def depthwise_per_pixel(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Filter each pixel and channel of ``x`` [B,C,H,W] with its own 3x3 kernel.

    ``kernels`` is ``[B, C*9, H, W]`` with the 9 taps of a channel consecutive (row-major),
    the layout of ``nn.Unfold``. Written as shifted slices, so it exports to ONNX; no
    learned weights (the reference module's unused BatchNorm is left out).
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    taps = torch.stack([padded[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)],
                       dim=2)  # [B,C,9,H,W]
    return (taps * kernels.view(b, c, 9, h, w)).sum(2)


class ShapeBranch(nn.Module):
    """The descriptor branch: label-conditioned per-pixel depthwise filtering of the SPD.

    ``pre_seg`` embeds the label map, ``pre_dis`` the descriptor; ``gen_weights1/2`` predict
    two sets of per-pixel 3x3 depthwise kernels from the label embedding, applied in turn
    to the descriptor embedding. Output: ``cat(label map, descriptor, filtered)``.

    Args:
        seg_channels: Label-map channels (one-hot, dontcare, edge).
        desc_channels: Descriptor channels (72).
        hidden: Width of the embeddings (36 in the paper).
        kernel_size: Kernel of the embedding convs.
    """

    def __init__(self, seg_channels: int, desc_channels: int, hidden: int = 36,
                 kernel_size: int = 3):
        super().__init__()
        self.seg_channels = seg_channels
        pad = kernel_size // 2
        self.pre_seg = nn.Sequential(nn.Conv2d(seg_channels, hidden, kernel_size, padding=pad),
                                     nn.ReLU())
        self.pre_dis = nn.Sequential(nn.Conv2d(desc_channels, hidden, kernel_size, padding=pad),
                                     nn.ReLU())

        def kernel_net() -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, hidden * 9, 3, padding=1))

        self.gen_weights1 = kernel_net()
        self.gen_weights2 = kernel_net()

    @property
    def out_channels(self) -> int:
        """Channels of the enlarged conditioning map."""
        return self.seg_channels + self.pre_dis[0].in_channels + self.pre_seg[0].out_channels

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """``cond`` [B,S+D,H,W] (labels then descriptor) -> [B,S+D+hidden,H,W]."""
        seg, desc = cond[:, :self.seg_channels], cond[:, self.seg_channels:]
        seg_emb = self.pre_seg(seg)
        filtered = depthwise_per_pixel(self.pre_dis(desc), self.gen_weights1(seg_emb))
        filtered = depthwise_per_pixel(filtered, self.gen_weights2(seg_emb))
        return torch.cat([seg, desc, filtered], dim=1)


class SAFM(nn.Module):
    """Semantic-shape adaptive feature modulation.

    ``out = norm(x) * (1 + gamma) + beta`` with gamma and beta predicted (as in SPADE) from
    the conditioning map resized to the feature size and enlarged by a :class:`ShapeBranch`.

    Args:
        channels: Feature channels to modulate.
        seg_channels: Label-map channels (one-hot, dontcare, edge).
        desc_channels: Descriptor channels.
        hidden: Width of the shared gamma/beta conv (128).
        shape_hidden: Width of the descriptor branch (36).
        norm: The param-free normalization.
        kernel_size: Kernel of the prediction convs.
    """

    def __init__(self, channels: int, seg_channels: int, desc_channels: int, hidden: int = 128,
                 shape_hidden: int = 36, norm: NormKind = "batch", kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.param_free_norm = param_free_norm(norm, channels)
        branch = ShapeBranch(seg_channels, desc_channels, shape_hidden, kernel_size)
        # the branch's layers sit directly in this module, as in the reference
        self.seg_channels = seg_channels
        self.pre_seg, self.pre_dis = branch.pre_seg, branch.pre_dis
        self.gen_weights1, self.gen_weights2 = branch.gen_weights1, branch.gen_weights2
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(branch.out_channels, hidden, kernel_size, padding=pad), nn.ReLU()
        )
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """Modulate ``x`` [B,C,h,w] by ``cond`` [B,S+D,H,W] (labels then descriptor).

        ``labels`` is unused (the signature of the other conditional norms).
        """
        cond = F.interpolate(cond, size=x.shape[-2:], mode="nearest")
        seg, desc = cond[:, :self.seg_channels], cond[:, self.seg_channels:]
        seg_emb = self.pre_seg(seg)
        filtered = depthwise_per_pixel(self.pre_dis(desc), self.gen_weights1(seg_emb))
        filtered = depthwise_per_pixel(filtered, self.gen_weights2(seg_emb))
        actv = self.mlp_shared(torch.cat([seg, desc, filtered], dim=1))
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)

    # the same modulation form as SPADE's (norm, mlp_gamma, mlp_beta): the same fold
    fold_norm = SPADE.fold_norm


class SAFMResBlock(nn.Module):
    """SPADE's residual block with :class:`SAFM` (or, for the Cityscapes layout, SPADE).

    Two (modulation, LeakyReLU, conv) stages and a shortcut, learned (modulation + 1x1
    conv, no bias) when the width changes.

    Args:
        fin: Input channels.
        fout: Output channels.
        seg_channels: Label-map channels.
        desc_channels: Descriptor channels.
        norm: The param-free normalization.
        spectral: Spectral-normalize the convs.
        hidden: Width of the shared gamma/beta conv.
        shape_hidden: Width of the descriptor branch.
        modulation: ``safm`` (a :class:`SAFM` per norm) or ``spade`` (plain SPADE reading
            the already enlarged conditioning map of ``seg + desc + shape_hidden``
            channels).
    """

    def __init__(self, fin: int, fout: int, seg_channels: int, desc_channels: int,
                 norm: NormKind = "batch", spectral: bool = True, hidden: int = 128,
                 shape_hidden: int = 36, modulation: ModulationKind = "safm"):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = maybe_sn(nn.Conv2d(fin, fmid, 3, padding=1), spectral)
        self.conv_1 = maybe_sn(nn.Conv2d(fmid, fout, 3, padding=1), spectral)

        def mod(c: int) -> nn.Module:
            if modulation == "spade":
                return SPADE(c, seg_channels + desc_channels + shape_hidden, hidden=hidden,
                             norm=norm)
            return SAFM(c, seg_channels, desc_channels, hidden, shape_hidden, norm)

        self.norm_0 = mod(fin)
        self.norm_1 = mod(fmid)
        if self.learned_shortcut:
            self.conv_s = maybe_sn(nn.Conv2d(fin, fout, 1, bias=False), spectral)
            self.norm_s = mod(fin)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``x`` [B,fin,h,w] -> [B,fout,h,w], modulated by ``cond`` [B,S,H,W]."""
        x_s = self.conv_s(self.norm_s(x, cond, None)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, cond, None), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, cond, None), 0.2))
        return x_s + dx


# ---------------------------------------------------------------------------- generator
@register_architecture
class SAFMGenerator(SISGenerator):
    """The SAFM generator: SPADE's layout, conditioned on labels and the shape descriptor.

    Deterministic (no noise) as in the paper: the latent tensor is a conv of the
    conditioning map (labels + descriptor) downsampled to ``1/2^n`` of the output.

    Args:
        num_classes: Label ids ``0..num_classes-1``.
        height: Output height.
        width: Output width.
        ngf: Base width; the widest layers have ``16 * ngf`` channels.
        use_edges: Take the instance-edge map as an extra conditioning channel.
        dontcare: Give ignore pixels (255) their own one-hot channel (last).
        label_nc: One-hot channels without dontcare when the official configuration has
            more than ``num_classes`` (Cityscapes: 35); ``None``: ``num_classes``.
        modulation: ``safm`` (a descriptor branch in every norm) or ``spade`` (one branch
            at full resolution, then SPADE blocks; the Cityscapes layout).
        norm: Param-free norm inside the modulations (``batch`` as in the paper).
        spectral: Spectral normalization on the residual-block convs.
        num_upsampling_layers: ``normal`` (5), ``more`` (6) or ``most`` (7) upsamplings.
        hidden: Width of the shared gamma/beta conv.
        shape_hidden: Width of the descriptor branch.
        nbins_r: Radius bins of the descriptor.
        nbins_theta: Angle bins of the descriptor.
        max_contour_points: Contour pixels per image the descriptor uses at most.

    Inputs (:attr:`input_names`): ``labels``, ``edges``, ``noise`` (always ``None``) and
    ``instances``.
    """

    input_names = ("labels", "edges", "noise", "instances")

    @capture_config
    def __init__(
        self,
        num_classes: int,
        height: int = 256,
        width: int = 256,
        ngf: int = 64,
        use_edges: bool = True,
        dontcare: bool = False,
        label_nc: int | None = None,
        modulation: ModulationKind = "safm",
        norm: NormKind = "batch",
        spectral: bool = True,
        num_upsampling_layers: UpsamplingMode = "normal",
        hidden: int = 128,
        shape_hidden: int = 36,
        nbins_r: int = 6,
        nbins_theta: int = 12,
        max_contour_points: int = 8192,
    ):
        super().__init__()
        if num_upsampling_layers not in _NUM_UPS:
            raise ValueError(f"num_upsampling_layers must be one of {sorted(_NUM_UPS)}")
        if modulation not in ("safm", "spade"):
            raise ValueError(f"unknown modulation {modulation!r} (safm, spade)")
        if label_nc is not None and label_nc < num_classes:
            raise ValueError(f"label_nc ({label_nc}) must be >= num_classes ({num_classes})")
        if nbins_theta % 4:
            raise ValueError("nbins_theta must be a multiple of 4")
        n_up = _NUM_UPS[num_upsampling_layers]
        if width % 2**n_up or height % 2**n_up:
            raise ValueError(f"height and width ({height}x{width}) must be multiples of "
                             f"2^{n_up} for num_upsampling_layers={num_upsampling_layers!r}")
        self._num_classes = num_classes
        self._height, self._width = height, width
        self.use_edges, self.dontcare = use_edges, dontcare
        self.label_nc = num_classes if label_nc is None else label_nc
        self.modulation = modulation
        self.num_upsampling_layers = num_upsampling_layers
        self.ngf = ngf
        self.nbins_r, self.nbins_theta = nbins_r, nbins_theta
        self.max_contour_points = max_contour_points
        self.sh, self.sw = height // 2**n_up, width // 2**n_up
        seg_nc = self.label_nc + int(dontcare) + int(use_edges)
        desc_nc = nbins_r * nbins_theta
        semantic_nc = seg_nc + desc_nc
        nf = ngf

        self.fc = nn.Conv2d(semantic_nc, 16 * nf, 3, padding=1)

        if modulation == "spade":
            branch = ShapeBranch(seg_nc, desc_nc, shape_hidden)
            # the branch's layers sit directly in the generator, as in the reference
            self.pre_seg, self.pre_dis = branch.pre_seg, branch.pre_dis
            self.gen_weights1, self.gen_weights2 = branch.gen_weights1, branch.gen_weights2

        def block(fin: int, fout: int) -> SAFMResBlock:
            return SAFMResBlock(fin, fout, seg_nc, desc_nc, norm=norm, spectral=spectral,
                                hidden=hidden, shape_hidden=shape_hidden,
                                modulation=modulation)

        final_nc = build_spade_trunk(self, lambda fin, fout, _: block(fin, fout), nf,
                                     num_upsampling_layers)
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1)

    # ------------------------------------------------------------------- contract
    def example_inputs(self, batch_size: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random ``forward`` inputs: compact labels, edges, no noise, example instances."""
        labels, edges, noise = super().example_inputs(batch_size, seed)
        return labels, edges, noise, example_instances(labels)

    @property
    def label_channels(self) -> int:
        """``label_nc``: the official one-hot class channels."""
        return self.label_nc

    # -------------------------------------------------------------------- forward
    def descriptor(self, labels: torch.Tensor, instances: torch.Tensor | None
                   ) -> torch.Tensor:
        """The shape descriptor ``[B, nbins_r * nbins_theta, H, W]`` of the objects.

        The generator reads it after :meth:`condition` (one-hot, edge). Objects are the
        instances, or the class regions for ``instances=None`` and for an image whose
        instance map is all zeros.
        """
        lab = labels.long()
        regions = torch.where((lab >= 0) & (lab < self._num_classes), lab + 1,
                              torch.zeros_like(lab))  # each class region is one shape
        if instances is None:
            instances = regions
        else:  # per image: an all-zero instance map means there was none
            given = (instances != 0).flatten(1).any(1).view(-1, 1, 1)
            instances = torch.where(given, instances.long(), regions)
        return shape_descriptor(instances, self.max_contour_points, self.nbins_r,
                                self.nbins_theta)

    def forward(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, instances: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Generate images.

        Args:
            labels: ``[B,H,W]`` integer class ids (255 = ignore).
            edges: ``[B,1,H,W]`` instance-edge map in {0, 1} (when ``use_edges``).
            noise: Unused (SAFM is deterministic); must be ``None``.
            instances: ``[B,H,W]`` integer instance ids (0 = none) for the shape
                descriptor; ``None`` (or an image's all-zero map) uses the class regions
                instead.

        Returns:
            ``[B,3,H,W]`` images in [-1, 1].
        """
        if labels.dim() != 3:
            raise ValueError(f"labels must be [B,H,W], got {tuple(labels.shape)}")
        if noise is not None:
            raise ValueError("SAFM takes no noise")
        seg = self.condition(labels, edges)
        cond = torch.cat([seg, self.descriptor(labels, instances).to(seg.dtype)], dim=1)
        x = self.fc(F.interpolate(cond, size=(self.sh, self.sw), mode="nearest"))
        if self.modulation == "spade":
            cond = self._global_branch(cond)

        x = run_spade_trunk(self, x, lambda blk, t: blk(t, cond), self.num_upsampling_layers)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))

    def _global_branch(self, cond: torch.Tensor) -> torch.Tensor:
        """The Cityscapes layout's full-resolution descriptor branch."""
        seg_nc = self.pre_seg[0].in_channels
        seg, desc = cond[:, :seg_nc], cond[:, seg_nc:]
        seg_emb = self.pre_seg(seg)
        filtered = depthwise_per_pixel(self.pre_dis(desc), self.gen_weights1(seg_emb))
        filtered = depthwise_per_pixel(filtered, self.gen_weights2(seg_emb))
        return torch.cat([seg, desc, filtered], dim=1)


# ----------------------------------------------------------------------------- registry
@register_model(
    reference={
        "cityscapes": (96.2e6, 381.7e9),
        "ade20k": (104.9e6, 294.1e9),
        "coco_stuff": (106.1e6, 306.9e9),
    },
    tiny={"ngf": 4, "hidden": 8, "shape_hidden": 4, "max_contour_points": 512},
)
def safm(spec: DatasetSpec, vocab: Any, **overrides: Any) -> SISGenerator:
    """SAFM (Lv et al., CVPR 2022) with the official per-dataset options.

    Cityscapes: 35 label channels + edge, six upsamplings, the descriptor branch once in
    the generator (SPADE blocks). ADE20K: 151 label channels (150 + dontcare), no edge.
    COCO-Stuff: 182 + dontcare + edge. ADE20K and COCO-Stuff use SAFM blocks.
    """
    args: dict[str, Any] = dict(
        num_classes=vocab.num_classes, height=spec.height, width=spec.width, ngf=64,
        use_edges=spec.use_edges, dontcare=spec.dontcare, modulation="safm", norm="batch",
        spectral=True, num_upsampling_layers="normal",
    )
    if spec.vocabulary == "cityscapes":
        args.update(label_nc=max(35, vocab.num_classes), modulation="spade",
                    num_upsampling_layers="more", max_contour_points=16384)
    args.update(overrides)
    return SAFMGenerator(**args)
