"""The engine protocol and the :class:`Generator` every backend is wrapped in.

An engine is ``engine(labels, edges, noise, **extra) -> images``: batched compact inputs
(int64 labels ``[B,H,W]``, float instance edges ``[B,1,H,W]``, float noise, and any further
named input in its ``input_names``, such as int64 ``instances`` ``[B,H,W]`` for CLADE-ICPE /
SAFM) and images ``[B,3,H,W]`` in [-1, 1], or uint8 ``[B,H,W,3]`` for engines exported with
byte output.
Noise is drawn *outside* every backend from per-sample seeds, so one seed gives one image
whatever runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import cv2
import numpy as np
import torch

from ..labelmap import HOLE_KEY, PHOTO_KEY, LabelMap, instance_edges
from ..noise import draw_noise, noise_from_seeds
from ..vocab import Vocabulary

# draw_noise / noise_from_seeds live in sisgen.noise; re-exported for older imports
__all__ = ["Engine", "Generator", "compact_instance_ids", "draw_noise", "images_to_uint8",
           "noise_from_seeds"]


class Engine(Protocol):
    """A backend: compact inputs in, images out (see module docstring)."""

    input_names: tuple[str, ...]

    def __call__(self, labels: Any, edges: Any, noise: Any) -> Any:
        """Run one batch."""


def images_to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[B,3,H,W]`` in [-1, 1] -> ``[B,H,W,3]`` uint8 (already-uint8 NHWC passes through)."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if images.dtype == np.uint8:
        return images
    x = (images.transpose(0, 2, 3, 1) + 1.0) * 127.5
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def compact_instance_ids(instance: np.ndarray) -> np.ndarray:
    """Instance ids renumbered ``1..K`` in increasing order (0 stays 0), as int64.

    The partition into instances is unchanged; compact ids keep the models' bounded id
    space exact (see :func:`sisgen.models.layers.intra_class_position_map`).
    """
    inst = np.asarray(instance)
    ids = np.unique(inst)
    ids = ids[ids != 0]
    return np.where(inst == 0, 0, np.searchsorted(ids, inst) + 1).astype(np.int64)


class Generator:
    """A loaded generator: a backend engine plus what is needed to feed it.

    Attributes:
        engine: The backend (``TorchEngine``, ``OnnxEngine``).
        vocabulary: The label vocabulary.
        resolution: ``(H, W)`` the engine produces (labels are resized to it).
        noise_spec: ``{"shape": [...], "distribution": "normal"}`` or empty.
        model_name: Registry name.
        model_hash: Content hash of the weights (for manifests).
        uses_edges: Whether the instance-edge input is used.
        feature_clusters: ``{class: [k, F]}`` style-feature centres for engines with a
            ``features`` input (pix2pixHD instance-wise features); each object of a label
            map gets one centre of its class, drawn from the sample's seed.
    """

    def __init__(self, engine: Engine, vocabulary: Vocabulary | None, resolution: tuple[int, int],
                 noise_spec: dict[str, Any], model_name: str = "", model_hash: str = "",
                 uses_edges: bool = True, backend: str = "",
                 feature_clusters: dict[int, np.ndarray] | None = None):
        self.engine = engine
        self.vocabulary = vocabulary
        self.resolution = tuple(resolution)
        self.noise_spec = noise_spec
        self.model_name = model_name
        self.model_hash = model_hash
        self.uses_edges = uses_edges
        self.backend = backend
        self.feature_clusters = feature_clusters

    @classmethod
    def from_model(cls, engine: Engine, model: Any, backend: str = "torch",
                   model_hash: str | None = None) -> Generator:
        """Wrap ``engine`` (running the sisgen model ``model``) with the model's description.

        ``model_hash`` defaults to :meth:`~sisgen.models.SISGenerator.weights_hash` (a pass
        over every weight; give ``""`` where no manifest needs it).
        """
        if model_hash is None:
            model_hash = model.weights_hash()
        return cls(engine, model.vocabulary, model.resolution, model.noise_spec(),
                   model.model_name, model_hash, model.uses_edges, backend=backend,
                   feature_clusters=model.feature_clusters)

    def __call__(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                 noise: torch.Tensor | None = None, instances: torch.Tensor | None = None,
                 features: torch.Tensor | None = None, image: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None, **extra: Any) -> Any:
        """Run the engine on a batch of compact inputs (plus any extra named inputs).

        ``instances``, ``features``, ``image`` and ``mask`` (what :meth:`prepare` returns
        after the first three for engines that take them) are passed on as the named inputs
        of those names.
        """
        named = {"instances": instances, "features": features, "image": image, "mask": mask}
        extra.update({k: v for k, v in named.items() if v is not None})
        return self.engine(labels, edges, noise, **extra)

    @property
    def takes_instances(self) -> bool:
        """Whether the engine has an ``instances`` input (CLADE-ICPE, SAFM, relative codes)."""
        return "instances" in tuple(getattr(self.engine, "input_names", ()))

    @property
    def takes_features(self) -> bool:
        """Whether the engine has a ``features`` input (pix2pixHD with instance features)."""
        return "features" in tuple(getattr(self.engine, "input_names", ()))

    @property
    def takes_photo(self) -> bool:
        """Whether the engine edits photos: ``image`` and ``mask`` inputs (SESAME)."""
        return {"image", "mask"} <= set(getattr(self.engine, "input_names", ()))

    @property
    def spatial_noise(self) -> bool:
        """Whether the noise is a ``[C,H,W]`` map (local resampling possible)."""
        return len(self.noise_spec.get("shape") or ()) == 3

    def prepare(self, labelmaps: Sequence[LabelMap], seeds: Sequence[int],
                base_seeds: Sequence[int] | None = None
                ) -> tuple[torch.Tensor | None, ...]:
        """Stack label maps (resized to the engine resolution) and seeds into inputs.

        Returns ``(labels, edges, noise)``, and for engines that take them
        (:attr:`takes_instances`) a fourth tensor, ``instances``: int64 ``[B,H,W]`` from
        ``LabelMap.instance`` (resized nearest, ids made compact ``1..K`` per map by
        :func:`compact_instance_ids`; zeros where a map has none). Engines with a
        ``features`` input (:attr:`takes_features`) get a fifth, ``[B,F,H,W]``: one
        :attr:`feature_clusters` centre per object (instance, or class region where there
        is no instance), drawn from the sample's seed. Photo-editing engines
        (:attr:`takes_photo`) get a sixth and seventh, ``image`` ``[B,3,H,W]`` in [-1, 1]
        and ``mask`` ``[B,1,H,W]`` (1: synthesize), from ``meta["photo"]`` and
        ``meta["hole"]`` (:mod:`sisgen.photo_edits`); a map without them is synthesized
        whole. Inputs an engine does not take are ``None`` (trailing ones left out), so
        ``generator(*generator.prepare(...))`` runs the batch.

        Local resampling: a label map whose ``meta["noise_mask"]`` (``H×W`` bool) is set
        gets noise (and features) from its own seed inside the mask and from
        ``base_seeds[i]`` (the map's base style) outside, so only the marked
        class/instance/region changes style. That needs spatial noise or a ``features``
        input; for models with only a noise *vector* a mask raises ``ValueError``.
        """
        h, w = self.resolution
        labels, edges, masks, instances = [], [], [], []
        for lm in labelmaps:
            if lm.shape != (h, w):
                lm = lm.resized((h, w))
            labels.append(lm.semantic.astype(np.int64))
            edges.append(instance_edges(lm.instance if lm.instance is not None else lm.semantic))
            masks.append(lm.meta.get("noise_mask"))
            instances.append(np.zeros((h, w), np.int64) if lm.instance is None
                             else compact_instance_ids(lm.instance))
        photos = [_photo_inputs(lm, (h, w)) for lm in labelmaps] if self.takes_photo else None
        label_t = torch.from_numpy(np.stack(labels))
        instance_t = torch.from_numpy(np.stack(instances))
        noise = noise_from_seeds(self.noise_spec, seeds)
        features = self._features(label_t, instance_t, seeds) if self.takes_features else None
        if any(m is not None for m in masks):
            if not (self.spatial_noise or self.takes_features):
                raise ValueError(
                    "noise-region marks need a model with spatial noise or style features; "
                    f"{self.model_name or 'this'} model takes a noise vector "
                    f"{self.noise_spec.get('shape')}")
            if base_seeds is None:
                raise ValueError("noise-region marks need base_seeds (the unmarked style)")
            if self.spatial_noise:
                noise = _keep_outside(masks, noise, noise_from_seeds(self.noise_spec, base_seeds))
            if features is not None:
                features = _keep_outside(masks, features,
                                         self._features(label_t, instance_t, base_seeds))
        out = [label_t, torch.from_numpy(np.stack(edges))[:, None], noise,
               instance_t if self.takes_instances else None, features]
        if photos is not None:
            out += [torch.stack([p for p, _ in photos]), torch.stack([m for _, m in photos])]
        while len(out) > 3 and out[-1] is None:
            out.pop()
        return tuple(out)

    def _features(self, labels: torch.Tensor, instances: torch.Tensor, seeds: Sequence[int]
                  ) -> torch.Tensor:
        """One cluster centre per object and sample, drawn from the sample's seed."""
        from ..models.style_features import sample_feature_map

        if not self.feature_clusters:
            raise ValueError(
                f"{self.model_name or 'this'} model takes per-object style features but has no "
                "feature clusters: train it with sisgen (the clusters are computed at the end "
                "of training) or set model.feature_clusters before saving/exporting it")
        return torch.cat([
            sample_feature_map(self.feature_clusters, labels[i:i + 1], instances[i:i + 1],
                               generator=int(seed))
            for i, seed in enumerate(seeds)])


    def generate(self, labelmaps: Sequence[LabelMap], seeds: Sequence[int] | None = None
                 ) -> list[np.ndarray]:
        """Images for label maps, one seed each; returns ``H×W×3`` uint8 RGB arrays."""
        seeds = list(range(len(labelmaps))) if seeds is None else list(seeds)
        if len(seeds) != len(labelmaps):
            raise ValueError("one seed per label map")
        out = images_to_uint8(self(*self.prepare(labelmaps, seeds)))
        return list(out)

    def __repr__(self) -> str:
        return (f"<Generator {self.model_name or '?'} backend={self.backend} "
                f"{self.resolution[0]}x{self.resolution[1]} hash={self.model_hash}>")


def _keep_outside(masks: Sequence[np.ndarray | None], new: torch.Tensor, base: torch.Tensor
                  ) -> torch.Tensor:
    """``new`` inside each sample's mask (resized nearest to ``new``'s H×W), ``base`` outside."""
    h, w = new.shape[-2:]
    out = new.clone()
    for i, m in enumerate(masks):
        if m is None:
            continue
        m = cv2.resize(np.asarray(m, np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        out[i] = torch.where(torch.from_numpy(m.astype(bool)), new[i], base[i])
    return out


def _photo_inputs(labelmap: LabelMap, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image [3,H,W] in [-1, 1], mask [1,H,W])`` of a map's photo and hole at ``size``.

    Without ``meta["photo"]`` the whole frame is the hole (plain synthesis).
    """
    h, w = size
    photo, hole = labelmap.meta.get(PHOTO_KEY), labelmap.meta.get(HOLE_KEY)
    if photo is None or hole is None:
        return torch.zeros(3, h, w), torch.ones(1, h, w)
    photo, hole = np.asarray(photo), np.asarray(hole, np.uint8)
    if photo.shape[:2] != (h, w):
        photo = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        # a pixel touched by the hole at full size stays in it (nothing edited leaks through)
        hole = cv2.resize(hole.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0
    image = torch.from_numpy(photo.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)
    return image, torch.from_numpy(hole.astype(np.float32))[None]
