"""What every sisgen generator shares: config, conditioning, save/load, noise, export form.

A generator is a ``torch.nn.Module`` whose constructor takes typed, explicit arguments.
``config.json`` holds exactly those arguments plus the vocabulary, the resolution and the
noise spec; weights go to ``model.safetensors`` beside it. Nothing needs pickle to load.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import SisgenInputError
from ..noise import noise_from_seeds
from ..registry import Registry
from ..vocab import Vocabulary, get_vocabulary
from .layers import labels_to_onehot
from .style_features import clusters_from_dict, clusters_to_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

#: Generator classes by class name: what ``config.json``'s ``architecture`` names.
_ARCHITECTURES: Registry[type[SISGenerator]] = Registry("architecture")


def register_architecture(cls: type[SISGenerator]) -> type[SISGenerator]:
    """Make a generator class loadable by name from ``config.json``."""
    _ARCHITECTURES.add(cls.__name__, cls)
    return cls


def capture_config(init: Callable[..., None]) -> Callable[..., None]:
    """Decorate ``__init__`` so the bound constructor arguments become ``self.config``."""
    sig = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: SISGenerator, *args: Any, **kwargs: Any) -> None:
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        config = {k: v for k, v in bound.arguments.items() if k != "self"}
        init(self, *args, **kwargs)
        self.config = config

    return wrapper


class SISGenerator(nn.Module):
    """Base class of the label-map-to-image generators.

    Subclasses define ``forward(labels, edges, noise) -> images`` with compact inputs:
    ``labels`` int64 ``[B,H,W]`` (255 = ignore), ``edges`` float ``[B,1,H,W]`` instance-edge
    map, ``noise`` float with the shape given by :meth:`noise_shape`; images are
    ``[B,3,H,W]`` in [-1, 1].

    Attributes:
        config: The constructor arguments (set by :func:`capture_config`).
        vocabulary: The label vocabulary the model was trained on, if known.
        model_name: The registry name it was built from, if any.
    """

    config: dict[str, Any]
    vocabulary: Vocabulary | None = None
    model_name: str = ""
    #: Per-class style-feature centres ``{class: [k, feat_num]}`` for generators with a
    #: ``features`` input (pix2pixHD's instance-wise features, clustered after training);
    #: saved in ``config.json`` and in the export metadata, sampled by ``Generator.prepare``.
    feature_clusters: dict[int, Any] | None = None

    # -------------------------------------------------------------- shape contract
    # Generators store their size as ``_height``, ``_width``, ``_num_classes`` and
    # ``use_edges``; the three properties below read them (override where that differs).
    use_edges: bool = False

    @property
    def resolution(self) -> tuple[int, int]:
        """The ``(H, W)`` of the label maps the generator takes (and, mostly, produces)."""
        return self._height, self._width

    @property
    def num_classes(self) -> int:
        """Label ids ``0..num_classes-1`` (one-hot channels without dontcare)."""
        return self._num_classes

    @property
    def uses_edges(self) -> bool:
        """Whether the instance-edge map is an input."""
        return self.use_edges

    # ----------------------------------------------------------------- conditioning
    # The label conditioning map is built here once, on the device, from the compact
    # labels: ``label_channels`` one-hot class channels, the dontcare channel when
    # ``dontcare`` is set, the instance-edge channel when ``use_edges`` is set. Generators
    # that read more (SESAME's hole, SAFM's shape descriptor, spatial noise, pix2pixHD's
    # style features) extend :meth:`condition` or append to its result.
    #: Whether ignore pixels (255) get their own one-hot channel, after the class channels.
    dontcare: bool = False

    @property
    def label_channels(self) -> int:
        """One-hot class channels of :meth:`onehot`, the dontcare channel not counted.

        ``num_classes`` unless the official configuration has more (the extra channels,
        for ids the vocabulary does not have, stay zero); generators with a ``label_nc``
        argument override this.
        """
        return self.num_classes

    def onehot(self, labels: torch.Tensor) -> torch.Tensor:
        """Class one-hot map ``[B,label_channels(+1),H,W]`` float32, dontcare channel last.

        See :func:`sisgen.models.layers.labels_to_onehot`: ignore pixels (255) take the
        dontcare channel when there is one, other ids outside the channels give zeros.
        """
        return labels_to_onehot(labels, self.label_channels, self.dontcare)

    def condition(self, labels: torch.Tensor, edges: torch.Tensor | None = None
                  ) -> torch.Tensor:
        """The label conditioning map: :meth:`onehot`, then the edge channel with edges.

        Also what a conditional discriminator reads next to the image.

        Args:
            labels: ``[B,H,W]`` integer class ids (255 = ignore).
            edges: ``[B,1,H,W]`` instance-edge map (required when :attr:`use_edges`).

        Returns:
            ``[B,C,H,W]`` with ``C = label_channels + dontcare + use_edges`` (subclasses
            may pad or append channels), float32.

        Raises:
            ValueError: ``labels`` not ``[B,H,W]``, or no ``edges`` for a generator
                built with ``use_edges=True``.
        """
        if labels.dim() != 3:
            raise ValueError(f"labels must be [B,H,W], got {tuple(labels.shape)}")
        seg = self.onehot(labels)
        if self.use_edges:
            if edges is None:
                raise ValueError("this generator was built with use_edges=True: pass edges")
            seg = torch.cat([seg, edges.to(seg.dtype)], dim=1)
        return seg

    def noise_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        """The per-sample noise shape (``()`` when the model takes no noise)."""
        return ()

    #: Names of ``forward``'s inputs, in order; models with more inputs than the compact
    #: three (SESAME's masked photo and mask, say) extend this and ``example_inputs``.
    input_names: tuple[str, ...] = ("labels", "edges", "noise")

    def dynamic_hw_multiple(self) -> int | None:
        """What H and W must be multiples of for a dynamic-HxW export, or ``None``.

        ``None`` (the default) means the architecture ties its weights to the trained size
        (a linear layer on spatial dims, a noise-vector latent, fixed-size tables) and is
        exported at its own resolution only. Fully convolutional generators that derive
        their latent size from the label map override this.
        """
        return None

    def noise_spec(self) -> dict[str, Any]:
        """How noise is drawn: ``{"shape": [...], "distribution": "normal"}`` or empty."""
        shape = self.noise_shape()
        return {"shape": list(shape), "distribution": "normal"} if shape else {}

    def sample_noise(self, seeds: list[int], device: torch.device | str = "cpu") -> torch.Tensor:
        """Per-sample noise from seeds (see :func:`sisgen.noise.noise_from_seeds`)."""
        return noise_from_seeds(self.noise_spec(), seeds, device=device)

    def example_inputs(self, batch_size: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random inputs of ``forward`` in :attr:`input_names` order (``None`` where unused).

        The base version gives the compact three: blocky ``labels``, their ``edges`` (``None``
        without edges) and ``noise`` from seeds (``None`` without noise).
        """
        g = torch.Generator().manual_seed(seed)
        h, w = self.resolution
        labels = torch.randint(0, self.num_classes, (batch_size, h, w), generator=g)
        # blocky maps look more like label maps than i.i.d. noise does
        labels = labels[:, ::8, ::8].repeat_interleave(8, 1).repeat_interleave(8, 2)[:, :h, :w]
        from ..labelmap import instance_edges

        edges = torch.from_numpy(instance_edges(labels.numpy())).unsqueeze(1)
        noise = self.sample_noise(list(range(seed, seed + batch_size)))
        return labels.contiguous(), edges if self.uses_edges else None, noise

    # ------------------------------------------------------------------ save / load
    def full_config(self) -> dict[str, Any]:
        """``config.json``'s content."""
        cfg = {
            "architecture": type(self).__name__,
            "model_name": self.model_name,
            "args": copy.deepcopy(self.config),
            "resolution": list(self.resolution),
            "noise": self.noise_spec(),
            "vocabulary": None if self.vocabulary is None else self.vocabulary.to_dict(),
            "sisgen_version": _version(),
        }
        if self.feature_clusters is not None:
            cfg["feature_clusters"] = clusters_to_dict(self.feature_clusters)
        return cfg

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into folder ``path``.

        Returns:
            The folder.
        """
        from ..io import write_json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp = path / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt", "architecture": type(self).__name__})
        os.replace(tmp, path / WEIGHTS_NAME)
        write_json(path / CONFIG_NAME, self.full_config(), indent=2)
        return path

    def weights_hash(self) -> str:
        """A short content hash of the weights (for manifests and export metadata)."""
        h = hashlib.sha256()
        for k, v in sorted(self.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        if self.feature_clusters is not None:  # they shape the images as much as weights
            h.update(json.dumps(clusters_to_dict(self.feature_clusters)).encode())
        return h.hexdigest()[:16]

    def export(self, format: str = "onnx", **kwargs: Any) -> Path:  # noqa: A002
        """Export to ``format`` (``onnx``, ``torch``); see ``sisgen.export.FORMAT_ARGS``.

        Returns:
            The written file or folder.
        """
        from ..export import export  # lazy: sisgen never imports export at import time

        return export(self, format, **kwargs)

    # -------------------------------------------------------------------- export form
    def export_form(self) -> SISGenerator:
        """An inference-only copy: eval mode, spectral norm folded, no randomness inside.

        Spectral norm is folded with the stored power-iteration vectors (eval mode uses
        them without updating), SyncBatchNorm becomes BatchNorm, and the BatchNorm of each
        conditional norm that can fold it (a ``fold_norm()`` method: SPADE, SAFM, CLADE
        without ICPE) is folded into its modulation. The result has plain weights, so
        tracing/ONNX export sees ordinary convolutions.
        """
        from torch.nn.utils import parametrize

        # A fresh instance, not a deepcopy: parametrize gives each module a generated class,
        # which a deepcopy shares, so folding a copy would strip the original's weights too.
        model = type(self)(**self.config)
        model.load_state_dict(self.state_dict())
        model.vocabulary, model.model_name = self.vocabulary, self.model_name
        model.feature_clusters = self.feature_clusters
        model.eval()
        for module in model.modules():
            if parametrize.is_parametrized(module):
                for name in list(module.parametrizations.keys()):
                    parametrize.remove_parametrizations(module, name, leave_parametrized=True)
        model = _syncbn_to_bn(model)
        for module in list(model.modules()):
            fold_norm = getattr(module, "fold_norm", None)
            if callable(fold_norm):
                fold_norm()
        for p in model.parameters():
            p.requires_grad_(False)
        return model


def _syncbn_to_bn(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.SyncBatchNorm):
        bn = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats)
        bn.load_state_dict(module.state_dict())
        return bn
    for name, child in module.named_children():
        setattr(module, name, _syncbn_to_bn(child))
    return module


def _version() -> str:
    from .._version import __version__

    return __version__


def read_weights(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                 ) -> dict[str, torch.Tensor]:
    """The tensors of a ``model.safetensors`` file, or of the one in model folder ``path``.

    Raises:
        SisgenInputError: No such file, or not readable as safetensors (naming the file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        raise SisgenInputError("weights file not found", path)
    try:
        return load_file(str(path), device=str(map_location))
    except Exception as e:  # safetensors raises its own error types
        raise SisgenInputError(f"cannot read safetensors weights ({e})", path) from e


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> SISGenerator:
    """Load a generator saved with :meth:`SISGenerator.save`.

    Args:
        path: The model folder, its ``config.json`` or its ``model.safetensors``.
        map_location: Device for the weights.

    Raises:
        SisgenInputError: Missing/invalid config or weights, naming the file.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    cfg_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if path.is_file() and path.suffix == ".safetensors":
        weights_path = path
    from ..io import read_json

    cfg = read_json(cfg_path)
    arch = cfg.get("architecture") if isinstance(cfg, dict) else None
    if arch not in _ARCHITECTURES:
        raise SisgenInputError(_ARCHITECTURES.unknown(arch), cfg_path)
    args = cfg.get("args", {})
    if not isinstance(args, dict):
        raise SisgenInputError("'args' must be a mapping of constructor arguments", cfg_path)
    try:
        model = _ARCHITECTURES.get(arch)(**args)
    except (TypeError, ValueError) as e:  # unknown/missing arguments or invalid values
        raise SisgenInputError(f"invalid {arch} arguments ({e})", cfg_path) from e
    state = read_weights(weights_path, map_location)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise SisgenInputError(f"weights do not match the config ({e})", weights_path) from e
    if cfg.get("vocabulary"):
        model.vocabulary = Vocabulary.from_dict(cfg["vocabulary"], source=str(cfg_path))
    model.model_name = cfg.get("model_name", "")
    if cfg.get("feature_clusters") is not None:
        model.feature_clusters = clusters_from_dict(cfg["feature_clusters"], cfg_path)
    return model.eval()


def vocabulary_or_none(v: str | Vocabulary | None) -> Vocabulary | None:
    """Resolve a vocabulary argument that may be absent."""
    return None if v is None else get_vocabulary(v)


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a model folder's ``config.json`` as a dict."""
    with open(Path(path) / CONFIG_NAME, encoding="utf-8") as f:
        return json.load(f)
