"""Training objectives: what an architecture needs besides its generator.

An :class:`Objective` owns the discriminator(s) and any extra networks (the VAE image
encoder, LGGAN's classifier, SAFM's segmenter) and computes the generator and
discriminator losses of its paper. The :class:`~sisgen.training.trainer.Trainer` owns
everything that is the same for all of them: optimizers, mixed precision, EMA,
gradient synchronization across ranks, guards, checkpoints and logging.

("Objective" is the training word; a :class:`sisgen.edits.Recipe` is a list of label-map
edits, an unrelated idea.)

Objectives register under the model registry's names
(``@register_objective("spade", ...)``); ``objective_for(generator, ...)`` picks the
objective of a built model by its ``model_name``.

Loss weights (``losses``) and discriminator arguments (``discriminator``) come from the
training config and are merged into each objective's paper defaults; an unknown key is an
error, so a typo in a preset cannot silently train with the default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sisgen.errors import SisgenInputError
from sisgen.models.base import SISGenerator
from sisgen.registry import Registry

from .discriminator import MultiScaleDiscriminator
from .losses import feature_matching_loss, hinge_d_loss, hinge_g_loss
from .perceptual import perceptual_distance
from .vae import ENCODER_DEFAULTS, encode_style, image_encoder

Batch = dict[str, torch.Tensor]
Terms = dict[str, torch.Tensor]

#: Model name -> the objective class that trains it.
_OBJECTIVES: Registry[type[Objective]] = Registry("trainable model")

#: The modules that define the per-architecture objectives (beside their discriminators
#: and losses); imported on first use so that the registry is complete.
_OBJECTIVE_MODULES = ("oasis", "pix2pixhd", "ccfpse", "lggan", "sesame", "safm")


def register_objective(*model_names: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: the objective that trains the registered models ``model_names``."""

    def deco(cls: type[Objective]) -> type[Objective]:
        for name in model_names:
            _OBJECTIVES.add(name, cls)
        return cls

    return deco


def available_objectives() -> dict[str, str]:
    """Model name -> objective class name, for every trainable model."""
    _import_objectives()
    return {k: v.__name__ for k, v in _OBJECTIVES.items()}


def _import_objectives() -> None:
    import importlib

    for mod in _OBJECTIVE_MODULES:
        importlib.import_module(f"{__package__}.{mod}")


def objective_for(generator: SISGenerator, losses: dict[str, float] | None = None,
                  discriminator: dict[str, Any] | None = None,
                  perceptual: nn.Module | None = None,
                  encoder: dict[str, Any] | None = None,
                  semantic: nn.Module | None = None) -> Objective:
    """Build the objective that trains ``generator`` (chosen by its ``model_name``).

    Args:
        generator: The generator to train.
        losses: Loss weights over the objective's paper defaults.
        discriminator: Discriminator arguments over the objective's defaults.
        perceptual: The VGG19 features of the perceptual loss (``losses.vgg``).
        encoder: Image encoder arguments over the objective's defaults.
        semantic: The frozen segmenter of the semantic consistency term (``losses.seg``;
            :func:`sisgen.training.semantic.load_semantic`), for objectives that have it.

    Raises:
        SisgenInputError: No objective for the model (``unknown trainable model ...``),
            unknown loss / discriminator / encoder keys, or ``losses.seg > 0`` without a
            segmenter.
    """
    _import_objectives()
    cls = _OBJECTIVES.get(generator.model_name)
    objective = cls(generator, losses or {}, discriminator or {}, perceptual, encoder)
    objective.attach_semantic(semantic)
    return objective


def _merge(defaults: dict[str, Any], given: dict[str, Any], what: str, owner: str
           ) -> dict[str, Any]:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise SisgenInputError(f"{owner} does not know {what} {unknown}; it takes "
                               f"{sorted(defaults)}")
    return {**defaults, **given}


