"""Do images of a CPU-trained tiny SPADE carry their labels? Printed as JSON.

The issue's acceptance test for the trainer: train the tiny SPADE ToyCity preset for at
most ten minutes on the CPU, train a segmenter on *real* ToyCity photos, and compare the
segmenter's mIoU on real validation photos with its mIoU on images generated from the
same validation label maps. ``ratio = miou_synthetic / miou_real`` (target >= 0.70).

Examples::

    python benchmarks/toycity_fidelity.py --minutes 10
    python benchmarks/toycity_fidelity.py --model runs/fidelity/train/model  # skip training

The segmenter (a small U-Net, saved as TorchScript beside the run for ``sisgen eval`` and
the generation quality filter) sees only real photos; the generated images are produced
by the EMA generator (with its BatchNorm statistics re-calibrated) through the torch engine
with one fixed seed per label map.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sisgen import sources
from sisgen.training.metrics.segmentation import ConfusionMatrix


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyUNet(nn.Module):
    """Three-level U-Net segmenter: images in [0, 1] -> class logits."""

    def __init__(self, num_classes: int, width: int = 24):
        super().__init__()
        w = width
        self.e1, self.e2, self.e3 = _block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.d2, self.d1 = _block(6 * w, 2 * w), _block(3 * w, w)
        self.head = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B,K,H,W]`` for images ``[B,3,H,W]`` in [0, 1]."""
        x = (x - 0.5) / 0.25
        a = self.e1(x)
        b = self.e2(F.max_pool2d(a, 2))
        c = self.e3(F.max_pool2d(b, 2))
        b = self.d2(torch.cat([F.interpolate(c, scale_factor=2.0, mode="bilinear"), b], 1))
        a = self.d1(torch.cat([F.interpolate(b, scale_factor=2.0, mode="bilinear"), a], 1))
        return self.head(a)


def _pairs(split: str, n: int, size: tuple[int, int], seed: int
           ) -> tuple[np.ndarray, np.ndarray, list]:
    src = sources.open("toycity", split=split, length=n, size=size, seed=seed)
    maps = [src.load(i) for i in range(n)]
    photos = np.stack([src.photo(i) for i in range(n)])
    return photos, np.stack([m.semantic for m in maps]), maps


def train_segmenter(photos: np.ndarray, labels: np.ndarray, num_classes: int, steps: int,
                    batch: int = 16, seed: int = 0) -> TinyUNet:
    """Train the U-Net on real photos (with horizontal flips)."""
    torch.manual_seed(seed)
    net = TinyUNet(num_classes)
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=steps)
    x_all = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 255.0
    y_all = torch.from_numpy(labels.astype(np.int64))
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (batch,), generator=g)
        x, y = x_all[idx], y_all[idx]
        if torch.rand((), generator=g) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        loss = F.cross_entropy(net(x), y, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def miou(net: TinyUNet, images: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """The segmenter's mIoU on uint8 ``[N,H,W,3]`` images against ``labels``."""
    cm = ConfusionMatrix()
    for i in range(0, len(images), 32):
        x = torch.from_numpy(images[i:i + 32]).permute(0, 3, 1, 2).float() / 255.0
        cm.update(net(x).argmax(1), torch.from_numpy(labels[i:i + 32].astype(np.int64)))
    return cm.miou()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="generator training budget")
    ap.add_argument("--model", help="use this trained model folder instead of training")
    ap.add_argument("--out", default="runs/fidelity")
    ap.add_argument("--size", default="64x128")
    ap.add_argument("--train-photos", type=int, default=2000)
    ap.add_argument("--val", type=int, default=300)
    ap.add_argument("--seg-steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.minutes > 10:
        ap.error("the acceptance budget is at most 10 minutes")
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    out = Path(args.out)
    result: dict = {"machine": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(), "size": [h, w]}

    import sisgen
    from sisgen.training import Trainer, load_config

    t0 = time.perf_counter()
    if args.model:
        model_dir = Path(args.model)
    else:
        cfg = load_config("toycity_spade_tiny", [
            f"out_dir={out / 'train'}", f"max_minutes={args.minutes}", "steps=null",
            f"height={h}", f"width={w}", f"seed={args.seed}", "sample_every=500"])
        trainer = Trainer(cfg, progress=False)
        model_dir = trainer.fit()
        result["generator_steps"] = trainer.step
    result["generator_train_s"] = round(time.perf_counter() - t0, 1)

    t1 = time.perf_counter()
    photos, labels, _ = _pairs("train", args.train_photos, (h, w), args.seed + 100)
    vocab = sources.open("toycity", length=1).vocabulary
    k = len(vocab.ids)
    net = train_segmenter(photos, labels, k, args.seg_steps, seed=args.seed)
    result["segmenter_train_s"] = round(time.perf_counter() - t1, 1)
    out.mkdir(parents=True, exist_ok=True)
    torch.jit.script(net).save(str(out / "segmenter.pt"))

    val_photos, val_labels, val_maps = _pairs("val", args.val, (h, w), args.seed + 200)
    gen = sisgen.load(model_dir, device="cpu")
    synthetic = []
    for i in range(0, len(val_maps), 32):
        synthetic += gen.generate(val_maps[i:i + 32], seeds=range(i, i + len(val_maps[i:i + 32])))
    result["miou_real"] = round(miou(net, val_photos, val_labels, k), 4)
    result["miou_synthetic"] = round(miou(net, np.stack(synthetic), val_labels, k), 4)
    result["ratio"] = round(result["miou_synthetic"] / max(result["miou_real"], 1e-9), 4)
    result["passes_0.70"] = result["ratio"] >= 0.70
    result["total_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
