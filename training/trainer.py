"""The GAN training loop, kept apart from the models.

The generator knows nothing of losses or optimizers; :class:`Trainer` owns the
discriminator, the optimizers, EMA, checkpoints and logging, and only orchestrates.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from sisgen import sources
from sisgen.models import SISGenerator, build_model

from .config import TrainConfig
from .data import PairedDataset
from .discriminator import MultiScaleDiscriminator
from .losses import feature_matching_loss, hinge_d_loss, hinge_g_loss

CHECKPOINT = "checkpoint.pt"


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    """Trains a SPADE-family generator with a multi-scale PatchGAN.

    Losses: hinge adversarial loss, discriminator feature matching (``lambda_fm``), and an
    optional L1 term (``lambda_l1``). TTUR Adam optimizers (``lr_g``, ``lr_d``).

    Args:
        cfg: The run configuration.
        progress: Show a progress bar.
    """

    def __init__(self, cfg: TrainConfig, progress: bool = True):
        self.cfg = cfg
        self.progress = progress
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)

        args = dict(cfg.model_args, height=cfg.height, width=cfg.width)
        self.G: SISGenerator = build_model(cfg.model, dataset=cfg.dataset, **args).to(self.device)
        src_args = dict(cfg.source)
        kind = src_args.pop("kind")
        if kind == "toycity":
            src_args.setdefault("size", (cfg.height, cfg.width))
            src_args.setdefault("seed", cfg.seed)
        self.source = sources.open(kind, **src_args)
        if self.source.vocabulary.ids != self.G.vocabulary.ids:
            raise ValueError(
                f"source vocabulary {self.source.vocabulary.name!r} does not match the model's "
                f"{self.G.vocabulary.name!r}"
            )
        seg_nc = self.G.num_classes + int(self.G.config.get("dontcare", False)) + int(
            self.G.uses_edges)
        self.D = MultiScaleDiscriminator(seg_nc + 3, cfg.num_d, cfg.ndf, cfg.d_layers).to(
            self.device)
        self.G_ema = copy.deepcopy(self.G).eval() if cfg.ema_decay > 0 else None
        betas = (float(cfg.beta1), float(cfg.beta2))
        self.opt_g = torch.optim.Adam(self.G.parameters(), cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), cfg.lr_d, betas=betas)
        self.step = 0
        self.dataset = PairedDataset(self.source, (cfg.height, cfg.width), flip=cfg.flip,
                                     cache=cfg.cache)
        self.noise_gen = torch.Generator().manual_seed(cfg.seed + 1)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run."""
        return {
            "step": self.step,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": None if self.G_ema is None else self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "noise_rng": self.noise_gen.get_state(),
            "config": self.cfg.to_dict(),
        }

    def save_checkpoint(self) -> Path:
        """Atomically write ``checkpoint.pt`` in the run folder."""
        path = self.out / CHECKPOINT
        _atomic_torch_save(self.state_dict(), path)
        return path

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> None:
        """Restore a run from its checkpoint (weights-only load: no pickle code runs)."""
        path = Path(path) if path else self.out / CHECKPOINT
        st = torch.load(path, map_location=self.device, weights_only=True)
        self.G.load_state_dict(st["G"])
        self.D.load_state_dict(st["D"])
        if self.G_ema is not None and st.get("G_ema") is not None:
            self.G_ema.load_state_dict(st["G_ema"])
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        torch.set_rng_state(st["torch_rng"])
        self.noise_gen.set_state(st["noise_rng"])
        self.step = int(st["step"])

    def final_generator(self) -> SISGenerator:
        """The generator to save and export: the EMA copy when EMA is on."""
        return self.G_ema if self.G_ema is not None else self.G

    # ----------------------------------------------------------------------- steps
    def _noise(self, batch: int) -> torch.Tensor | None:
        shape = self.G.noise_shape()
        if not shape:
            return None
        return torch.randn((batch, *shape), generator=self.noise_gen).to(self.device)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One discriminator step and one generator step."""
        cfg = self.cfg
        labels = batch["labels"].to(self.device)
        edges = batch["edges"].to(self.device)
        real = batch["image"].to(self.device)
        noise = self._noise(labels.shape[0])
        seg, _ = self.G.condition(labels, edges)

        # generator
        self.opt_g.zero_grad(set_to_none=True)
        fake = self.G(labels, edges, noise)
        pred_fake = self.D(seg, fake)
        with torch.no_grad():
            pred_real = self.D(seg, real)
        g_adv = hinge_g_loss(pred_fake)
        g_fm = feature_matching_loss(pred_real, pred_fake)
        g_loss = g_adv + cfg.lambda_fm * g_fm
        if cfg.lambda_l1 > 0:
            g_l1 = torch.nn.functional.l1_loss(fake, real)
            g_loss = g_loss + cfg.lambda_l1 * g_l1
        g_loss.backward()
        self.opt_g.step()

        # discriminator
        self.opt_d.zero_grad(set_to_none=True)
        d_loss = hinge_d_loss(self.D(seg, real), self.D(seg, fake.detach()))
        d_loss.backward()
        self.opt_d.step()

        if self.G_ema is not None:
            self._update_ema()
        return {"g_adv": g_adv.item(), "g_fm": g_fm.item(), "d": d_loss.item()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        # warm-up: a short horizon early so the EMA copy is never far behind a young model
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        for pe, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            pe.lerp_(p, 1 - decay)
        for be, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            be.copy_(b)

    # ------------------------------------------------------------------------ loop
    def fit(self) -> Path:
        """Train until ``steps`` or ``max_minutes``; returns the saved model folder."""
        cfg = self.cfg
        (self.out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        loader = DataLoader(self.dataset, batch_size=cfg.batch_size, shuffle=True,
                            drop_last=True, num_workers=0,
                            generator=torch.Generator().manual_seed(cfg.seed + self.step))
        bar = None
        budget = None if cfg.max_minutes is None else 60.0 * cfg.max_minutes
        if self.progress:
            from tqdm import tqdm

            if cfg.steps is None:
                # time-budgeted run: the bar tracks seconds of the budget, not steps
                bar = tqdm(total=round(budget), desc="train", unit="s",
                           bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt}s [{elapsed}<{remaining}"
                                      "{postfix}]")
            else:
                bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step")
        start = time.time()
        log = open(self.out / "log.jsonl", "a", encoding="utf-8")
        try:
            max_steps = cfg.steps if cfg.steps is not None else float("inf")
            while self.step < max_steps:
                for batch in loader:
                    scalars = self.train_step(batch)
                    self.step += 1
                    if bar is not None:
                        if bar.unit == "s":
                            bar.n = min(time.time() - start, bar.total)
                            bar.set_postfix({"step": self.step, **{
                                k: f"{v:.3f}" for k, v in scalars.items()}}, refresh=False)
                            bar.refresh()
                        else:
                            bar.update(1)
                            bar.set_postfix({k: f"{v:.3f}" for k, v in scalars.items()})
                    if self.step % cfg.log_every == 0:
                        log.write(json.dumps({"step": self.step,
                                              "time": round(time.time() - start, 2),
                                              **scalars}) + "\n")
                        log.flush()
                    if cfg.sample_every and self.step % cfg.sample_every == 0:
                        self.save_samples(batch)
                    if self.step % cfg.checkpoint_every == 0:
                        self.save_checkpoint()
                    out_of_time = (cfg.max_minutes is not None
                                   and time.time() - start > 60 * cfg.max_minutes)
                    if self.step >= max_steps or out_of_time:
                        break
                if cfg.max_minutes is not None and time.time() - start > 60 * cfg.max_minutes:
                    break
        finally:
            log.close()
            if bar is not None:
                bar.close()
        self.save_checkpoint()
        model_dir = self.final_generator().save(self.out / "model")
        return model_dir

    @torch.no_grad()
    def save_samples(self, batch: dict[str, torch.Tensor], n: int = 4) -> Path:
        """Write a grid ``label | generated | real`` for the first ``n`` items of a batch."""
        from sisgen.io import write_image

        g = self.final_generator()
        was_training = g.training
        g.eval()
        labels = batch["labels"][:n].to(self.device)
        edges = batch["edges"][:n].to(self.device)
        fake = g(labels, edges, self._noise(labels.shape[0]))
        g.train(was_training)
        pal = self.source.vocabulary
        rows = []
        for i in range(labels.shape[0]):
            lab = pal.colorize(labels[i].cpu().numpy())
            img = ((fake[i].permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255)
            real = ((batch["image"][i].permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255)
            rows.append(np.concatenate([lab, img.astype(np.uint8), real.astype(np.uint8)], 1))
        path = self.out / "samples" / f"step_{self.step:07d}.png"
        write_image(path, np.concatenate(rows, 0))
        return path


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Run a training job; with ``resume`` continue from the run folder's checkpoint."""
    trainer = Trainer(cfg, progress=progress)
    if resume and (trainer.out / CHECKPOINT).is_file():
        trainer.load_checkpoint()
    return trainer.fit()
