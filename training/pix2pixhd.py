"""Training pieces of pix2pixHD: multi-scale PatchGAN, LSGAN, feature matching, VGG loss.

* :class:`MultiscaleDiscriminator` -- ``num_D`` identical PatchGANs
  (:class:`NLayerDiscriminator`) on the (label map, image) pair at full, 1/2, 1/4 ...
  resolution (3x3 average pooling, stride 2, padding not counted). With intermediate
  features on (the default, needed for feature matching) every layer group is a module
  ``scale<i>_layer<j>`` as in the official code.
* :func:`gan_loss` -- least squares (the paper) or the vanilla cross entropy, summed over
  the scales.
* :func:`feature_matching_loss` -- L1 between the discriminator features of real and fake,
  weighted ``4 / (n_layers + 1)`` per layer and ``1 / num_D`` per scale, times
  ``lambda_feat`` (10).
* :class:`~sisgen.training.perceptual.VGGLoss` (re-exported here) -- L1 between VGG19
  relu1_1..relu5_1 features with weights 1/32 .. 1, times ``lambda_feat``.
* :func:`pix2pixhd_losses` -- one official training iteration's five loss terms, including
  the instance-wise feature encoder: when a :class:`Pix2PixHDEncoder` is given, it encodes
  the real photo into the generator's ``features`` input and is trained through ``G``'s
  losses (put its parameters into the generator's optimizer, as the official code does).

* :class:`Pix2PixHDObjective` / :class:`Pix2PixHDLocalObjective` -- the trainer's objectives.

The official image pool (``--pool_size``) defaults to 0 and is not implemented here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sisgen.errors import SisgenInputError
from sisgen.models.base import SISGenerator
from sisgen.models.pix2pixhd import P2PNorm, Pix2PixHDGenerator, p2p_init_weights, p2p_norm
from sisgen.models.pix2pixhd_encoder import Pix2PixHDEncoder
from sisgen.models.style_features import (
    cluster_features,
    encode_features,
    merge_features,
    object_ids,
)

from .discriminator import Features
from .objective import Batch, Objective, Terms, register_objective
from .perceptual import VGGLoss, with_paper_vgg


def _patchgan_groups(input_nc: int, ndf: int, n_layers: int, norm: P2PNorm
                     ) -> list[list[nn.Module]]:
    """The layer groups of pix2pixHD's PatchGAN (4x4 convs, padding 2, width <= 512)."""
    groups: list[list[nn.Module]] = [[nn.Conv2d(input_nc, ndf, 4, stride=2, padding=2),
                                      nn.LeakyReLU(0.2)]]
    nf = ndf
    for n in range(1, n_layers + 1):
        nf_prev, nf = nf, min(2 * nf, 512)
        stride = 2 if n < n_layers else 1  # the last hidden layer keeps the resolution
        groups.append([nn.Conv2d(nf_prev, nf, 4, stride=stride, padding=2), p2p_norm(norm, nf),
                       nn.LeakyReLU(0.2)])
    groups.append([nn.Conv2d(nf, 1, 4, stride=1, padding=2)])
    return groups


