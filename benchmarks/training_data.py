"""Training-data throughput: items/s of sisgen.training.data datasets, printed as JSON.

    python benchmarks/training_data.py [--samples ../shared/samples] [--repeat 3]

Measures, in one process (multiply by DataLoader workers for a training run), the
validation cost per pair and the item rate of the paper presets: Cityscapes ``fixed``
256x512 and COCO-Stuff ``resize_and_crop`` 286 -> 256 over the real samples, and ToyCity
(cached) at 64x128. Datasets whose files are absent are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from sisgen.training.data import build_dataset

CONFIGS = {
    "cityscapes_fixed_256x512": (
        {"kind": "cityscapes", "root": "{samples}/cityscapes", "split": "train"},
        (256, 512), None, False),
    "coco_stuff_resize_and_crop_256": (
        {"kind": "coco_stuff", "root": "{samples}/coco_stuff", "split": "train2017"},
        (256, 256), {"mode": "resize_and_crop", "load_size": 286, "crop_size": 256}, False),
    "toycity_cached_64x128": ({"kind": "toycity", "length": 64}, (64, 128), None, True),
}


def _measure(spec: dict, size, augment, cache: bool, repeat: int) -> dict:
    t0 = time.perf_counter()
    ds = build_dataset(spec, size, augment, seed=0, cache=cache, validate=True)
    validate_s = (time.perf_counter() - t0) / len(ds)
    n = 0
    t0 = time.perf_counter()
    for epoch in range(repeat):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            ds[i]
            n += 1
    elapsed = time.perf_counter() - t0
    return {"items": len(ds), "validate_ms_per_pair": round(1000 * validate_s, 2),
            "items_per_s": round(n / elapsed, 1), "ms_per_item": round(1000 * elapsed / n, 2)}


def main() -> None:
    """Run the benchmark and print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", default=str(Path(__file__).resolve().parents[1].parent
                                             / "shared" / "samples"))
    ap.add_argument("--repeat", type=int, default=3, help="epochs over each dataset")
    args = ap.parse_args()
    results = {}
    for name, (spec, size, augment, cache) in CONFIGS.items():
        spec = {k: v.format(samples=args.samples) if isinstance(v, str) else v
                for k, v in spec.items()}
        if "root" in spec and not Path(spec["root"]).is_dir():
            continue
        results[name] = _measure(spec, size, augment, cache, args.repeat)
    print(json.dumps({"benchmark": "training_data", "torch_threads": torch.get_num_threads(),
                      "cpu": platform.processor() or platform.machine(),
                      "cpus": os.cpu_count(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