class Objective(nn.Module):
    """Base class of the per-architecture training objectives.

    Subclasses declare their paper defaults in :attr:`default_losses`,
    :attr:`default_discriminator` and (with an image encoder) :attr:`default_encoder`, build
    their networks in :meth:`build`, and implement :meth:`generator_loss` and
    :meth:`discriminator_loss`.

    Args:
        generator: The generator being trained (its configuration sizes the discriminator).
        losses: Loss weights overriding :attr:`default_losses`.
        discriminator: Discriminator arguments overriding :attr:`default_discriminator`.
        perceptual: The feature extractor of the perceptual loss (VGG19 with weights from a
            local file) when a ``vgg`` weight is positive.
        encoder: Image encoder arguments overriding :attr:`default_encoder` (objectives
            without an encoder take none).

    Attributes:
        d_nets: Networks trained by the discriminator optimizer (``lr_d``).
        g_nets: Extra networks trained together with the generator (``lr_g``).
        weights: The merged loss weights.
        d_args: The merged discriminator arguments.
        e_args: The merged image encoder arguments.
    """

    default_losses: ClassVar[dict[str, float]] = {}
    default_discriminator: ClassVar[dict[str, Any]] = {}
    default_encoder: ClassVar[dict[str, Any]] = {}

    def __init__(self, generator: SISGenerator, losses: dict[str, float],
                 discriminator: dict[str, Any], perceptual: nn.Module | None = None,
                 encoder: dict[str, Any] | None = None):
        super().__init__()
        name = type(self).__name__
        self.weights = {k: float(v) for k, v in
                        _merge(self.default_losses, losses, "losses", name).items()}
        self.d_args = _merge(self.default_discriminator, discriminator, "discriminator "
                             "arguments", name)
        self.e_args = _merge(self.default_encoder, encoder or {}, "encoder arguments", name)
        if self.weights.get("vgg", 0) > 0 and perceptual is None:
            raise SisgenInputError(
                f"{name}: the perceptual loss (losses.vgg > 0) needs VGG19 weights: set "
                "perceptual_weights to a local torchvision vgg19 state-dict file, or losses.vgg=0")
        self.perceptual = perceptual
        self.semantic: nn.Module | None = None
        self.d_nets = nn.ModuleDict()
        self.g_nets = nn.ModuleDict()
        self.build(generator)

    def build(self, generator: SISGenerator) -> None:
        """Create :attr:`d_nets` and :attr:`g_nets` for ``generator``."""
        raise NotImplementedError

    def generator_loss(self, G: SISGenerator, batch: Batch, noise: torch.Tensor | None
                       ) -> tuple[torch.Tensor, Terms, torch.Tensor]:
        """Total generator loss, its weighted terms (for logging) and the generated images."""
        raise NotImplementedError

    def discriminator_loss(self, G: SISGenerator, batch: Batch, fake: torch.Tensor
                           ) -> tuple[torch.Tensor, Terms]:
        """Total discriminator loss and its terms; ``fake`` is detached."""
        raise NotImplementedError

    def sample(self, G: SISGenerator, batch: Batch, noise: torch.Tensor | None
               ) -> torch.Tensor:
        """Images for sample grids and evaluation (no encoder: the prior's noise)."""
        return G(**self.generator_inputs(G, batch, noise))

    def finalize(self, generator: SISGenerator, batches: Iterable[Batch]) -> None:
        """Attach what inference needs beyond the weights, from training ``batches``.

        Called on the generator to be saved or evaluated; the default needs nothing.
        pix2pixHD clusters its encoder's per-object features here.
        """

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def generator_inputs(G: SISGenerator, batch: Batch, noise: torch.Tensor | None
                         ) -> dict[str, torch.Tensor | None]:
        """The generator's named inputs from a batch (only the names it takes)."""
        names = G.input_names
        instances = batch.get("instances")
        if instances is not None and "instances" in names:
            instances = compact_ids(instances)
        pool = {"labels": batch["labels"], "edges": batch.get("edges") if G.uses_edges else None,
                "noise": noise, "instances": instances, "image": batch.get("image")}
        return {k: v for k, v in pool.items() if k in names or k in ("labels", "edges", "noise")}

    def attach_semantic(self, semantic: nn.Module | None) -> None:
        """Set the frozen segmenter of the semantic consistency term (``losses.seg``).

        Raises:
            SisgenInputError: ``losses.seg > 0`` and ``semantic`` is ``None``.
        """
        if self.weights.get("seg", 0) > 0 and semantic is None:
            raise SisgenInputError(
                f"{type(self).__name__}: the semantic consistency loss (losses.seg > 0) needs "
                "a segmenter: set segmenter_weights to a TorchScript segmenter file with its "
                "sidecar, or losses.seg=0")
        self.semantic = semantic

    def perceptual_loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """VGG19 feature L1 (pix2pixHD/SPADE weights ``1/32 .. 1``) on images in [-1, 1]."""
        return perceptual_distance(self.perceptual, fake, real)


def compact_ids(instances: torch.Tensor) -> torch.Tensor:
    """Instance ids renumbered ``1..K`` over the batch (0 stays 0), on the device.

    Datasets give ids as their sources do (Cityscapes ``class*1000+k``); models that index a
    bounded id space with them (CLADE-ICPE, SAFM) need small distinct ids, as
    :func:`sisgen.engines.base.compact_instance_ids` gives at generation time.
    """
    flat = torch.cat([instances.new_zeros(1), instances.reshape(-1)])
    inverse = torch.unique(flat, return_inverse=True)[1]
    return inverse[1:].view_as(instances)


def condition_map(G: SISGenerator, labels: torch.Tensor, edges: torch.Tensor | None
                  ) -> torch.Tensor:
    """The one-hot (+ edge) map a conditional discriminator reads: ``G.condition``."""
    return G.condition(labels, edges)


