"""The GAN training loop, kept apart from the models.

The generator knows nothing of losses or optimizers. A per-architecture
:class:`~sisgen.training.objective.Objective` brings the discriminator and the paper's
losses; :class:`Trainer` owns what is common: TTUR Adam optimizers with an optional linear
decay, mixed precision (bf16, or fp16 with loss scaling), channels-last, EMA of the
generator with BatchNorm re-calibration, gradient clipping and non-finite guards,
data-parallel training under ``torchrun``, atomic checkpoints with exact resume
(:mod:`~sisgen.training.checkpoint`), and logging (progress bar, JSONL, sample grids,
optional TensorBoard; :mod:`~sisgen.training.runlog`).

Exact resume: the checkpoint holds model, EMA, optimizers, schedulers, loss scalers,
the step, every RNG (torch, CUDA, the noise generator; per rank) and the data position
(epoch and batch within it). Dataset items depend only on ``(seed, epoch, index)`` and the
sampler's order only on ``(seed, epoch)``, so a run killed at any point and resumed from
its last checkpoint reproduces the uninterrupted run bit for bit on the CPU.

The data layer decides what a source needs from the run (ToyCity renders at the run's
size; :func:`~sisgen.training.data.open_run_source`); the loop knows no source kinds.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from sisgen.errors import SisgenInputError
from sisgen.models import SISGenerator, build_model
from sisgen.noise import draw_noise
from sisgen.vocab import require_same_ids

from . import checkpoint, data
from . import distributed as dist_utils
from .checkpoint import CHECKPOINT
from .config import TrainConfig
from .ema import ema_decay, has_batchnorm, recalibrate_batchnorm, update_ema
from .objective import Objective, objective_for
from .perceptual import load_perceptual
from .runlog import RunLog, sample_grid
from .sampler import ResumableSampler
from .semantic import load_semantic

log = logging.getLogger(__name__)


class Trainer:
    """Trains any zoo generator with its objective.

    Args:
        cfg: The run configuration.
        progress: Show a progress bar (rank 0 only).
    """

    def __init__(self, cfg: TrainConfig, progress: bool = True):
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        cuda = torch.cuda.is_available()
        self.dist = dist_utils.setup("cuda" if cuda else "cpu")
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        self.out = Path(cfg.out_dir)
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.runlog = RunLog(self.out, self.dist.is_main, cfg.tensorboard, progress)
        world = self.dist.world_size
        if cfg.batch_size % world:
            raise SisgenInputError(f"batch_size {cfg.batch_size} is not divisible by the "
                                   f"{world} ranks")
        self.local_batch = cfg.batch_size // world

        # the same seed on every rank -> the same initial weights (and rank 0 broadcasts)
        torch.manual_seed(cfg.seed)
        args = dict(cfg.model_args, height=cfg.height, width=cfg.width)
        self.G: SISGenerator = build_model(cfg.model, dataset=cfg.dataset, **args)
        if cfg.init_from:
            init_generator(self.G, cfg.init_from)
        perceptual = load_perceptual(cfg.perceptual_weights) if cfg.perceptual_weights else None
        semantic = (load_semantic(cfg.segmenter_weights, self.G.vocabulary)
                    if cfg.segmenter_weights else None)
        self.objective: Objective = objective_for(self.G, cfg.losses, cfg.discriminator, perceptual,
                                                  cfg.encoder, semantic)
        if self.dist.enabled and cuda and cfg.sync_bn:
            self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
            self.objective.d_nets = nn.SyncBatchNorm.convert_sync_batchnorm(self.objective.d_nets)
        self.G.to(self.device)
        self.objective.to(self.device)
        if cfg.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.objective.to(memory_format=torch.channels_last)
        dist_utils.broadcast_state([self.G, self.objective.d_nets, self.objective.g_nets])
        self.G_ema = copy.deepcopy(self.G).eval() if cfg.ema_decay > 0 else None

        self.dataset = data.build_dataset(cfg.source, (cfg.height, cfg.width), cfg.augment,
                                          seed=cfg.seed, cache=cfg.cache,
                                          validate=cfg.validate and self.dist.is_main)
        require_same_ids(self.dataset.vocabulary, self.G.vocabulary)
        self.sampler = ResumableSampler(len(self.dataset), cfg.seed, self.dist.rank, world)
        self.steps_per_epoch = len(self.sampler) // self.local_batch
        if self.steps_per_epoch < 1:
            raise SisgenInputError(f"{len(self.dataset)} training samples do not fill one batch "
                                   f"of {self.local_batch} per rank")
        self.total_steps = self._total_steps()

        betas = (float(cfg.beta1), float(cfg.beta2))
        self.g_params = [p for m in (self.G, self.objective.g_nets) for p in m.parameters()
                         if p.requires_grad]
        self.warmup_frozen, self.warmup_epochs = self._train_only(cfg.train_only)
        self.d_params = [p for p in self.objective.d_nets.parameters() if p.requires_grad]
        self.opt_g = torch.optim.Adam(self.g_params, cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.d_params, cfg.lr_d, betas=betas)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, self._lr_factor)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, self._lr_factor)
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.amp]
        scaled = cfg.amp == "fp16"
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=scaled)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=scaled)

        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.bad_steps = 0
        self.skipped = 0
        # per-rank randomness after the (shared) initialization
        torch.manual_seed(cfg.seed * 1009 + 17 + self.dist.rank)
        self.noise_gen = torch.Generator().manual_seed(cfg.seed * 1009 + 1 + self.dist.rank)
        self._resumed_torch_rng: torch.Tensor | None = None

    # ---------------------------------------------------------------- schedule
    def _total_steps(self) -> float:
        cfg = self.cfg
        if cfg.steps is not None:
            return float(cfg.steps)
        if cfg.epochs is not None:
            return float(math.ceil(cfg.epochs * self.steps_per_epoch))
        return math.inf

    def _lr_factor(self, step: int) -> float:
        start = self.cfg.lr_decay_start
        if start is None or not math.isfinite(self.total_steps):
            return 1.0
        begin = start * self.total_steps
        if step < begin:
            return 1.0
        return max(0.0, 1.0 - (step - begin) / max(1.0, self.total_steps - begin))

    # ------------------------------------------------------------- checkpoints
    def _stateful(self) -> dict[str, Any]:
        """The checkpoint's parts with a ``state_dict``, by their key in the file."""
        return {"G": self.G, "d_nets": self.objective.d_nets, "g_nets": self.objective.g_nets,
                "G_ema": self.G_ema, "opt_g": self.opt_g, "opt_d": self.opt_d,
                "sched_g": self.sched_g, "sched_d": self.sched_d, "scaler_g": self.scaler_g,
                "scaler_d": self.scaler_d}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run (RNG states of every rank)."""
        rng = checkpoint.rng_state(self.noise_gen, self.device)
        return {
            **{key: getattr(self, key) for key in checkpoint.POSITION},
            **{key: None if part is None else part.state_dict()
               for key, part in self._stateful().items()},
            "rng": dist_utils.gather_objects(rng, self.dist.world_size),
            "config": self.cfg.to_dict(),
        }

    def save_checkpoint(self) -> Path:
        """Atomically write ``checkpoint.pt`` (rank 0; every rank must call it)."""
        path = self.out / CHECKPOINT
        state = self.state_dict()  # a collective under torchrun: all ranks take part
        if self.dist.is_main:
            checkpoint.atomic_torch_save(state, path)
        dist_utils.barrier()
        return path

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> None:
        """Restore a run from its checkpoint (weights-only load: no pickle code runs)."""
        st = checkpoint.read_checkpoint(path or self.out / CHECKPOINT, self.device,
                                        self.dist.world_size)
        for key, part in self._stateful().items():
            if part is not None and (key != "G_ema" or st.get(key) is not None):
                part.load_state_dict(st[key])
        checkpoint.set_rng_state(st["rng"][self.dist.rank], self.noise_gen, self.device)
        self._resumed_torch_rng = st["rng"][self.dist.rank]["torch"]
        for key in checkpoint.POSITION:
            setattr(self, key, int(st[key]))
        self.runlog.truncate(self.step)

    # ------------------------------------------------------------------ models
    def final_generator(self) -> SISGenerator:
        """The generator to sample, evaluate and export.

        The EMA copy when EMA is on -- with its BatchNorm statistics re-estimated over
        ``ema_bn_batches`` training batches (on a copy; the training state is untouched).
        """
        if self.G_ema is None:
            return self.G
        if self.cfg.ema_bn_batches <= 0 or not has_batchnorm(self.G_ema):
            return self.G_ema
        g = copy.deepcopy(self.G_ema)
        gen = torch.Generator().manual_seed(self.cfg.seed + 4242)

        def forward(model: nn.Module, batch: dict[str, torch.Tensor]) -> None:
            batch = self._to_device(batch)
            self.objective.sample(model, batch, self._noise(batch["labels"].shape[0], gen))

        recalibrate_batchnorm(g, self._in_order_batches(self.cfg.ema_bn_batches, wrap=True),
                              forward)
        return g

    def _in_order_batches(self, limit: int | None = None, wrap: bool = False
                          ) -> Iterator[dict[str, torch.Tensor]]:
        """Training batches in dataset order, on the host (no sampler, no state touched).

        ``limit`` caps the number of batches; ``wrap`` fills the last batch from the
        dataset's start (else it is cut short).
        """
        size, b = len(self.dataset), self.local_batch
        n = math.ceil(size / b) if not wrap else max(1, size // b)
        n = n if limit is None else min(limit, n)
        for k in range(n):
            idx = [(k * b + j) % size for j in range(b)] if wrap else \
                list(range(k * b, min(size, (k + 1) * b)))
            items = [self.dataset[i] for i in idx]
            yield {key: torch.stack([it[key] for it in items]) for key in items[0]}

    def _finalize(self, g: SISGenerator, limit: int | None = None) -> SISGenerator:
        """``g`` with what inference needs beyond weights (the objective's finalize hook)."""
        self.objective.finalize(g, map(self._to_device, self._in_order_batches(limit)))
        return g

    # ------------------------------------------------------------------- steps
    def _noise(self, batch: int, generator: torch.Generator | None = None
               ) -> torch.Tensor | None:
        noise = draw_noise(self.G.noise_spec(), batch, generator or self.noise_gen)
        return None if noise is None else noise.to(self.device)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in batch.items():
            v = v.to(self.device, non_blocking=True)
            if self.cfg.channels_last and v.dim() == 4 and v.shape[1] > 1:
                v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _train_only(self, spec: dict[str, Any] | None) -> tuple[list[nn.Parameter], float]:
        """The generator-side parameters frozen by ``train_only``, and for how many epochs."""
        if not spec:
            return [], 0.0
        if not isinstance(spec, dict) or set(spec) != {"params", "epochs"}:
            raise SisgenInputError(f"train_only must be {{params: [prefixes], epochs: N}}, "
                                   f"got {spec!r}")
        prefixes = tuple(str(p) for p in spec["params"])
        named = [*self.G.named_parameters(), *self.objective.g_nets.named_parameters()]
        trained = [n for n, _ in named if n.startswith(prefixes)]
        if not trained:
            raise SisgenInputError(f"train_only: no generator parameter starts with "
                                   f"{list(prefixes)} (names look like {named[0][0]!r})")
        return [p for n, p in named if not n.startswith(prefixes)], float(spec["epochs"])

    def _apply(self, loss: torch.Tensor, opt: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, params: list[nn.Parameter],
               frozen: list[nn.Parameter] = ()) -> bool:
        """Backward, average across ranks, guard, clip, step. Returns whether it stepped.

        ``frozen`` parameters lose their gradients before the step (Adam leaves them be).
        """
        if not dist_utils.all_true(bool(torch.isfinite(loss.detach()).item()), self.device):
            opt.zero_grad(set_to_none=True)
            return False
        scaler.scale(loss).backward()
        dist_utils.average_gradients(params, self.dist.world_size)
        for p in frozen:
            p.grad = None
        if scaler.is_enabled():
            scaler.unscale_(opt)
            if self.cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            scaler.step(opt)  # skips by itself when the scaled gradients overflowed
            scaler.update()
            return True
        norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip or math.inf)
        if not torch.isfinite(norm):
            opt.zero_grad(set_to_none=True)
            return False
        opt.step()
        return True

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One generator step, then one discriminator step on the same batch."""
        if self.dist.enabled:  # BatchNorm statistics follow rank 0, as DDP does
            dist_utils.broadcast_state([self.G, self.objective.d_nets, self.objective.g_nets],
                                       buffers_only=True)
        batch = self._to_device(batch)
        noise = self._noise(batch["labels"].shape[0])

        for p in self.d_params:  # no discriminator gradients during the generator step
            p.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        self.objective.epoch = self.epoch  # schedules by epoch (SAFM's Fake_seg start)
        with self._autocast():
            g_loss, g_terms, fake = self.objective.generator_loss(self.G, batch, noise)
        frozen = self.warmup_frozen if self.epoch < self.warmup_epochs else []
        ok_g = self._apply(g_loss, self.opt_g, self.scaler_g, self.g_params, frozen)
        for p in self.d_params:
            p.requires_grad_(True)

        self.opt_d.zero_grad(set_to_none=True)
        with self._autocast():
            d_loss, d_terms = self.objective.discriminator_loss(self.G, batch, fake.detach())
        ok_d = self._apply(d_loss, self.opt_d, self.scaler_d, self.d_params)

        with warnings.catch_warnings():  # a skipped (non-finite) step still advances the LR
            warnings.simplefilter("ignore", UserWarning)
            self.sched_g.step()
            self.sched_d.step()
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, ema_decay(self.cfg.ema_decay, self.step))
        if ok_g and ok_d:
            self.bad_steps = 0
        else:
            self.bad_steps += 1
            self.skipped += 1
            if self.bad_steps >= self.cfg.max_bad_steps:
                raise RuntimeError(
                    f"training diverged: {self.bad_steps} consecutive steps with a non-finite "
                    f"loss or gradient (step {self.step}); the last good checkpoint is "
                    f"{self.out / CHECKPOINT}")
        scalars = {k: float(v.detach().float()) for k, v in {**g_terms, **d_terms}.items()}
        scalars["g_total"] = float(g_loss.detach().float())
        return scalars

    # -------------------------------------------------------------------- loop
    def _loader(self) -> DataLoader:
        self.sampler.set_position(self.epoch, self.batch_in_epoch * self.local_batch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        return DataLoader(self.dataset, batch_size=self.local_batch, sampler=self.sampler,
                          drop_last=True, num_workers=self.cfg.num_workers,
                          pin_memory=self.device.type == "cuda")

    def _epoch_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """An iterator over the rest of the current epoch's batches.

        Making a DataLoader iterator draws its base seed from torch's global generator. A
        checkpoint is taken after the draw of its epoch's iterator, so the first iterator
        of a resumed run gets its draw undone: the global generator continues as in the
        uninterrupted run (objectives draw from it: OASIS's LabelMix, SESAME's holes).
        """
        batches = iter(self._loader())
        if self._resumed_torch_rng is not None:
            torch.set_rng_state(self._resumed_torch_rng)
            self._resumed_torch_rng = None
        return batches

    def fit(self) -> Path:
        """Train until ``steps`` / ``epochs`` / ``max_minutes``; returns the model folder."""
        cfg = self.cfg
        main = self.dist.is_main
        if main:
            (self.out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        budget = None if cfg.max_minutes is None else 60.0 * cfg.max_minutes
        self.runlog.start(self.total_steps, self.step, budget)
        start = time.time()
        last_t, last_step = start, self.step
        try:
            done = self.step >= self.total_steps
            while not done:
                for batch in self._epoch_batches():
                    scalars = self.train_step(batch)
                    self.step += 1
                    self.batch_in_epoch += 1
                    elapsed = time.time() - start
                    out_of_time = budget is not None and dist_utils.all_true(
                        elapsed > budget, self.device)
                    done = self.step >= self.total_steps or out_of_time
                    self.runlog.advance(self.step, elapsed, scalars)
                    if main and self.step % cfg.log_every == 0:
                        now = time.time()
                        ips = (self.step - last_step) * cfg.batch_size / max(now - last_t, 1e-9)
                        last_t, last_step = now, self.step
                        self.runlog.log({"step": self.step, "epoch": self.epoch,
                                         "time": round(elapsed, 2), "img_per_s": round(ips, 2),
                                         "lr_g": self.sched_g.get_last_lr()[0],
                                         "skipped": self.skipped, **scalars})
                    if cfg.sample_every and self.step % cfg.sample_every == 0:
                        self.save_samples(batch)
                    if main and cfg.eval_every and self.step % cfg.eval_every == 0:
                        self.evaluate()
                    if self.step % cfg.checkpoint_every == 0 and not done:
                        self.save_checkpoint()
                    if done:
                        break
                else:
                    self.epoch += 1
                    self.batch_in_epoch = 0
        finally:
            self.runlog.stop()
        if self.dist.enabled:  # end with rank 0's BatchNorm statistics everywhere
            dist_utils.broadcast_state([self.G, self.objective.d_nets, self.objective.g_nets],
                                       buffers_only=True)
        self.save_checkpoint()
        model_dir = self.out / "model"
        final = self.final_generator()
        if main:
            self._finalize(final).save(model_dir)
            self.runlog.close()
        dist_utils.barrier()
        return model_dir

    def evaluate(self) -> dict[str, Any]:
        """Score the final generator with ``cfg.eval`` and append to ``metrics.jsonl``.

        Runs on the caller's rank only (rank 0 in the loop) and touches no training state.
        """
        from .metrics import compute_metrics

        opts = dict(self.cfg.eval)
        names = opts.pop("metrics")
        source = data.open_run_source(opts.pop("source", None) or self.cfg.source,
                                  (self.cfg.height, self.cfg.width), self.cfg.seed,
                                  evaluation=True)
        limit = opts.pop("limit", 200)
        g = self._finalize(self.final_generator(), math.ceil(limit / self.local_batch))
        was_training = g.training
        try:
            scores = compute_metrics(names, generator=g, source=source, limit=limit,
                                     device=str(self.device), **opts)
        finally:
            g.train(was_training)
        self.runlog.log_metrics({"step": self.step, **{
            k: v for k, v in scores.items() if isinstance(v, (int, float, str))}})
        return scores

    @torch.no_grad()
    def save_samples(self, batch: dict[str, torch.Tensor], n: int = 4) -> Path | None:
        """Write a grid ``label | generated | real`` for the first ``n`` items (rank 0)."""
        if not self.dist.is_main:
            return None
        g = self.final_generator()
        was_training = g.training
        g.eval()
        small = self._to_device({k: v[:n] for k, v in batch.items()})
        gen = torch.Generator().manual_seed(self.cfg.seed + 777)
        fake = self.objective.sample(g, small, self._noise(small["labels"].shape[0], gen))
        g.train(was_training)
        grid = sample_grid(self.dataset.vocabulary, small["labels"], fake, small["image"])
        return self.runlog.write_samples(grid, self.step)


def init_generator(G: SISGenerator, path: str | os.PathLike) -> tuple[int, int]:
    """Copy every tensor of the model folder ``path`` whose name and shape fit ``G``.

    Returns:
        ``(copied, total)``: how many of ``G``'s tensors were initialized, out of all.

    Raises:
        SisgenInputError: No model weights at ``path``, or not one tensor fits (a different
            architecture).
    """
    from sisgen.models.base import read_weights

    try:
        src = read_weights(path)
    except SisgenInputError as e:
        raise SisgenInputError(f"init_from: {e.problem} (a sisgen model folder with "
                               "model.safetensors is expected; convert official checkpoints "
                               "with `sisgen convert`)",
                               e.path) from e
    weights = Path(path)
    own = G.state_dict()
    fits = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    if not fits:
        raise SisgenInputError(f"init_from: no tensor fits the {type(G).__name__} being "
                               "trained (another architecture?)", weights)
    G.load_state_dict(fits, strict=False)
    left = [k for k in own if k not in fits]
    if left:
        log.warning("init_from %s: %d of %d tensors copied; trained from scratch: %s%s",
                    weights, len(fits), len(own), ", ".join(left[:5]),
                    " ..." if len(left) > 5 else "")
    return len(fits), len(own)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Run a training job; with ``resume`` continue from the run folder's checkpoint."""
    trainer = Trainer(cfg, progress=progress)
    try:
        if resume and (trainer.out / CHECKPOINT).is_file():
            trainer.load_checkpoint()
        return trainer.fit()
    finally:
        dist_utils.teardown()
