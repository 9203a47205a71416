"""pix2pixHD's instance-wise feature encoder ``E``.

The encoder (an encoder-decoder like the global generator, without residual blocks) maps a
real photo to a low-dimensional feature map and average-pools it inside every object, so
each object carries one constant style vector. During training those features are the
generator's ``features`` input (``Pix2PixHDGenerator(feat_num=...)``) and ``E`` is
optimised together with ``G``. What happens to them after training -- collecting,
clustering, sampling one centre per object at test time -- is in
:mod:`sisgen.models.style_features`, whose names are re-exported here.

The encoder is its own module, not part of the generator's parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .pix2pixhd import P2PNorm, p2p_init_weights, p2p_norm
from .style_features import (
    AREA_BLOCKS,
    MIN_AREA,
    cluster_features,
    clusters_from_dict,
    clusters_to_dict,
    encode_features,
    kmeans,
    merge_features,
    object_ids,
    sample_feature_map,
)

__all__ = [
    "AREA_BLOCKS",
    "MIN_AREA",
    "Pix2PixHDEncoder",
    "cluster_features",
    "clusters_from_dict",
    "clusters_to_dict",
    "encode_features",
    "instance_average",
    "kmeans",
    "merge_features",
    "object_ids",
    "sample_feature_map",
]


def instance_average(features: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Replace every feature by its mean over its region (per sample), differentiably.

    Args:
        features: ``[B,C,H,W]``.
        regions: ``[B,H,W]`` integer region ids (any values; pooled per sample).

    Returns:
        ``[B,C,H,W]`` piecewise-constant features.
    """
    b, c, h, w = features.shape
    _, inverse = torch.unique(regions, return_inverse=True)  # [B,H,W] in 0..n-1
    n = int(inverse.max()) + 1
    key = (inverse + n * torch.arange(b, device=regions.device).view(b, 1, 1)).reshape(-1)
    flat = features.permute(0, 2, 3, 1).reshape(-1, c)  # [B*H*W,C]
    sums = flat.new_zeros(b * n, c).index_add(0, key, flat)
    counts = flat.new_zeros(b * n).index_add(0, key, torch.ones_like(key, dtype=flat.dtype))
    means = sums / counts.clamp_min(1).unsqueeze(1)
    return means[key].view(b, h, w, c).permute(0, 3, 1, 2)


class Pix2PixHDEncoder(nn.Module):
    """pix2pixHD's instance-wise feature encoder ``E``.

    A 7x7 conv, ``n_downsampling`` stride-2 convs, as many transposed convs, a 7x7 conv
    with tanh, then instance-wise average pooling (:func:`instance_average`).

    Args:
        input_nc: Image channels.
        feat_num: Output feature channels (``--feat_num``, 3).
        nef: Width of the first conv (``--nef``, 16).
        n_downsampling: Stride-2 convs (``--n_downsample_E``, 4).
        norm: ``instance`` or ``batch``.
    """

    def __init__(self, input_nc: int = 3, feat_num: int = 3, nef: int = 16,
                 n_downsampling: int = 4, norm: P2PNorm = "instance"):
        super().__init__()
        self.config: dict[str, Any] = dict(input_nc=input_nc, feat_num=feat_num, nef=nef,
                                           n_downsampling=n_downsampling, norm=norm)
        self.feat_num = feat_num
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, nef, 7),
                                   p2p_norm(norm, nef), nn.ReLU()]
        for i in range(n_downsampling):
            c = nef * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), p2p_norm(norm, 2 * c),
                       nn.ReLU()]
        for i in range(n_downsampling):
            c = nef * 2 ** (n_downsampling - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                       p2p_norm(norm, c // 2), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(nef, feat_num, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        p2p_init_weights(self)

    def forward(self, image: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        """Encode ``image`` ``[B,3,H,W]`` and average inside ``regions`` ``[B,H,W]``.

        Returns:
            ``[B,feat_num,H,W]`` features, constant per region, in [-1, 1].
        """
        return instance_average(self.model(image), regions)
