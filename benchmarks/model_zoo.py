"""Parameter counts and compute of every registered model vs the official implementations.

Prints JSON: per model and dataset, our generator's parameters (training form) and
multiply-accumulates at batch 1 (``torch.utils.flop_counter.FlopCounterMode`` / 2), the
reference numbers registered with the model, and the relative differences.

    python benchmarks/model_zoo.py [--models spade clade] [--datasets cityscapes ade20k]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from sisgen.models import REFERENCE, available_models, build_model


def measure(name: str, dataset: str) -> dict:
    model = build_model(name, dataset=dataset).eval()
    params = sum(p.numel() for p in model.parameters())
    inputs = model.example_inputs(batch_size=1)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    macs = counter.get_total_flops() / 2
    row = {"model": name, "dataset": dataset, "params_M": round(params / 1e6, 3),
           "macs_G": round(macs / 1e9, 2)}
    ref = REFERENCE.get(name, {}).get(dataset)
    if ref:
        row.update(ref_params_M=round(ref[0] / 1e6, 3), ref_macs_G=round(ref[1] / 1e9, 2),
                   params_diff_pct=round(100 * (params - ref[0]) / ref[0], 3),
                   macs_diff_pct=round(100 * (macs - ref[1]) / ref[1], 3),
                   within_tolerance=abs(params - ref[0]) <= 0.005 * ref[0]
                   and abs(macs - ref[1]) <= 0.03 * ref[1])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--datasets", nargs="*", default=["cityscapes", "ade20k", "coco_stuff"])
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    rows = []
    for name in args.models or available_models():
        for ds in args.datasets:
            if name in REFERENCE and ds not in REFERENCE[name]:
                continue
            try:
                rows.append(measure(name, ds))
            except Exception as e:  # report and go on: one broken config must not hide the rest
                rows.append({"model": name, "dataset": ds, "error": repr(e)})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"results": rows}, indent=1))


if __name__ == "__main__":
    main()
