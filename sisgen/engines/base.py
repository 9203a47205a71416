"""The engine protocol and the :class:`Generator` every backend is wrapped in.

An engine is ``engine(labels, edges, noise, **extra) -> images``: batched compact inputs
(int64 labels ``[B,H,W]``, float instance edges ``[B,1,H,W]``, float noise, and any further
named input in its ``input_names``, such as int64 ``instances`` ``[B,H,W]`` for CLADE-ICPE /
SAFM) and images ``[B,3,H,W]`` in [-1, 1], or uint8 ``[B,H,W,3]`` for engines exported with
byte output. Engines say where they run with a ``device`` attribute (the CPU when absent).
Noise is drawn *outside* every backend from per-sample seeds, so one seed gives one image
whatever runs it.

Two ways to feed a :class:`Generator`:

* the pipeline's: :attr:`Generator.input_spec` builds compact numpy inputs on the host (in
  worker processes: :class:`~sisgen.engines.inputs.InputSpec`,
  :class:`~sisgen.engines.inputs.EngineBatch`) and :meth:`Generator.run` moves them to the
  engine's device, widens them there, runs the backend and brings back only uint8 bytes;
* the simple one: ``generator(*generator.prepare(maps, seeds))``, the widened torch tensors
  on the host, images as the backend returns them (:func:`images_to_uint8` converts).

Both give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from ..labelmap import LabelMap
from ..noise import draw_noise, noise_from_seeds
from ..vocab import Vocabulary
from .device import DeviceFeeder, PendingImages, to_uint8_nhwc, widen
from .inputs import EngineBatch, InputSpec, compact_instance_ids

# draw_noise / noise_from_seeds live in sisgen.noise; re-exported for older imports
__all__ = ["Engine", "EngineBatch", "Generator", "InputSpec", "compact_instance_ids",
           "draw_noise", "images_to_uint8", "noise_from_seeds"]


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

    @property
    def input_spec(self) -> InputSpec:
        """What the host needs to build this generator's inputs (picklable, no engine)."""
        return InputSpec(resolution=(int(self.resolution[0]), int(self.resolution[1])),
                         noise_spec=dict(self.noise_spec), uses_edges=bool(self.uses_edges),
                         takes_instances=self.takes_instances,
                         takes_features=self.takes_features, takes_photo=self.takes_photo,
                         feature_clusters=self.feature_clusters, model_name=self.model_name)

    @property
    def device(self) -> torch.device:
        """Where the engine runs (its ``device`` attribute; the CPU when it has none)."""
        return torch.device(getattr(self.engine, "device", None) or "cpu")

    @property
    def max_batch(self) -> int | None:
        """The largest batch the engine runs whole (larger ones are split), or ``None``."""
        return getattr(self.engine, "max_batch", None)

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
        ``meta["hole"]`` (:mod:`sisgen.edits.photo`); a map without them is synthesized
        whole. Inputs an engine does not take are ``None`` (trailing ones left out), so
        ``generator(*generator.prepare(...))`` runs the batch.

        Local resampling: a label map whose ``meta["noise_mask"]`` (``H×W`` bool) is set
        gets noise (and features) from its own seed inside the mask and from
        ``base_seeds[i]`` (the map's base style) outside, so only the marked
        class/instance/region changes style. That needs spatial noise or a ``features``
        input; for models with only a noise *vector* a mask raises ``ValueError``.

        This is :meth:`InputSpec.build` widened on the host (edges are computed for every
        model, as they always were); :meth:`run` widens on the engine's device instead.
        The same tensors by name: :meth:`prepare_named`.
        """
        t = self.prepare_named(labelmaps, seeds, base_seeds)
        out = [t["labels"], t.get("edges"), t.get("noise"), t.get("instances"),
               t.get("features")]
        if self.takes_photo:
            out += [t["image"], t["mask"]]
        while len(out) > 3 and out[-1] is None:
            out.pop()
        return tuple(out)

    def prepare_named(self, labelmaps: Sequence[LabelMap], seeds: Sequence[int],
                      base_seeds: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """:meth:`prepare`'s tensors by input name, only those the batch carries.

        Keys: ``labels``, ``edges``, ``noise``, ``instances``, ``features``, ``image``,
        ``mask`` (see :meth:`prepare`).
        """
        h, w = self.resolution
        sized = [lm if lm.shape == (h, w) else lm.resized((h, w)) for lm in labelmaps]
        batch = self.input_spec.build(sized, seeds, base_seeds, edges=True)
        t = widen({k: torch.from_numpy(v) for k, v in batch._arrays().items()},
                  self.input_spec)
        return {k: v for k, v in t.items() if v is not None}

    def submit(self, batch: EngineBatch) -> PendingImages:
        """Enqueue one batch on the engine's device; :meth:`PendingImages.result` waits.

        The batch's arrays cross to the device as they are (pinned, reused host buffers
        and a dedicated CUDA stream on GPUs), are widened there (:func:`widen`), run
        through the backend and converted to uint8 NHWC there (:func:`to_uint8_nhwc`);
        only the bytes come back. On GPUs a caller may submit the next batch before
        asking for the result of this one. One thread at a time.
        """
        feeder = self._feeder()
        with torch.inference_mode(), feeder.active():
            feeds = widen(feeder.upload(batch), self.input_spec)
            extra = {k: v for k, v in feeds.items()
                     if k not in ("labels", "edges", "noise") and v is not None}
            out = self.engine(feeds["labels"], feeds["edges"], feeds["noise"], **extra)
            if not isinstance(out, torch.Tensor):  # a host array (onnxruntime's plain path)
                out = np.asarray(out)
                if out.dtype == np.uint8:
                    return PendingImages(np.ascontiguousarray(out))
                out = torch.from_numpy(out if out.flags.writeable else out.copy())
            return feeder.fetch(to_uint8_nhwc(out))

    def run(self, batch: EngineBatch) -> np.ndarray:
        """Images of one batch built by :attr:`input_spec`: ``[B,H,W,3]`` uint8 RGB.

        The same bytes as ``images_to_uint8(generator(*generator.prepare(...)))`` for the
        same maps and seeds (see :meth:`submit`).
        """
        return self.submit(batch).result()

    def _feeder(self) -> DeviceFeeder:
        """The device feeder of this generator's engine (made on first use)."""
        feeder = self.__dict__.get("_device_feeder")
        if feeder is None:
            feeder = DeviceFeeder(self.device, getattr(self.engine, "compute_stream", None))
            self._device_feeder = feeder
        return feeder

    def generate(self, labelmaps: Sequence[LabelMap], seeds: Sequence[int] | None = None
                 ) -> list[np.ndarray]:
        """Images for label maps, one seed each; returns ``H×W×3`` uint8 RGB arrays."""
        seeds = list(range(len(labelmaps))) if seeds is None else list(seeds)
        if len(seeds) != len(labelmaps):
            raise ValueError("one seed per label map")
        h, w = self.resolution
        sized = [lm if lm.shape == (h, w) else lm.resized((h, w)) for lm in labelmaps]
        return list(self.run(self.input_spec.build(sized, seeds)))

    def __repr__(self) -> str:
        return (f"<Generator {self.model_name or '?'} backend={self.backend} "
                f"{self.resolution[0]}x{self.resolution[1]} hash={self.model_hash}>")
