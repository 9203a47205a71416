"""Cost of the evaluation metrics on this machine; prints JSON.

* FID Inception-v3 (random weights: the cost does not depend on them): images/s at
  256x512 input (resized to 299x299 inside);
* the Fréchet distance of two 2048-d Gaussians (two symmetric eigendecompositions);
* LPIPS (VGG16 and AlexNet trunks, random weights): image pairs/s at 256x512;
* VASIS intra-class variation of the real Cityscapes sample photos at 256x512 (when
  ../shared/samples is present): the statistic's value on real photos, and images/s.

Usage: python benchmarks/metrics.py [--batch 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from sisgen.training.metrics import compute_metrics, frechet_distance
from sisgen.training.metrics.diversity import LPIPS
from sisgen.training.metrics.inception import FIDInceptionV3

SAMPLES = Path(os.environ.get("SISGEN_SAMPLES", Path(__file__).resolve().parents[2] / "shared"
                              / "samples"))


def _rate(fn, n_items: int, repeats: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return n_items * repeats / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.manual_seed(0)
    out: dict[str, object] = {"threads": torch.get_num_threads(), "batch": args.batch}
    images = torch.randint(0, 256, (args.batch, 3, 256, 512), dtype=torch.uint8)

    inception = FIDInceptionV3()
    out["inception_images_per_s"] = round(_rate(lambda: inception(images), args.batch,
                                                args.repeats), 2)

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4096, 2048)), rng.normal(size=(4096, 2048)) + 0.1
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    t = time.perf_counter()
    out["frechet_2048"] = round(frechet_distance(a.mean(0), ca, b.mean(0), cb), 3)
    out["frechet_2048_s"] = round(time.perf_counter() - t, 2)

    for net in ("vgg", "alex"):
        lp = LPIPS(net)
        out[f"lpips_{net}_pairs_per_s"] = round(
            _rate(lambda lp=lp: lp(images, images.flip(0)), args.batch, args.repeats), 2)

    city = SAMPLES / "cityscapes"
    if city.is_dir():
        from sisgen import sources

        src = sources.open("cityscapes", city, split="train")
        maps = [src[i].resized((256, 512)) for i in range(len(src))]
        photos = [src.photo(i) for i in range(len(src))]
        import cv2

        small = [cv2.resize(ph, (512, 256), interpolation=cv2.INTER_AREA) for ph in photos]
        t = time.perf_counter()
        icv = compute_metrics("icv", labelmaps=maps, images=small)
        out["icv_cityscapes_real_images"] = icv["images"]
        out["icv_cityscapes_real"] = {k: round(v, 3) for k, v in icv.items()
                                      if k.startswith("icv_")}
        out["icv_images_per_s"] = round(icv["images"] / (time.perf_counter() - t), 1)
    else:
        out["icv_cityscapes_real"] = f"skipped: no samples at {SAMPLES}"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