class NLayerDiscriminator(nn.Module):
    """pix2pixHD's PatchGAN with ``n_layers`` stride-2/1 hidden layers.

    Args:
        input_nc: Input channels (label map + edge + image).
        ndf: Width of the first conv.
        n_layers: Hidden layers after the first (``--n_layers_D``, 3).
        norm: ``instance`` or ``batch``.
        get_interm_feat: Return every group's output (``model0`` .. ``model<n_layers+1>``)
            instead of only the logits (one ``model`` Sequential).
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3,
                 norm: P2PNorm = "instance", get_interm_feat: bool = True):
        super().__init__()
        self.get_interm_feat = get_interm_feat
        groups = _patchgan_groups(input_nc, ndf, n_layers, norm)
        self.n_groups = len(groups)
        if get_interm_feat:
            for j, g in enumerate(groups):
                setattr(self, f"model{j}", nn.Sequential(*g))
        else:
            self.model = nn.Sequential(*[m for g in groups for m in g])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` ``[B,C,H,W]`` -> group outputs, the last being the ``[B,1,h,w]`` logits."""
        if not self.get_interm_feat:
            return [self.model(x)]
        out = []
        for j in range(self.n_groups):
            x = getattr(self, f"model{j}")(x)
            out.append(x)
        return out


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs on successively average-pooled inputs.

    Modules are named as in the official code: ``scale<i>_layer<j>`` with intermediate
    features, else ``layer<i>``. Scale ``num_D - 1`` sees the full resolution.

    Args:
        input_nc: Input channels.
        ndf: Width of the first conv of each PatchGAN.
        n_layers: Hidden layers per PatchGAN.
        norm: ``instance`` or ``batch``.
        num_d: Number of scales (``--num_D``, 2).
        get_interm_feat: Keep intermediate features (needed by feature matching).
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3,
                 norm: P2PNorm = "instance", num_d: int = 2, get_interm_feat: bool = True):
        super().__init__()
        self.num_d, self.n_layers, self.get_interm_feat = num_d, n_layers, get_interm_feat
        for i in range(num_d):
            net = NLayerDiscriminator(input_nc, ndf, n_layers, norm, get_interm_feat)
            if get_interm_feat:
                for j in range(net.n_groups):
                    setattr(self, f"scale{i}_layer{j}", getattr(net, f"model{j}"))
            else:
                setattr(self, f"layer{i}", net.model)
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        p2p_init_weights(self)

    def _scale(self, i: int, x: torch.Tensor) -> list[torch.Tensor]:
        if not self.get_interm_feat:
            return [getattr(self, f"layer{i}")(x)]
        out = []
        for j in range(self.n_layers + 2):
            x = getattr(self, f"scale{i}_layer{j}")(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> Features:
        """Per scale (finest first) the list of layer outputs (last: logits)."""
        results = []
        for k in range(self.num_d):
            results.append(self._scale(self.num_d - 1 - k, x))
            if k != self.num_d - 1:
                x = self.downsample(x)
        return results


def discriminator_for(generator: Pix2PixHDGenerator, ndf: int = 64, n_layers: int = 3,
                      num_d: int = 2, norm: P2PNorm = "instance",
                      get_interm_feat: bool = True) -> MultiscaleDiscriminator:
    """The discriminator matching ``generator``'s condition map (+3 image channels)."""
    input_nc = generator.label_nc + int(generator.use_edges) + 3
    return MultiscaleDiscriminator(input_nc, ndf, n_layers, norm, num_d, get_interm_feat)


# ------------------------------------------------------------------------ losses
def gan_loss(preds: Features, target_is_real: bool, use_lsgan: bool = True
             ) -> torch.Tensor:
    """Adversarial loss on each scale's logits, summed over scales.

    ``use_lsgan``: mean squared error to 1 (real) or 0 (fake). Otherwise binary cross
    entropy on the logits (the official vanilla GAN applies a sigmoid and BCE; the
    logits form is the same loss, numerically safer).
    """
    loss = torch.zeros((), device=preds[0][-1].device)
    for scale in preds:
        logits = scale[-1]
        target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
        if use_lsgan:
            loss = loss + F.mse_loss(logits, target)
        else:
            loss = loss + F.binary_cross_entropy_with_logits(logits, target)
    return loss


def feature_matching_loss(pred_fake: Features, pred_real: Features,
                          n_layers: int = 3, lambda_feat: float = 10.0) -> torch.Tensor:
    """pix2pixHD's discriminator feature matching (logits excluded, real side detached).

    ``sum_i sum_j 1/num_D * 4/(n_layers+1) * lambda_feat * L1(fake_ij, real_ij)``.
    """
    num_d = len(pred_fake)
    weight = lambda_feat * (4.0 / (n_layers + 1)) / num_d
    loss = torch.zeros((), device=pred_fake[0][-1].device)
    for f_scale, r_scale in zip(pred_fake, pred_real, strict=True):
        for f, r in zip(f_scale[:-1], r_scale[:-1], strict=True):
            loss = loss + weight * F.l1_loss(f, r.detach())
    return loss


# ----------------------------------------------------------------- training hook
def encoder_features(encoder: Pix2PixHDEncoder, real: torch.Tensor, labels: torch.Tensor,
                     instance: torch.Tensor | None = None) -> torch.Tensor:
    """The generator's ``features`` input during training: ``E(real)`` pooled per object.

    ``instance=None`` pools per class region (the official ``--label_feat``).
    """
    return encoder(real, object_ids(labels, instance))


def pix2pixhd_losses(
    generator: Pix2PixHDGenerator,
    discriminator: MultiscaleDiscriminator,
    labels: torch.Tensor,
    real: torch.Tensor,
    edges: torch.Tensor | None = None,
    *,
    encoder: Pix2PixHDEncoder | None = None,
    instance: torch.Tensor | None = None,
    features: torch.Tensor | None = None,
    vgg_loss: VGGLoss | None = None,
    lambda_feat: float = 10.0,
    use_lsgan: bool = True,
    use_gan_feat_loss: bool = True,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The loss terms of one pix2pixHD iteration.

    ``G_GAN + G_GAN_Feat + G_VGG`` trains the generator (and the encoder);
    ``(D_real + D_fake) / 2`` trains the discriminator, whose fake input is detached.

    Args:
        generator: The generator (``feat_num > 0`` needs ``encoder`` or ``features``).
        discriminator: From :func:`discriminator_for`.
        labels: ``[B,H,W]`` class ids.
        real: ``[B,3,H,W]`` photos in [-1, 1].
        edges: ``[B,1,H,W]`` instance edges (when the generator uses them).
        encoder: Instance-wise feature encoder; encodes ``real`` into ``features``.
        instance: ``[B,H,W]`` instance ids for the encoder's pooling.
        features: Precomputed ``[B,feat_num,H,W]`` features (``--load_features``).
        vgg_loss: Adds ``G_VGG`` when given.
        lambda_feat: Weight of both feature-matching losses.
        use_lsgan: Least-squares (default) or vanilla GAN loss.
        use_gan_feat_loss: Add ``G_GAN_Feat``.

    Returns:
        ``({"G_GAN", "G_GAN_Feat", "G_VGG", "D_real", "D_fake"}, fake images)``.
    """
    if generator.feat_num and features is None:
        if encoder is None:
            raise ValueError("a generator with feat_num > 0 needs an encoder or features")
        features = encoder_features(encoder, real, labels, instance)
    cond = generator.condition(labels, edges)  # [B,label_nc(+1),H,W]
    fake = (generator(labels, edges, None, features) if generator.feat_num
            else generator(labels, edges))
    pred_fake_d = discriminator(torch.cat([cond, fake.detach()], dim=1))
    pred_real = discriminator(torch.cat([cond, real.detach()], dim=1))
    pred_fake = discriminator(torch.cat([cond, fake], dim=1))
    zero = torch.zeros((), device=fake.device)
    losses = {
        "G_GAN": gan_loss(pred_fake, True, use_lsgan),
        "G_GAN_Feat": (feature_matching_loss(pred_fake, pred_real, discriminator.n_layers,
                                             lambda_feat) if use_gan_feat_loss else zero),
        "G_VGG": vgg_loss(fake, real) * lambda_feat if vgg_loss is not None else zero,
        "D_real": gan_loss(pred_real, True, use_lsgan),
        "D_fake": gan_loss(pred_fake_d, False, use_lsgan),
    }
    return losses, fake


# --------------------------------------------------------------------- objective
@register_objective("pix2pixhd")
class Pix2PixHDObjective(Objective):
    """pix2pixHD training: multi-scale PatchGAN on ``(label map, image)``, LSGAN, FM, VGG.

    Loss weights (official ``train_options.py``):

    * ``gan`` (1): the least-squares adversarial loss, summed over the scales;
    * ``fm`` (10, ``--lambda_feat``): discriminator feature matching, weighted
      ``4 / (n_layers + 1)`` per layer and ``1 / num_d`` per scale;
    * ``vgg`` (10, ``--lambda_feat`` again): the VGG19 perceptual loss -- on by default
      in the paper; without ``perceptual_weights`` it is left out unless asked for.

    D's loss is ``(D_real + D_fake) / 2``. Discriminator arguments: ``num_d`` (2 for the
    global generator, 3 for the 1024px local-enhancer setup), ``ndf`` (64), ``n_layers``
    (3), ``norm`` (``instance``). A generator with ``feat_num > 0`` trains the
    instance-wise feature encoder ``E`` with it (``nef`` 16, four downsamplings), which
    encodes the real photo pooled per instance of ``batch["instances"]``; sample grids use
    the encoder's features of the batch's photos too.
    """

    default_losses: ClassVar[dict[str, float]] = {"gan": 1.0, "fm": 10.0, "vgg": 10.0}
    default_discriminator: ClassVar[dict[str, Any]] = {"num_d": 2, "ndf": 64, "n_layers": 3,
                                                       "norm": "instance"}
    #: Width and depth of the instance-wise feature encoder (``--nef``, ``--n_downsample_E``).
    encoder_nef = 16
    encoder_downsampling = 4
    #: k-means centres per class for test-time style sampling (``--n_clusters``).
    n_clusters = 10
    cluster_seed = 0

    def __init__(self, generator: SISGenerator, losses: dict[str, float],
                 discriminator: dict[str, Any], perceptual: nn.Module | None = None,
                 encoder: dict[str, Any] | None = None):
        super().__init__(generator, with_paper_vgg(losses, perceptual), discriminator,
                         perceptual, encoder)

    def build(self, generator: SISGenerator) -> None:
        """The multi-scale discriminator, and the feature encoder when ``feat_num > 0``."""
        a = self.d_args
        self.d_nets["D"] = discriminator_for(generator, a["ndf"], a["n_layers"], a["num_d"],
                                             a["norm"])
        if generator.feat_num:
            self.g_nets["E"] = Pix2PixHDEncoder(feat_num=generator.feat_num,
                                                nef=self.encoder_nef,
                                                n_downsampling=self.encoder_downsampling)

    def _generate(self, G: SISGenerator, batch: Batch) -> torch.Tensor:
        if not G.feat_num:
            return G(batch["labels"], batch.get("edges") if G.use_edges else None)
        features = encoder_features(self.g_nets["E"], batch["image"], batch["labels"],
                                    batch.get("instances"))
        return G(batch["labels"], batch.get("edges") if G.use_edges else None, None, features)

    def _condition(self, G: SISGenerator, batch: Batch) -> torch.Tensor:
        return G.condition(batch["labels"], batch.get("edges") if G.use_edges else None)

    def generator_loss(self, G: SISGenerator, batch: Batch, noise: torch.Tensor | None
                       ) -> tuple[torch.Tensor, Terms, torch.Tensor]:
        """``G_GAN + G_GAN_Feat + G_VGG`` (the encoder trains through them)."""
        D, w = self.d_nets["D"], self.weights
        fake = self._generate(G, batch)
        cond = self._condition(G, batch).to(fake.dtype)
        pred_fake = D(torch.cat([cond, fake], dim=1))
        terms: Terms = {"g_gan": w["gan"] * gan_loss(pred_fake, True)}
        if w["fm"] > 0:
            with torch.no_grad():
                pred_real = D(torch.cat([cond, batch["image"]], dim=1))
            terms["g_fm"] = feature_matching_loss(pred_fake, pred_real, D.n_layers, w["fm"])
        if w["vgg"] > 0:
            terms["g_vgg"] = w["vgg"] * self.perceptual_loss(fake, batch["image"])
        return sum(terms.values()), terms, fake

    def discriminator_loss(self, G: SISGenerator, batch: Batch, fake: torch.Tensor
                           ) -> tuple[torch.Tensor, Terms]:
        """``(D_real + D_fake) / 2`` with least squares."""
        D = self.d_nets["D"]
        cond = self._condition(G, batch).to(fake.dtype)
        terms = {"d_fake": 0.5 * gan_loss(D(torch.cat([cond, fake], dim=1)), False),
                 "d_real": 0.5 * gan_loss(D(torch.cat([cond, batch["image"]], dim=1)), True)}
        return terms["d_fake"] + terms["d_real"], terms

    def sample(self, G: SISGenerator, batch: Batch, noise: torch.Tensor | None
               ) -> torch.Tensor:
        """Images from the labels (and the encoder's features of the batch's photos)."""
        return self._generate(G, batch)

    @torch.no_grad()
    def finalize(self, generator: SISGenerator, batches: Iterable[Batch]) -> None:
        """Cluster the encoder's per-object features into ``generator.feature_clusters``.

        The official post-training step (``encode_features.py`` + ``--n_clusters``): every
        object of the given training batches is encoded, then each class's features are
        clustered with k-means into at most :attr:`n_clusters` centres; generation draws
        one centre per object. Without ``feat_num`` there is nothing to do.
        """
        if not generator.feat_num:
            return
        encoder = self.g_nets["E"]
        was_training = encoder.training
        encoder.eval()
        try:
            banks = [encode_features(encoder, b["image"].float(), b["labels"],
                                     b.get("instances")) for b in batches]
        finally:
            encoder.train(was_training)
        bank = merge_features(*banks)
        if not bank:
            raise SisgenInputError("no objects to cluster pix2pixHD's instance features from")
        generator.feature_clusters = cluster_features(bank, self.n_clusters,
                                                      seed=self.cluster_seed)


@register_objective("pix2pixhd_local")
class Pix2PixHDLocalObjective(Pix2PixHDObjective):
    """pix2pixHD with a local enhancer: as :class:`Pix2PixHDObjective` with three D scales.

    The official 1024px script trains the local enhancer with ``--num_D 3``.
    """

    default_discriminator: ClassVar[dict[str, Any]] = {
        **Pix2PixHDObjective.default_discriminator, "num_d": 3}