def mode_seeking_loss(fake: torch.Tensor, fake2: torch.Tensor, z: torch.Tensor,
                      z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's term: ``1 / (mean|fake - fake2| / mean|z - z2| + eps)``.

    Small when two noises give images as far apart as the noises are; large when the
    generator maps them to the same image.
    """
    ratio = (fake - fake2).abs().mean() / (z - z2).abs().mean()
    return 1.0 / (ratio + eps)


@register_objective("spade", "clade", "clade_icpe", "va_spade", "va_clade", "posgen")
class SPADEObjective(Objective):
    """SPADE / GauGAN training (also CLADE, CLADE-ICPE, VA-SPADE, VA-CLADE and PosGen).

    Multi-scale PatchGAN on ``concat(condition map, image)`` with the hinge loss, feature
    matching (``fm``), the VGG perceptual loss (``vgg``), and -- when ``kld`` > 0 and the
    generator takes a style vector -- the VAE image encoder whose KL term joins the
    generator loss (SPADE's multi-modal training). ``l1`` adds a pixel reconstruction term,
    ``ms`` the mode-seeking term and ``seg`` the semantic consistency term of a frozen
    segmenter (:mod:`~sisgen.training.semantic`; none in the paper, all off by default).

    Mode seeking (Mao et al., CVPR 2019, "Mode Seeking Generative Adversarial Networks for
    Diverse Image Synthesis"): a second image of the same maps from other noise, and the
    term ``ms / (mean|fake - fake2| / mean|z - z2| + 1e-5)``, which grows when the generator
    ignores its noise. The second noise is the prior's draw: with the VAE encoder that is
    the noise the encoder replaced (so the images made from the prior at generation time
    are trained too), else a fresh draw. The second image also gets the adversarial term
    (``g_gan`` is then the mean of both).

    Encoder arguments: :data:`~sisgen.training.vae.ENCODER_DEFAULTS` (the encoder's width
    ``ngf``, ``input_size``, ``spectral``).
    """

    default_losses: ClassVar[dict[str, float]] = {"gan": 1.0, "fm": 10.0, "vgg": 0.0,
                                                  "kld": 0.0, "l1": 0.0, "ms": 0.0,
                                                  "seg": 0.0}
    default_discriminator: ClassVar[dict[str, Any]] = {"num_d": 2, "ndf": 64, "n_layers": 4,
                                                       "spectral": True}
    default_encoder: ClassVar[dict[str, Any]] = ENCODER_DEFAULTS

    def build(self, generator: SISGenerator) -> None:
        """The multi-scale PatchGAN, and the image encoder when the KL term is on."""
        seg_nc = condition_map(generator, *generator.example_inputs(1)[:2]).shape[1]
        self.d_nets["D"] = MultiScaleDiscriminator(seg_nc + 3, **self.d_args)
        if self.weights["kld"] > 0:
            self.g_nets["E"] = image_encoder(generator, **self.e_args)

    def _style(self, batch: Batch, noise: torch.Tensor | None
               ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if "E" not in self.g_nets:
            return noise, None
        return encode_style(self.g_nets["E"], batch["image"], lambda_kld=self.weights["kld"])

    def generator_loss(self, G: SISGenerator, batch: Batch, noise: torch.Tensor | None
                       ) -> tuple[torch.Tensor, Terms, torch.Tensor]:
        """Hinge + feature matching (+ VGG, KL, L1, mode seeking as weighted)."""
        D, w = self.d_nets["D"], self.weights
        prior = noise
        noise, kld = self._style(batch, noise)
        fake = G(**self.generator_inputs(G, batch, noise))
        seg = condition_map(G, batch["labels"], batch.get("edges"))
        pred_fake = D(seg, fake)
        terms: Terms = {"g_gan": w["gan"] * hinge_g_loss(pred_fake)}
        if w["ms"] > 0:
            if noise is None:
                raise SisgenInputError("losses.ms > 0 (mode seeking) needs a generator that "
                                       "takes noise")
            other = prior if kld is not None else torch.randn_like(noise)
            fake2 = G(**self.generator_inputs(G, batch, other))
            terms["g_gan"] = 0.5 * (terms["g_gan"] + w["gan"] * hinge_g_loss(D(seg, fake2)))
            terms["g_ms"] = w["ms"] * mode_seeking_loss(fake, fake2, noise, other)
        if w["fm"] > 0:
            with torch.no_grad():
                pred_real = D(seg, batch["image"])
            terms["g_fm"] = w["fm"] * feature_matching_loss(pred_real, pred_fake)
        if w["vgg"] > 0:
            terms["g_vgg"] = w["vgg"] * self.perceptual_loss(fake, batch["image"])
        if kld is not None:
            terms["g_kld"] = kld
        if w["l1"] > 0:
            terms["g_l1"] = w["l1"] * F.l1_loss(fake, batch["image"])
        if w["seg"] > 0:
            terms["g_seg"] = w["seg"] * self.semantic(fake, batch["labels"])
        return sum(terms.values()), terms, fake

    def discriminator_loss(self, G: SISGenerator, batch: Batch, fake: torch.Tensor
                           ) -> tuple[torch.Tensor, Terms]:
        """Hinge loss on real and generated images."""
        D = self.d_nets["D"]
        seg = condition_map(G, batch["labels"], batch.get("edges"))
        loss = hinge_d_loss(D(seg, batch["image"]), D(seg, fake))
        return loss, {"d": loss}
