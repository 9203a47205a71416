"""Training configuration: a typed dataclass, read from YAML with ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sisgen.errors import SisgenInputError

PRESET_DIR = Path(__file__).parent / "configs"


@dataclass
class TrainConfig:
    """Everything a training run needs; ``config.yaml`` in the run folder is this, resolved.

    Attributes:
        model: Registered model name (``spade``, ``oasis``, ``pix2pixhd`` ...).
        dataset: Dataset spec / vocabulary name for :func:`sisgen.models.build_model`.
        model_args: Constructor overrides (``ngf``, ``z_dim``, ``norm``, ...).
        init_from: A sisgen model folder (a finished run's ``model/``, or a converted
            official checkpoint) whose weights start the generator: every tensor whose name
            and shape match is copied (fine-tuning; pix2pixHD's local enhancer starting
            from the global run). Ignored when resuming from a checkpoint.
        height: Training height.
        width: Training width.
        source: The training data: arguments of :func:`sisgen.training.data.build_dataset`
            (``kind``, ``root``, ``split``, ...).
        augment: The paper's preprocessing (``mode``, ``load_size``, ``crop_size``,
            ``flip``); ``None``: resize to ``height x width`` and flip.
        cache: Keep decoded training pairs in memory (small datasets).
        validate: Check every label map before training starts.
        num_workers: DataLoader worker processes.
        batch_size: Images per step over all ranks (each rank takes ``batch_size / world``).
        steps: Generator steps; ``None``: from ``epochs``, or until ``max_minutes``.
        epochs: Passes over the data (used when ``steps`` is ``None``).
        max_minutes: Stop (and save) after this much wall time, whatever ``steps`` says.
        lr_g: Generator learning rate.
        lr_d: Discriminator learning rate (TTUR: 4x the generator's in SPADE).
        beta1: Adam beta1.
        beta2: Adam beta2.
        lr_decay_start: Fraction of the run after which both learning rates decay linearly
            to zero (SPADE/pix2pixHD: 0.5); ``None`` keeps them constant.
        train_only: ``{params: [prefixes], epochs: N}``: for the first ``N`` epochs only
            the generator-side parameters whose names start with a prefix train (names as
            in the generator's state dict; extra networks as ``E.<name>``) -- pix2pixHD's
            ``--niter_fix_global``, training the new local enhancer (``model1_``) alone
            first. ``None``: everything trains from the start.
        losses: Loss weights, merged into the objective's paper defaults (``fm``, ``vgg``,
            ``kld``, ``labelmix`` ...; see :mod:`sisgen.training.objective`).
        discriminator: Discriminator arguments, merged into the objective's defaults.
        encoder: Image encoder arguments (SPADE's VAE encoder, trained when
            ``losses.kld > 0``), merged into the objective's defaults.
        perceptual_weights: Local torchvision ``vgg19`` state-dict file for the perceptual
            loss (nothing is downloaded).
        segmenter_weights: TorchScript segmenter file (with its metadata sidecar, as
            ``sisgen segmenter train`` writes) for the semantic consistency loss
            ``losses.seg`` (:mod:`sisgen.training.semantic`).
        ema_decay: Generator EMA decay (0 disables EMA).
        ema_bn_batches: Batches used to re-estimate the EMA generator's BatchNorm
            statistics before sampling and export (0: copy the trained model's).
        amp: Mixed precision: ``none``, ``bf16`` or ``fp16`` (with loss scaling).
        channels_last: Train in the channels-last memory format.
        grad_clip: Clip each optimizer's gradient norm to this (``None``: no clipping).
        max_bad_steps: Stop after this many consecutive steps with a non-finite loss or
            gradient (each is skipped, not applied).
        sync_bn: Use SyncBatchNorm in multi-GPU runs.
        deterministic: Deterministic algorithms (bit-exact resume on CPU).
        seed: Seed of every random choice of the run.
        threads: torch CPU threads (None: torch's default).
        out_dir: Run folder (checkpoint, logs, samples, final model).
        log_every: Steps between JSONL log lines.
        sample_every: Steps between sample grids (0 disables).
        checkpoint_every: Steps between checkpoints.
        tensorboard: Also log scalars and grids to TensorBoard (needs ``tensorboard``).
        eval_every: Steps between evaluations of the final generator (0 disables).
        eval: The evaluation: ``metrics`` (names, see :mod:`sisgen.training.metrics`),
            ``source`` (:func:`sisgen.sources.open` arguments of the validation label maps
            and photos), ``limit``, and metric options (``inception_weights``,
            ``segmenter``, ``remap``, ...). Results go to ``metrics.jsonl``.
    """

    model: str = "spade"
    dataset: str = "toycity"
    model_args: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    height: int = 64
    width: int = 128
    source: dict[str, Any] = field(default_factory=lambda: {"kind": "toycity", "length": 1000})
    augment: dict[str, Any] | None = None
    cache: bool = True
    validate: bool = True
    num_workers: int = 0
    batch_size: int = 8
    steps: int | None = 1000
    epochs: float | None = None
    max_minutes: float | None = None
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    lr_decay_start: float | None = None
    train_only: dict[str, Any] | None = None
    losses: dict[str, float] = field(default_factory=dict)
    discriminator: dict[str, Any] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=dict)
    perceptual_weights: str | None = None
    segmenter_weights: str | None = None
    ema_decay: float = 0.0
    ema_bn_batches: int = 0
    amp: str = "none"
    channels_last: bool = False
    grad_clip: float | None = None
    max_bad_steps: int = 20
    sync_bn: bool = True
    deterministic: bool = False
    seed: int = 0
    threads: int | None = None
    out_dir: str = "runs/train"
    log_every: int = 25
    sample_every: int = 250
    checkpoint_every: int = 250
    tensorboard: bool = False
    eval_every: int = 0
    eval: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what ``config.yaml`` holds)."""
        return dataclasses.asdict(self)


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` (dotted keys reach into dicts: ``model_args.ngf=32``)."""
    for item in overrides:
        if "=" not in item:
            raise SisgenInputError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise SisgenInputError(f"override {item!r}: {p!r} is not a mapping")
        node[parts[-1]] = _parse_value(value)
    return data


def resolve_preset(name_or_path: str | os.PathLike) -> Path:
    """A preset name (``toycity_spade_tiny``) or a YAML path -> the YAML file."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    cand = PRESET_DIR / f"{name_or_path}.yaml"
    if cand.is_file():
        return cand
    known = sorted(f.stem for f in PRESET_DIR.glob("*.yaml"))
    raise SisgenInputError(f"no such config file or preset {name_or_path!r}; presets: "
                           f"{', '.join(known)}")


def load_config(name_or_path: str | os.PathLike | None = None, overrides: list[str] | None = None
                ) -> TrainConfig:
    """Read a YAML config (or preset), apply overrides and check the keys.

    Raises:
        SisgenInputError: Unknown keys, bad YAML, or a bad value type, naming the file.
    """
    data: dict[str, Any] = {}
    path = None
    if name_or_path is not None:
        path = resolve_preset(name_or_path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise SisgenInputError(f"cannot parse YAML ({e})", path) from e
        if not isinstance(data, dict):
            raise SisgenInputError("a training config must be a YAML mapping", path)
    defaults = TrainConfig().to_dict()
    for item in overrides or []:
        # a dotted override into a section the file does not set starts from the default
        top = item.split("=", 1)[0].split(".")[0]
        if "." in item.split("=", 1)[0] and top not in data and isinstance(defaults.get(top), dict):
            data[top] = dict(defaults[top])
    data = apply_overrides(data, overrides or [])
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SisgenInputError(f"unknown config keys {unknown}; known: {sorted(names)}", path)
    try:
        cfg = TrainConfig(**data)
    except TypeError as e:
        raise SisgenInputError(f"invalid config ({e})", path) from e
    if cfg.batch_size < 1 or (cfg.steps is not None and cfg.steps < 1):
        raise SisgenInputError("batch_size and steps must be >= 1", path)
    if cfg.steps is None and cfg.epochs is None and cfg.max_minutes is None:
        raise SisgenInputError("steps: null needs epochs or max_minutes (a time budget)", path)
    if cfg.eval_every and not cfg.eval.get("metrics"):
        raise SisgenInputError("eval_every needs eval.metrics (e.g. [miou, icv])", path)
    if cfg.amp not in ("none", "bf16", "fp16"):
        raise SisgenInputError(f"amp must be none, bf16 or fp16, not {cfg.amp!r}", path)
    return cfg
